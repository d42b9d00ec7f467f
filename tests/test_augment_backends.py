"""ScipyAugment on every Keras backend, each in its own process.

- One seed and the same clips give bit-identical augmented clips under
  TensorFlow, JAX and PyTorch (those installed here), eagerly, in a
  `tf.data` map (under TensorFlow and PyTorch) and inside `jax.jit`.
- Under JAX with TensorFlow blocked, the layer works inside `jax.jit` and in
  a small model's `fit`, which JAX compiles (`jit_compile="auto"`).
- Under PyTorch, `fit` trains through the layer.

One process per installed backend, started together and shared by the
tests. They run whatever backend runs the suite, so the tests are not marked
`backends` (the TensorFlow run runs them once); the in-process,
backend-neutral tests are in test_augment.py.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest

from backend_testing import installed_backends
from backend_testing import run_under

pytestmark = pytest.mark.slow

IMPORT_AUGMENT = """
import sys
from keras_vgg4d import ScipyAugment
"""

# The augmented clips of a few configurations, as digests of their bytes.
SAME_CLIPS = IMPORT_AUGMENT + """
import hashlib, json
import keras
import numpy as np

rng = np.random.default_rng(0)
uint8_clips = rng.integers(0, 256, (3, 4, 32, 32, 3)).astype("uint8")
float_clips = rng.random((2, 32, 32, 1, 3)).astype("float32")  # time last
ARGS = dict(rotation=15, zoom=(0.9, 1.1), shift=0.1, flip="horizontal",
            median_size=3, brightness=0.1, noise=0.05, seed=0)


def digest(x):
    x = keras.ops.convert_to_numpy(x)
    return f"{x.shape} {x.dtype} " + hashlib.sha256(x.tobytes()).hexdigest()


layer = ScipyAugment(**ARGS)
first = layer(uint8_clips, training=True)
second = layer(uint8_clips, training=True)
per_frame = ScipyAugment(**ARGS, per_frame=True, time_axis=-1)
results = {
    "first": digest(first),
    "second": digest(second),
    "changed": not np.array_equal(keras.ops.convert_to_numpy(first),
                                  uint8_clips),
    "per_frame_time_last": digest(per_frame(float_clips, training=True)),
    "one_clip": digest(ScipyAugment(**ARGS)(uint8_clips[1], training=True)),
}
try:
    import tensorflow as tf
except ImportError:  # blocked in the JAX process
    pass
else:
    mapped = ScipyAugment(**ARGS)
    dataset = tf.data.Dataset.from_tensor_slices(uint8_clips).map(
        lambda clip: mapped(clip, training=True), num_parallel_calls=2)
    results["tf_data"] = digest(np.stack(list(dataset.as_numpy_iterator())))
"""

# Inside jax.jit, and what fit hands the layer.
JAX_JIT = """
import jax

clips = uint8_clips[:2]
eager = ScipyAugment(rotation=15, zoom=(0.9, 1.1), seed=0)
traced = ScipyAugment(rotation=15, zoom=(0.9, 1.1), seed=0)
step = jax.jit(lambda x: traced(x, training=True))
jitted, jitted_again = np.asarray(step(clips)), np.asarray(step(clips))
expected = [np.asarray(eager(clips, training=True)) for _ in range(2)]
jaxpr = {
    flag: str(jax.make_jaxpr(lambda x: eager(x, training=flag))(clips))
    for flag in (True, False)
}

# Augmentation is not differentiated (a callback has no derivative): a
# gradient through it is zero, not an error.
def through(w):
    scaled = clips.astype("float32") * w
    return jax.numpy.sum(traced(scaled, training=True))


results.update(
    gradient_through=float(jax.grad(through)(1.0)),
    jit=digest(jax.jit(lambda x: ScipyAugment(**ARGS)(x, training=True))(
        uint8_clips)),
    jit_equals_eager=bool(np.array_equal(jitted, expected[0])),
    jit_again_equals_eager_again=bool(np.array_equal(jitted_again,
                                                     expected[1])),
    new_draw_per_run=not np.array_equal(jitted, jitted_again),
    callback_when_training="pure_callback" in jaxpr[True],
    callback_at_inference="pure_callback" in jaxpr[False],
)

