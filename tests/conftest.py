"""Shared test set-up: quiet TensorFlow, a clean Keras session per test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gc  # noqa: E402

import keras  # noqa: E402
import keras_tuner  # noqa: E402, F401
import pytest  # noqa: E402

import keras_vgg4d  # noqa: E402, F401
import keras_vgg4d.hypermodel  # noqa: E402, F401

# TensorFlow, Keras and Keras Tuner leave about 360,000 long-lived objects,
# and a full collection walks them all: about 0.7 s each time on the CI
# machines. Keras Tuner collects twice a trial (`clear_session` and its own
# `gc.collect`), so searches in tests paid seconds for it. Frozen, they are
# never walked again; what tests create is collected as usual.
gc.collect()
gc.freeze()


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
