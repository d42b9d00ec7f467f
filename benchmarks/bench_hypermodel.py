"""End-to-end search time with and without the feature cache, side by side.

A 6-trial RandomSearch, 5 epochs a trial, on 96 training and 32 validation
demo clips of 8 frames of 64x64, frozen random VGG19; the same seed, so both
searches try the same hyperparameters. Then the default `vgg4d-tune` run.

    python benchmarks/bench_hypermodel.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner  # noqa: E402

from keras_vgg4d import VGG4DHyperModel  # noqa: E402
from keras_vgg4d.data import demo_clips  # noqa: E402
from keras_vgg4d.data import split_balanced  # noqa: E402


def search_seconds(data, cache, args):
    (x_train, y_train), (x_val, y_val) = data
    keras.utils.set_random_seed(args.seed)
    hypermodel = VGG4DHyperModel(
        int(y_train.max()) + 1, x_train.shape[1:], cache_features=cache
    )
    with tempfile.TemporaryDirectory() as directory:
        tuner = keras_tuner.RandomSearch(
            hypermodel, objective="val_accuracy", max_trials=args.trials,
            directory=directory, seed=args.seed,
        )
        start = time.perf_counter()
        tuner.search(x_train, y_train, validation_data=(x_val, y_val),
                     epochs=args.epochs, batch_size=16, verbose=0)
        seconds = time.perf_counter() - start
        best = tuner.oracle.get_best_trials(1)[0].score
    return seconds, best


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()

    x, y = demo_clips(n=128, frames=args.frames, size=args.size,
                      task="order", seed=args.seed)
    data = split_balanced(x, y, validation_fraction=0.25, seed=args.seed)
    cached, cached_best = search_seconds(data, True, args)
    print(f"(feature cache search done: {cached:.1f} s)", flush=True)
    uncached, uncached_best = search_seconds(data, False, args)
    print(f"{args.trials}-trial RandomSearch, {args.epochs} epochs, "
          f"{len(data[0][0])} train / {len(data[1][0])} val clips of "
          f"{args.frames}x{args.size}x{args.size}x3")
    print(f"{'variant':<22}{'seconds':>9}{'best val_acc':>14}")
    print(f"{'feature cache':<22}{cached:>9.1f}{cached_best:>14.3f}")
    print(f"{'no cache':<22}{uncached:>9.1f}{uncached_best:>14.3f}")
    print(f"speed-up with the cache: {uncached / cached:.1f}x")

    if not args.skip_cli:
        with tempfile.TemporaryDirectory() as directory:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "keras_vgg4d.tuning.search", "--quiet",
                 "--directory", directory],
                check=True, stdout=subprocess.DEVNULL,
            )
            print(f"default vgg4d-tune run, end to end: "
                  f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
