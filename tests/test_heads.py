import re
import warnings

import numpy as np
import pytest
import keras
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from keras import ops
from keras.src import testing

from keras_vgg4d.heads import HEADS
from keras_vgg4d.heads import Conv3DHead
from keras_vgg4d.heads import FramewiseHead
from keras_vgg4d.heads import LSTMHead
from keras_vgg4d.heads import TemporalHead
from keras_vgg4d.heads import get_head
from keras_vgg4d.heads import head_options
from keras_vgg4d.heads import run_recurrent
from backend_testing import value_and_weight_gradients

pytestmark = pytest.mark.backends

# (class, arguments, trainable weights): the feature normalization adds
# gamma and beta (trainable) and the moving mean and variance.
HEAD_CASES = [
    (FramewiseHead, {"num_classes": 3}, 4),
    (FramewiseHead, {"num_classes": 3, "units": 8, "pooling": "max"}, 6),
    (FramewiseHead, {"num_classes": 3, "normalize": False}, 2),
    # (2+1)D: two convolutions a layer.
    (Conv3DHead, {"num_classes": 3, "filters": 4}, 8),
    (Conv3DHead, {"num_classes": 3, "filters": 4, "num_layers": 2,
                  "pooling": "max"}, 12),
    (Conv3DHead, {"num_classes": 3, "filters": 4, "factorized": False}, 6),
    (LSTMHead, {"num_classes": 3, "units": 4}, 7),
    (LSTMHead, {"num_classes": 3, "units": 4, "bidirectional": True,
                "num_layers": 2}, 2 + 2 * 3 * 2 + 2),
]


class HeadLayerTest(testing.TestCase):
    def test_layer_harness(self):
        for head_class, kwargs, num_weights in HEAD_CASES:
            with self.subTest(head=head_class.__name__, **kwargs):
                self.run_layer_test(
                    head_class,
                    init_kwargs=kwargs,
                    input_shape=(2, 4, 2, 2, 8),
                    expected_output_shape=(2, 3),
                    expected_output_dtype="float32",
                    expected_num_trainable_weights=num_weights,
                    expected_num_non_trainable_weights=(
                        2 if kwargs.get("normalize", True) else 0
                    ),
                )


