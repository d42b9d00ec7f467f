"""`DiscriminativeAdam`: Adam with a lower learning rate for the backbone."""

from __future__ import annotations

import keras

from keras_vgg4d.validation import is_number


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class DiscriminativeAdam(keras.optimizers.Adam):
    """Adam whose backbone variables take a fraction of the learning rate.

    Fine-tuning a pretrained backbone under a new, randomly initialized head
    works best with a lower rate for the backbone than for the head
    ("discriminative fine-tuning", Howard and Ruder, 2018): the head has to
    move far, the backbone only a little. The variables whose path contains
    one of `scaled_paths` (by default the `backbone/` of a
    `VGG4DClassifier`) are updated with `learning_rate * rate_scale`; every
    other variable with `learning_rate`. It is Keras' `Adam` otherwise.

    Args:
        learning_rate: The head's learning rate (a float or a schedule).
        rate_scale: The backbone's share of the learning rate, in `[0, 1]`.
        scaled_paths: Substrings of `variable.path` that mark a variable as
            the backbone's.
        **kwargs: Keras' `Adam` arguments (`beta_1`, `weight_decay`,
            `clipnorm`, ...).

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d import VGG4DClassifier
    >>> from keras_vgg4d.optimizers import DiscriminativeAdam
    >>> model = VGG4DClassifier(num_classes=2, trainable_blocks=1)
    >>> model.compile(optimizer=DiscriminativeAdam(1e-3, rate_scale=0.1))
    >>> model.optimizer.rate_scale
    0.1
    """

    def __init__(
        self,
        learning_rate=0.001,
        rate_scale: float = 0.1,
        scaled_paths: tuple[str, ...] = ("backbone/",),
        **kwargs,
    ):
        kwargs.setdefault("name", "discriminative_adam")
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not is_number(rate_scale) or not 0.0 <= float(rate_scale) <= 1.0:
            raise ValueError(
                "DiscriminativeAdam expects `rate_scale` in [0, 1] (the "
                "backbone's share of the learning rate), received: "
                f"rate_scale={rate_scale!r}"
            )
        self.rate_scale = float(rate_scale)
        if isinstance(scaled_paths, str) or not all(
            isinstance(path, str) and path for path in scaled_paths
        ):
            raise ValueError(
                "DiscriminativeAdam expects `scaled_paths` to be a list of "
                "non-empty strings (parts of variable paths, such as "
                f"'backbone/'), received: scaled_paths={scaled_paths!r}"
            )
        self.scaled_paths = tuple(scaled_paths)

    def is_scaled(self, variable) -> bool:
        """Whether `variable` (a Keras variable) takes the scaled rate."""
        return any(path in variable.path for path in self.scaled_paths)

    def build(self, variables):
        super().build(variables)
        # `update_step` may see the backend's own variable (TensorFlow's),
        # which has no path: the scaled ones are known by index.
        self._scaled_indices = {
            i for i, variable in enumerate(variables) if self.is_scaled(variable)
        }

    def update_step(self, gradient, variable, learning_rate):
        if self._get_variable_index(variable) in self._scaled_indices:
            learning_rate = learning_rate * self.rate_scale
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"rate_scale": self.rate_scale, "scaled_paths": list(self.scaled_paths)}
        )
        return config


# `VGG4DClassifier.compile()`'s defaults, measured on a few hundred small
# clips (benchmarks/RESULTS.md, "Small data"): each head's learning rate,
# and the backbone's share of it where blocks train. The frame-wise head,
# one linear layer, learns in a dozen epochs at 1e-2 (at 1e-3 it is half
# way); the Conv3D and LSTM heads, which fit faster, at 3e-3.
DEFAULT_LEARNING_RATES = {"framewise": 1e-2, "conv3d": 3e-3, "lstm": 3e-3}
BACKBONE_RATE_SCALE = 0.03


def default_optimizer(
    learning_rate: float, trainable_blocks: int = 0
) -> keras.optimizers.Optimizer:
    """The optimizer `VGG4DClassifier.compile()` picks by default.

    `Adam(learning_rate)` for a frozen backbone; a `DiscriminativeAdam`
    moving the backbone at `BACKBONE_RATE_SCALE` of the rate where
    `trainable_blocks > 0`.
    """
    if trainable_blocks:
        return DiscriminativeAdam(learning_rate, rate_scale=BACKBONE_RATE_SCALE)
    return keras.optimizers.Adam(learning_rate)
