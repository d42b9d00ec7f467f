"""LSTM strategy: a recurrent head over per-frame VGG19 features.

Trains a bidirectional `VGG4DClassifier(temporal_head="lstm")` on the demo
"motion" task (the class is the direction a shape moves), then
classifies validation clips padded with empty frames to a longer length:
all-zero frames are masked, so padding does not change the predictions.

    python examples/lstm_head.py
"""

import argparse

import keras
import numpy as np

from keras_vgg4d import VGG4DClassifier
from keras_vgg4d.data import demo_clips
from keras_vgg4d.data import split_balanced


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=160)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    x, y = demo_clips(n=args.clips, frames=args.frames, size=32,
                      task="motion", seed=args.seed)
    (x_train, y_train), (x_val, y_val) = split_balanced(x, y, 0.25, args.seed)
    num_classes = int(y.max()) + 1
    model = VGG4DClassifier(
        num_classes, temporal_head="lstm",
        head_options={"units": 64, "bidirectional": True},
    )
    model.compile(keras.optimizers.Adam(1e-3),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=16, epochs=args.epochs, verbose=0)
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    print(f"lstm head, 'motion' task ({num_classes} directions): validation "
          f"accuracy {accuracy:.2f} (chance {1 / num_classes:.2f})")

    padded = np.concatenate([x_val, np.zeros_like(x_val[:, :3])], axis=1)
    change = np.abs(model.predict(padded, verbose=0)
                    - model.predict(x_val, verbose=0)).max()
    print(f"clips padded from {args.frames} to {padded.shape[1]} frames: "
          f"largest change in predicted probability {change:.1e}")


if __name__ == "__main__":
    main()
