"""ScipyAugment: the transforms against scipy.ndimage, the seed contract,
inference, models and errors.

The tests marked `backends` use no TensorFlow and run under every Keras
backend (`KERAS_BACKEND=jax pytest tests/test_augment.py`); the others
exercise tf.data, tf.function and SavedModel export. That one seed gives the
same clips on every backend is in test_augment_backends.py.
"""

import copy
import dataclasses
import inspect
import pickle
import sys
import threading

import numpy as np
import pytest
import keras
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from keras.src import testing
from scipy import ndimage

from keras_vgg4d import ndimage_ops
from keras_vgg4d import resampling
from keras_vgg4d.augment import ScipyAugment
from keras_vgg4d.ndimage_ops import TransformError

try:
    import tensorflow as tf
except ImportError:  # the tests marked `backends` run without it
    tf = None

GEOMETRY = {"rotation": 20, "zoom": (0.8, 1.2), "shift": 0.1}


def clips(shape=(2, 3, 32, 32, 3), dtype="uint8", seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.integers(0, 256, shape).astype(dtype)
    return (rng.random(shape) * 255).astype(dtype)


def smooth_clip(time=3, size=32, channels=2):
    """One smooth frame repeated: interpolation error is small and frames
    are identical, so any frame-to-frame difference comes from the draw."""
    rows, cols = np.mgrid[0:size, 0:size] / size
    frame = np.stack(
        [np.sin(3 * rows + 2 * c) * np.cos(2 * cols) for c in range(channels)],
        axis=-1,
    )
    frame = ((frame + 1) * 127.5).astype("float32")
    return np.repeat(frame[None], time, axis=0)


def numpy(x):
    """A layer's output (any backend's tensor) as a NumPy array."""
    return keras.ops.convert_to_numpy(x)


def dtype_of(x) -> str:
    return keras.backend.standardize_dtype(x.dtype)


def by_index(dataset):
    return {int(i): np.asarray(x) for i, x in dataset.as_numpy_iterator()}


@pytest.mark.backends
class ScipyAugmentLayerTest(testing.TestCase):
    def test_layer_harness_float32(self):
        # The training check runs `fit` with training=True through the
        # host function (py_function, pure_callback under jit, or NumPy); the
        # layer has no weights, which Keras only warns about.
        self.run_layer_test(
            ScipyAugment,
            init_kwargs={**GEOMETRY, "median_size": 3, "seed": 1},
            input_shape=(2, 3, 16, 16, 2),
            call_kwargs={"training": True},
            expected_output_shape=(2, 3, 16, 16, 2),
            expected_output_dtype="float32",
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=0,
        )

    def test_layer_harness_uint8_time_last(self):
        self.run_layer_test(
            ScipyAugment,
            init_kwargs={**GEOMETRY, "time_axis": -1, "seed": 1},
            input_shape=(2, 16, 16, 1, 3),
            input_dtype="uint8",
            call_kwargs={"training": True},
            expected_output_shape=(2, 16, 16, 1, 3),
            expected_output_dtype="uint8",
        )


# --- The transforms: numeric references from scipy.ndimage ---------------


@pytest.mark.backends
def test_rotation_equals_ndimage_rotate_per_frame():
    clip = smooth_clip()
    layer = ScipyAugment(rotation=(20, 20), seed=0)
    got = numpy(layer(clip, training=True))
    expected = np.stack(
        [ndimage.rotate(f, 20, reshape=False, order=1, mode="reflect")
         for f in clip]
    )
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert np.abs(got - clip).max() > 10  # it did rotate


@pytest.mark.backends
def test_shift_equals_ndimage_shift():
    clip = smooth_clip()
    layer = ScipyAugment(shift=(0.25, 0.25), mode="wrap", seed=0)
    got = numpy(layer(clip, training=True))
    expected = ndimage.shift(clip, (0, 8, 8, 0), order=1, mode="wrap")
    np.testing.assert_allclose(got, expected, atol=1e-3)


@pytest.mark.backends
def test_zoom_scales_about_the_centre():
    clip = smooth_clip()
    layer = ScipyAugment(zoom=(1.5, 1.5), order=3, mode="nearest", seed=0)
    got = numpy(layer(clip, training=True))
    centre = 31 / 2
    expected = ndimage.affine_transform(
        clip, np.diag([1, 1 / 1.5, 1 / 1.5, 1]),
        offset=(0, centre - centre / 1.5, centre - centre / 1.5, 0),
        order=3, mode="nearest",
    )
    np.testing.assert_allclose(got, expected, atol=1e-2)


@pytest.mark.backends
def test_horizontal_flip_flips_half_of_the_clips():
    batch = clips((16, 2, 32, 32, 1))
    layer = ScipyAugment(flip="horizontal", seed=3)
    out = numpy(layer(batch, training=True))
    flipped = [np.array_equal(o, b[:, :, ::-1]) for o, b in zip(out, batch)]
    kept = [np.array_equal(o, b) for o, b in zip(out, batch)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < len(batch)


def spy_on_resampling(monkeypatch):
    """Records the shape of the planes of every `affine_resample` call."""
    calls = []
    original = ndimage_ops.affine_resample

    def spy(planes, *args, **kwargs):
        calls.append(planes.shape)
        return original(planes, *args, **kwargs)

    monkeypatch.setattr(ndimage_ops, "affine_resample", spy)
    return calls


@pytest.mark.backends
def test_geometric_transforms_resample_a_clip_once(monkeypatch):
    calls = spy_on_resampling(monkeypatch)
    layer = ScipyAugment(**GEOMETRY, shear=10, flip="horizontal", seed=0)
    layer(clips((2, 3, 32, 32, 2)), training=True)
    # One resampling of all 3 x 2 planes of each clip, not one per transform.
    assert calls == [(32, 32, 3 * 2)] * 2


@pytest.mark.backends
def test_per_frame_transforms_resample_each_frame_once(monkeypatch):
    calls = spy_on_resampling(monkeypatch)
    layer = ScipyAugment(**GEOMETRY, per_frame=True, seed=0)
    layer(clips((2, 3, 32, 32, 2)), training=True)
    assert calls == [(32, 32, 2)] * (2 * 3)


@pytest.mark.parametrize("order, scipy_calls", [(1, 0), (3, 2 * 3 * 2)])
@pytest.mark.backends
def test_scipy_interpolates_only_the_spline_orders(
    monkeypatch, order, scipy_calls
):
    calls = []
    original = ndimage.affine_transform

    def spy(plane, *args, **kwargs):
        calls.append(plane.shape)
        return original(plane, *args, **kwargs)

    monkeypatch.setattr(resampling.ndimage, "affine_transform", spy)
    layer = ScipyAugment(**GEOMETRY, order=order, seed=0)
    x = clips((2, 3, 32, 32, 2))
    assert not np.array_equal(layer(x, training=True), x)
    # Orders 0 and 1 share their taps across planes; 2-5 need SciPy's
    # spline prefilter, one 2-D plane at a time.
    assert calls == [(32, 32)] * scipy_calls


@pytest.mark.backends
def test_no_resampling_when_no_geometric_transform_is_drawn(monkeypatch):
    calls = spy_on_resampling(monkeypatch)
    layer = ScipyAugment(
        **GEOMETRY, median_size=3,
        probability={"rotation": 0, "zoom": 0, "shift": 0}, seed=0,
    )
    x = clips()
    y = numpy(layer(x, training=True))
    assert calls == []
    np.testing.assert_array_equal(y, ndimage.median_filter(x, (1, 1, 3, 3, 1)))


@pytest.mark.backends
def test_gaussian_filters_space_only():
    x = clips(dtype="float32")
    y = numpy(ScipyAugment(gaussian_sigma=1.5, seed=0)(x, training=True))
    np.testing.assert_allclose(
        y, ndimage.gaussian_filter(x, (0, 0, 1.5, 1.5, 0)), atol=1e-3
    )


@pytest.mark.backends
def test_intensity_transforms_stay_in_value_range():
    x = clips(dtype="float32") / 255.0
    layer = ScipyAugment(
        brightness=0.5, contrast=0.5, noise=0.2, value_range=(0, 1), seed=0
    )
    y = numpy(layer(x, training=True))
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert np.abs(y - x).mean() > 0.01


# --- Integer clips: one rounding rule, SciPy's ------------------------------


def scipy_integer_output(values, dtype):
    """What scipy.ndimage writes for float `values` into an integer output:
    an identity resampling of order 0 only casts."""
    values = np.asarray(values, np.float64)
    return ndimage.affine_transform(
        values, np.eye(values.ndim), order=0, output=dtype
    )


HALF_PIXEL = (0.5 / 32,) * 2  # `shift` of half a pixel of a 32-pixel frame
HALF_LEVEL = (0.5 / 256,) * 2  # `brightness` of 0.5 for value_range's 256


@pytest.mark.parametrize("dtype", ["uint8", "int16"])
@pytest.mark.parametrize(
    "kwargs, shift, offset",
    [
        ({"brightness": HALF_LEVEL}, 0.0, 0.5),
        ({"shift": HALF_PIXEL}, 0.5, 0.0),
        ({"shift": HALF_PIXEL, "brightness": HALF_LEVEL}, 0.5, 0.5),
    ],
    # Through numpy then the cast; resampled straight into integers;
    # resampled to floats, brightened, then cast.
    ids=["intensity", "geometric", "geometric_then_intensity"],
)
@pytest.mark.backends
def test_integer_clips_round_ties_as_scipy_does(dtype, kwargs, shift, offset):
    low = 0 if dtype == "uint8" else -60
    x = np.random.default_rng(0).integers(low, 60, (2, 32, 32, 1))
    x = x.astype(dtype)
    layer = ScipyAugment(**kwargs, value_range=(-128, 128), seed=0)
    got = numpy(layer(x, training=True))
    exact = ndimage.shift(
        x.astype(np.float64), (0, shift, shift, 0), order=1, mode="reflect"
    ) + offset
    expected = scipy_integer_output(exact, dtype)
    assert np.mean(exact % 1 == 0.5) > 0.2  # many ties
    assert not np.array_equal(expected, np.rint(exact))  # not half to even
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)


# --- One draw per clip, or per frame ----------------------------------------


@pytest.mark.backends
def test_one_draw_per_clip_moves_frames_together():
    clip = smooth_clip(time=4)
    layer = ScipyAugment(
        **GEOMETRY, shear=10, gaussian_sigma=(0.5, 2), brightness=0.2, seed=0
    )
    out = numpy(layer(clip, training=True))
    for frame in out[1:]:
        np.testing.assert_array_equal(frame, out[0])
    assert np.abs(out[0] - clip[0]).max() > 1


@pytest.mark.backends
def test_per_frame_draws_differ_between_frames():
    clip = smooth_clip(time=4)
    out = numpy(
        ScipyAugment(**GEOMETRY, per_frame=True, seed=0)(clip, training=True)
    )
    differences = [np.abs(out[t] - out[0]).max() for t in range(1, 4)]
    assert min(differences) > 1


# --- The seed contract -------------------------------------------------------


@pytest.mark.backends
def test_same_seed_same_inputs_same_outputs_in_order():
    x = clips()
    first = ScipyAugment(**GEOMETRY, seed=7)
    second = ScipyAugment(**GEOMETRY, seed=7)
    for _ in range(2):
        np.testing.assert_array_equal(
            numpy(first(x, training=True)), numpy(second(x, training=True))
        )
    other = ScipyAugment(**GEOMETRY, seed=8)
    assert not np.array_equal(
        numpy(other(x, training=True)), numpy(first(x, training=True))
    )


@pytest.mark.backends
def test_draws_differ_across_calls_and_between_identical_clips_of_a_batch():
    clip = clips((1, 3, 32, 32, 3))
    batch = np.concatenate([clip, clip])
    layer = ScipyAugment(**GEOMETRY, seed=7)
    a = numpy(layer(batch, training=True))
    b = numpy(layer(batch, training=True))
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a, b)


