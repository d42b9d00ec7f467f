"""`VGG4DClassifier.compile()`'s defaults and `DiscriminativeAdam`."""

import keras
import numpy as np
import pytest

from keras_vgg4d import VGG4DClassifier
from keras_vgg4d.optimizers import BACKBONE_RATE_SCALE
from keras_vgg4d.optimizers import DEFAULT_LEARNING_RATES
from keras_vgg4d.optimizers import DiscriminativeAdam

pytestmark = pytest.mark.backends


def _two_variables():
    with keras.name_scope("backbone"):
        backbone = keras.Variable(np.zeros(3), name="kernel")
    head = keras.Variable(np.zeros(3), name="kernel")
    return backbone, head


def _step_sizes(model, clips, labels):
    """max |change| of the backbone's and the head's kernels after one step."""
    kernels = [model.backbone.trainable_weights[0], model.head.classifier.kernel]
    before = [np.array(keras.ops.convert_to_numpy(k)) for k in kernels]
    model.fit(clips, labels, epochs=1, batch_size=len(clips), verbose=0)
    return [
        float(np.max(np.abs(keras.ops.convert_to_numpy(k) - b)))
        for k, b in zip(kernels, before)
    ]


def test_backbone_variables_take_the_scaled_rate():
    backbone, head = _two_variables()
    optimizer = DiscriminativeAdam(1e-2, rate_scale=0.25)
    gradient = np.array([1.0, -2.0, 3.0])
    optimizer.apply([gradient, gradient], [backbone, head])
    # Adam's first step moves each weight by the rate, against the gradient.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(head), -1e-2 * np.sign(gradient), rtol=1e-4
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(backbone),
        -0.25e-2 * np.sign(gradient),
        rtol=1e-4,
    )


def test_scaled_paths_choose_the_variables():
    backbone, head = _two_variables()
    optimizer = DiscriminativeAdam(1e-2, rate_scale=0.5, scaled_paths=["nothing/"])
    optimizer.apply([np.ones(3), np.ones(3)], [backbone, head])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(backbone), keras.ops.convert_to_numpy(head)
    )


def test_config_round_trip():
    optimizer = DiscriminativeAdam(3e-3, rate_scale=0.2, scaled_paths=["a/", "b/"],
                                   weight_decay=0.01)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, DiscriminativeAdam)
    assert restored.rate_scale == 0.2
    assert restored.scaled_paths == ("a/", "b/")
    assert restored.weight_decay == 0.01
    assert float(keras.ops.convert_to_numpy(restored.learning_rate)) == pytest.approx(3e-3)


@pytest.mark.parametrize(
    "arguments",
    [{"rate_scale": -0.1}, {"rate_scale": 1.5}, {"rate_scale": "low"},
     {"scaled_paths": "backbone/"}, {"scaled_paths": [""]}],
)
def test_bad_arguments_are_named(arguments):
    name = next(iter(arguments))
    with pytest.raises(ValueError, match=name):
        DiscriminativeAdam(1e-3, **arguments)


@pytest.mark.parametrize("head, rate", [("framewise", 1e-2), ("lstm", 3e-3),
                                        ("conv3d", 3e-3)])
def test_compile_defaults_for_a_frozen_backbone(head, rate):
    model = VGG4DClassifier(num_classes=3, temporal_head=head)
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert not isinstance(model.optimizer, DiscriminativeAdam)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == (
        pytest.approx(rate)
    )
    assert DEFAULT_LEARNING_RATES[head] == rate
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert not model.loss.from_logits  # the model returns probabilities


def test_compile_defaults_train_blocks_slower():
    model = VGG4DClassifier(num_classes=2, trainable_blocks=1)
    model.build((None, 2, 32, 32, 3))
    model.compile()
    assert isinstance(model.optimizer, DiscriminativeAdam)
    assert model.optimizer.rate_scale == BACKBONE_RATE_SCALE
    clips = np.random.default_rng(0).uniform(0, 255, (4, 2, 32, 32, 3))
    backbone_step, head_step = _step_sizes(model, clips, np.array([0, 1, 0, 1]))
    rate = DEFAULT_LEARNING_RATES["framewise"]
    assert head_step == pytest.approx(rate, rel=1e-2)
    assert backbone_step == pytest.approx(rate * BACKBONE_RATE_SCALE, rel=1e-2)


def test_explicit_compile_arguments_win():
    model = VGG4DClassifier(num_classes=2, trainable_blocks=1)
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss="sparse_categorical_crossentropy", metrics=[])
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.loss == "sparse_categorical_crossentropy"
    clips = np.zeros((2, 2, 32, 32, 3)) + 7.0
    history = model.fit(clips, np.array([0, 1]), epochs=1, verbose=0)
    assert set(history.history) == {"loss"}


def test_accuracy_is_the_default_metric():
    model = VGG4DClassifier(num_classes=2)
    model.compile()
    clips = np.random.default_rng(1).uniform(0, 255, (4, 2, 32, 32, 3))
    history = model.fit(clips, np.array([0, 1, 1, 0]), epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}


def test_a_saved_model_keeps_its_optimizer(tmp_path):
    model = VGG4DClassifier(num_classes=2, trainable_blocks=1)
    model.compile()
    clips = np.random.default_rng(2).uniform(0, 255, (2, 2, 32, 32, 3))
    model.fit(clips, np.array([0, 1]), epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.optimizer, DiscriminativeAdam)
    assert restored.optimizer.rate_scale == BACKBONE_RATE_SCALE
    # The optimizer's state came back too: training goes on where it was.
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == 1
    assert isinstance(restored.loss, keras.losses.SparseCategoricalCrossentropy)
