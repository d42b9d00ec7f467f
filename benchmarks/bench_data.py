"""Folder of PNG clips -> batched dataset: parallel vs sequential decoding.

Writes `--clips` demo clips of `--frames` PNG frames each into a temporary
folder, then times, in alternating rounds after a warm-up:

- `load_folder(num_parallel_calls=tf.data.AUTOTUNE)` + `make_dataset` and
  one pass over the batches;
- the same with `num_parallel_calls=1` (one decode at a time);
- a plain Python loop decoding frame after frame with `tf.io`;
- one training step of a stand-in model, `FrameFold(VGG19)` + a Dense
  head, on a batch of the same clips (backbone frozen unless
  `--train-backbone`),

and prints clips/s of each and the ratios: parallel over sequential, and
loading over training (above 1, the loader outruns training):

    python benchmarks/bench_data.py
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _timing import alternate  # noqa: E402
from keras_vgg4d import FrameFold  # noqa: E402
from keras_vgg4d.data import demo_clips  # noqa: E402
from keras_vgg4d.data import load_folder  # noqa: E402
from keras_vgg4d.data import make_dataset  # noqa: E402


def write_png_folder(root, clips, labels):
    """One subfolder per class, one subfolder of PNG frames per clip."""
    for i, (clip, label) in enumerate(zip(clips, labels)):
        clip_dir = os.path.join(root, f"class_{label}", f"clip_{i:04d}")
        os.makedirs(clip_dir)
        for t, frame in enumerate(clip.astype("uint8")):
            tf.io.write_file(
                os.path.join(clip_dir, f"frame_{t:03d}.png"),
                tf.io.encode_png(frame),
            )


def folder_to_batches(root, frames, batch, num_parallel_calls):
    """The timed unit: load the folder, build the dataset, one pass."""
    clips = load_folder(
        root, frames=frames, num_parallel_calls=num_parallel_calls, verbose=0
    )
    dataset = make_dataset(clips.x, clips.y, batch_size=batch, seed=0)
    return sum(len(labels) for _, labels in dataset)


def plain_loop_to_batches(root, frames, batch):
    """A plain loop: every frame decoded eagerly, one after another."""
    x, y = [], []
    for label, name in enumerate(sorted(os.listdir(root))):
        class_dir = os.path.join(root, name)
        for clip in sorted(os.listdir(class_dir)):
            clip_dir = os.path.join(class_dir, clip)
            paths = sorted(os.listdir(clip_dir))[:frames]
            x.append(np.stack([
                tf.io.decode_png(
                    tf.io.read_file(os.path.join(clip_dir, p))
                ).numpy()
                for p in paths
            ]).astype("float32"))
            y.append(label)
    dataset = make_dataset(np.stack(x), np.array(y), batch_size=batch, seed=0)
    return sum(len(labels) for _, labels in dataset)


def stand_in_model(frames, size, num_classes, train_backbone):
    vgg = keras.applications.VGG19(
        weights=None, include_top=False, pooling="avg",
        input_shape=(size, size, 3),
    )
    vgg.trainable = train_backbone
    inputs = keras.Input((frames, size, size, 3))
    features = FrameFold(vgg)(inputs)
    pooled = keras.layers.GlobalAveragePooling1D()(features)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(pooled)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=3,
                        help="training steps per round")
    parser.add_argument("--train-backbone", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    x, y = demo_clips(
        n=args.clips, frames=args.frames, size=args.size, task="motion",
        seed=args.seed,
    )
    num_classes = int(y.max()) + 1
    model = stand_in_model(
        args.frames, args.size, num_classes, args.train_backbone
    )
    train_x, train_y = x[: args.batch], y[: args.batch]

    with tempfile.TemporaryDirectory() as root:
        write_png_folder(root, x, y)
        variants = {
            "load, AUTOTUNE decoding": lambda: folder_to_batches(
                root, args.frames, args.batch, tf.data.AUTOTUNE
            ),
            "load, num_parallel_calls=1": lambda: folder_to_batches(
                root, args.frames, args.batch, 1
            ),
            "load, plain Python loop": lambda: plain_loop_to_batches(
                root, args.frames, args.batch
            ),
            "train step": lambda: model.train_on_batch(train_x, train_y),
        }
        # Warm-up: every variant once (traces, file cache, oneDNN kernels).
        loaded = {name: fn() for name, fn in variants.items()}
        for name in list(loaded)[:3]:
            assert loaded[name] == args.clips, (name, loaded[name])
        seconds = alternate(
            {
                name: fn
                for name, fn in variants.items()
                if name != "train step"
            } | {
                "train step": lambda: [
                    model.train_on_batch(train_x, train_y)
                    for _ in range(args.train_steps)
                ]
            },
            rounds=args.rounds,
            repeats=1,
        )

    clips_per_s = {
        name: (args.batch * args.train_steps if name == "train step"
               else args.clips) / s
        for name, s in seconds.items()
    }
    backbone = "trainable" if args.train_backbone else "frozen"
    print(
        f"{args.clips} clips x {args.frames} PNG frames of "
        f"{args.size}x{args.size}x3 -> batched dataset (batch {args.batch}); "
        f"training: FrameFold(VGG19, random weights, {backbone}) + Dense, "
        f"{args.train_steps} steps a round; {args.rounds} alternating "
        f"rounds, medians; {os.cpu_count()} CPU(s)"
    )
    width = max(len(name) for name in clips_per_s)
    for name, rate in clips_per_s.items():
        print(f"  {name:<{width}}  {rate:9.1f} clips/s  "
              f"({seconds[name]:.3f} s a round)")
    parallel = clips_per_s["load, AUTOTUNE decoding"]
    training = clips_per_s["train step"]
    print(
        "ratios: AUTOTUNE / num_parallel_calls=1 = "
        f"{parallel / clips_per_s['load, num_parallel_calls=1']:.2f}x; "
        "AUTOTUNE / plain loop = "
        f"{parallel / clips_per_s['load, plain Python loop']:.2f}x; "
        f"AUTOTUNE loading / training = {parallel / training:.1f}x"
    )


if __name__ == "__main__":
    main()