@pytest.mark.backends
def test_copies_in_a_batch_draw_as_successive_calls():
    # Copies of a clip in one batch count as successive sightings of it: a
    # batch (c, c, d) then (c) draws what single calls c, c, d, c draw.
    c, d = clips((1, 3, 32, 32, 3), seed=1), clips((1, 3, 32, 32, 3), seed=2)
    batched = ScipyAugment(**GEOMETRY, seed=7)
    first = numpy(batched(np.concatenate([c, c, d]), training=True))
    again = numpy(batched(c, training=True))
    single = ScipyAugment(**GEOMETRY, seed=7)
    one_by_one = [numpy(single(x, training=True)) for x in (c, c, d, c)]
    np.testing.assert_array_equal(
        np.concatenate([first, again]), np.concatenate(one_by_one)
    )


@pytest.mark.backends
def test_draw_counts_are_exact_under_threads():
    # tf.data's parallel map calls the layer from several threads: no count
    # may be lost or taken twice. A tiny switch interval makes the threads
    # interleave inside `take` if nothing guards it.
    counter = ScipyAugment(rotation=5, seed=0)._draw_counter
    fingerprints = [1, 2, 1, 3, 1] * 20
    taken = []
    start = threading.Barrier(8)

    def work():
        start.wait()
        for _ in range(400):
            taken.append(counter.take(fingerprints))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    counts = {1: [], 2: [], 3: []}
    for batch in taken:
        for fingerprint, count in zip(fingerprints, batch):
            counts[fingerprint].append(count)
    # Every count of a fingerprint is taken once, with no gap.
    for fingerprint, seen in counts.items():
        assert sorted(seen) == list(range(len(seen))), fingerprint


