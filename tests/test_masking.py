"""`keras_vgg4d.masking` against numpy references and Keras' own LSTM."""

import keras
import numpy as np
import pytest

from keras_vgg4d.masking import masked_lstm
from keras_vgg4d.masking import masked_lstms
from keras_vgg4d.masking import masked_mean_over_time
from keras_vgg4d.masking import nonzero_frames
from keras_vgg4d.masking import spatial_pool

pytestmark = pytest.mark.backends


def rng_normal(shape, seed):
    return np.random.default_rng(seed).normal(0, 1, shape).astype("float32")


# --- nonzero_frames ---


def test_nonzero_frames_marks_frames_with_any_nonzero_value():
    clips = np.zeros((2, 4, 3, 2, 2), "float32")
    clips[0, 0] = 1.0                 # all ones
    clips[0, 2, 2, 1, 1] = -0.5       # one value, in the last position
    clips[1, 1, 0, 0, 0] = 3.0        # one value, in the first position
    clips[1, 3, 1, 0, :] = 1.0
    expected = [[True, False, True, False], [False, True, False, True]]
    np.testing.assert_array_equal(nonzero_frames(clips), expected)


def test_nonzero_frames_on_feature_vectors():
    """Rank 3 `(batch, time, features)`, as cached features are."""
    features = np.zeros((2, 3, 4), "float32")
    features[0, 1, 3] = 2.0
    features[1, :, 0] = 1.0
    features[1, 2] = 0.0
    np.testing.assert_array_equal(
        nonzero_frames(features), [[False, True, False], [True, True, False]]
    )


# --- spatial_pool ---


@pytest.mark.parametrize("pooling, reduce", [("avg", np.mean), ("max", np.max)])
def test_spatial_pool_reduces_height_and_width(pooling, reduce):
    maps = rng_normal((2, 3, 4, 5, 6), seed=0)
    got = spatial_pool(maps, pooling)
    assert tuple(got.shape) == (2, 3, 6)
    np.testing.assert_allclose(got, reduce(maps, axis=(2, 3)), rtol=1e-5,
                               atol=1e-6)


# --- masked_mean_over_time ---


def reference_masked_mean(values, mask):
    weights = mask.astype(values.dtype).reshape(
        mask.shape + (1,) * (values.ndim - 2))
    count = np.maximum(weights.sum(axis=1), 1)
    return (values * weights).sum(axis=1) / count


MASK = np.array([
    [True, True, True, True, True],
    [True, False, True, False, False],    # holes
    [False, False, False, True, False],   # one real frame
    [False, False, False, False, False],  # none: zeros, not NaN
])


@pytest.mark.parametrize("shape", [(4, 5, 3), (4, 5, 2, 3, 6)])
def test_masked_mean_over_time_leaves_out_masked_frames(shape):
    values = rng_normal(shape, seed=1) + 2.0
    got = keras.ops.convert_to_numpy(masked_mean_over_time(values, MASK))
    assert got.shape == (shape[0], *shape[2:])
    np.testing.assert_allclose(got, reference_masked_mean(values, MASK),
                               rtol=1e-5, atol=1e-6)
    # Spelled out: one real frame gives that frame, none gives zeros.
    np.testing.assert_allclose(got[2], values[2, 3], rtol=1e-6)
    np.testing.assert_array_equal(got[3], np.zeros(shape[2:]))
    np.testing.assert_allclose(got[1], (values[1, 0] + values[1, 2]) / 2,
                               rtol=1e-5)


def test_masked_mean_over_time_keeps_the_values_dtype():
    values = (rng_normal((4, 5, 3), seed=3) + 2.0).astype("float16")
    got = masked_mean_over_time(values, MASK)
    assert keras.backend.standardize_dtype(got.dtype) == "float16"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(got).astype("float32"),
        reference_masked_mean(values.astype("float32"), MASK), rtol=2e-3)


