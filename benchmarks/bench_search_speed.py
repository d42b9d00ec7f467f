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
5. `--compiled-steps`: the default search with `compile_once` on and off
   (each in a fresh process, alternating rounds), with every trial's time
   and the time its first train and first test batch took beyond a usual
   batch: the tracing (TensorFlow) or compiling (JAX) of its steps.

`KERAS_BACKEND` (or `--backend`) picks the backend of every search run.

    python benchmarks/bench_search_speed.py --before /tmp/before --only-search
    python benchmarks/bench_search_speed.py --compiled-steps --backend jax
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


def default_search(tree: str | None) -> tuple[float, float, dict]:
    """Seconds, MiB and trial times of the default search run from `tree`
    (None: here)."""
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


def trials_seconds(directory: str) -> dict[str, float]:
    """Seconds each of the search's trials took (`trial_times.json`)."""
    for root, _, files in os.walk(directory):
        if "trial_times.json" in files:
            with open(os.path.join(root, "trial_times.json")) as file:
                return json.load(file)
    raise FileNotFoundError(f"no trial_times.json under {directory}")


def _later(times: dict[str, float]) -> float:
    """Seconds of the trials after the first (which computes the features
    once a search, the same work before and after)."""
    return sum(v for k, v in times.items() if int(k) > 0)


def compare_default_search(before: str, rounds: int) -> None:
    runs = {"before": [], "after": []}
    trials = {"before": [], "after": []}
    later = {"before": [], "after": []}
    sizes = {}
    for _ in range(rounds):
        for name, tree in (("before", before), ("after", None)):
            seconds, mib, times = default_search(tree)
            runs[name].append(seconds)
            trials[name].append(sum(times.values()))
            later[name].append(_later(times))
            sizes[name] = mib
            print(f"  {name:<7}{seconds:8.1f} s  trials {trials[name][-1]:6.1f}"
                  f" s (after the first {later[name][-1]:6.1f} s)  folder "
                  f"{mib:7.1f} MiB", flush=True)
    for label, values in (("default search", runs), ("its nine trials", trials),
                          ("trials 2-9", later)):
        median = {k: statistics.median(v) for k, v in values.items()}
        print(f"{label}, median of {rounds}: before {median['before']:.1f} s,"
              f" after {median['after']:.1f} s, speed-up "
              f"{median['before'] / median['after']:.2f}x")
    print(f"folder {sizes['before']:.0f} -> {sizes['after']:.0f} MiB")


class _FirstBatches(keras.callbacks.Callback):
    """Per fit: the first train and test batch's time beyond the median
    batch (tracing or compiling), and the fit's time. Keras Tuner gives
    each trial a copy of the callbacks: all copies record in `FITS`."""

    FITS = []

    def on_train_begin(self, logs=None):
        self.batches = {"train": [], "test": []}
        self.fit_started = time.perf_counter()

    def _begin(self, kind):
        self.started = time.perf_counter()

    def _end(self, kind):
        self.batches[kind].append(time.perf_counter() - self.started)

    def on_train_batch_begin(self, batch, logs=None):
        self._begin("train")

    def on_train_batch_end(self, batch, logs=None):
        self._end("train")

    def on_test_batch_begin(self, batch, logs=None):
        self._begin("test")

    def on_test_batch_end(self, batch, logs=None):
        self._end("test")

    def on_train_end(self, logs=None):
        excess = 0.0
        for times in self.batches.values():
            if len(times) > 1:
                excess += times[0] - statistics.median(times[1:])
        self.FITS.append({"fit": time.perf_counter() - self.fit_started,
                          "compile": excess})


def instrumented_search(compile_once: bool, max_trials: int = 9,
                        seed: int = 0) -> dict:
    """The default `vgg4d-tune` search (with `max_trials` trials) in this
    process, its trials timed."""
    from keras_vgg4d.tuning import search as tune
    from keras_vgg4d.tuning.configs import make_tuner
    from keras_vgg4d.tuning.search_data import load_search_data
    from keras_vgg4d_cli import build_tune_parser

    with tempfile.TemporaryDirectory() as directory:
        args = build_tune_parser().parse_args(
            ["--directory", directory, "--max-trials", str(max_trials),
             "--seed", str(seed)])
        keras.utils.set_random_seed(args.seed)
        data = load_search_data(args)
        hypermodel = tune.make_hypermodel(
            args, data.input_shape, len(data.class_names), data.time_axis)
        hypermodel.compile_once = compile_once
        tuner = make_tuner(
            args.tuner, hypermodel, max_trials=args.max_trials,
            epochs=args.epochs, directory=args.directory,
            project_name=args.project_name, overwrite=True, seed=args.seed)
        clock = _FirstBatches()
        started = time.perf_counter()
        tuner.search(data.train, data.train_labels,
                     validation_data=(data.validation, data.validation_labels),
                     epochs=args.epochs, batch_size=args.batch_size,
                     callbacks=[clock, *tune._callbacks(args, hypermodel)],
                     verbose=0)
        seconds = time.perf_counter() - started
        times = tuner.trial_times()
        trials = [tuner.oracle.trials[k] for k in sorted(times, key=int)]
        heads = [t.hyperparameters.values["temporal_head"] for t in trials]
        scores = [t.score for t in trials]
        best = tuner.oracle.get_best_trials(1)[0]
    return {"search": seconds, "trials": [times[k] for k in sorted(times, key=int)],
            "fits": _FirstBatches.FITS, "heads": heads, "scores": scores,
            "best": [best.hyperparameters.values["temporal_head"], best.score],
            "steps": len(hypermodel.compiled_steps)}


