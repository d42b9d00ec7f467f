"""Video clips streamed from disk against the backbone that consumes them.

Writes `--videos` H.264 videos of `--seconds` s at `--fps`, 320x240 (a
textured scene panning under a moving square, so motion compensation has
work to do), into a temporary folder of two classes. Then times, in
alternating rounds after a warm-up:

- `clip_dataset_from_directory` delivering clips of `--frames` frames at
  `--size`x`--size` (decode with PyAV, TSN sampling drawn anew each epoch,
  resize, batch) through its parallel `map` (`tf.data.AUTOTUNE`): one
  pass over every video a round;
- the same clips read one after another in a plain Python loop
  (`read_clip` + `resize_clip`), for reference;
- `TemporalVGG19(weights=None)` predicting on batches of such clips,

and prints clips/s of each and the ratio of data to backbone (above 1,
the stream outruns the backbone; the target is at least 2):

    python benchmarks/bench_video.py
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from _timing import alternate  # noqa: E402
from keras_vgg4d import TemporalVGG19  # noqa: E402
from keras_vgg4d.data import clip_dataset_from_directory  # noqa: E402
from keras_vgg4d.data import read_clip  # noqa: E402
from keras_vgg4d.data import resize_clip  # noqa: E402
from keras_vgg4d.data import sample_frame_indices  # noqa: E402
from keras_vgg4d.data import write_video  # noqa: E402


def scene(frames, height, width, rng):
    """A random texture panning 2 px a frame under a moving square."""
    shape = (height // 8 + 1, (width + 2 * frames) // 8 + 1, 3)
    texture = rng.integers(40, 200, shape, dtype=np.uint8)
    texture = np.kron(texture, np.ones((8, 8, 1), np.uint8))
    clip = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        clip[t] = texture[:height, 2 * t: 2 * t + width]
        x, y = (5 * t) % (width - 40), (3 * t) % (height - 40)
        clip[t, y: y + 40, x: x + 40] = (250, 30, 30)
    return clip


def write_videos(root, count, seconds, fps, seed):
    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = os.path.join(root, f"class_{i % 2}")
        os.makedirs(folder, exist_ok=True)
        write_video(
            os.path.join(folder, f"v_{i:03d}.mp4"),
            scene(int(seconds * fps), 240, 320, rng), fps=fps,
        )


def one_pass(dataset):
    return sum(int(labels.shape[0]) for _, labels in dataset)


def plain_loop(sources, frames, size, seed):
    """Each clip read, sampled and resized in turn, no tf.data."""
    rng = np.random.default_rng(seed)
    for source in sources:
        indices = sample_frame_indices(source.length, frames, "segments",
                                       rng=rng)
        resize_clip(read_clip(source, indices), (size, size))
    return len(sources)


def machine():
    """CPU model and core count from /proc/cpuinfo, and the load average."""
    model, cores = "unknown CPU", os.cpu_count()
    try:
        with open("/proc/cpuinfo") as file:
            lines = file.read().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines
                 if line.startswith("model name")]
        flags = next((line for line in lines if line.startswith("flags")),
                     "")
        model = names[0] if names else model
        if "avx512_bf16" in flags:
            model += " (AVX-512 BF16)"
        elif "avx512f" in flags:
            model += " (AVX-512)"
    except OSError:
        pass
    return f"{model}, {cores} CPU(s)"


def load():
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--predict-batches", type=int, default=2,
                        help="backbone batches a round")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    print(machine())
    print(f"before: {load()}")

    inputs = keras.Input((args.frames, args.size, args.size, 3))
    backbone = keras.Model(inputs, TemporalVGG19(weights=None)(inputs))
    batch = np.random.default_rng(args.seed).uniform(
        0, 255, (args.batch, args.frames, args.size, args.size, 3)
    ).astype("float32")

    with tempfile.TemporaryDirectory() as root:
        write_videos(root, args.videos, args.seconds, args.fps, args.seed)
        start = time.perf_counter()
        dataset = clip_dataset_from_directory(
            root, batch_size=args.batch, image_size=args.size,
            frames=args.frames, sampling="segments", shuffle=True,
            seed=args.seed, verbose=False,
        )
        listing = time.perf_counter() - start
        variants = {
            "data: clip_dataset_from_directory, AUTOTUNE": functools.partial(
                one_pass, dataset),
            "data: plain Python loop": functools.partial(
                plain_loop, dataset.clip_sources, args.frames, args.size,
                args.seed),
            "backbone: TemporalVGG19 predict": lambda: [
                backbone.predict_on_batch(batch)
                for _ in range(args.predict_batches)
            ],
        }
        for fn in variants.values():  # warm-up: traces, file cache, kernels
            fn()
        seconds = alternate(variants, rounds=args.rounds, repeats=1)

    report(args, seconds)
    print(f"building the dataset (listing, probing each video, tracing the "
          f"map) took {listing:.2f} s; after: {load()}")


def report(args, seconds):
    """Prints clips/s of each variant and the ratios."""
    clips = {
        name: (args.batch * args.predict_batches if name.startswith(
            "backbone") else args.videos) / s
        for name, s in seconds.items()
    }
    print(
        f"{args.videos} H.264 videos of 320x240, {args.seconds:g} s at "
        f"{args.fps} fps -> clips of {args.frames} frames at "
        f"{args.size}x{args.size} (segments sampling), batch {args.batch}; "
        f"backbone: TemporalVGG19(weights=None), float32, "
        f"{args.predict_batches} batches a round; {args.rounds} alternating "
        "rounds, medians"
    )
    width = max(len(name) for name in clips)
    for name, rate in clips.items():
        print(f"  {name:<{width}}  {rate:8.2f} clips/s  "
              f"({seconds[name]:.3f} s a round)")
    data = clips["data: clip_dataset_from_directory, AUTOTUNE"]
    model = clips["backbone: TemporalVGG19 predict"]
    loop = clips["data: plain Python loop"]
    print(f"ratio data / backbone = {data / model:.1f}x (target >= 2x); "
          f"AUTOTUNE / plain loop = {data / loop:.2f}x")


if __name__ == "__main__":
    main()
