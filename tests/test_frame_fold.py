import numpy as np
import pytest
import tensorflow as tf
import keras
from keras.src import testing

from keras_vgg4d import FrameFold


def small_cnn():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x)


class FrameFoldLayerTest(testing.TestCase):
    def test_layer_harness(self):
        self.run_layer_test(
            FrameFold,
            init_kwargs={"layer": keras.layers.Dense(3)},
            input_shape=(2, 4, 5),
            expected_output_shape=(2, 4, 3),
            expected_num_trainable_weights=2,
            expected_num_non_trainable_weights=0,
            supports_masking=True,
        )

    def test_layer_harness_chunked_time_last(self):
        self.run_layer_test(
            FrameFold,
            init_kwargs={
                "layer": keras.layers.Conv2D(2, 3),
                "time_axis": -1,
                "frame_chunk": 2,
            },
            input_shape=(2, 8, 8, 3, 3),
            expected_output_shape=(2, 3, 6, 6, 2),
            expected_num_trainable_weights=2,
            supports_masking=True,
        )


def clips(shape=(2, 5, 32, 32, 3), seed=0):
    return np.random.default_rng(seed).random(shape, dtype="float32")


@pytest.mark.parametrize("chunk", [None, 1, 2, 5, 7])
def test_equals_time_distributed(chunk):
    model = small_cnn()
    x = clips()
    expected = keras.layers.TimeDistributed(model)(x)
    got = FrameFold(model, frame_chunk=chunk)(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_time_last_equals_time_major():
    layer = keras.layers.Conv2D(4, 3)
    x = clips()
    expected = FrameFold(layer)(x)
    got = FrameFold(layer, time_axis=-1)(np.transpose(x, (0, 2, 3, 4, 1)))
    assert got.shape == (2, 5, 30, 30, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [None, 3])
def test_unknown_batch_and_time_symbolic(chunk):
    layer = keras.layers.Conv2D(4, 3)
    inputs = keras.Input((None, 32, 32, 3))
    model = keras.Model(inputs, FrameFold(layer, frame_chunk=chunk)(inputs))
    assert model.output_shape == (None, None, 30, 30, 4)
    for shape in [(1, 2, 32, 32, 3), (3, 7, 32, 32, 3)]:
        x = clips(shape)
        np.testing.assert_allclose(
            model(x), keras.layers.TimeDistributed(layer)(x), atol=1e-5
        )


@pytest.mark.parametrize("chunk", [None, 2])
def test_tf_function_with_unknown_sizes(chunk):
    layer = FrameFold(keras.layers.Conv2D(4, 3), frame_chunk=chunk)
    fn = tf.function(
        layer, input_signature=[tf.TensorSpec((None, None, 32, 32, 3))]
    )
    for shape in [(1, 3, 32, 32, 3), (2, 5, 32, 32, 3)]:
        x = clips(shape)
        np.testing.assert_allclose(fn(x), layer(x), atol=1e-6)


def test_mask_passes_through_and_reaches_masking_layer():
    mask = np.array([[True, True, False], [True, False, False]])
    inputs = keras.Input((3, 4))
    x = keras.layers.Masking(mask_value=0.0)(inputs)
    x = FrameFold(keras.layers.Dense(2))(x)
    x = keras.layers.LSTM(3)(x)
    model = keras.Model(inputs, x)
    data = np.random.default_rng(0).random((2, 3, 4), dtype="float32")
    data[~mask] = 0.0
    layer = FrameFold(keras.layers.Dense(2))
    assert layer.compute_mask(data, mask=tf.constant(mask)) is not None
    np.testing.assert_array_equal(
        layer.compute_mask(data, mask=tf.constant(mask)), mask
    )
    # The padded frames do not change the LSTM output: masking went through.
    changed = data.copy()
    changed[~mask] = 0.0
    np.testing.assert_allclose(model(data), model(changed), atol=1e-6)


def test_chunked_mask_is_folded_for_mask_aware_layer():
    class MaskSum(keras.layers.Layer):
        def call(self, x, mask=None):
            return x * keras.ops.cast(mask, x.dtype)[:, None]

    x = np.ones((2, 5, 3), "float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 0, 1]], bool)
    for chunk in [None, 2]:
        y = FrameFold(MaskSum(), frame_chunk=chunk)(x, mask=tf.constant(mask))
        np.testing.assert_array_equal(y[..., 0], mask.astype("float32"))


def test_training_flag_reaches_wrapped_layer():
    layer = FrameFold(keras.layers.Dropout(0.5, seed=1))
    x = np.ones((2, 3, 8, 8, 1), "float32")
    np.testing.assert_array_equal(layer(x, training=False), x)
    assert np.any(np.asarray(layer(x, training=True)) == 0)


@pytest.mark.parametrize("shape", [(4,), (2, 5)])
def test_low_rank_input_raises(shape):
    with pytest.raises(ValueError, match=r"rank >= 3.*received input shape"):
        FrameFold(keras.layers.Dense(2))(np.zeros(shape, "float32"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"time_axis": 2}, "time_axis"),
        ({"frame_chunk": 0}, "frame_chunk"),
        ({"frame_chunk": 1.5}, "frame_chunk"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FrameFold(keras.layers.Dense(2), **kwargs)


def test_not_a_layer_raises():
    with pytest.raises(ValueError, match="keras.layers.Layer"):
        FrameFold(lambda x: x)


def test_keras_file_round_trip_safe_mode(tmp_path):
    inputs = keras.Input((None, 32, 32, 3))
    outputs = FrameFold(small_cnn(), frame_chunk=2, time_axis=1)(inputs)
    model = keras.Model(inputs, outputs)
    path = str(tmp_path / "fold.keras")
    model.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    assert isinstance(restored.layers[-1], FrameFold)
    assert restored.layers[-1].frame_chunk == 2
    x = clips()
    np.testing.assert_allclose(restored(x), model(x), atol=1e-6)


def test_config_round_trip_keeps_arguments():
    layer = FrameFold(keras.layers.Conv2D(3, 3), time_axis=-1, frame_chunk=4)
    clone = FrameFold.from_config(layer.get_config())
    assert clone.time_axis == -1 and clone.frame_chunk == 4
    assert isinstance(clone.layer, keras.layers.Conv2D)
    assert clone.layer.filters == 3


def test_mixed_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    layer = FrameFold(keras.layers.Conv2D(4, 3))
    y = layer(clips())
    assert y.dtype == "bfloat16"
    assert layer.layer.kernel.dtype == "float32"


def test_fit_one_step():
    inputs = keras.Input((None, 32, 32, 3))
    x = FrameFold(small_cnn())(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    history = model.fit(clips((4, 3, 32, 32, 3)), np.array([0, 1, 0, 1]),
                        epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
