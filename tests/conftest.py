"""Shared test set-up: quiet TensorFlow, a clean Keras session per test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_keras_state():
    """Each test starts with float32, a fresh session and a fixed seed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
    # Python's own collector frees the cycles; a full gc.collect() after
    # every test would cost about 0.25 s each.
    keras.backend.clear_session(free_memory=False)
