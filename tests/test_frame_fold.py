"""Tests for `FrameFold`, the faster, mask-aware `TimeDistributed`.

The first part ports every case of Keras' own `TimeDistributed` tests,
`keras/src/layers/rnn/time_distributed_test.py` of Keras 3.15 (the copy
installed with Keras 3.15.1, `TimeDistributedTest`), in our own words, with
`FrameFold` in place of `TimeDistributed` and, where it applies, again with
`time_axis=-1`. The rest covers the behaviours a `TimeDistributed` user
relies on (output shapes with unknown sizes, nested wrappers, output masks,
`training`, dtype policies), the run-time mask check, the frame-rank check
against the wrapped layer's `input_spec`, chunking and serialization.
"""

import re

import keras
from keras import ops
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from keras.src import testing

from keras_vgg4d import FrameFold
from keras_vgg4d.frame_fold import validate_frame_chunk

pytestmark = pytest.mark.backends

TIME_AXES = [("time_major", 1), ("time_last", -1)]


def small_cnn():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x)


def clips(shape=(2, 5, 32, 32, 3), seed=0):
    return np.random.default_rng(seed).random(shape, dtype="float32")


def time_last(x):
    """A time-major array moved to `(batch, ..., time)`."""
    return np.moveaxis(np.asarray(x), 1, -1)


def laid_out(x, time_axis):
    return np.asarray(x) if time_axis == 1 else time_last(x)


def constant_dense(units=1):
    return keras.layers.Dense(
        units,
        kernel_initializer=keras.initializers.Constant(0.01),
        use_bias=False,
    )


class MaskedDense(keras.layers.Wrapper):
    """A mask-aware wrapped layer: zeroes the outputs of masked frames."""

    def __init__(self, units, **kwargs):
        super().__init__(constant_dense(units), **kwargs)
        self.supports_masking = True

    def call(self, inputs, training=False, mask=None):
        outputs = self.layer.call(inputs)
        if mask is None:
            return outputs
        return keras.ops.transpose(
            keras.ops.transpose(outputs) * keras.ops.cast(mask, inputs.dtype)
        )


def mask_error(mask_shape, input_shape, time_axis, expected):
    """The full message of a mask that does not fit, as a regex."""
    return re.escape(
        f"FrameFold received a mask of shape {mask_shape} that does not fit "
        f"its input of shape {input_shape}: with time_axis={time_axis} the "
        f"mask must be (batch, time) = {expected}, or (batch, time, ...)."
    )


# Keras' TimeDistributedTest, case by case ----------------------------------