# What fit hands the layer in training: tracers if it compiles its step.
seen_in_training = []
_call = ScipyAugment.call


def spy(self, inputs, training=None):
    if training:
        seen_in_training.append(isinstance(inputs, jax.core.Tracer))
    return _call(self, inputs, training=training)


ScipyAugment.call = spy
"""

# A model that trains through the layer, with the backend's `fit` defaults.
FIT = """
x = np.random.default_rng(1).random((8, 3, 32, 32, 1)).astype("float32")
y = np.zeros((8, 2), "float32")
inputs = keras.Input((3, 32, 32, 1))
augment = ScipyAugment(brightness=(0.5, 0.5), value_range=(0, 2), seed=0)
outputs = keras.layers.Dense(2)(keras.layers.Flatten()(augment(inputs)))
model = keras.Model(inputs, outputs)
# A learning rate of 0: the weights stay, so the loss fit reports differs
# from evaluate's (no augmentation) only through the augmentation.
model.compile(keras.optimizers.SGD(0.0), "mse")
history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
results.update(
    fit_loss=history.history["loss"][0],
    evaluate_loss=model.evaluate(x, y, batch_size=4, verbose=0),
    jit_compile=model.jit_compile,
)
if keras.backend.backend() == "jax":
    results["fit_traced_the_layer"] = (
        bool(seen_in_training) and all(seen_in_training))
"""

SCRIPTS = {
    "tensorflow": SAME_CLIPS,
    "jax": SAME_CLIPS + JAX_JIT + FIT,
    "torch": SAME_CLIPS + FIT,
}
PRINT = """
results["tensorflow_loaded"] = "tensorflow" in sys.modules
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def runs():
    """Each installed backend's results; JAX's with TensorFlow blocked."""
    backends = [b for b in installed_backends() if b in SCRIPTS]
    with ThreadPoolExecutor(len(backends)) as pool:
        futures = {
            backend: pool.submit(run_under, backend, SCRIPTS[backend] + PRINT,
                                 block_tensorflow=backend == "jax")
            for backend in backends
        }
        return {backend: f.result() for backend, f in futures.items()}


def test_same_seed_same_clips_on_every_backend(runs):
    if len(runs) < 2:
        pytest.skip(f"one Keras backend installed here: {list(runs)}")
    reference = next(iter(runs.values()))
    assert reference["changed"]
    assert reference["second"] != reference["first"]  # a new draw each call
    keys = ["first", "second", "per_frame_time_last", "one_clip"]
    for backend, result in runs.items():
        for key in keys:
            assert result[key] == reference[key], (backend, key)
        # A clip alone in a tf.data map, or a batch under jax.jit, draws as
        # in an eager batch.
        for key in ("tf_data", "jit"):
            if key in result:
                assert result[key] == result["first"], (backend, key)
    assert "jit" in runs.get("jax", {"jit": None})
    assert "tf_data" in runs.get("torch", {"tf_data": None})


def test_jax_without_tensorflow_jit_and_fit(runs):
    if "jax" not in runs:
        pytest.skip("JAX is not installed")
    result = runs["jax"]
    assert not result["tensorflow_loaded"]
    # Inside jax.jit: the same clips as eager calls, a new draw each time
    # the compiled function runs, and no callback at inference.
    assert result["jit_equals_eager"]
    assert result["jit_again_equals_eager_again"]
    assert result["new_draw_per_run"]
    assert result["callback_when_training"]
    assert not result["callback_at_inference"]
    assert result["gradient_through"] == 0.0
    # fit compiles its step with the layer in it, and the layer augments.
    assert result["jit_compile"] is True and result["fit_traced_the_layer"]
    assert abs(result["fit_loss"] - result["evaluate_loss"]) > 1e-3


def test_torch_fit_trains_through_the_layer(runs):
    if "torch" not in runs:
        pytest.skip("PyTorch is not installed")
    result = runs["torch"]
    assert abs(result["fit_loss"] - result["evaluate_loss"]) > 1e-3