@pytest.mark.backends
def test_seed_none_is_reproducible_under_set_random_seed():
    x = clips()
    keras.utils.set_random_seed(5)
    a = ScipyAugment(**GEOMETRY)(x, training=True)
    keras.utils.set_random_seed(5)
    b = ScipyAugment(**GEOMETRY)(x, training=True)
    c = ScipyAugment(**GEOMETRY)(x, training=True)
    np.testing.assert_array_equal(numpy(a), numpy(b))
    assert not np.array_equal(numpy(b), numpy(c))


def _pipeline(layer, data, parallel, epochs=1, deterministic=False, batch=None):
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(data)), data)
    )
    if batch:
        dataset = dataset.batch(batch)
    dataset = dataset.repeat(epochs).map(
        lambda i, x: (i, layer(x, training=True)),
        num_parallel_calls=parallel,
        deterministic=deterministic,
    )
    return dataset.unbatch() if batch else dataset


def test_tf_data_epochs_give_new_draws():
    data = clips((4, 2, 32, 32, 1))
    layer = ScipyAugment(**GEOMETRY, seed=3)
    dataset = _pipeline(layer, data, parallel=1, epochs=2)
    outputs = list(dataset.as_numpy_iterator())
    first, second = outputs[:4], outputs[4:]
    for (i, a), (j, b) in zip(first, second):
        assert i == j and not np.array_equal(a, b)


