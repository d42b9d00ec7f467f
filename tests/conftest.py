"""Shared test set-up: quiet TensorFlow, a clean Keras session per test.

The suite runs under the Keras backend `KERAS_BACKEND` names. Under another
backend than TensorFlow only the tests marked `backends` (backend-neutral)
run, less those also marked `tensorflow` (TensorFlow-only tests in a
backend-neutral module); the others are skipped, saying so.
"""

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


if keras.backend.backend() == "torch":
    import torch

    _tensor_to_array = torch.Tensor.__array__

    def _detached_array(self, *args, **kwargs):
        # NumPy refuses a tensor that requires grad, which every eager layer
        # output does; the tests compare values, so they read it detached.
        return _tensor_to_array(self.detach().cpu(), *args, **kwargs)

    torch.Tensor.__array__ = _detached_array


def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() == "tensorflow":
        return
    skip = pytest.mark.skip(
        reason=f"TensorFlow-only test (KERAS_BACKEND={keras.backend.backend()})"
    )
    for item in items:
        if (item.get_closest_marker("backends") is None
                or item.get_closest_marker("tensorflow") is not None):
            item.add_marker(skip)


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
