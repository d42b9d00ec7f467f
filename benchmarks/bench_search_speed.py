"""The default search, before and after, and where a trial's time goes.

Measurements in one run, on this machine:

1. The default `vgg4d-tune` run (9 trials, 192 demo clips of 6 frames of
   32x32, 15 epochs, frozen random VGG19, feature cache on), end to end in a
   fresh process: this checkout against `--before` (a checkout of an older
   commit, e.g. `git worktree add /tmp/before d5a1c12`), in alternating
   rounds; with the size of each search folder, and the seconds its trials
   took in all (from the search's `trial_times.json`).
2. One trial, broken down: building the classifier, compiling the head
   model, the first epoch (tracing), the other epochs, validation and the
   checkpoint writes.
3. The head model fit on the cached features as NumPy arrays against the
   `tf.data.Dataset` of them `VGG4DHyperModel.fit` gives it (alternating).
4. Backbone features of the same clips in float32 and in `mixed_bfloat16`
   (the CPU's bfloat16 flags are printed: only AVX-512 BF16 / AMX gain).

    python benchmarks/bench_search_speed.py --before /tmp/before
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402

from keras_vgg4d import VGG4DHyperModel  # noqa: E402
from keras_vgg4d.data import demo_clips  # noqa: E402
from keras_vgg4d.data import split_balanced  # noqa: E402
from keras_vgg4d.precision import BF16_FLAGS  # noqa: E402
from keras_vgg4d.precision import cpu_flags  # noqa: E402


def cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def folder_mib(path: str) -> float:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total / 2**20


def default_search(tree: str | None) -> tuple[float, float]:
    """Seconds and MiB of the default search run from `tree` (None: here)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    module = "keras_vgg4d.tuning.search"
    if tree is not None:
        env["PYTHONPATH"] = tree
        module = ("tuning.search" if os.path.isdir(os.path.join(tree, "tuning"))
                  and not os.path.exists(os.path.join(
                      tree, "keras_vgg4d", "tuning")) else module)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", module, "--quiet", "--directory", directory],
            check=True, stdout=subprocess.DEVNULL, env=env,
            cwd=tree or os.getcwd(),
        )
        seconds = time.perf_counter() - start
        return seconds, folder_mib(directory), trials_seconds(directory)


def trials_seconds(directory: str) -> float:
    """Seconds the search's trials took in all (`trial_times.json`)."""
    for root, _, files in os.walk(directory):
        if "trial_times.json" in files:
            with open(os.path.join(root, "trial_times.json")) as file:
                return sum(json.load(file).values())
    raise FileNotFoundError(f"no trial_times.json under {directory}")


def compare_default_search(before: str, rounds: int) -> None:
    runs = {"before": [], "after": []}
    trials = {"before": [], "after": []}
    sizes = {}
    for _ in range(rounds):
        for name, tree in (("before", before), ("after", None)):
            seconds, mib, in_trials = default_search(tree)
            runs[name].append(seconds)
            trials[name].append(in_trials)
            sizes[name] = mib
            print(f"  {name:<7}{seconds:8.1f} s  trials {in_trials:6.1f} s"
                  f"  folder {mib:7.1f} MiB", flush=True)
    median = {k: statistics.median(v) for k, v in runs.items()}
    print(f"default search, median of {rounds}: before {median['before']:.1f}"
          f" s, after {median['after']:.1f} s, speed-up "
          f"{median['before'] / median['after']:.2f}x; folder "
          f"{sizes['before']:.0f} -> {sizes['after']:.0f} MiB")
    median = {k: statistics.median(v) for k, v in trials.items()}
    print(f"its nine trials, median of {rounds}: before "
          f"{median['before']:.1f} s, after {median['after']:.1f} s, "
          f"speed-up {median['before'] / median['after']:.2f}x")


class _Clock(keras.callbacks.Callback):
    def __init__(self, times):
        super().__init__()
        self.times = times

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        key = "first epoch (traces)" if epoch == 0 else "other epochs"
        self.times[key] = self.times.get(key, 0) + time.perf_counter() - self.started

    def on_test_begin(self, logs=None):
        self.test_started = time.perf_counter()

    def on_test_end(self, logs=None):
        self.times["validation"] = (self.times.get("validation", 0)
                                    + time.perf_counter() - self.test_started)