def features(shape=(3, 6, 2, 2, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("name", sorted(HEADS))
def test_padded_and_masked_equals_cropped(name):
    head = get_head(name, 3)
    x = features()
    lengths = [6, 4, 2]
    mask = np.arange(6)[None, :] < np.array(lengths)[:, None]
    padded = np.where(mask[:, :, None, None, None], x, 77.0).astype("float32")
    out = np.asarray(head(padded, mask=mask))
    for i, n in enumerate(lengths):
        cropped = np.asarray(head(x[i : i + 1, :n]))
        np.testing.assert_allclose(out[i], cropped[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_other_clip_length_than_built(name):
    inputs = keras.Input((4, 2, 2, 8))
    head = get_head(name, 2)
    keras.Model(inputs, head(inputs))
    for frames in (1, 9):
        y = np.asarray(head(features((2, frames, 2, 2, 8))))
        assert y.shape == (2, 2)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_framewise_is_order_blind_and_others_are_not():
    x = features((2, 5, 1, 1, 8))
    reversed_x = x[:, ::-1]
    framewise = get_head("framewise", 2)
    np.testing.assert_allclose(
        framewise(x), framewise(reversed_x), rtol=1e-5, atol=1e-6
    )
    for name in ("conv3d", "lstm"):
        head = get_head(name, 2)
        assert not np.allclose(head(x), head(reversed_x), atol=1e-6), name


@pytest.mark.parametrize("name", sorted(HEADS))
def test_mixed_bfloat16_gives_float32_probabilities(name):
    keras.config.set_dtype_policy("mixed_bfloat16")
    head = get_head(name, 4)
    y = head(features())
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    assert all(w.dtype == "float32" for w in head.weights)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_config_round_trip(name):
    options = {"framewise": {"units": 5}, "conv3d": {"filters": 6},
               "lstm": {"units": 7, "bidirectional": True}}[name]
    head = get_head(name, 3, dropout=0.25, **options)
    clone = head.__class__.from_config(head.get_config())
    assert clone.get_config() == head.get_config()
    assert clone.dropout == 0.25


# The defaults benchmarks/bench_real_images.py measured (benchmarks/RESULTS.md,
# "Heads on real images"): change one only with a new measurement.
HEAD_DEFAULTS = {
    "framewise": {"units": 0, "pooling": "avg", "dropout": 0.0,
                  "normalize": True},
    # "auto" is 3 except on 1x1 maps, where a 3x3 kernel's border reads
    # only padding (test_temporal_kernels_on_1x1_maps_lose_nothing).
    "conv3d": {"filters": 64, "temporal_kernel": 3, "spatial_kernel": "auto",
               "num_layers": 1, "pooling": "avg", "dropout": 0.0,
               "normalize": True, "factorized": True},
    "lstm": {"units": 64, "num_layers": 1, "bidirectional": False,
             "pooling": "avg", "dropout": 0.0, "normalize": True},
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_defaults_are_the_measured_ones(name):
    config = get_head(name, 3).get_config()
    options = {option: config[option] for option in head_options(name)}
    assert options == HEAD_DEFAULTS[name]


def test_unknown_head_lists_valid_names():
    with pytest.raises(ValueError, match=r"'gru'.*conv3d.*framewise.*lstm"):
        get_head("gru", 2)


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match=r"\['filters'\].*'lstm'.*units"):
        get_head("lstm", 2, filters=8)
    assert "temporal_kernel" in head_options("conv3d")


@pytest.mark.parametrize(
    "head_class, kwargs, match",
    [
        (FramewiseHead, {"num_classes": 1}, "num_classes"),
        (FramewiseHead, {"num_classes": 2, "pooling": "sum"}, "pooling"),
        (Conv3DHead, {"num_classes": 2, "temporal_kernel": 0},
         "temporal_kernel"),
        (LSTMHead, {"num_classes": 2, "units": -3}, "units"),
        (LSTMHead, {"num_classes": 2, "dropout": 1.5}, "dropout"),
    ],
)
def test_bad_arguments(head_class, kwargs, match):
    with pytest.raises(ValueError, match=match):
        head_class(**kwargs)


def test_feature_maps_of_wrong_rank_raise():
    with pytest.raises(ValueError, match=r"\(batch, time, h, w, channels\)"):
        get_head("lstm", 2)(np.zeros((2, 5, 8), "float32"))


# --- The LSTM head's computation: Keras' masked LSTM, in exportable ops ---

LSTM_CASES = [(b, n) for b in (False, True) for n in (1, 2)]


def keras_lstm_stack(head, x, mask):
    """What LSTMHead computed before: Keras' own masked LSTM layers."""
    for layer in head.recurrent:
        x = layer(x, mask=mask)
    return x


def built_lstm_head(bidirectional, num_layers, channels, seed):
    """An LSTMHead with random weights of an order that moves its states."""
    head = LSTMHead(3, units=5, num_layers=num_layers,
                    bidirectional=bidirectional)
    head.build((None, None, 1, 1, channels))
    rng = np.random.default_rng(seed)
    for weight in head.trainable_weights:
        weight.assign(rng.normal(0, 0.7, weight.shape).astype("float32"))
    return head


@st.composite
def recurrent_cases(draw):
    bidirectional, num_layers = draw(st.sampled_from(LSTM_CASES))
    batch = draw(st.integers(1, 3))
    time = draw(st.integers(1, 5))
    masked = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 2.0, (batch, time, 6)).astype("float32")
    # Any pattern: padding at the end, holes, clips with no real frame.
    mask = rng.uniform(size=(batch, time)) < 0.6 if masked else None
    return bidirectional, num_layers, x, mask, seed


@settings(max_examples=30, deadline=None)
@given(recurrent_cases())
def test_lstm_head_recurrence_equals_keras_masked_lstm(case):
    bidirectional, num_layers, x, mask, seed = case
    head = built_lstm_head(bidirectional, num_layers, x.shape[-1], seed)
    expected = keras_lstm_stack(head, x, mask)
    got = x
    for layer in head.recurrent:
        got = run_recurrent(layer, got, mask)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bidirectional, num_layers", LSTM_CASES)
def test_lstm_head_outputs_and_gradients_equal_keras_lstm(
    bidirectional, num_layers
):
    """The whole head, and what training it changes, as with Keras' LSTM."""
    head = built_lstm_head(bidirectional, num_layers, 6, seed=3)
    x = features((3, 5, 1, 1, 6), seed=4)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 1, 1, 0]], bool)
    pooled = head.normalize_features(x[:, :, 0, 0], mask, training=False)
    direction = np.random.default_rng(5).normal(size=(3, 3))
    weights = [w for layer in head.recurrent for w in layer.weights]
    weights += head.classifier.weights

    def loss_and_grads(compute):
        # The masked LSTM's loop on this backend (a `while` loop on
        # TensorFlow, `lax.scan` on JAX) differentiated as Keras' LSTM is.
        def loss_and_output():
            out = head.softmax(head.classifier(compute()))
            return ops.sum(out * ops.convert_to_tensor(direction, out.dtype)), out

        return value_and_weight_gradients(loss_and_output, weights)

    def ours():
        y = pooled
        for layer in head.recurrent:
            y = run_recurrent(layer, y, mask)
        return y

    out, grads = loss_and_grads(ours)
    ref_out, ref_grads = loss_and_grads(
        lambda: keras_lstm_stack(head, pooled, mask)
    )
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(head(x, mask=mask), ref_out, atol=1e-6)
    for got, want, weight in zip(grads, ref_grads, weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5,
                                   err_msg=weight.path)


