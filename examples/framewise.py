"""Frame-wise strategy: classify every frame, average over the clip.

Trains a `VGG4DClassifier(temporal_head="framewise")` on the demo
"appearance" task (the class is what the clip shows), then on the "order"
task (the same frames in both classes, in another order), where a
frame-wise model can only guess: it is blind to order by design.

    python examples/framewise.py
"""

import argparse

import keras

from keras_vgg4d import VGG4DClassifier
from keras_vgg4d.data import demo_clips
from keras_vgg4d.data import split_balanced


def train_and_score(task, args):
    x, y = demo_clips(n=args.clips, frames=args.frames, size=32, task=task,
                      seed=args.seed)
    (x_train, y_train), (x_val, y_val) = split_balanced(x, y, 0.25, args.seed)
    model = VGG4DClassifier(int(y.max()) + 1, temporal_head="framewise",
                            head_options={"units": 64})
    model.compile(keras.optimizers.Adam(1e-3),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=16, epochs=args.epochs, verbose=0)
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    return accuracy, 1 / (int(y.max()) + 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=160)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    for task in ("appearance", "order"):
        accuracy, chance = train_and_score(task, args)
        print(f"framewise head, {task!r} task: validation accuracy "
              f"{accuracy:.2f} (chance {chance:.2f})")


if __name__ == "__main__":
    main()