def trial_breakdown(data, head: str) -> dict[str, float]:
    (x_train, y_train), (x_val, y_val) = data
    hypermodel = VGG4DHyperModel(2, x_train.shape[1:])
    hp = keras_tuner.HyperParameters()
    hp.Fixed("temporal_head", head)
    warm = hypermodel.build(hp)
    hypermodel.feature_cache.get(warm, x_train, y_train, 16, 0)
    hypermodel.feature_cache.get(warm, x_val, y_val, 16, 0)
    keras.backend.clear_session()
    times = {}
    start = time.perf_counter()
    model = hypermodel.build(hp)
    times["build"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "checkpoint.weights.h5")
        start = time.perf_counter()
        hypermodel.fit(hp, model, x_train, y_train, batch_size=16, epochs=15,
                       validation_data=(x_val, y_val), verbose=0,
                       callbacks=[_Clock(times)])
        times["fit, in all"] = time.perf_counter() - start
        start = time.perf_counter()
        model.save_head_weights(path)
        times["one head checkpoint"] = time.perf_counter() - start
        start = time.perf_counter()
        model.save_weights(path)
        times["one whole checkpoint (before)"] = time.perf_counter() - start
    return times


def head_inputs(data, head: str, rounds: int) -> None:
    """The head model fit on the cached arrays against the dataset of them
    `VGG4DHyperModel.fit` gives it, alternating, same trial otherwise."""
    from keras_vgg4d.hypermodel import _dataset

    (x_train, y_train), (x_val, y_val) = data
    hypermodel = VGG4DHyperModel(2, x_train.shape[1:])
    hp = keras_tuner.HyperParameters()
    hp.Fixed("temporal_head", head)
    warm = hypermodel.build(hp)
    train = hypermodel.feature_cache.get(warm, x_train, y_train, 16, 0)
    val = hypermodel.feature_cache.get(warm, x_val, y_val, 16, 0)

    seconds = {"arrays": [], "dataset": []}
    for _ in range(rounds):
        for kind in seconds:
            keras.backend.clear_session()
            head_model = hypermodel.build(hp).head_model()
            hypermodel.compile_model(head_model, hp)
            if kind == "arrays":
                arguments = {"x": train.inputs, "y": train.labels,
                             "batch_size": 16,
                             "validation_data": (val.inputs, val.labels)}
            else:
                arguments = {"x": _dataset(train, 16, shuffle=True),
                             "shuffle": False,
                             "validation_data": _dataset(val, 16)}
            start = time.perf_counter()
            head_model.fit(epochs=15, verbose=0, **arguments)
            seconds[kind].append(time.perf_counter() - start)
    arrays = statistics.median(seconds["arrays"])
    dataset_ = statistics.median(seconds["dataset"])
    print(f"{head} head fit, 15 epochs on cached features: arrays "
          f"{arrays:.2f} s, dataset {dataset_:.2f} s, speed-up "
          f"{arrays / dataset_:.2f}x (medians of {rounds})")


def feature_precision(data, repeats: int) -> None:
    (x_train, _), _ = data
    flags = cpu_flags() & set(BF16_FLAGS)
    print(f"bfloat16 flags on this CPU: {sorted(flags) or 'none'}")
    seconds = {}
    for precision in ("float32", "bfloat16"):
        hypermodel = VGG4DHyperModel(2, x_train.shape[1:], precision=precision)
        model = hypermodel.build(keras_tuner.HyperParameters())
        extractor = model.feature_extractor(
            x_train.shape[1:], "float32", hypermodel.feature_cache.dtype_policy)
        extractor.predict(x_train[:16], verbose=0)
        start = time.perf_counter()
        for _ in range(repeats):
            extractor.predict(x_train, batch_size=16, verbose=0)
        seconds[precision] = (time.perf_counter() - start) / repeats
    print(f"features of {len(x_train)} clips: float32 {seconds['float32']:.2f}"
          f" s, bfloat16 {seconds['bfloat16']:.2f} s, speed-up "
          f"{seconds['float32'] / seconds['bfloat16']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", help="checkout of the older commit")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--head-inputs-only", action="store_true",
                        help="only compare the head fit on arrays and on "
                             "a dataset of the cached features")
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    print(f"{cpu_model()}, {os.cpu_count()} CPU(s); load {os.getloadavg()}")
    if args.before:
        compare_default_search(args.before, args.rounds)
    x, y = demo_clips(n=192, frames=6, size=32, task="order", seed=args.seed)
    data = split_balanced(x, y, validation_fraction=0.25, seed=args.seed)
    for head in ("framewise", "conv3d", "lstm"):
        if not args.head_inputs_only:
            times = trial_breakdown(data, head)
            print(f"one {head} trial (15 epochs): " + ", ".join(
                f"{k} {v:.2f} s" for k, v in times.items()))
        head_inputs(data, head, args.rounds + 1)
    if not args.head_inputs_only:
        feature_precision(data, repeats=3)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