def test_masked_mean_over_time_without_mask_is_the_mean():
    values = rng_normal((2, 5, 3), seed=2)
    np.testing.assert_allclose(masked_mean_over_time(values),
                               values.mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(masked_mean_over_time(values, None),
                               values.mean(axis=1), rtol=1e-5, atol=1e-6)


# --- masked_lstm / masked_lstms ---


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_lstm(x, mask, kernel, recurrent, bias=None,
                   go_backwards=False, return_sequences=False):
    """Keras' masked LSTM step by step in numpy (gates i, f, c, o)."""
    batch, time, _ = x.shape
    units = recurrent.shape[0]
    h = np.zeros((batch, units), "float64")
    c = np.zeros((batch, units), "float64")
    outputs = np.zeros((batch, time, units), "float64")
    for t in (reversed(range(time)) if go_backwards else range(time)):
        z = x[:, t] @ kernel + h @ recurrent
        if bias is not None:
            z = z + bias
        z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
        new_c = sigmoid(z_f) * c + sigmoid(z_i) * np.tanh(z_c)
        new_h = sigmoid(z_o) * np.tanh(new_c)
        if mask is not None:
            real = np.asarray(mask[:, t], bool)[:, None]
            new_h = np.where(real, new_h, h)
            new_c = np.where(real, new_c, c)
        h, c = new_h, new_c
        outputs[:, t] = h
    return outputs if return_sequences else h


def lstm_weights(features, units, seed):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(0, 0.7, (features, 4 * units)).astype("float32"),
        rng.normal(0, 0.7, (units, 4 * units)).astype("float32"),
        rng.normal(0, 0.7, (4 * units,)).astype("float32"),
    )


def keras_lstm(x, kernel, recurrent, bias, **kwargs):
    layer = keras.layers.LSTM(recurrent.shape[0], **kwargs)
    layer.build(x.shape)
    layer.set_weights([kernel, recurrent, bias])
    return keras.ops.convert_to_numpy(layer(x))


# batch 3 and units 2 differ, so a mask broadcast the wrong way fails.
LSTM_MASK = np.array([
    [1, 1, 1, 1, 1],
    [1, 1, 1, 0, 0],   # padded at the end
    [0, 1, 0, 1, 0],   # holes, padding at both ends
], bool)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_lstm_without_mask_equals_keras_lstm(go_backwards):
    x = rng_normal((3, 5, 4), seed=3)
    kernel, recurrent, bias = lstm_weights(4, 2, seed=4)
    expected = keras_lstm(x, kernel, recurrent, bias,
                          go_backwards=go_backwards)
    got = masked_lstm(x, None, kernel, recurrent, bias,
                      go_backwards=go_backwards)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_masked_lstm_defaults_read_forward_and_return_the_last_state():
    x = rng_normal((3, 5, 4), seed=5)
    kernel, recurrent, bias = lstm_weights(4, 2, seed=6)
    got = masked_lstm(x, None, kernel, recurrent, bias)
    assert tuple(got.shape) == (3, 2)
    np.testing.assert_allclose(got, keras_lstm(x, kernel, recurrent, bias),
                               rtol=1e-5, atol=1e-6)