def test_parallel_tf_data_map_is_reproducible_per_clip():
    data = clips((8, 2, 32, 32, 1))

    def run(parallel):
        layer = ScipyAugment(**GEOMETRY, median_size=3, seed=11)
        return by_index(_pipeline(layer, data, parallel=parallel, epochs=1))

    first, second, sequential = run(2), run(2), run(1)
    assert first.keys() == set(range(8))
    for i in range(8):
        np.testing.assert_array_equal(first[i], second[i])
        np.testing.assert_array_equal(first[i], sequential[i])
    assert not np.array_equal(first[0], data[0])


def test_batched_and_per_clip_mapping_draw_the_same_per_clip():
    data = clips((4, 2, 32, 32, 1))
    per_clip = by_index(_pipeline(ScipyAugment(**GEOMETRY, seed=2), data, 2))
    batched = by_index(
        _pipeline(ScipyAugment(**GEOMETRY, seed=2), data, 2, batch=2)
    )
    for i in range(4):
        np.testing.assert_array_equal(per_clip[i], batched[i])


# --- Inference, shape and dtype ---------------------------------------------


@pytest.mark.parametrize("training", [None, False])
def test_identity_at_inference_and_no_py_function(training):
    layer = ScipyAugment(**GEOMETRY, seed=0)
    x = clips(dtype="float32")
    np.testing.assert_array_equal(layer(x, training=training), x)

    def ops_in_graph(flag):
        fn = tf.function(lambda t: layer(t, training=flag))
        graph = fn.get_concrete_function(tf.TensorSpec(x.shape)).graph
        return {op.type for op in graph.get_operations()}

    assert "EagerPyFunc" not in ops_in_graph(training)
    assert "EagerPyFunc" in ops_in_graph(True)


