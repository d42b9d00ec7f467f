"""Helpers shared by the backbone and weights tests."""

import numpy as np


def scaled_random_vgg(builder, seed=0, channels=3):
    """A keras.applications no-top model with He-scaled random weights.

    Glorot weights make VGG19's features vanish towards zero; He-scaled ones
    keep them in the hundreds, so comparisons below are meaningful.
    """
    model = builder(
        weights=None, include_top=False, input_shape=(32, 32, channels)
    )
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            std = np.sqrt(2.0 / np.prod(kernel.shape[:3]))
            layer.set_weights(
                [
                    rng.normal(0, std, kernel.shape).astype("float32"),
                    rng.normal(0, 0.1, bias.shape).astype("float32"),
                ]
            )
    return model
