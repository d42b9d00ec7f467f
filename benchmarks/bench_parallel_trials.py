"""`vgg4d-tune --parallel-trials`: the same search with 1 and N trials at once.

Runs `vgg4d-tune` end to end in a fresh process (the default search unless
arguments follow `--`), with `--parallel-trials 1` and `--parallel-trials N`
in alternating rounds (1, N, then N, 1, ...), each in a new folder, and
prints each run's wall time, the seconds its trials took in all (from
`trial_times.json`: with N at once they overlap), its best score, the
medians side by side and their ratio, with the CPU model (from
/proc/cpuinfo), the core count and the load average before and after: the
machine may be shared.

    python benchmarks/bench_parallel_trials.py                # default search
    python benchmarks/bench_parallel_trials.py --rounds 1 -- --max-trials 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import machine  # noqa: E402

# `vgg4d-tune` as its console script runs it.
COMMAND = "import sys, keras_vgg4d_cli; sys.exit(keras_vgg4d_cli.tune())"


def run_search(parallel: int, extra: list[str]) -> dict:
    """Wall seconds, trial seconds and best score of one search."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", COMMAND, "--quiet", "--directory",
             directory, "--parallel-trials", str(parallel), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=env,
        )
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"--parallel-trials {parallel} failed:\n"
                               f"{result.stderr[-3000:]}")
        project = os.path.join(directory, "search")
        with open(os.path.join(project, "trial_times.json")) as file:
            trials = sum(json.load(file).values())
        with open(os.path.join(project, "results.json")) as file:
            rows = json.load(file)
    return {"seconds": seconds, "trials": trials, "count": len(rows),
            "best": rows[0]["score"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=2,
                        help="N, the trials at once compared with 1")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("extra", nargs="*",
                        help="vgg4d-tune arguments, after --")
    args = parser.parse_args()
    variants = (1, args.parallel)
    print(f"machine: {machine()}")
    print(f"search: vgg4d-tune --quiet {' '.join(args.extra) or '(defaults)'}"
          f"; --parallel-trials {variants[0]} against {variants[1]}, "
          f"{args.rounds} alternating round(s)", flush=True)
    samples = {n: [] for n in variants}
    for round_ in range(args.rounds):
        for n in variants if round_ % 2 == 0 else variants[::-1]:
            found = run_search(n, args.extra)
            samples[n].append(found)
            load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
            print(f"  round {round_ + 1}  --parallel-trials {n}  "
                  f"{found['seconds']:7.1f} s  "
                  f"trials {found['trials']:7.1f} s "
                  f"({found['count']})  best {found['best']:.4f}  "
                  f"load {load}", flush=True)
    medians = {n: statistics.median(s["seconds"] for s in samples[n])
               for n in variants}
    one, many = medians[variants[0]], medians[variants[1]]
    print(f"median wall time: --parallel-trials 1 {one:.1f} s, "
          f"--parallel-trials {args.parallel} {many:.1f} s; "
          f"ratio (1 / {args.parallel}) {one / many:.2f}x "
          f"({'faster' if many < one else 'slower'} with "
          f"{args.parallel} at once)")
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