def test_masked_lstm_sequences_equal_keras_lstm():
    x = rng_normal((3, 5, 4), seed=7)
    kernel, recurrent, bias = lstm_weights(4, 2, seed=8)
    expected = keras_lstm(x, kernel, recurrent, bias, return_sequences=True)
    got = masked_lstm(x, None, kernel, recurrent, bias, return_sequences=True)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_masked_lstm_carries_the_state_over_masked_steps(
    go_backwards, return_sequences, with_bias
):
    x = rng_normal((3, 5, 4), seed=9)
    kernel, recurrent, bias = lstm_weights(4, 2, seed=10)
    bias = bias if with_bias else None
    got = masked_lstm(x, LSTM_MASK, kernel, recurrent, bias,
                      go_backwards=go_backwards,
                      return_sequences=return_sequences)
    expected = reference_lstm(x, LSTM_MASK, kernel, recurrent, bias,
                              go_backwards, return_sequences)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_masked_lstm_padded_equals_unpadded(return_sequences):
    """Zero padding behind a mask changes nothing, in either direction."""
    kernel, recurrent, bias = lstm_weights(4, 2, seed=11)
    x = rng_normal((1, 3, 4), seed=12)
    padded = np.concatenate([x, np.zeros((1, 2, 4), "float32")], axis=1)
    mask = np.array([[1, 1, 1, 0, 0]], bool)
    for go_backwards in (False, True):
        short = masked_lstm(x, None, kernel, recurrent, bias,
                            go_backwards=go_backwards,
                            return_sequences=return_sequences)
        long = masked_lstm(padded, mask, kernel, recurrent, bias,
                           go_backwards=go_backwards,
                           return_sequences=return_sequences)
        long = keras.ops.convert_to_numpy(long)
        if return_sequences:
            np.testing.assert_allclose(long[:, :3], short, atol=1e-6)
            # At masked steps the output is the carried state.
            carried = short[:, -1] if not go_backwards else np.zeros((1, 2))
            np.testing.assert_allclose(long[:, 3], carried, atol=1e-6)
            np.testing.assert_allclose(long[:, 4], carried, atol=1e-6)
        else:
            np.testing.assert_allclose(long, short, atol=1e-6)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_lstm_of_one_step(go_backwards):
    x = rng_normal((2, 1, 4), seed=13)
    kernel, recurrent, bias = lstm_weights(4, 3, seed=14)
    for mask in (None, np.array([[True], [False]])):
        for return_sequences in (False, True):
            got = masked_lstm(x, mask, kernel, recurrent, bias,
                              go_backwards=go_backwards,
                              return_sequences=return_sequences)
            expected = reference_lstm(x, mask, kernel, recurrent, bias,
                                      go_backwards, return_sequences)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_masked_lstm_takes_a_mask_of_zeros_and_ones():
    x = rng_normal((3, 5, 4), seed=15)
    kernel, recurrent, bias = lstm_weights(4, 2, seed=16)
    for mask in (LSTM_MASK.astype("int32"), LSTM_MASK.astype("float32")):
        got = masked_lstm(x, mask, kernel, recurrent, bias)
        np.testing.assert_allclose(
            got, reference_lstm(x, LSTM_MASK, kernel, recurrent, bias),
            rtol=1e-5, atol=1e-6)


def test_masked_lstm_computes_in_the_inputs_dtype():
    """float32 weights with float16 inputs (as under mixed precision)."""
    x = rng_normal((3, 5, 4), seed=17).astype("float16")
    kernel, recurrent, bias = lstm_weights(4, 2, seed=18)
    for return_sequences in (False, True):
        got = masked_lstm(x, LSTM_MASK, kernel, recurrent, bias,
                          return_sequences=return_sequences)
        assert keras.backend.standardize_dtype(got.dtype) == "float16"
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got).astype("float32"),
            reference_lstm(x.astype("float32"), LSTM_MASK, kernel, recurrent,
                           bias, return_sequences=return_sequences),
            atol=2e-2)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_masked_lstms_equal_each_lstm_on_its_own(return_sequences):
    """Three LSTMs, of different widths and directions, in one loop."""
    x = rng_normal((3, 5, 4), seed=19)
    lstms = [
        (*lstm_weights(4, 2, seed=20), False),
        (*lstm_weights(4, 3, seed=21), True),
        (*lstm_weights(4, 1, seed=22)[:2], None, False),
    ]
    if return_sequences:
        got = masked_lstms(x, LSTM_MASK, lstms, return_sequences=True)
    else:
        got = masked_lstms(x, LSTM_MASK, lstms)  # the default: last states
    assert len(got) == 3
    for output, lstm in zip(got, lstms):
        np.testing.assert_allclose(
            output,
            reference_lstm(x, LSTM_MASK, *lstm, return_sequences),
            rtol=1e-5, atol=1e-6)