class TimeDistributedCasesTest(testing.TestCase):
    """`TimeDistributedTest` of Keras 3.15, run against `FrameFold`."""

    @parameterized.named_parameters(
        ("time_major", 1, (3, 2, 4)), ("time_last", -1, (3, 4, 2))
    )
    def test_basics(self, time_axis, input_shape):
        self.run_layer_test(
            FrameFold,
            init_kwargs={
                "layer": keras.layers.Dense(1, use_bias=False),
                "time_axis": time_axis,
            },
            input_shape=input_shape,
            expected_output_shape=(3, 2, 1),
            expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=0,
            supports_masking=True,
        )

    def test_basics_chunked_conv2d_time_last(self):
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

    @parameterized.named_parameters(
        ("time_major", 1, (10, 128, 128, 3)),
        ("time_last", -1, (128, 128, 3, 10)),
    )
    def test_build(self, time_axis, input_shape):
        # Symbolic only: the shapes of Keras' case, no forward pass.
        inputs = keras.Input(shape=input_shape, batch_size=32)
        layer = FrameFold(keras.layers.Conv2D(64, (3, 3)), time_axis=time_axis)
        outputs = layer(inputs)
        self.assertEqual(outputs.shape, (32, 10, 126, 126, 64))
        self.assertTrue(layer.built)
        self.assertEqual(layer.layer.kernel.shape, (3, 3, 3, 64))

    @parameterized.named_parameters(*TIME_AXES)
    def test_correctness(self, time_axis):
        sequence = np.arange(24).reshape((3, 2, 4)).astype("float32")
        layer = FrameFold(constant_dense(), time_axis=time_axis)
        self.assertAllClose(
            layer(laid_out(sequence, time_axis)),
            [[[0.06], [0.22]], [[0.38], [0.54]], [[0.7], [0.86]]],
        )

    @parameterized.named_parameters(*TIME_AXES)
    def test_masking(self, time_axis):
        sequence = np.arange(24).reshape((3, 2, 4)).astype("float32")
        mask = np.array([[False, True], [True, False], [True, True]])
        layer = FrameFold(MaskedDense(1), time_axis=time_axis)
        self.assertAllClose(
            layer(laid_out(sequence, time_axis), mask=mask),
            [[[0], [0.22]], [[0.38], [0]], [[0.7], [0.86]]],
        )

    def test_with_mask_zero(self):
        # Keras trains one epoch on tokens drawn from 1..9 (no padding). Here
        # the tails are padded with 0, and the padded steps' labels must not
        # count in the loss: the mask went from Embedding through FrameFold.
        model = keras.Sequential(
            [
                keras.Input(shape=(20,)),
                keras.layers.Embedding(10, 5, mask_zero=True),
                FrameFold(keras.layers.Dense(5, activation="softmax")),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        tokens = rng.integers(1, 10, size=(22, 20))
        tokens[:, 15:] = 0
        labels = rng.integers(0, 5, size=(22, 20))
        history = model.fit(tokens, labels, epochs=1, batch_size=16, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        relabelled = labels.copy()
        relabelled[:, 15:] = (labels[:, 15:] + 1) % 5
        self.assertAllClose(
            model.evaluate(tokens, labels, verbose=0),
            model.evaluate(tokens, relabelled, verbose=0),
        )
        relabelled[:, 0] = (labels[:, 0] + 1) % 5
        self.assertNotAllClose(
            model.evaluate(tokens, labels, verbose=0),
            model.evaluate(tokens, relabelled, verbose=0),
        )

    @parameterized.named_parameters(*TIME_AXES)
    def test_mask_validation_with_mismatched_timesteps(self, time_axis):
        layer = FrameFold(keras.layers.Dense(5), time_axis=time_axis)
        inputs = laid_out(np.zeros((4, 5, 3), "float32"), time_axis)
        outputs = layer(inputs, mask=np.ones((4, 5), bool))
        self.assertEqual(outputs.shape, (4, 5, 5))
        with self.assertRaisesRegex(
            ValueError, mask_error((4, 6), inputs.shape, time_axis, (4, 5))
        ):
            layer(inputs, mask=np.ones((4, 6), bool))

    @parameterized.named_parameters(*TIME_AXES)
    def test_mask_validation_with_mismatched_batch_size(self, time_axis):
        layer = FrameFold(keras.layers.Dense(5), time_axis=time_axis)
        inputs = laid_out(np.zeros((4, 5, 3), "float32"), time_axis)
        for bad in [(5, 5), (3, 5)]:
            with self.assertRaisesRegex(
                ValueError, mask_error(bad, inputs.shape, time_axis, (4, 5))
            ):
                layer(inputs, mask=np.ones(bad, bool))

    @parameterized.named_parameters(*TIME_AXES)
    def test_mask_validation_with_correct_shape(self, time_axis):
        layer = FrameFold(keras.layers.Dense(5), time_axis=time_axis)
        inputs = laid_out(np.zeros((4, 5, 3), "float32"), time_axis)
        outputs = layer(inputs, mask=np.ones((4, 5, 1), bool))
        self.assertEqual(outputs.shape, (4, 5, 5))

    @parameterized.named_parameters(*TIME_AXES)
    def test_mask_validation_with_3d_mask(self, time_axis):
        layer = FrameFold(keras.layers.Dense(5), time_axis=time_axis)
        inputs = laid_out(np.zeros((4, 5, 3), "float32"), time_axis)
        outputs = layer(inputs, mask=np.ones((4, 5, 2), bool))
        self.assertEqual(outputs.shape, (4, 5, 5))
        with self.assertRaisesRegex(
            ValueError, mask_error((4, 6, 2), inputs.shape, time_axis, (4, 5))
        ):
            layer(inputs, mask=np.ones((4, 6, 2), bool))

    @parameterized.named_parameters(*TIME_AXES)
    def test_mask_validation_with_none_mask(self, time_axis):
        layer = FrameFold(keras.layers.Dense(5), time_axis=time_axis)
        inputs = laid_out(np.zeros((4, 5, 3), "float32"), time_axis)
        self.assertEqual(layer(inputs, mask=None).shape, (4, 5, 5))

    @parameterized.named_parameters(*TIME_AXES)
    def test_mask_validation_with_both_batch_and_timesteps_mismatched(
        self, time_axis
    ):
        layer = FrameFold(keras.layers.Dense(5), time_axis=time_axis)
        inputs = laid_out(np.zeros((4, 5, 3), "float32"), time_axis)
        with self.assertRaisesRegex(
            ValueError, mask_error((5, 6), inputs.shape, time_axis, (4, 5))
        ):
            layer(inputs, mask=np.ones((5, 6), bool))


# The mask check beyond Keras' cases ----------------------------------------


def test_rank_one_mask_raises_and_points_at_nesting():
    layer = FrameFold(keras.layers.Dense(2))
    message = (
        mask_error((4,), (4, 5, 3), 1, (4, 5))
        + re.escape(
            " Inside another FrameFold or TimeDistributed, this layer "
            "receives the outer mask folded: give the outer layer a mask of "
            "shape (batch, time, inner_time)."
        )
    )
    with pytest.raises(ValueError, match=message):
        layer(np.zeros((4, 5, 3), "float32"), mask=np.ones((4,), bool))


@pytest.mark.parametrize("time_axis", [1, -1])
def test_symbolic_mask_is_checked_when_the_model_is_built(time_axis):
    shape = (5, 3) if time_axis == 1 else (3, 5)
    inputs = keras.Input(shape, batch_size=4)
    layer = FrameFold(keras.layers.Dense(2), time_axis=time_axis)
    ok = layer(inputs, mask=keras.Input((5,), batch_size=4, dtype="bool"))
    assert ok.shape == (4, 5, 2)
    for bad in [(4, 6), (3, 5)]:
        mask = keras.Input(bad[1:], batch_size=bad[0], dtype="bool")
        with pytest.raises(
            ValueError, match=mask_error(bad, (4, *shape), time_axis, (4, 5))
        ):
            layer(inputs, mask=mask)
    # Unknown sizes are left to the run-time check.
    unknown = keras.Input((None,), dtype="bool")
    assert layer(inputs, mask=unknown).shape == (4, 5, 2)


@pytest.mark.tensorflow
@pytest.mark.parametrize("time_axis", [1, -1])
@pytest.mark.parametrize("chunk", [None, 2])
def test_mask_is_checked_at_run_time_in_a_graph(time_axis, chunk):
    layer = FrameFold(keras.layers.Dense(2), time_axis=time_axis,
                      frame_chunk=chunk)
    fn = tf.function(
        lambda x, mask: layer(x, mask=mask),
        input_signature=[
            tf.TensorSpec((None, None, 3) if time_axis == 1 else
                          (None, 3, None)),
            tf.TensorSpec((None, None), tf.bool),
        ],
    )
    x = laid_out(clips((4, 5, 3)), time_axis)
    np.testing.assert_allclose(
        fn(x, np.ones((4, 5), bool)), layer(x), rtol=1e-6
    )
    # The same number of elements, so no reshape would catch these.
    for bad in [(5, 4), (2, 10), (4, 6), (3, 5)]:
        with pytest.raises(
            tf.errors.InvalidArgumentError,
            match=r"FrameFold received a mask whose \(batch, time\) differs "
            r"from that of its time-major input; mask shape, then input "
            r"shape:",
        ):
            fn(x, np.ones(bad, bool))


def test_mask_is_checked_when_a_model_predicts():
    inputs = keras.Input((None, 3))
    mask = keras.Input((None,), dtype="bool")
    outputs = FrameFold(keras.layers.Dense(2))(inputs, mask=mask)
    model = keras.Model([inputs, mask], outputs)
    x = clips((4, 5, 3))
    assert model.predict([x, np.ones((4, 5), bool)], verbose=0).shape == (
        4, 5, 2)
    # TensorFlow traces with unknown sizes and checks them when the graph
    # runs; JAX and PyTorch know every size when the layer runs.
    error = ValueError
    if keras.backend.backend() == "tensorflow":
        error = tf.errors.InvalidArgumentError
    with pytest.raises(error, match="FrameFold"):
        model.predict([x, np.ones((4, 6), bool)], batch_size=4, verbose=0)


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 3),
    time=st.integers(1, 4),
    mask_batch=st.integers(1, 3),
    mask_time=st.integers(1, 4),
    extra=st.lists(st.integers(1, 2), max_size=1),
    time_axis=st.sampled_from([1, -1]),
)
def test_a_mask_is_accepted_iff_it_starts_with_batch_and_time(
    batch, time, mask_batch, mask_time, extra, time_axis
):
    layer = FrameFold(keras.layers.Identity(), time_axis=time_axis)
    x = laid_out(np.ones((batch, time, 2), "float32"), time_axis)
    mask = np.ones((mask_batch, mask_time, *extra), bool)
    if (mask_batch, mask_time) == (batch, time):
        assert layer(x, mask=mask).shape == (batch, time, 2)
    else:
        with pytest.raises(ValueError, match="does not fit its input"):
            layer(x, mask=mask)


# Masks reach the wrapped layer and change nothing they should not ----------


def test_padded_frames_do_not_change_the_lstm_output():
    # An explicit mask: the padded frames hold large random values, so a
    # FrameFold or LSTM that ignored the mask would give other answers.
    mask = np.array([[True, True, False], [True, False, False]])
    inputs = keras.Input((3, 4))
    mask_input = keras.Input((3,), dtype="bool")
    x = FrameFold(keras.layers.Dense(2))(inputs, mask=mask_input)
    model = keras.Model([inputs, mask_input], keras.layers.LSTM(3)(x))
    rng = np.random.default_rng(0)
    data = rng.random((2, 3, 4), dtype="float32")
    padded = data.copy()
    padded[~mask] = rng.uniform(5.0, 10.0, size=(int((~mask).sum()), 4))
    assert not np.allclose(data, padded)
    np.testing.assert_allclose(
        model([data, mask]), model([padded, mask]), atol=1e-6
    )
    everything = np.ones_like(mask)
    assert not np.allclose(
        model([data, everything]), model([padded, everything]), atol=1e-3
    )


def test_masking_layer_mask_equals_cutting_the_clips():
    # Masking -> FrameFold -> LSTM on zero-padded clips gives what the LSTM
    # gives on each clip cut to its length.
    inputs = keras.Input((None, 4))
    x = keras.layers.Masking(mask_value=0.0)(inputs)
    x = FrameFold(keras.layers.Dense(2))(x)
    model = keras.Model(inputs, keras.layers.LSTM(3)(x))
    lengths = [2, 1]
    data = np.random.default_rng(0).uniform(0.5, 1.0, (2, 3, 4))
    data = data.astype("float32")
    for i, length in enumerate(lengths):
        data[i, length:] = 0.0
    outputs = model(data)
    for i, length in enumerate(lengths):
        np.testing.assert_allclose(
            outputs[i], model(data[i:i + 1, :length])[0], atol=1e-6
        )
    layer = FrameFold(keras.layers.Dense(2))
    mask = tf.constant([[True, True, False], [True, False, False]])
    np.testing.assert_array_equal(layer.compute_mask(data, mask=mask), mask)


class MaskedScale(keras.layers.Layer):
    """Multiplies each frame by its mask entry (a mask-aware layer)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        mask = keras.ops.cast(mask, x.dtype)
        while len(mask.shape) < len(x.shape):
            mask = keras.ops.expand_dims(mask, -1)
        return x * mask


@pytest.mark.parametrize("time_axis", [1, -1])
def test_chunked_mask_is_folded_for_mask_aware_layer(time_axis):
    x = laid_out(np.ones((2, 5, 3), "float32"), time_axis)
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 0, 1]], bool)
    for chunk in [None, 1, 2, 5, 7]:
        layer = FrameFold(MaskedScale(), time_axis=time_axis,
                          frame_chunk=chunk)
        y = layer(x, mask=tf.constant(mask))
        np.testing.assert_array_equal(y[..., 0], mask.astype("float32"))


@pytest.mark.parametrize("chunk", [None, 2, 3])
def test_mask_with_trailing_axes_is_folded_for_mask_aware_layer(chunk):
    x = np.ones((2, 3, 4, 2), "float32")
    mask = np.random.default_rng(0).random((2, 3, 4)) > 0.5
    y = FrameFold(MaskedScale(), frame_chunk=chunk)(x, mask=tf.constant(mask))
    np.testing.assert_array_equal(y[..., 0], mask.astype("float32"))


# Behaviours of TimeDistributed a user relies on ----------------------------


@pytest.mark.parametrize(
    "shape",
    [
        (None, None, 8, 8, 3),
        (4, None, 8, 8, 3),
        (None, 5, 8, 8, 3),
        (4, 5, None, None, 3),
        (None, None, None, None, 3),
    ],
)
@pytest.mark.parametrize("chunk", [None, 2])
def test_compute_output_shape_with_unknown_sizes(shape, chunk):
    expected = keras.layers.TimeDistributed(
        keras.layers.Conv2D(2, 3)
    ).compute_output_shape(shape)
    for time_axis in [1, -1]:
        layer = FrameFold(keras.layers.Conv2D(2, 3), time_axis=time_axis,
                          frame_chunk=chunk)
        given_shape = shape if time_axis == 1 else (*shape[:1], *shape[2:],
                                                    shape[1])
        assert layer.compute_output_shape(given_shape) == expected
        symbolic = layer(keras.Input(batch_shape=given_shape))
        assert symbolic.shape == expected


@pytest.mark.tensorflow
@pytest.mark.parametrize("chunk", [None, 2])
def test_unknown_frame_sizes_in_a_graph(chunk):
    layer = FrameFold(keras.layers.Conv2D(2, 3), frame_chunk=chunk)
    fn = tf.function(
        layer, input_signature=[tf.TensorSpec((None, None, None, None, 3))]
    )
    for shape in [(1, 3, 9, 7, 3), (2, 1, 5, 6, 3)]:
        x = clips(shape)
        np.testing.assert_allclose(
            fn(x), keras.layers.TimeDistributed(layer.layer)(x), atol=1e-6
        )


@pytest.mark.parametrize(
    "outer_axis, inner_axis, chunks",
    [(1, 1, (None, None)), (1, 1, (2, 3)), (-1, -1, (None, 3)),
     (1, -1, (2, None))],
)
def test_nested_frame_folds_equal_nested_time_distributed(
    outer_axis, inner_axis, chunks
):
    conv = keras.layers.Conv2D(2, 3)
    x = clips((2, 3, 4, 8, 8, 1))  # (batch, time, inner_time, h, w, c)
    expected = keras.layers.TimeDistributed(
        keras.layers.TimeDistributed(conv)
    )(x)
    given_x = x
    if inner_axis == -1:
        given_x = np.moveaxis(given_x, 2, -1)
    if outer_axis == -1:
        given_x = np.moveaxis(given_x, 1, -1)
    layer = FrameFold(
        FrameFold(conv, time_axis=inner_axis, frame_chunk=chunks[1]),
        time_axis=outer_axis,
        frame_chunk=chunks[0],
    )
    np.testing.assert_allclose(layer(given_x), expected, atol=1e-6)
    symbolic = layer(keras.Input(given_x.shape[1:]))
    assert symbolic.shape == (None, 3, 4, 6, 6, 2)
    clone = FrameFold.from_config(layer.get_config())
    assert isinstance(clone.layer, FrameFold)
    assert clone.layer.time_axis == inner_axis
    assert clone.layer.frame_chunk == chunks[1]


def test_nested_frame_folds_take_a_mask_per_inner_frame():
    x = np.ones((2, 3, 4, 5), "float32")
    mask = np.random.default_rng(0).random((2, 3, 4)) > 0.5
    layer = FrameFold(FrameFold(MaskedScale()))
    y = layer(x, mask=mask)
    np.testing.assert_array_equal(y[..., 0], mask.astype("float32"))
    with pytest.raises(ValueError, match=r"mask of shape \(6,\).*inner_time"):
        layer(x, mask=mask[..., 0])


def test_wrapped_layer_mask_comes_back_unfolded():
    tokens = np.array([[[1, 2, 0], [0, 0, 0]], [[3, 0, 0], [4, 5, 6]]])
    layer = FrameFold(keras.layers.Embedding(10, 4, mask_zero=True))
    np.testing.assert_array_equal(
        layer.compute_mask(tokens, None), tokens != 0
    )
    time_mask = np.array([[True, True], [False, True]])
    np.testing.assert_array_equal(
        layer.compute_mask(tokens, tf.constant(time_mask)),
        (tokens != 0) & time_mask[..., None],
    )
    outputs = layer(tokens, mask=tf.constant(time_mask))
    np.testing.assert_array_equal(
        outputs._keras_mask, (tokens != 0) & time_mask[..., None]
    )
    # In time-last layout the mask is still (batch, time, ...).
    last = FrameFold(keras.layers.Embedding(10, 4, mask_zero=True),
                     time_axis=-1)
    np.testing.assert_array_equal(
        last.compute_mask(time_last(tokens), None), tokens != 0
    )


def test_wrapped_layer_without_an_output_mask_reduces_the_mask():
    layer = FrameFold(keras.layers.LSTM(2))
    x = np.ones((2, 3, 4, 1), "float32")
    mask = np.zeros((2, 3, 4), bool)
    mask[0, 0, 1] = mask[1, 2, 0] = True
    np.testing.assert_array_equal(
        layer.compute_mask(x, ops.convert_to_tensor(mask)), mask.any(axis=-1)
    )
    time_mask = np.array([[True, False, True], [False, False, True]])
    np.testing.assert_array_equal(
        layer.compute_mask(x, ops.convert_to_tensor(time_mask)), time_mask)
    assert layer.compute_mask(x, None) is None
    sequences = FrameFold(keras.layers.LSTM(2, return_sequences=True))
    np.testing.assert_array_equal(
        sequences.compute_mask(x, ops.convert_to_tensor(mask)), mask
    )


def hierarchical_model():
    """Words -> sentence vectors -> a document vector, masked at both
    levels: FrameFold(Embedding) makes the word mask, FrameFold(LSTM) uses
    it and returns the sentence mask."""
    inputs = keras.Input((None, None), dtype="int32")
    x = FrameFold(keras.layers.Embedding(10, 4, mask_zero=True))(inputs)
    x = FrameFold(keras.layers.LSTM(3))(x)
    return keras.Model(inputs, keras.layers.LSTM(2)(x))


def test_word_and_sentence_masks_flow_through_a_model(tmp_path):
    model = hierarchical_model()
    tokens = np.array([[[1, 2, 0], [3, 0, 0]], [[4, 5, 6], [0, 0, 0]]])
    padded = np.array([[[1, 2, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0]],
                       [[4, 5, 6, 0], [0, 0, 0, 0], [0, 0, 0, 0]]])
    np.testing.assert_allclose(model(tokens), model(padded), atol=1e-6)
    np.testing.assert_allclose(
        model(tokens)[1], model(tokens[1:, :1])[0], atol=1e-6
    )
    path = str(tmp_path / "hierarchical.keras")
    model.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(restored(padded), model(tokens), atol=1e-6)
    # In a graph, with the sizes read at run time.
    np.testing.assert_allclose(
        restored.predict(padded, verbose=0), model(tokens), atol=1e-6
    )


def test_training_flag_reaches_wrapped_layer():
    layer = FrameFold(keras.layers.Dropout(0.5, seed=1))
    x = np.ones((2, 3, 8, 8, 1), "float32")
    np.testing.assert_array_equal(layer(x, training=False), x)
    assert np.any(np.asarray(layer(x, training=True)) == 0)
    assert np.any(np.asarray(layer(x, training=True)) == 2)


@pytest.mark.parametrize("chunk", [None, 2])
def test_training_is_inherited_from_the_enclosing_call(chunk):
    inputs = keras.Input((3, 4))
    x = FrameFold(keras.layers.Dropout(0.5, seed=1), frame_chunk=chunk)(inputs)
    model = keras.Model(inputs, x)
    data = np.ones((2, 3, 4), "float32")
    np.testing.assert_array_equal(model(data), data)
    assert np.any(np.asarray(model(data, training=True)) == 0)
    # Inside a functional model the model's own `training` wins, as for
    # any Keras layer; in a subclassed model an explicit value wins.
    class Frozen(keras.Model):
        def __init__(self):
            super().__init__()
            self.fold = FrameFold(keras.layers.Dropout(0.5), frame_chunk=chunk)

        def call(self, x, training=None):
            return self.fold(x, training=False)

    np.testing.assert_array_equal(Frozen()(data, training=True), data)


def test_fit_trains_batch_normalization_on_every_frame():
    inputs = keras.Input((3, 4))
    norm = keras.layers.BatchNormalization(momentum=0.0)
    outputs = FrameFold(norm)(inputs)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse")
    data = np.random.default_rng(0).normal(2.0, 1.0, (4, 3, 4))
    data = data.astype("float32")
    model.fit(data, data, epochs=1, batch_size=4, verbose=0)
    # One call on all 12 frames: the moving mean is their mean.
    np.testing.assert_allclose(
        norm.moving_mean, data.reshape(-1, 4).mean(axis=0), rtol=1e-5
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("chunk", [None, 2])
def test_mixed_precision(policy, chunk):
    keras.config.set_dtype_policy(policy)
    compute = policy.split("_")[1]
    layer = FrameFold(keras.layers.Conv2D(4, 3), frame_chunk=chunk)
    symbolic = layer(keras.Input((5, 32, 32, 3)))
    eager = layer(clips(), mask=np.ones((2, 5), bool))
    assert symbolic.dtype == compute
    assert keras.backend.standardize_dtype(eager.dtype) == compute
    assert layer.layer.kernel.dtype == "float32"
    # A wrapped layer under its own float32 policy decides the output dtype.
    dense = FrameFold(keras.layers.Dense(2, dtype="float32"))
    assert dense(keras.Input((5, 3))).dtype == "float32"
    out = dense(np.ones((2, 5, 3), "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


# The frame rank against the wrapped layer's input_spec (issue #16) ---------


def rank_error(axis, size, shape, frames, frame_rank, layer, expected,
               clip_rank, layout):
    return re.escape(
        f"FrameFold read axis {axis} (size {size}) of its input of shape "
        f"{shape} as time, leaving frames of shape {frames} (rank "
        f"{frame_rank} + batch); {layer} expects inputs of {expected}, "
        f"batch included. Pass clips of rank {clip_rank}, {layout} with "
        f"time_axis={axis}; for single frames, add a time axis."
    )


class RankRange(keras.layers.Layer):
    """Declares `min_ndim`/`max_ndim` only."""

    def __init__(self, min_ndim=None, max_ndim=None, **kwargs):
        super().__init__(**kwargs)
        self.input_spec = keras.InputSpec(min_ndim=min_ndim,
                                          max_ndim=max_ndim)

    def call(self, x):
        return x


@pytest.mark.parametrize("call", ["call", "build", "compute_output_shape"])
def test_clip_without_time_axis_names_what_was_read_as_time(call):
    layer = FrameFold(keras.layers.Conv2D(2, 3, name="conv"))
    pattern = rank_error(1, 8, (2, 8, 8, 3), (8, 3), 2, "Conv2D 'conv'",
                         "rank >= 4", 5, "(batch, time, ...)")
    with pytest.raises(ValueError, match=pattern):
        if call == "call":
            layer(np.zeros((2, 8, 8, 3), "float32"))
        else:
            getattr(layer, call)((2, 8, 8, 3))


@pytest.mark.parametrize(
    "layer, time_axis, shape, frames, expected",
    [
        (keras.layers.Conv2D(2, 3, name="c"), -1, (2, 8, 8, 3), (8, 8),
         ("Conv2D 'c'", "rank >= 4", 5)),
        (keras.layers.LSTM(2, name="r"), 1, (2, 3, 4, 5, 6), (4, 5, 6),
         ("LSTM 'r'", "rank 3", 4)),
        (RankRange(3, 4, name="mm"), 1, (2, 3, 4), (4,),
         ("RankRange 'mm'", "rank 3 to 4", 4)),
        (RankRange(max_ndim=2, name="mx"), 1, (2, 3, 4, 5), (4, 5),
         ("RankRange 'mx'", "rank <= 2", 3)),
        (RankRange(max_ndim=2, name="mx"), -1, (2, 4, 5, 3), (4, 5),
         ("RankRange 'mx'", "rank <= 2", 3)),
    ],
)
def test_frame_rank_checked_against_input_spec(
    layer, time_axis, shape, frames, expected
):
    name, text, clip_rank = expected
    layout = "(batch, time, ...)" if time_axis == 1 else "(batch, ..., time)"
    pattern = rank_error(time_axis, shape[time_axis], shape, frames,
                         len(frames), name, text, clip_rank, layout)
    with pytest.raises(ValueError, match=pattern):
        FrameFold(layer, time_axis=time_axis)(np.zeros(shape, "float32"))


def test_frame_rank_checked_for_models():
    inputs = keras.Input((8, 8, 3))
    functional = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    sequential = keras.Sequential([keras.Input((8, 8, 3)),
                                   keras.layers.Conv2D(2, 3, name="c")])
    nested = keras.Sequential([sequential])
    x = np.zeros((2, 8, 8, 3), "float32")
    cases = [
        (functional, f"Functional '{functional.name}'", "rank 4"),
        (sequential, f"Sequential '{sequential.name}'", "rank >= 4"),
        (nested, f"Sequential '{nested.name}'", "rank >= 4"),
    ]
    for model, name, text in cases:
        pattern = rank_error(1, 8, x.shape, (8, 3), 2, name, text, 5,
                             "(batch, time, ...)")
        with pytest.raises(ValueError, match=pattern):
            FrameFold(model)(x)
        assert FrameFold(model)(x[:, None]).shape == (2, 1, 6, 6, 2)


def test_frame_rank_allows_the_last_axis_squeeze_models_allow():
    inputs = keras.Input((8, 8))
    squeezed = keras.Model(inputs, keras.layers.Flatten()(inputs))
    assert FrameFold(squeezed)(np.zeros((2, 3, 8, 8, 1))).shape == (2, 3, 64)
    inputs = keras.Input((8, 8, 1))
    unsqueezed = keras.Model(inputs, keras.layers.Flatten()(inputs))
    assert FrameFold(unsqueezed)(np.zeros((2, 3, 8, 8))).shape == (2, 3, 64)
    for model, x in [(squeezed, np.zeros((2, 3, 8, 8, 2))),
                     (unsqueezed, np.zeros((2, 3, 8))),
                     (squeezed, np.zeros((2, 3, 8)))]:
        with pytest.raises(ValueError, match="read axis 1"):
            FrameFold(model)(x.astype("float32"))


def test_frame_rank_checks_follow_keras_for_odd_specs():
    strict = RankRange()
    strict.input_spec = keras.InputSpec(ndim=3)
    with pytest.raises(ValueError, match="expects inputs of rank 3,"):
        FrameFold(strict)(np.zeros((2, 3, 4, 5, 1), "float32"))
    # With allow_last_axis_squeeze but no shape, Keras checks no rank.
    loose = RankRange()
    loose.input_spec = keras.InputSpec(ndim=3, allow_last_axis_squeeze=True)
    x = np.zeros((2, 3, 4, 5, 6), "float32")
    assert FrameFold(loose)(x).shape == x.shape
    # Several inputs: not a frame rank to check (Keras checks the inputs).
    many = RankRange()
    many.input_spec = [keras.InputSpec(ndim=9), keras.InputSpec(ndim=9)]
    layer = FrameFold(many)
    layer.build((2, 3, 4))
    assert layer.built
    plain = RankRange()
    plain.input_spec = None
    assert FrameFold(plain)(np.zeros((2, 3, 4), "float32")).shape == (2, 3, 4)


# Equality with TimeDistributed, chunking, layouts ---------------------------


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


@pytest.mark.tensorflow
@pytest.mark.parametrize("chunk", [None, 2])
def test_tf_function_with_unknown_sizes(chunk):
    layer = FrameFold(keras.layers.Conv2D(4, 3), frame_chunk=chunk)
    fn = tf.function(
        layer, input_signature=[tf.TensorSpec((None, None, 32, 32, 3))]
    )
    for shape in [(1, 3, 32, 32, 3), (2, 5, 32, 32, 3)]:
        x = clips(shape)
        np.testing.assert_allclose(fn(x), layer(x), atol=1e-6)


@pytest.mark.parametrize("shape", [(4,), (2, 5)])
def test_low_rank_input_raises(shape):
    message = re.escape(
        f"FrameFold expects input of rank >= 3, (batch, time, ...) with "
        f"time_axis=1; received input shape {shape} (rank {len(shape)}). "
        "Add a time axis, e.g. `x[:, None]` for single frames."
    )
    with pytest.raises(ValueError, match=message):
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


@pytest.mark.parametrize("value", [None, 1, 3])
def test_validate_frame_chunk_accepts(value):
    assert validate_frame_chunk(value, "Owner") == value


@pytest.mark.parametrize("value", [0, -1, True, False, 2.0, "2"])
def test_validate_frame_chunk_rejects(value):
    message = re.escape(
        "Owner expects `frame_chunk` to be None or a positive integer, "
        f"received: frame_chunk={value!r}"
    )
    with pytest.raises(ValueError, match=message):
        validate_frame_chunk(value, "Owner")


def test_not_a_layer_raises():
    def not_a_layer(x):
        return x

    message = re.escape(
        "FrameFold expects a `keras.layers.Layer` or `keras.Model` to wrap, "
        f"received: layer={not_a_layer!r}"
    )
    with pytest.raises(ValueError, match=message):
        FrameFold(not_a_layer)


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
    config = layer.get_config()
    assert config["time_axis"] == -1 and config["frame_chunk"] == 4
    clone = FrameFold.from_config(config)
    assert clone.time_axis == -1 and clone.frame_chunk == 4
    assert isinstance(clone.layer, keras.layers.Conv2D)
    assert clone.layer.filters == 3


def test_build_builds_the_wrapped_layer_once_on_folded_frames():
    conv = keras.layers.Conv2D(2, 3)
    layer = FrameFold(conv, frame_chunk=2)
    layer.build((3, 5, 8, 8, 1))
    assert layer.built and conv.built
    assert conv.kernel.shape == (3, 3, 1, 2)
    kernel = conv.kernel
    FrameFold(conv).build((1, 1, 8, 8, 1))
    assert conv.kernel is kernel


def test_fit_one_step():
    inputs = keras.Input((None, 32, 32, 3))
    x = FrameFold(small_cnn())(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    history = model.fit(clips((4, 3, 32, 32, 3)), np.array([0, 1, 0, 1]),
                        epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# Details a user sees: exact messages, graphs, calls --------------------------


def test_mask_error_messages_in_full():
    layer = FrameFold(keras.layers.Dense(2))
    x = keras.KerasTensor((4, 5, 3))
    with pytest.raises(ValueError) as info:
        layer.compute_output_spec(x, mask=keras.KerasTensor((4, 6)))
    assert str(info.value) == (
        "FrameFold received a mask of shape (4, 6) that does not fit its "
        "input of shape (4, 5, 3): with time_axis=1 the mask must be "
        "(batch, time) = (4, 5), or (batch, time, ...)."
    )
    with pytest.raises(ValueError) as info:
        layer.compute_output_spec(x, mask=keras.KerasTensor((4,)))
    assert str(info.value) == (
        "FrameFold received a mask of shape (4,) that does not fit its "
        "input of shape (4, 5, 3): with time_axis=1 the mask must be "
        "(batch, time) = (4, 5), or (batch, time, ...). Inside another "
        "FrameFold or TimeDistributed, this layer receives the outer mask "
        "folded: give the outer layer a mask of shape (batch, time, "
        "inner_time)."
    )
    spec = layer.compute_output_spec(x, mask=keras.KerasTensor((4, 5, 2)))
    assert spec.shape == (4, 5, 2)


def test_rank_error_message_in_full():
    layer = FrameFold(keras.layers.Conv2D(2, 3, name="conv"), time_axis=-1)
    with pytest.raises(ValueError) as info:
        layer.compute_output_shape((2, 8, 8, 3))
    assert str(info.value) == (
        "FrameFold read axis -1 (size 3) of its input of shape (2, 8, 8, 3) "
        "as time, leaving frames of shape (8, 8) (rank 2 + batch); Conv2D "
        "'conv' expects inputs of rank >= 4, batch included. Pass clips of "
        "rank 5, (batch, ..., time) with time_axis=-1; for single frames, "
        "add a time axis."
    )


@pytest.mark.parametrize(
    "spec, shape",
    [
        (keras.InputSpec(max_ndim=2), (2, 3, 4)),
        (keras.InputSpec(min_ndim=2, max_ndim=3), (2, 3, 4, 5)),
        (keras.InputSpec(min_ndim=3), (2, 3, 4, 5)),
        (keras.InputSpec(ndim=3), (2, 3, 4, 5)),
    ],
)
def test_frame_rank_at_the_bounds_of_the_spec_passes(spec, shape):
    layer = RankRange()
    layer.input_spec = spec
    assert FrameFold(layer)(np.zeros(shape, "float32")).shape == shape


def test_fold_operations_read_sizes_and_keep_dtypes():
    from keras_vgg4d.frame_fold import _FoldTime
    from keras_vgg4d.frame_fold import _UnfoldTime

    for shape, folded in [((4, 2, 3), (8, 3)), ((None, 2, 3), (None, 3)),
                          ((4, None, 3), (None, 3))]:
        spec = _FoldTime()(keras.KerasTensor(shape, dtype="int32"))
        assert spec.shape == folded and spec.dtype == "int32"
    spec = _UnfoldTime()(
        keras.KerasTensor((8, 3), dtype="int8"), keras.KerasTensor((4, 2, 5))
    )
    assert spec.shape == (4, 2, 3) and spec.dtype == "int8"
    x = np.arange(24).reshape((4, 2, 3))
    np.testing.assert_array_equal(_FoldTime()(x), x.reshape((8, 3)))
    np.testing.assert_array_equal(
        _UnfoldTime()(x.reshape((8, 3)), np.zeros((4, 2, 5))), x
    )


def test_symbolic_output_mask_has_the_unfolded_shape():
    layer = FrameFold(keras.layers.Embedding(10, 4, mask_zero=True))
    tokens = keras.Input((2, 3), batch_size=4, dtype="int32")
    mask = layer(tokens)._keras_mask
    assert mask.shape == (4, 2, 3) and mask.dtype == "bool"
    time_mask = keras.Input((2,), batch_size=4, dtype="bool")
    mask = layer(tokens, mask=time_mask)._keras_mask
    assert mask.shape == (4, 2, 3) and mask.dtype == "bool"


def test_default_compute_mask_passes_the_mask_through_untouched():
    layer = FrameFold(keras.layers.Dense(2))
    mask = tf.constant([[1.0, 0.0]])
    assert layer.compute_mask(np.zeros((1, 2, 3), "float32"), mask) is mask


def test_output_dtype_follows_the_wrapped_layer_on_integer_input():
    layer = FrameFold(keras.layers.Identity())
    assert layer(keras.Input((3, 4), dtype="int32")).dtype == "int32"
    eager = layer(np.ones((2, 3, 4), "int32"))
    assert keras.backend.standardize_dtype(eager.dtype) == "int32"


def traced(layer, x_shape, mask_shape):
    return tf.function(lambda x, mask: layer(x, mask=mask)).get_concrete_function(
        tf.TensorSpec(x_shape), tf.TensorSpec(mask_shape, tf.bool)
    )


@pytest.mark.tensorflow
@pytest.mark.parametrize(
    "x_shape, mask_shape, checked",
    [
        ((4, 5, 3), (4, 5), False),
        ((4, 5, None), (4, 5), False),
        ((4, 5, 3), (4, 5, None), False),
        ((None, 5, 3), (None, 5), True),
        ((4, None, 3), (4, None, 2), True),
        ((4, 5, 3), (4, None), True),
    ],
)
def test_run_time_mask_check_only_where_sizes_are_unknown(
    x_shape, mask_shape, checked
):
    function = traced(FrameFold(keras.layers.Identity()), x_shape, mask_shape)
    names = [op.name for op in function.graph.get_operations()]
    check = re.compile(r"/frame_fold_mask_check(_\d+)?/Assert/Assert$")
    assert any(check.search(name) for name in names) == checked
    # A fitting mask passes the check, whatever its rank.
    x = np.ones([4 if d is None else d for d in x_shape], "float32")
    mask = np.ones([2 if d is None and i > 1 else
                    x.shape[i] if d is None else d
                    for i, d in enumerate(mask_shape)], bool)
    np.testing.assert_array_equal(function(x, mask), x)


@pytest.mark.tensorflow
@pytest.mark.parametrize("chunk", [None, 2])
def test_run_time_mask_check_comes_before_the_wrapped_layer(chunk):
    # MaskedScale would fail on its own with a mask that does not fit; the
    # user must see FrameFold's message, not that one.
    layer = FrameFold(MaskedScale(), frame_chunk=chunk)
    function = traced(layer, (None, None, 3), (None, None))
    for _ in range(5):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match="FrameFold received a mask"):
            function(np.ones((4, 5, 3), "float32"), np.ones((4, 6), bool))


@pytest.mark.parametrize("chunk", [None, 2])
def test_call_passes_training_without_an_enclosing_call(chunk):
    # E.g. a layer that calls `fold.call(x, training=training)` itself, as
    # TimeDistributed does with the layer it wraps.
    layer = FrameFold(keras.layers.Dropout(0.5, seed=1), frame_chunk=chunk)
    x = tf.ones((2, 3, 8, 8, 1))
    layer.build(x.shape)
    assert np.any(np.asarray(layer.call(x, training=True)) == 0)
    np.testing.assert_array_equal(layer.call(x, training=False), x)


class Recorder(keras.layers.Layer):
    """Records the shape of every batch of frames it is called on."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def call(self, x):
        self.seen.append(tuple(x.shape))
        return x


@pytest.mark.tensorflow
@pytest.mark.parametrize(
    "time, chunk, calls",
    [(5, None, 1), (5, 1, 5), (5, 2, 3), (4, 2, 2), (5, 5, 1), (5, 7, 1)],
)
def test_frame_chunk_calls_the_wrapped_layer_once_per_chunk(time, chunk, calls):
    recorder = Recorder()
    x = np.random.default_rng(0).random((3, time, 2), dtype="float32")
    y = FrameFold(recorder, frame_chunk=chunk)(x)
    np.testing.assert_array_equal(y, x)
    frames = 3 * (time if chunk is None else chunk)
    assert recorder.seen == [(frames, 2)] * calls


@pytest.mark.tensorflow
@pytest.mark.parametrize("chunk", [None, 2])
def test_static_output_shape_in_a_graph(chunk):
    layer = FrameFold(keras.layers.Conv2D(4, 3), frame_chunk=chunk)
    function = tf.function(layer).get_concrete_function(
        tf.TensorSpec((None, None, 8, 8, 3))
    )
    assert function.structured_outputs.shape.as_list() == [
        None, None, 6, 6, 4]


@pytest.mark.tensorflow
def test_chunks_run_one_after_another_in_a_graph():
    layer = FrameFold(keras.layers.Conv2D(4, 3), frame_chunk=2)
    function = tf.function(layer).get_concrete_function(
        tf.TensorSpec((None, None, 8, 8, 3))
    )
    loops = [op for op in function.graph.get_operations()
             if op.type in ("While", "StatelessWhile")]
    assert len(loops) == 1
    assert loops[0].get_attr("parallel_iterations") == 1


def test_frame_chunk_error_names_frame_fold():
    with pytest.raises(ValueError) as info:
        FrameFold(keras.layers.Dense(2), frame_chunk=0)
    assert str(info.value) == (
        "FrameFold expects `frame_chunk` to be None or a positive integer, "
        "received: frame_chunk=0"
    )


class BuildRecorder(keras.layers.Layer):
    """Records the input shape it is built on."""

    def build(self, input_shape):
        self.build_shape = tuple(input_shape)

    def call(self, x):
        return x


@pytest.mark.parametrize(
    "shape, chunk, frames",
    [
        ((3, 5, 8), None, (15, 8)),
        ((3, 5, 8), 2, (6, 8)),
        ((3, 5, 8), 7, (15, 8)),
        ((3, None, 8), 2, (6, 8)),
        ((3, None, 8), None, (None, 8)),
        ((None, 5, 8), 2, (None, 8)),
        ((3, 8, 5), None, (15, 8)),
    ],
)
def test_wrapped_layer_is_built_on_the_frames_it_will_get(shape, chunk, frames):
    time_axis = -1 if shape == (3, 8, 5) else 1
    recorder = BuildRecorder()
    FrameFold(recorder, time_axis=time_axis, frame_chunk=chunk).build(shape)
    assert recorder.build_shape == frames


def test_mask_of_a_layer_without_an_output_mask_comes_back_as_given():
    layer = FrameFold(keras.layers.LSTM(2))
    mask = tf.constant([[1.0, 0.0, 1.0]])
    assert layer.compute_mask(np.ones((1, 3, 4, 1), "float32"), mask) is mask


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_training_step_equals_unchunked(chunk):
    """The chunk loop is differentiable on every backend (a `lax.scan` on
    JAX, where a `while` loop is not) and trains as one call does."""
    x = np.random.default_rng(0).random((2, 5, 6, 6, 1), dtype="float32")
    y = np.array([0, 1])

    def trained(frame_chunk):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((5, 6, 6, 1))
        z = FrameFold(keras.layers.Conv2D(3, 3), frame_chunk=frame_chunk)(
            inputs)
        z = keras.layers.GlobalAveragePooling3D()(z)
        model = keras.Model(inputs, keras.layers.Dense(2)(z))
        model.compile(keras.optimizers.SGD(0.5), "mse")
        initial = model.get_weights()
        model.fit(x, keras.utils.to_categorical(y, 2), epochs=2, verbose=0)
        return initial, model.get_weights()

    initial, chunked = trained(chunk)
    _, whole = trained(None)
    for got, want in zip(chunked, whole):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Training moved the convolution's kernel: a gradient reached it
    # through the chunk loop.
    assert np.abs(chunked[0] - initial[0]).max() > 1e-4


def test_chunks_of_layers_with_state_train():
    """`Dropout`'s seed and `BatchNormalization`'s moving statistics change
    inside the chunk loop: `fit` runs on every backend (a `lax.scan` over
    the chunks would leak them out of its body on JAX)."""
    x = np.random.default_rng(0).random((4, 5, 6, 6, 1), dtype="float32")
    inputs = keras.Input((5, 6, 6, 1))
    frame = keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Conv2D(3, 3),
        keras.layers.BatchNormalization(), keras.layers.Dropout(0.5),
    ])
    z = FrameFold(frame, frame_chunk=2)(inputs)
    z = keras.layers.GlobalAveragePooling3D()(z)
    model = keras.Model(inputs, keras.layers.Dense(2)(z))
    model.compile("sgd", "mse")
    history = model.fit(x, np.ones((4, 2)), epochs=2, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    moving_mean = frame.layers[1].moving_mean
    assert np.abs(keras.ops.convert_to_numpy(moving_mean)).max() > 1e-4
