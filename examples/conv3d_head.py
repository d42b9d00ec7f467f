"""Conv3D strategy: spatiotemporal convolutions over VGG19 feature maps.

Trains a `VGG4DClassifier(temporal_head="conv3d")` on the demo "order" task
(the same frames in both classes, in another order: a frame-wise model can
only guess), with clips laid out time last,
`(batch, height, width, channels, time)`, as many 4D data sets are, and
saves and reloads the trained model.

    python examples/conv3d_head.py
"""

import argparse
import os
import tempfile

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
                      task="order", seed=args.seed)
    x = np.transpose(x, (0, 2, 3, 4, 1))  # time last
    (x_train, y_train), (x_val, y_val) = split_balanced(x, y, 0.25, args.seed)
    num_classes = int(y.max()) + 1
    model = VGG4DClassifier(
        num_classes,
        temporal_head="conv3d",
        head_options={"filters": 64, "temporal_kernel": 3},
        time_axis=-1,
    )
    model.compile(keras.optimizers.Adam(1e-3),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=16, epochs=args.epochs, verbose=0)
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    print(f"conv3d head, 'order' task ({num_classes} orders): "
          f"validation accuracy {accuracy:.2f} (chance {1 / num_classes:.2f})")

    path = os.path.join(tempfile.mkdtemp(), "conv3d.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    same = np.allclose(restored.predict(x_val, verbose=0),
                       model.predict(x_val, verbose=0), atol=1e-6)
    print(f"saved to {path}; reloaded model gives the same predictions: {same}")


if __name__ == "__main__":
    main()
