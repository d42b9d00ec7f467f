"""FrameFold vs TimeDistributed vs bare VGG19 on the same frames.

Prints clips/s of each (medians of alternating rounds) and the first-call
(trace + run) time, and the ratios the FrameFold issue names:

    python benchmarks/bench_frame_fold.py
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _timing import alternate, timed  # noqa: E402
from keras_vgg4d import FrameFold  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    frame_shape = (args.size, args.size, 3)
    vgg = keras.applications.VGG19(
        weights=None, include_top=False, input_shape=frame_shape
    )
    clip_input = keras.Input((args.frames, *frame_shape))
    models = {
        "TimeDistributed": keras.Model(
            clip_input, keras.layers.TimeDistributed(vgg)(clip_input)
        ),
        "FrameFold": keras.Model(clip_input, FrameFold(vgg)(clip_input)),
        "bare VGG19": vgg,
    }
    clips = np.random.default_rng(args.seed).uniform(
        0, 255, (args.batch, args.frames, *frame_shape)
    ).astype("float32")
    inputs = {
        "TimeDistributed": clips,
        "FrameFold": clips,
        "bare VGG19": clips.reshape((-1, *frame_shape)),
    }
    functions = {
        name: tf.function(lambda x, m=model: m(x, training=False))
        for name, model in models.items()
    }

    first_call = {}
    for name, fn in functions.items():
        first_call[name] = timed(lambda: fn(inputs[name]).numpy())
    reference = functions["TimeDistributed"](clips).numpy()
    folded = functions["FrameFold"](clips).numpy()
    max_diff = float(np.abs(reference - folded).max())

    seconds = alternate(
        {
            name: (lambda f=fn, x=inputs[name]: f(x).numpy())
            for name, fn in functions.items()
        },
        rounds=args.rounds,
        repeats=args.repeats,
    )
    clips_per_s = {name: args.batch / s for name, s in seconds.items()}

    print(
        f"VGG19 no top, random weights; {args.frames} frames of "
        f"{args.size}x{args.size}, batch {args.batch}; "
        f"{args.rounds} alternating rounds x {args.repeats} calls"
    )
    print(f"{'variant':<16}{'clips/s':>10}{'first call s':>14}")
    for name in functions:
        print(f"{name:<16}{clips_per_s[name]:>10.2f}{first_call[name]:>14.2f}")
    fold = clips_per_s["FrameFold"]
    print(f"FrameFold / TimeDistributed clips/s: "
          f"{fold / clips_per_s['TimeDistributed']:.2f}x")
    print(f"FrameFold / bare VGG19 clips/s:      "
          f"{fold / clips_per_s['bare VGG19']:.2f}x")
    print(f"first call, TimeDistributed / FrameFold: "
          f"{first_call['TimeDistributed'] / first_call['FrameFold']:.2f}x")
    print(f"max |FrameFold - TimeDistributed|: {max_diff:.2e}")


if __name__ == "__main__":
    main()