@pytest.mark.parametrize(
    "dtype", ["uint8", "uint16", "int32", "float16", "float32", "float64"]
)
@pytest.mark.backends
def test_keeps_dtype_and_shape(dtype):
    x = clips(dtype=dtype)
    # The dtype the layer receives: the NumPy dtype on TensorFlow; JAX
    # without x64 holds float64 as float32, Keras' torch uint16 as int32.
    received = dtype_of(keras.ops.convert_to_tensor(x))
    if keras.backend.backend() == "tensorflow":
        assert received == dtype
    layer = ScipyAugment(**GEOMETRY, order=3, gaussian_sigma=1.0, noise=0.05)
    y = layer(x, training=True)
    assert dtype_of(y) == received and tuple(y.shape) == x.shape
    y = numpy(y)
    assert y.dtype == received and not np.array_equal(y, x)
    if dtype == "uint8":
        assert y.min() >= 0 and y.max() <= 255


@pytest.mark.backends
def test_bfloat16_clips_stay_bfloat16():
    x = keras.ops.cast(clips(dtype="float32"), "bfloat16")
    y = ScipyAugment(**GEOMETRY, seed=0)(x, training=True)
    assert dtype_of(y) == "bfloat16" and tuple(y.shape) == tuple(x.shape)
    as_float = keras.ops.convert_to_numpy(keras.ops.cast(y, "float32"))
    original = keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))
    assert np.abs(as_float - original).mean() > 1


@pytest.mark.backends
def test_unbatched_clip_and_time_last_layout():
    x = clips((2, 3, 32, 32, 2))
    time_major = ScipyAugment(**GEOMETRY, seed=4)(x, training=True)
    time_last = ScipyAugment(**GEOMETRY, time_axis=-1, seed=4)(
        np.transpose(x, (0, 2, 3, 4, 1)), training=True
    )
    assert tuple(time_last.shape) == (2, 32, 32, 2, 3)
    np.testing.assert_array_equal(
        numpy(time_last), np.transpose(numpy(time_major), (0, 2, 3, 4, 1))
    )
    single = ScipyAugment(**GEOMETRY, seed=4)(x[1], training=True)
    assert tuple(single.shape) == x.shape[1:]
    np.testing.assert_array_equal(numpy(single), numpy(time_major)[1])


def test_static_shape_survives_the_py_function():
    layer = ScipyAugment(**GEOMETRY, seed=0)
    fn = tf.function(lambda t: layer(t, training=True))
    graph_out = fn.get_concrete_function(
        tf.TensorSpec((None, 3, 32, 32, 3), tf.uint8)
    ).structured_outputs
    assert graph_out.shape.as_list() == [None, 3, 32, 32, 3]
    assert layer.compute_output_shape((None, 3, 32, 32, 3)) == (
        None, 3, 32, 32, 3,
    )


@pytest.mark.backends
def test_mixed_bfloat16_keeps_input_dtype():
    keras.config.set_dtype_policy("mixed_bfloat16")
    layer = ScipyAugment(**GEOMETRY, seed=0)
    for dtype in ["float32", "uint8"]:
        assert dtype_of(layer(clips(dtype=dtype), training=True)) == dtype
    spec = layer.compute_output_spec(keras.KerasTensor((2, 3, 32, 32, 3)))
    assert spec.dtype == "float32"


# --- Inside a model ----------------------------------------------------------


def small_model(layer):
    inputs = keras.Input((3, 32, 32, 1))
    x = layer(inputs)
    x = keras.layers.GlobalAveragePooling3D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


@pytest.mark.backends
def test_fit_augments_and_predict_does_not():
    # A brightness shift changes the loss that fit reports; with a learning
    # rate of 0 the weights do not move, so evaluate (no augmentation) sees
    # the original clips, as predict does.
    x = clips((8, 3, 32, 32, 1), dtype="float32") / 255.0
    y = np.zeros((8, 2), "float32")
    layer = ScipyAugment(brightness=(0.5, 0.5), value_range=(0, 2), seed=0)
    model = small_model(layer)
    model.compile(keras.optimizers.SGD(0.0), "mse")
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    eval_loss = model.evaluate(x, y, batch_size=8, verbose=0)
    without_layer = model.layers[-1](keras.layers.GlobalAveragePooling3D()(x))
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               numpy(without_layer), atol=1e-6)
    assert abs(history.history["loss"][0] - eval_loss) > 1e-3


