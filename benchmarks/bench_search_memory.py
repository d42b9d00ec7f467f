"""Memory over a long search: does it stay flat from trial to trial?

A RandomSearch of `--trials` trials (default 100) with `VGG4DHyperModel`
(frozen random VGG19, feature cache on) on small demo clips, once with the
trials sharing compiled head steps (`compile_once=True`, the default) and
once without, each in a fresh process of the backend `KERAS_BACKEND` names.
Keras Tuner clears the Keras session before each trial. After every trial
the process's resident set size (VmRSS, from /proc/self/status) is recorded;
the script prints, side by side, RSS after trial 10 and after the last
trial, the growth per trial between them (target: <= 1 MiB a trial), and
how many compiled head steps the search made.

Not a timed test and not run in CI:

    python benchmarks/bench_search_memory.py --trials 100
    KERAS_BACKEND=jax python benchmarks/bench_search_memory.py --trials 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def memory_mib() -> dict[str, float]:
    """`{"peak": VmHWM, "current": VmRSS}` of this process, in MiB."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0]) / 1024  # kB -> MiB
    return {"peak": values["VmHWM"], "current": values["VmRSS"]}


def run_search(args) -> dict:
    """One search in this process; returns RSS after each trial."""
    import keras
    import keras_tuner

    from keras_vgg4d import VGG4DHyperModel
    from keras_vgg4d.data import demo_clips
    from keras_vgg4d.data import split_balanced

    class MemoryRecordingSearch(keras_tuner.RandomSearch):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            memory.append(memory_mib()["current"])
            steps.append(len(hypermodel.compiled_steps))
            if len(memory) % 10 == 0:
                print(f"  trial {len(memory):3d}  RSS {memory[-1]:8.1f} MiB",
                      file=sys.stderr, flush=True)

    memory, steps = [], []
    keras.utils.set_random_seed(args.seed)
    x, y = demo_clips(n=args.clips, frames=args.frames, size=args.size,
                      task="order", seed=args.seed)
    (x_train, y_train), (x_val, y_val) = split_balanced(
        x, y, validation_fraction=0.25, seed=args.seed
    )
    hypermodel = VGG4DHyperModel(
        int(y.max()) + 1, x_train.shape[1:], compile_once=args.compile_once
    )
    with tempfile.TemporaryDirectory() as directory:
        tuner = MemoryRecordingSearch(
            hypermodel, objective="val_accuracy", max_trials=args.trials,
            directory=directory, seed=args.seed + 1,
        )
        tuner.search(x_train, y_train, validation_data=(x_val, y_val),
                     epochs=args.epochs, batch_size=16, verbose=0)
    return {"rss": memory, "steps": len(hypermodel.compiled_steps),
            "steps_by_trial": steps, "backend": keras.backend.backend()}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", choices=["on", "off"],
                        help="run one search with compile_once on or off "
                             "and print its record as JSON (used internally)")
    args = parser.parse_args()
    if args.trials < 20:
        parser.error(f"--trials must be at least 20; received {args.trials}")
    if args.one:
        args.compile_once = args.one == "on"
        print(json.dumps(run_search(args)))
        return
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo
                    if line.startswith("model name")), "unknown")
    print(f"{cpu}, {os.cpu_count()} CPU(s); load {os.getloadavg()}")
    records = {}
    for mode in ("off", "on"):
        print(f"compile_once={mode}: {args.trials} trials ...", flush=True)
        output = subprocess.run(
            [sys.executable, __file__, "--one", mode,
             *[f"--{k}={getattr(args, k)}" for k in
               ("trials", "epochs", "clips", "frames", "size", "seed")]],
            check=True, stdout=subprocess.PIPE, text=True,
        ).stdout
        records[mode] = json.loads(output.strip().splitlines()[-1])
    last = args.trials
    print(f"\n{last} trials, {args.epochs} epochs each, {args.clips} demo "
          f"clips ({args.frames}, {args.size}, {args.size}, 3), backend "
          f"{records['on']['backend']}")
    print(f"{'compile_once':>13}{'RSS trial 10':>15}{f'RSS trial {last}':>15}"
          f"{'MiB / trial':>13}{'head steps':>12}")
    growth = {}
    for mode in ("off", "on"):
        rss = records[mode]["rss"]
        growth[mode] = (rss[-1] - rss[9]) / (len(rss) - 10)
        steps = records[mode]["steps"] if mode == "on" else "-"
        print(f"{mode:>13}{rss[9]:15.1f}{rss[-1]:15.1f}{growth[mode]:13.2f}"
              f"{steps!s:>12}")
    print(f"growth after trial 10: {growth['off']:.2f} -> {growth['on']:.2f} "
          f"MiB a trial (target <= 1)")
    rss, steps = records["on"]["rss"], records["on"]["steps_by_trial"]
    last_new = max(i for i in range(len(steps))
                   if i == 0 or steps[i] > steps[i - 1])
    if last_new < len(rss) - 1:
        after = (rss[-1] - rss[last_new]) / (len(rss) - 1 - last_new)
        print(f"compile_once=on: the last new head architecture came in trial "
              f"{last_new + 1}; after it, {after:.2f} MiB a trial over "
              f"{len(rss) - 1 - last_new} trials")
    new = [rss[i] - rss[i - 1] for i in range(10, len(rss))
           if steps[i] > steps[i - 1]]
    same = [rss[i] - rss[i - 1] for i in range(10, len(rss))
            if steps[i] == steps[i - 1]]
    if new and same:
        print(f"after trial 10, compile_once=on: {len(new)} trials with a new "
              f"architecture, {sum(new) / len(new):.2f} MiB each on average; "
              f"{len(same)} reusing a compiled step, "
              f"{sum(same) / len(same):.2f} MiB each")


if __name__ == "__main__":
    main()
