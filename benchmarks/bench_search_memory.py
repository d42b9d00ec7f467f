"""Peak memory of a long search: does it hold steady from trial to trial?

A RandomSearch of `--trials` trials (20 or more) with `VGG4DHyperModel`
(frozen random VGG19, feature cache on) on small demo clips. Keras Tuner
clears the Keras session before building each trial's model. After every
trial the process's peak resident set size (VmHWM, from
/proc/self/status) and its current one (VmRSS) are recorded; the script
prints them after trial 5 and after the last trial, and their ratio. Steady
memory means a peak ratio close to 1 (the target is <= 1.2).

Not a timed test and not run in CI:

    python benchmarks/bench_search_memory.py --trials 20
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_tuner  # noqa: E402

from keras_vgg4d import VGG4DHyperModel  # noqa: E402
from keras_vgg4d.data import demo_clips  # noqa: E402
from keras_vgg4d.data import split_balanced  # noqa: E402


def memory_mib() -> dict[str, float]:
    """`{"peak": VmHWM, "current": VmRSS}` of this process, in MiB."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0]) / 1024  # kB -> MiB
    return {"peak": values["VmHWM"], "current": values["VmRSS"]}


class MemoryRecordingSearch(keras_tuner.RandomSearch):
    """`RandomSearch` that records the process's memory after each trial."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.memory_after_trial = []

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.memory_after_trial.append(memory_mib())
        number = len(self.memory_after_trial)
        memory = self.memory_after_trial[-1]
        print(
            f"trial {number:3d}  peak {memory['peak']:8.1f} MiB  "
            f"current {memory['current']:8.1f} MiB",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.trials < 6:
        parser.error(f"--trials must be at least 6; received {args.trials}")

    x, y = demo_clips(n=args.clips, frames=args.frames, size=args.size,
                      task="order", seed=args.seed)
    (x_train, y_train), (x_val, y_val) = split_balanced(
        x, y, validation_fraction=0.25, seed=args.seed
    )
    hypermodel = VGG4DHyperModel(
        int(y.max()) + 1, x_train.shape[1:], cache_features=True
    )
    with tempfile.TemporaryDirectory() as directory:
        tuner = MemoryRecordingSearch(
            hypermodel, objective="val_accuracy", max_trials=args.trials,
            directory=directory, seed=args.seed,
        )
        tuner.search(x_train, y_train, validation_data=(x_val, y_val),
                     epochs=args.epochs, batch_size=16, verbose=0)
    memory = tuner.memory_after_trial
    last = len(memory)
    print(f"\n{last} trials run ({args.trials} asked), {args.epochs} epochs "
          f"each, {len(x_train)} training clips {x_train.shape[1:]}")
    print(f"{'':>22}{'after trial 5':>16}{f'after trial {last}':>18}"
          f"{'ratio':>8}")
    for kind in ("peak", "current"):
        first, final = memory[4][kind], memory[-1][kind]
        print(f"{kind + ' RSS (MiB)':>22}{first:16.1f}{final:18.1f}"
              f"{final / first:8.3f}")


if __name__ == "__main__":
    main()
