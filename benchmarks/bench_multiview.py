"""Single-view against multi-view validation accuracy on a demo task.

Demo clips of `--clip-frames` frames (default the "event" task: the class
is the object one single frame shows, at a random time; the other frames
are background), and a `VGG4DClassifier` with a frozen random VGG19
(`weights=None`) whose head trains briefly on windows of `--window`
frames drawn at a random start each epoch (as
`clip_dataset_from_directory(sampling="random")` draws them), on backbone
features computed once. Then, for each head, on the validation clips:

- single view: the centred window (what a plain evaluation on windows of
  the training length sees: `predict_views(..., num_windows=1)`);
- multi-view: `predict_views(..., window=W, num_windows=k)`, the mean of
  the probabilities of `k` windows evenly spaced from the clip's start to
  its end, for each `k` in `--num-windows`.

A centred window of 4 frames out of 8 holds the event frame in about half
the clips; three windows cover the whole clip. Prints validation accuracy
and seconds of each (the mean over `--seeds`, and each seed's value), and
the machine. About 2.5 minutes on 2 busy cores.

    python benchmarks/bench_multiview.py
    python benchmarks/bench_multiview.py --task motion --num-classes 4 \
        --clip-frames 16 --window 8 --train 192 --val 64 --epochs 20
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from _timing import machine  # noqa: E402
from keras_vgg4d import VGG4DClassifier  # noqa: E402
from keras_vgg4d.data import demo_clips  # noqa: E402
from keras_vgg4d.multiview import predict_views  # noqa: E402


def random_windows(features, mask, window, rng):
    """One window of `window` frames a clip, at a random start."""
    starts = rng.integers(0, features.shape[1] - window + 1, len(features))
    index = starts[:, None] + np.arange(window)
    rows = np.arange(len(features))[:, None]
    return features[rows, index], mask[rows, index]


def train_head(model, features, mask, labels, args, seed):
    """Trains `model`'s head on random windows of cached features."""
    head = model.head_model()
    head.compile(
        keras.optimizers.Adam(args.learning_rate),
        "sparse_categorical_crossentropy",
    )
    rng = np.random.default_rng(seed)
    for _ in range(args.epochs):
        x, m = random_windows(features, mask, args.window, rng)
        head.fit([x, m], labels, batch_size=args.batch_size, epochs=1,
                 verbose=0)


def accuracy(probabilities, labels):
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def run_seed(args, data, seed):
    """`{(head, views): (accuracy, seconds)}` for one seed."""
    x_train, y_train, x_val, y_val = data
    rows = {}
    features = None
    for head in args.heads:
        keras.utils.set_random_seed(seed)
        model = VGG4DClassifier(args.num_classes, head, weights=None)
        model.build((None, args.window, *x_train.shape[2:]))
        if features is None:  # the same frozen backbone for every head
            backbone = model.backbone.get_weights()
            extractor = model.feature_extractor(x_train.shape[1:])
            features, mask = extractor.predict(x_train, batch_size=32,
                                               verbose=0)
        model.backbone.set_weights(backbone)
        train_head(model, features, mask, y_train, args, seed)
        for k in [1, *args.num_windows]:
            start = time.perf_counter()
            probabilities = predict_views(model, x_val, window=args.window,
                                          num_windows=k, verbose=0)
            view = ("single view (centred window)" if k == 1
                    else f"{k} windows")
            rows[(head, view)] = (accuracy(probabilities, y_val),
                                  time.perf_counter() - start)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="event")
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--train", type=int, default=240)
    parser.add_argument("--val", type=int, default=96)
    parser.add_argument("--clip-frames", type=int, default=8)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--heads", nargs="+", default=["conv3d", "lstm"])
    parser.add_argument("--num-windows", nargs="+", type=int,
                        default=[3, 5])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args()
    print(machine())
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    start = time.perf_counter()
    x, y, info = demo_clips(args.train + args.val, args.clip_frames,
                            args.size, task=args.task,
                            num_classes=args.num_classes, seed=0,
                            return_info=True)
    data = (x[: args.train], y[: args.train], x[args.train:],
            y[args.train:])
    print(
        f"demo {args.task!r}, {args.num_classes} classes: {args.train} "
        f"training / {args.val} validation clips of {args.clip_frames} "
        f"frames of {args.size}x{args.size}; heads trained {args.epochs} "
        f"epochs on random {args.window}-frame windows; frozen random VGG19"
    )
    if "event_frame" in info:
        centre = (args.clip_frames - args.window) // 2
        event = info["event_frame"][args.train:]
        inside = (event >= centre) & (event < centre + args.window)
        print(f"event frame inside the centred window: {inside.sum()} of "
              f"{len(event)} validation clips")
    results = {}
    for seed in args.seeds:
        for key, value in run_seed(args, data, seed).items():
            results.setdefault(key, []).append(value)
    print("\n| head | views | val accuracy (mean; per seed) | seconds |")
    print("| --- | --- | --- | --- |")
    for (head, view), values in results.items():
        scores = [a for a, _ in values]
        per_seed = ", ".join(f"{a:.3f}" for a in scores)
        seconds = np.mean([s for _, s in values])
        print(f"| {head} | {view} | {np.mean(scores):.3f} ({per_seed}) | "
              f"{seconds:.1f} |")
    print(f"\ntotal {time.perf_counter() - start:.0f} s; {machine()}")


if __name__ == "__main__":
    main()
