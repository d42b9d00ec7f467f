"""Every declared hyperparameter reaches the built model.

The test walks the search space `VGG4DHyperModel` declares (every head's
space and the shared hyperparameters), builds a model with a value other
than the default for each one, and reads that value back from the built
layers: their sizes, kernel shapes, rates and the optimizer. A
hyperparameter declared without being wired, or one added without a way to
observe it here, fails.
"""

import keras
import keras_tuner
import pytest

from keras_vgg4d.hypermodel import HEAD_SEARCH_SPACES
from keras_vgg4d.hypermodel import VGG4DHyperModel

pytestmark = pytest.mark.backends

CLIP_SHAPE = (3, 32, 32, 3)


def _framewise_units(model):
    hidden = model.head.hidden
    return 0 if hidden is None else hidden.kernel.shape[-1]


def _conv(model, i=0):
    return model.head.convs[i]


def _lstm(model):
    layer = model.head.recurrent[0]
    return layer.forward_layer if hasattr(layer, "forward_layer") else layer


def _head_pooling(model):
    return model.head.pooling


# How to read each hyperparameter off a built classifier.
OBSERVED = {
    "temporal_head": lambda m: m.temporal_head,
    "learning_rate": lambda m: float(m.optimizer.learning_rate),
    "dropout": lambda m: m.head.dropout_layer.rate,
    "framewise_units": _framewise_units,
    "framewise_pooling": _head_pooling,
    "conv3d_filters": lambda m: _conv(m).kernel.shape[-1],
    # (2+1)D: each layer is a spatial then a temporal convolution.
    "conv3d_temporal_kernel": lambda m: _conv(m, -1).kernel.shape[0],
    "conv3d_num_layers": lambda m: sum(
        c.name.endswith("_temporal") for c in m.head.convs),
    "conv3d_pooling": _head_pooling,
    "lstm_units": lambda m: _lstm(m).cell.units,
    "lstm_bidirectional": lambda m: isinstance(
        m.head.recurrent[0], keras.layers.Bidirectional
    ),
}


def _declared(head):
    """The hyperparameters active when `head` is chosen, with defaults."""
    hp = keras_tuner.HyperParameters()
    hp.Fixed("temporal_head", head)
    VGG4DHyperModel(2, CLIP_SHAPE).build(hp)
    return [p for p in hp.space if hp.is_active(p)]


def _other_value(parameter):
    """A legal value of `parameter` other than its default."""
    config = parameter.get_config()
    default = parameter.default
    if isinstance(parameter, keras_tuner.engine.hyperparameters.Boolean):
        return not default
    if isinstance(parameter, keras_tuner.engine.hyperparameters.Fixed):
        return None
    if "values" in config:
        return next(v for v in config["values"] if v != default)
    if isinstance(parameter, keras_tuner.engine.hyperparameters.Int):
        return default + 1 if default < config["max_value"] else default - 1
    return (config["max_value"] + default) / 2


CASES = [
    (head, parameter.name, _other_value(parameter))
    for head in HEAD_SEARCH_SPACES
    for parameter in _declared(head)
    if parameter.name != "temporal_head"
]


def test_every_head_is_searched_and_has_a_space():
    hp = keras_tuner.HyperParameters()
    VGG4DHyperModel(2, CLIP_SHAPE).build(hp)
    assert hp.space[0].name == "temporal_head"
    assert set(hp.space[0].values) == set(HEAD_SEARCH_SPACES)


def test_every_declared_hyperparameter_can_be_observed():
    declared = {name for _, name, _ in CASES}
    assert declared - set(OBSERVED) == set(), (
        "Add a way to read these hyperparameters off the built model to "
        "OBSERVED"
    )
    # Each head declares its own, plus the shared ones.
    assert {"learning_rate", "dropout"} <= declared
    assert all(value is not None for _, _, value in CASES)


@pytest.mark.parametrize(
    "head, name, value", CASES, ids=[f"{h}-{n}" for h, n, _ in CASES]
)
def test_a_non_default_value_reaches_the_built_model(head, name, value):
    hp = keras_tuner.HyperParameters()
    hp.Fixed("temporal_head", head)
    hp.Fixed(name, value)
    model = VGG4DHyperModel(2, CLIP_SHAPE).build(hp)
    assert hp.values[name] == value
    assert OBSERVED[name](model) == pytest.approx(value)
    assert model.temporal_head == head


def test_the_defaults_reach_the_built_model_too():
    for head in HEAD_SEARCH_SPACES:
        hp = keras_tuner.HyperParameters()
        hp.Fixed("temporal_head", head)
        model = VGG4DHyperModel(2, CLIP_SHAPE).build(hp)
        for name, value in hp.values.items():
            assert OBSERVED[name](model) == pytest.approx(value), name


def test_an_unknown_head_has_no_search_space():
    hp = keras_tuner.HyperParameters()
    with pytest.raises(ValueError, match=r"no search space.*'gru'"):
        VGG4DHyperModel(2, CLIP_SHAPE).declare_head_hyperparameters(hp, "gru")
