"""Helpers for tests of searches: a trial's hyperparameters, tiny clips."""

import keras_tuner

from keras_vgg4d.data import demo_clips


def trial(head: str, **values) -> keras_tuner.HyperParameters:
    """Hyperparameters fixing `temporal_head` and the given values; `build`
    declares the rest with their defaults."""
    hp = keras_tuner.HyperParameters()
    hp.Fixed("temporal_head", head)
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def split_clips(n: int, train: int):
    """`(x, y, x_val, y_val)`: `n` demo clips of 2 frames of 32x32, the
    first `train` for training."""
    x, y = demo_clips(n=n, frames=2, size=32, task="appearance", seed=0)
    return x[:train], y[:train], x[train:], y[train:]