def test_lstm_head_keeps_the_variables_saved_models_hold():
    """`.keras` files saved before the head computed its own recurrence
    hold these variables, at these paths; they must load unchanged."""
    head = LSTMHead(3, units=4, num_layers=2, bidirectional=True,
                    name="lstm_head")
    head.build((None, None, 1, 1, 8))
    cells = [
        f"lstm_head/bidirectional_{i}/{side}_lstm_{i}/lstm_cell/{name}"
        for i in (1, 2)
        for side in ("forward", "backward")
        for name in ("kernel", "recurrent_kernel", "bias")
    ]
    assert [w.path for w in head.weights] == [
        "lstm_head/feature_norm/gamma",
        "lstm_head/feature_norm/beta",
        "lstm_head/feature_norm/moving_mean",
        "lstm_head/feature_norm/moving_variance",
        "lstm_head/classifier/kernel",
        "lstm_head/classifier/bias",
        *cells,
    ]


# --- Arguments: each refused value is named with its head, and each
# smallest allowed value works ---

BAD_ARGUMENTS = [
    (FramewiseHead, "num_classes", 1, "an integer >= 2"),
    (FramewiseHead, "dropout", 1.0, "in [0, 1)"),
    (FramewiseHead, "normalize", "yes", "True or False"),
    (FramewiseHead, "units", -1, "an integer >= 0"),
    (FramewiseHead, "pooling", "sum", "one of ['avg', 'max']"),
    (Conv3DHead, "num_classes", 1, "an integer >= 2"),
    (Conv3DHead, "dropout", -0.5, "in [0, 1)"),
    (Conv3DHead, "normalize", 1, "True or False"),
    (Conv3DHead, "filters", 0, "an integer >= 1"),
    (Conv3DHead, "temporal_kernel", 0, "an integer >= 1"),
    (Conv3DHead, "spatial_kernel", 0, "an integer >= 1"),
    (Conv3DHead, "num_layers", 0, "an integer >= 1"),
    (Conv3DHead, "pooling", "sum", "one of ['avg', 'max']"),
    (LSTMHead, "num_classes", 1, "an integer >= 2"),
    (LSTMHead, "dropout", 1.5, "in [0, 1)"),
    (LSTMHead, "normalize", None, "True or False"),
    (LSTMHead, "units", 0, "an integer >= 1"),
    (LSTMHead, "num_layers", 0, "an integer >= 1"),
    (LSTMHead, "bidirectional", 1, "True or False"),
    (LSTMHead, "pooling", "sum", "one of ['avg', 'max']"),
]


