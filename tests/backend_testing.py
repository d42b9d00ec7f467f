"""Running code under another Keras backend, in a subprocess.

The suite runs under the backend `KERAS_BACKEND` names (TensorFlow by
default; CI runs the `backends`-marked tests under JAX too). What needs two
backends in one test, such as a `.keras` file saved under one and loaded
under another, runs each side in a subprocess through `run_under`.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras

BACKEND = keras.backend.backend()

# Makes `import tensorflow` fail in a subprocess: the test of "no TensorFlow
# on the model path of another backend".
BLOCK_TENSORFLOW = textwrap.dedent(
    """
    import importlib.abc, sys

    class _BlockTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError(f"TensorFlow is blocked in this test: {name}")

    sys.meta_path.insert(0, _BlockTensorFlow())
    """
)


def installed_backends() -> list[str]:
    """The Keras backends whose package is installed here."""
    modules = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
    return [name for name, module in modules.items()
            if importlib.util.find_spec(module) is not None]


def run_under(backend: str, code: str, block_tensorflow: bool = False,
              timeout: int = 600, env: dict | None = None) -> dict:
    """Runs `code` with `KERAS_BACKEND=backend` in a new Python process.

    `code` prints one JSON object as its last line of output; that object
    is returned. The process fails the test (with its stderr) if it exits
    non-zero. `env` adds environment variables.
    """
    source = textwrap.dedent(code)
    if block_tensorflow:
        source = BLOCK_TENSORFLOW + source
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               **(env or {}))
    env.setdefault("JAX_PLATFORMS", "cpu")
    result = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True,
        timeout=timeout, env=env,
    )
    assert result.returncode == 0, (
        f"under {backend}:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def value_and_weight_gradients(compute, weights):
    """`compute()` returns `(loss, output)` from layers holding `weights`;
    returns `(output, gradients of loss with respect to each weight)`, as
    NumPy arrays, on whichever backend Keras runs."""
    if BACKEND == "jax":
        import jax

        def loss_of(values):
            mapping = list(zip(weights, values))
            with keras.StatelessScope(state_mapping=mapping):
                loss, output = compute()
            return loss, output

        (_, output), gradients = jax.value_and_grad(loss_of, has_aux=True)(
            [w.value for w in weights])
    elif BACKEND == "torch":
        import torch

        loss, output = compute()
        gradients = torch.autograd.grad(loss, [w.value for w in weights])
    else:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, output = compute()
        gradients = tape.gradient(loss, weights)
    return (keras.ops.convert_to_numpy(output),
            [keras.ops.convert_to_numpy(g) for g in gradients])