def one_search(mode: str, *options: str) -> dict:
    """`instrumented_search` in a fresh process (`--one MODE OPTIONS`)."""
    output = subprocess.run(
        [sys.executable, __file__, "--one", mode, *options], check=True,
        stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")).stdout
    return json.loads(output.strip().splitlines()[-1])


def compare_results(seeds: int) -> None:
    """The default search's scores with `compile_once` off and on, seeds
    0..seeds-1: the best trial's head and score, the mean trial score."""
    for seed in range(seeds):
        line = []
        for mode in ("off", "on"):
            record = one_search(mode, "--seed", str(seed))
            head, score = record["best"]
            line.append(f"compile_once={mode}: best {head} {score:.3f}, mean "
                        f"trial {statistics.mean(record['scores']):.3f}")
        print(f"  seed {seed}: " + "; ".join(line), flush=True)


def compare_compiled_steps(rounds: int, max_trials: int = 9) -> None:
    """`compile_once` on and off, fresh processes, alternating rounds."""
    records = {"off": [], "on": []}
    for _ in range(rounds):
        for mode in records:
            records[mode].append(
                one_search(mode, "--max-trials", str(max_trials)))
            record = records[mode][-1]
            print(f"  compile_once={mode:<3} search {record['search']:6.1f} s,"
                  f" trials {sum(record['trials']):6.1f} s (after the first: "
                  f"{sum(record['trials'][1:]):5.1f} s), compiling "
                  f"{sum(f['compile'] for f in record['fits']):5.1f} s, head "
                  f"steps {record['steps']}", flush=True)
    last = records["on"][-1]
    print("  last round, compile_once=on, per trial: " + "; ".join(
        f"{h} {t:.2f} s ({f['compile']:.2f} compiling)"
        for h, t, f in zip(last["heads"], last["trials"], last["fits"])))

    def median(mode, pick):
        return statistics.median(pick(r) for r in records[mode])

    for label, pick in (
        (f"all {max_trials} trials", lambda r: sum(r["trials"])),
        (f"trials 2-{max_trials}", lambda r: sum(r["trials"][1:])),
        ("search (tuner.search)", lambda r: r["search"]),
    ):
        off, on = median("off", pick), median("on", pick)
        print(f"{label}, median of {rounds}: compile_once off {off:.1f} s, on "
              f"{on:.1f} s, speed-up {off / on:.2f}x")
    for mode in records:
        share = median(mode, lambda r: sum(f["compile"] for f in r["fits"][1:])
                       / sum(r["trials"][1:]))
        print(f"tracing/compiling share of trials 2-{max_trials}, "
              f"compile_once={mode}: "
              f"{share:.0%} (target <= 15%)")


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
    parser.add_argument("--only-search", action="store_true",
                        help="stop after the default search comparisons")
    parser.add_argument("--compiled-steps", action="store_true",
                        help="compare the default search with compile_once "
                             "on and off, trials timed")
    parser.add_argument("--backend", choices=["tensorflow", "jax", "torch"],
                        help="the Keras backend of the searches")
    parser.add_argument("--results", type=int, metavar="SEEDS",
                        help="compare the default search's scores with "
                             "compile_once off and on over SEEDS seeds")
    parser.add_argument("--max-trials", type=int, default=9,
                        help="trials of the --compiled-steps searches")
    parser.add_argument("--one", choices=["on", "off"],
                        help=argparse.SUPPRESS)  # one instrumented search
    args = parser.parse_args()
    if args.one:
        print(json.dumps(instrumented_search(args.one == "on",
                                             args.max_trials, args.seed)))
        return
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    print(f"{cpu_model()}, {os.cpu_count()} CPU(s); load {os.getloadavg()}; "
          f"backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}")
    keras.utils.set_random_seed(args.seed)
    if args.before:
        compare_default_search(args.before, args.rounds)
    if args.compiled_steps:
        compare_compiled_steps(args.rounds, args.max_trials)
    if args.results:
        compare_results(args.results)
    if args.only_search or args.compiled_steps or args.results:
        print(f"load after: {os.getloadavg()}")
        return
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