@pytest.mark.parametrize(
    "head_class, argument, value, expected",
    BAD_ARGUMENTS,
    ids=[f"{c.__name__}-{a}" for c, a, _, _ in BAD_ARGUMENTS],
)
def test_a_bad_argument_is_named_with_its_head(head_class, argument, value,
                                               expected):
    kwargs = {"num_classes": 2, argument: value}
    verb = "" if expected.startswith("in ") else "to be "
    message = (f"{head_class.__name__} expects `{argument}` {verb}{expected}, "
               f"received: {argument}={value!r}")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        head_class(**kwargs)


SMALLEST_ARGUMENTS = {
    "framewise": {"units": 0, "dropout": 0.0},
    "conv3d": {"filters": 1, "temporal_kernel": 1, "spatial_kernel": 1,
               "num_layers": 1, "dropout": 0.0},
    "lstm": {"units": 1, "num_layers": 1, "dropout": 0.0},
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_the_smallest_allowed_arguments_make_a_working_head(name):
    head = get_head(name, 2, **SMALLEST_ARGUMENTS[name])
    y = np.asarray(head(features((2, 3, 2, 2, 8))))
    assert y.shape == (2, 2)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    config = head.get_config()
    assert {k: config[k] for k in SMALLEST_ARGUMENTS[name]} == (
        SMALLEST_ARGUMENTS[name])


def test_a_conv3d_head_of_one_frame_kernels_is_order_blind():
    """`temporal_kernel=1` convolves each frame alone: like the frame-wise
    head, it cannot tell the order of frames."""
    head = Conv3DHead(2, filters=4, temporal_kernel=1)
    x = features((2, 5, 2, 2, 8))
    np.testing.assert_allclose(head(x), head(x[:, ::-1]), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_normalize_false_reaches_every_head(name):
    """Only a normalized head holds (and saves) normalization weights."""
    plain = get_head(name, 3, normalize=False)
    normalized = get_head(name, 3)
    for head in (plain, normalized):
        head.build((None, None, 2, 2, 8))
    assert plain.get_config()["normalize"] is False
    assert not [w for w in plain.weights if "feature_norm" in w.path]
    assert [w.path.split("/")[-1] for w in normalized.weights
            if "feature_norm" in w.path] == [
        "gamma", "beta", "moving_mean", "moving_variance"]


@pytest.mark.parametrize("name, options", [
    ("framewise", {}), ("framewise", {"pooling": "max", "units": 4}),
    ("conv3d", {"filters": 4}), ("conv3d", {"filters": 4, "pooling": "max"}),
    ("lstm", {"units": 4}),
])
def test_training_standardizes_each_channel_over_the_batch(name, options):
    """In training a normalized head standardizes each feature channel by
    the batch's own statistics (of its real frames): a positive scale and
    an offset per channel do not change its output. In inference it uses
    its moving statistics, so they do."""
    x = features((3, 4, 2, 2, 8)) * 10.0
    scale = np.linspace(0.5, 3.0, 8).astype("float32")
    offset = np.linspace(-40.0, 60.0, 8).astype("float32")
    moved = x * scale + offset
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]], bool)
    # Padded frames hold other values in each input: left out of the
    # statistics, they change nothing.
    moved[~mask] = 1000.0
    head = get_head(name, 3, **options)
    np.testing.assert_allclose(
        head(x, mask=mask, training=True),
        head(moved, mask=mask, training=True), rtol=1e-3, atol=1e-4)
    assert not np.allclose(head(x, mask=mask, training=False),
                           head(moved, mask=mask, training=False), atol=1e-3)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_dropout_acts_in_training_only(name):
    head = get_head(name, 3, dropout=0.5, normalize=False)
    x = features((4, 3, 2, 2, 8))
    inference = np.asarray(head(x, training=False))
    np.testing.assert_allclose(head(x), inference)
    assert not np.allclose(head(x, training=True), inference, atol=1e-4)
    no_dropout = get_head(name, 3, normalize=False)
    no_dropout.build(x.shape)
    no_dropout.set_weights(head.get_weights())
    np.testing.assert_allclose(no_dropout(x, training=True), inference,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_a_mask_passed_to_a_head_raises_no_warning(name):
    """The heads take a frame mask: Keras warns about a mask given to a
    layer that does not support masking, and must not here."""
    head = get_head(name, 3)
    x = features((2, 3, 2, 2, 8))
    mask = np.array([[1, 1, 0], [1, 1, 1]], bool)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        head(x, mask=mask)
        inputs = keras.Input((3, 2, 2, 8))
        mask_input = keras.Input((3,), dtype="bool")
        keras.Model([inputs, mask_input], head(inputs, mask=mask_input))
    assert not [w for w in caught if "mask" in str(w.message)], [
        str(w.message) for w in caught]


@pytest.mark.parametrize("name", sorted(HEADS))
def test_any_frame_size_and_length_but_known_channels(name):
    """Feature maps of unknown time, height and width build a head (frames
    of any size); unknown channels are refused, named."""
    inputs = keras.Input((None, None, None, 8))
    head = get_head(name, 2)
    model = keras.Model(inputs, head(inputs))
    for shape in ((1, 2, 1, 1, 8), (2, 5, 3, 2, 8)):
        y = np.asarray(model(features(shape)))
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    message = (f"{HEADS[name].__name__} expects feature maps (batch, time, h, "
               "w, channels) with known channels, received input shape "
               "(None, 4, 2, 2, None)")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        get_head(name, 2)(keras.Input((4, 2, 2, None)))


@pytest.mark.parametrize("pooling, reduce", [("avg", np.mean), ("max", np.max)])
def test_conv3d_head_pools_over_time_and_space_as_named(pooling, reduce):
    """The classifier reads the convolved maps pooled over time, height and
    width: averaged or maximum, as `pooling` says."""
    head = Conv3DHead(3, filters=4, pooling=pooling, normalize=False,
                      factorized=False)
    x = features((2, 3, 2, 2, 8))
    y = np.asarray(head(x))
    maps = np.asarray(head.convs[0](x))
    pooled = reduce(maps, axis=(1, 2, 3))
    expected = np.asarray(head.softmax(head.classifier(pooled)))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


class LastFrameHead(TemporalHead):
    """A head of one's own, with the base class' defaults."""

    def build(self, input_shape):
        self.build_normalization((input_shape[0], input_shape[-1]))
        self.classifier.build((input_shape[0], input_shape[-1]))

    def call(self, inputs, mask=None, training=None):
        x = ops.mean(inputs[:, -1], axis=(1, 2))
        x = self.normalize_features(x[:, None], training=training)[:, 0]
        x = self.dropout_layer(x, training=training)
        return self.softmax(self.classifier(x))


def test_a_head_of_ones_own_gets_the_base_defaults():
    """`TemporalHead` subclasses that pass only `num_classes` normalize
    their features and do not drop out."""
    config = LastFrameHead(3).get_config()
    assert (config["dropout"], config["normalize"]) == (0.0, True)
    head = LastFrameHead(3, normalize=False)
    x = features((2, 3, 2, 2, 8))
    np.testing.assert_allclose(head(x, training=True),
                               head(x, training=False), rtol=1e-6)


# Conv3DHead on small feature maps: the kernel follows the map's size, and
# (2+1)D factorization.


@pytest.mark.parametrize(
    "options, map_size, expected",
    [
        ({"factorized": False}, (1, 1), [(3, 1, 1)]),
        ({"factorized": False}, (3, 3), [(3, 3, 3)]),
        ({"factorized": False}, (None, None), [(3, 3, 3)]),
        ({"factorized": False, "spatial_kernel": 3}, (1, 1), [(3, 3, 3)]),
        ({"factorized": False, "temporal_kernel": 2, "num_layers": 2},
         (1, 1), [(2, 1, 1)] * 2),
        ({}, (1, 1), [(1, 1, 1), (3, 1, 1)]),
        ({"num_layers": 2}, (7, 7), [(1, 3, 3), (3, 1, 1)] * 2),
    ],
)
def test_conv3d_kernel_sizes_follow_the_map(options, map_size, expected):
    head = Conv3DHead(2, filters=4, **options)
    assert head.kernel_sizes(map_size) == expected
    if None not in map_size:
        head.build((None, 3, *map_size, 8))
        assert [tuple(c.kernel.shape[:3]) for c in head.convs] == expected


def test_temporal_kernels_on_1x1_maps_lose_nothing():
    """On 1x1 maps only a 3x3 kernel's centre reads a pixel, the rest reads
    padding: the "auto" head with that centre as its kernel answers the same."""
    x = np.random.default_rng(0).normal(size=(2, 4, 1, 1, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    full = Conv3DHead(3, filters=4, spatial_kernel=3, factorized=False)
    auto = Conv3DHead(3, filters=4, factorized=False)
    full.build(x.shape)
    auto.build(x.shape)
    weights = full.get_weights()
    auto.set_weights(
        [w[:, 1:2, 1:2] if w.ndim == 5 else w for w in weights]
    )
    np.testing.assert_allclose(
        np.asarray(auto(x, mask=mask)), np.asarray(full(x, mask=mask)),
        rtol=1e-5, atol=1e-6,
    )


def test_factorized_conv3d_is_spatial_then_temporal():
    x = np.random.default_rng(1).normal(size=(2, 4, 2, 2, 8)).astype("float32")
    head = Conv3DHead(3, filters=4, factorized=True, normalize=False,
                      spatial_kernel=1)
    y = np.asarray(head(x))
    spatial, temporal = head.convs
    assert (spatial.name, temporal.name) == (
        "conv3d_1_spatial", "conv3d_1_temporal")
    pooled = np.mean(np.asarray(temporal(spatial(x))), axis=(1, 2, 3))
    expected = np.asarray(head.softmax(head.classifier(pooled)))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    # The temporal convolution makes the answer depend on the frame order.
    reversed_y = np.asarray(head(x[:, ::-1]))
    assert not np.allclose(y, reversed_y, atol=1e-4)


@pytest.mark.parametrize("options", [{"factorized": False}, {}])
def test_conv3d_config_round_trip_keeps_the_answers(options):
    x = np.random.default_rng(2).normal(size=(2, 3, 1, 1, 8)).astype("float32")
    head = Conv3DHead(2, filters=4, **options)
    y = np.asarray(head(x))
    clone = Conv3DHead.from_config(head.get_config())
    clone.build(x.shape)
    clone.set_weights(head.get_weights())
    assert clone.get_config() == head.get_config()
    np.testing.assert_allclose(np.asarray(clone(x)), y, rtol=1e-6)


@pytest.mark.parametrize(
    "value", ["same", 0, 2.5, None])
def test_bad_spatial_kernel_is_named(value):
    with pytest.raises(ValueError, match="spatial_kernel"):
        Conv3DHead(2, spatial_kernel=value)


def test_a_head_saved_before_factorized_loads_unfactorized():
    config = Conv3DHead(2, filters=4, factorized=False).get_config()
    del config["factorized"]
    head = Conv3DHead.from_config(config)
    assert not head.factorized
    head.build((None, 3, 1, 1, 8))
    assert [c.name for c in head.convs] == ["conv3d_1"]


def test_bad_factorized_is_named():
    with pytest.raises(ValueError, match="factorized"):
        Conv3DHead(2, factorized="yes")
