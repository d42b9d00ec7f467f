"""Peak memory of `vgg4d-tune --data DIR` on 100 and on 1,000 videos.

Writes short H.264 videos (UCF101-style names, three classes, groups) into
two folders, one ten times the other, then runs the README's search command
on each in its own process (frozen random VGG19, feature cache on) and
prints each process's peak resident set size (VmHWM) and their ratio. A
streaming search holds no more raw clips the more videos there are: the
target is a ratio <= 1.3.

    python benchmarks/bench_stream_memory.py --small 100 --large 1000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

RUN = """
import json, sys
from keras_vgg4d.tuning.search import main
status = main(sys.argv[2:])
peak = None
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
with open(sys.argv[1], "w") as f:
    json.dump({"status": status, "peak_mib": peak}, f)
"""


def cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def write_videos(root: str, count: int, frames: int, seed: int) -> None:
    """`count` videos of `frames` frames of 64x48 noise over a gradient."""
    from keras_vgg4d.data import write_video

    rng = np.random.default_rng(seed)
    classes = ("jump", "run", "walk")
    for i in range(count):
        name = classes[i % 3]
        group = 1 + (i // 3) % 10
        clip = rng.integers(0, 255, (frames, 48, 64, 3), dtype="uint8")
        clip[..., i % 3] = 200
        path = os.path.join(root, name, f"v_{name}_g{group:02d}_c{i:04d}.mp4")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_video(path, clip, fps=25)


def search_peak(folder: str, directory: str, args) -> dict:
    result = os.path.join(directory, "result.json")
    command = [
        sys.executable, "-c", RUN, result, "--data", folder,
        "--frames", str(args.frames), "--image-size", "32",
        "--max-trials", str(args.trials), "--epochs", str(args.epochs),
        "--heads", "framewise,lstm", "--directory", directory, "--quiet",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=dict(
        os.environ, TF_CPP_MIN_LOG_LEVEL="3"), stdout=subprocess.DEVNULL)
    with open(result) as file:
        outcome = json.load(file)
    outcome["seconds"] = time.perf_counter() - start
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--video-frames", type=int, default=12)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{cpu_model()}, {os.cpu_count()} CPU(s); load {os.getloadavg()}")
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for count in (args.small, args.large):
            folder = os.path.join(scratch, f"videos{count}")
            write_videos(folder, count, args.video_frames, args.seed)
            results[count] = search_peak(
                folder, os.path.join(scratch, f"runs{count}"), args)
            print(f"{count:>5} videos: peak RSS {results[count]['peak_mib']:.0f}"
                  f" MiB, search {results[count]['seconds']:.0f} s")
    ratio = results[args.large]["peak_mib"] / results[args.small]["peak_mib"]
    print(f"peak RSS {args.large} / {args.small} videos = {ratio:.3f} "
          "(target <= 1.3)")


if __name__ == "__main__":
    main()