def test_fit_with_jit_compile_falls_back_to_graph_on_tensorflow():
    # tf.py_function cannot be XLA-compiled: the layer says so, and Keras
    # trains without XLA instead of failing to compile the step.
    x = clips((4, 3, 32, 32, 1), dtype="float32") / 255.0
    layer = ScipyAugment(brightness=0.5, value_range=(0, 2), seed=0)
    assert layer.supports_jit is False
    model = small_model(layer)
    with pytest.warns(UserWarning, match="jit_compile"):
        model.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=True)
    assert model.jit_compile is False
    model.fit(x, np.zeros((4, 2), "float32"), batch_size=4, verbose=0)


@pytest.mark.backends
def test_keras_file_round_trip_safe_mode(tmp_path):
    layer = ScipyAugment(**GEOMETRY, flip="vertical", median_size=3,
                         probability={"zoom": 0.5}, seed=9)
    model = small_model(layer)
    path = str(tmp_path / "augment.keras")
    model.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    restored_layer = restored.layers[1]
    assert isinstance(restored_layer, ScipyAugment)
    assert restored_layer.get_config() == layer.get_config()
    x = clips((2, 3, 32, 32, 1), dtype="float32")
    np.testing.assert_allclose(numpy(restored(x)), numpy(model(x)), atol=1e-6)
    np.testing.assert_array_equal(
        numpy(restored_layer(x, training=True)), numpy(layer(x, training=True))
    )


@pytest.mark.backends
def test_pickle_and_deepcopy_start_from_the_config():
    # Keras pickles and deep-copies a layer through its `.keras` form: the
    # copy is a fresh layer of the same config, its counts at zero, so it
    # draws what the original drew first.
    layer = ScipyAugment(**GEOMETRY, seed=9)
    x = clips((2, 3, 32, 32, 1))
    first = numpy(layer(x, training=True))
    assert not np.array_equal(numpy(layer(x, training=True)), first)
    for copied in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert copied.get_config() == layer.get_config()
        np.testing.assert_array_equal(numpy(copied(x, training=True)), first)


def test_saved_model_export_has_no_augmentation(tmp_path):
    layer = ScipyAugment(**GEOMETRY, flip="vertical", median_size=3, seed=9)
    model = small_model(layer)
    x = clips((2, 3, 32, 32, 1), dtype="float32")
    model.export(str(tmp_path / "saved_model"))
    reloaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    np.testing.assert_allclose(reloaded.serve(x), model(x), atol=1e-6)


@pytest.mark.backends
def test_attributes_read_the_one_copy_of_the_settings():
    # The layer passes its transform arguments to the settings in its own
    # order: the signature and the settings' fields must agree.
    arguments = list(inspect.signature(ScipyAugment).parameters)
    fields = [f.name for f in dataclasses.fields(ndimage_ops.TransformSettings)]
    assert arguments[: len(fields)] == fields
    layer = ScipyAugment(rotation=5, flip="vertical", median_size=3, seed=1)
    config = layer.get_config()
    for name in fields:
        assert getattr(layer, name) == config[name], name
    assert layer.rotation == (-5.0, 5.0) and layer.flip == "vertical"
    with pytest.raises(AttributeError):
        layer.rotation = (0, 1)


@pytest.mark.backends
def test_config_is_plain_values():
    config = ScipyAugment(**GEOMETRY, contrast=0.2, seed=1).get_config()
    plain = (type(None), bool, int, float, str, tuple, list, dict)
    for key, value in config.items():
        assert isinstance(value, plain), key
    clone = ScipyAugment.from_config(config)
    assert clone.get_config() == config


