"""Which Keras backend runs, and TensorFlow where TensorFlow is the tool.

Layers, heads, the model and the hypermodel compute through `keras.ops` and
run on every Keras 3 backend. A few things exist only in TensorFlow: `tf.data`
pipelines, `tf.py_function`, the TensorFlow-based export formats. Those
import TensorFlow through `require_tensorflow`, lazily, so that the rest of
the package runs where TensorFlow is not installed.
"""

from __future__ import annotations

import importlib

import keras

# Defined where the command line is read, without Keras.
from keras_vgg4d_cli import BACKENDS  # noqa: F401


def backend_name() -> str:
    """The name of the Keras backend in use: `"tensorflow"`, `"jax"`, ..."""
    return keras.backend.backend()


def is_tensorflow() -> bool:
    """Whether Keras runs on TensorFlow."""
    return backend_name() == "tensorflow"


def require_tensorflow(what: str):
    """Returns the `tensorflow` module, imported on first use.

    Args:
        what: What needs TensorFlow, for the error message, e.g.
            `"make_dataset (a tf.data pipeline)"`.

    Raises:
        ImportError: naming `what` and the fix, if TensorFlow cannot be
            imported.
    """
    try:
        return importlib.import_module("tensorflow")
    except ImportError as error:
        raise ImportError(
            f"{what} needs TensorFlow, which could not be imported ({error}). "
            "Install it with `pip install tensorflow`: Keras 3 feeds tf.data "
            f"to every backend, the {backend_name()} backend included. The "
            "layers, the model and searches over NumPy arrays or a "
            "`keras.utils.PyDataset` run without it (docs/backends.md)."
        ) from error


def tensorflow_if_loaded():
    """The `tensorflow` module if it is the backend, else `None`.

    For code that works on any backend but adds something TensorFlow-only
    (graph-mode checks, `tf.init_scope`) when TensorFlow runs.
    """
    if not is_tensorflow():
        return None
    return importlib.import_module("tensorflow")


class LazyTensorFlow:
    """The `tensorflow` module, imported when an attribute is first read.

    Modules built on `tf.data` hold one as `tf`: they import on every
    backend, and what they build raises `require_tensorflow`'s error where
    TensorFlow is missing.

    Args:
        what: What needs TensorFlow, for the error message.
    """

    def __init__(self, what: str):
        self._what = what

    def __getattr__(self, name):
        return getattr(require_tensorflow(self._what), name)


def value_and_gradients(fn, inputs):
    """Calls `fn(*inputs)` and differentiates its first output.

    The one place that differs by backend for the gradients `explain` takes
    with respect to its inputs: `tf.GradientTape` on TensorFlow,
    `jax.value_and_grad` on JAX, `torch.autograd.grad` on PyTorch.

    Args:
        fn: A function of the tensors in `inputs` that returns
            `(score, aux)`: a scalar to differentiate, and anything else.
        inputs: A list of NumPy arrays or tensors.

    Returns:
        `(score, aux, gradients)`, one gradient per input.
    """
    name = backend_name()
    if name == "jax":
        import jax

        def scored(*xs):
            score, aux = fn(*xs)
            return score, (score, aux)

        positions = tuple(range(len(inputs)))
        (_, (score, aux)), gradients = jax.value_and_grad(
            scored, argnums=positions, has_aux=True
        )(*[keras.ops.convert_to_tensor(x) for x in inputs])
        return score, aux, list(gradients)
    if name == "torch":
        import torch

        tensors = [keras.ops.convert_to_tensor(x).detach().requires_grad_()
                   for x in inputs]
        with torch.enable_grad():
            score, aux = fn(*tensors)
            gradients = torch.autograd.grad(score, tensors)
        return score, aux, list(gradients)
    tf = require_tensorflow("Gradients on the TensorFlow backend")
    tensors = [tf.convert_to_tensor(x) for x in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        score, aux = fn(*tensors)
    return score, aux, tape.gradient(score, tensors)