# --- Errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"zoom": (-0.5, 1.2)}, r"`zoom`.*zoom=\(-0.5, 1.2\)"),
        ({"zoom": 1.2}, r"`zoom`.*pair.*zoom=1.2"),
        ({"probability": 1.5}, r"`probability`.*probability=1.5"),
        (
            {"probability": {"rotation": -0.1}},
            r"probability=\{'rotation': -0.1\}",
        ),
        ({"probability": {"spin": 0.5}}, r"unknown transform names \['spin'\]"),
        ({"mode": "bogus"}, r"`mode`.*mode='bogus'"),
        ({"order": 7}, r"`order`.*order=7"),
        ({"flip": "diagonal"}, r"`flip`.*flip='diagonal'"),
        ({"median_size": 0}, r"`median_size`.*median_size=0"),
        ({"rotation": -5}, r"`rotation`.*rotation=-5"),
        ({"shift": 2}, r"`shift`.*shift=2"),
        ({"gaussian_sigma": (2, 1)}, r"`gaussian_sigma`.*\(2, 1\)"),
        ({"value_range": (1, 1)}, r"`value_range`"),
        ({"seed": -1}, r"`seed`.*seed=-1"),
        ({"time_axis": 2}, r"time_axis=2"),
    ],
)
@pytest.mark.backends
def test_invalid_arguments_raise_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScipyAugment(**kwargs)


@pytest.mark.backends
def test_wrong_rank_raises():
    with pytest.raises(ValueError, match=r"rank 3"):
        frame = np.zeros((32, 32, 3), "float32")
        ScipyAugment(rotation=5)(frame, training=True)


def _failing_median(monkeypatch):
    def broken(*args, **kwargs):
        raise MemoryError("cannot allocate the window")

    monkeypatch.setattr(ndimage_ops.ndimage, "median_filter", broken)


@pytest.mark.backends
def test_error_in_eager_call_names_the_transform(monkeypatch):
    _failing_median(monkeypatch)
    layer = ScipyAugment(median_size=3, seed=0)
    with pytest.raises(TransformError, match=r"'median' transform.*clip 0.*"
                       r"MemoryError: cannot allocate"):
        layer(clips(), training=True)


def test_error_in_tf_data_map_reaches_the_caller(monkeypatch):
    _failing_median(monkeypatch)
    layer = ScipyAugment(median_size=3, seed=0)
    dataset = tf.data.Dataset.from_tensor_slices(clips()).map(
        lambda x: layer(x, training=True), num_parallel_calls=2
    )
    with pytest.raises(tf.errors.OpError) as info:
        list(dataset)
    message = str(info.value)
    assert "TransformError" in message
    assert "'median' transform" in message
    assert "MemoryError: cannot allocate the window" in message


# --- Properties --------------------------------------------------------------


layer_arguments = st.fixed_dictionaries(
    {
        "rotation": st.none() | st.floats(0, 180),
        "zoom": st.none() | st.tuples(st.floats(0.5, 1), st.floats(1, 2)),
        "shift": st.none() | st.floats(0, 0.5),
        "shear": st.none() | st.floats(0, 30),
        "flip": st.sampled_from([None, "horizontal", "vertical",
                                 "horizontal_and_vertical"]),
        "median_size": st.none() | st.integers(1, 4),
        "gaussian_sigma": st.none() | st.floats(0, 2),
        "brightness": st.none() | st.floats(0, 1),
        "contrast": st.none() | st.floats(0, 1),
        "noise": st.none() | st.floats(0, 0.2),
        "order": st.integers(0, 5),
        "mode": st.sampled_from(ndimage_ops.MODES),
        "per_frame": st.booleans(),
        "seed": st.integers(0, 2**31),
    }
)


@settings(max_examples=25, deadline=None)
@given(
    arguments=layer_arguments,
    shape=st.tuples(st.integers(1, 3), st.integers(4, 12), st.integers(4, 12),
                    st.integers(1, 3)),
    dtype=st.sampled_from(["uint8", "float32"]),
)
@pytest.mark.backends
def test_property_shape_dtype_and_identity(arguments, shape, dtype):
    x = clips((2, *shape), dtype=dtype, seed=arguments["seed"] % 100)
    augmented = ScipyAugment(**arguments)(x, training=True)
    assert tuple(augmented.shape) == x.shape and dtype_of(augmented) == dtype
    never = ScipyAugment(**arguments, probability=0.0)
    np.testing.assert_array_equal(numpy(never(x, training=True)), x)
    np.testing.assert_array_equal(numpy(ScipyAugment(**arguments)(x)), x)
