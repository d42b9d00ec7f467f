import numpy as np
import pytest
import tensorflow as tf
import keras
import keras_tuner

from keras_vgg4d.data import demo_clips
from keras_vgg4d.hypermodel import VGG4DHyperModel
from keras_vgg4d.model import VGG4DClassifier

CLIP_SHAPE = (3, 32, 32, 3)


@pytest.fixture(scope="module")
def clips():
    x, y = demo_clips(n=24, frames=3, size=32, task="appearance", seed=0)
    return x[:18], y[:18], x[18:], y[18:]


def test_defaults_and_inactive_hyperparameters():
    hp = keras_tuner.HyperParameters()
    model = VGG4DHyperModel(3, CLIP_SHAPE).build(hp)
    assert isinstance(model, VGG4DClassifier)
    assert model.temporal_head == "framewise"
    assert hp.values == {
        "temporal_head": "framewise",
        "framewise_units": 0,
        "framewise_pooling": "avg",
        "learning_rate": 1e-3,
        "dropout": 0.0,
    }
    # The inactive heads' hyperparameters are declared, but conditional.
    names = {h.name for h in hp.space}
    assert {"conv3d_filters", "lstm_units", "lstm_bidirectional"} <= names
    assert model.optimizer is not None
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_fixed_overrides():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("temporal_head", "lstm")
    hp.Fixed("learning_rate", 0.005)
    model = VGG4DHyperModel(2, CLIP_SHAPE).build(hp)
    assert model.temporal_head == "lstm"
    assert model.head.units == 64 and not model.head.bidirectional
    assert "framewise_units" not in hp.values
    assert hp.values["lstm_units"] == 64
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)


def test_heads_subset_restricts_the_choice():
    hp = keras_tuner.HyperParameters()
    VGG4DHyperModel(2, CLIP_SHAPE, heads=("conv3d",)).build(hp)
    assert hp.values["temporal_head"] == "conv3d"
    assert hp.get_config()["space"][0]["config"]["values"] == ["conv3d"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"input_shape": (32, 32, 3)}, "input_shape"),
        ({"heads": ("framewise", "gru")}, "heads"),
        ({"heads": ()}, "heads"),
        ({"trainable_blocks": 6}, "trainable_blocks"),
        ({"time_axis": 0}, "time_axis"),
    ],
)
def test_bad_arguments(kwargs, match):
    arguments = {"num_classes": 2, "input_shape": CLIP_SHAPE, **kwargs}
    with pytest.raises(ValueError, match=match):
        VGG4DHyperModel(**arguments)


def test_every_trial_shares_one_backbone():
    hypermodel = VGG4DHyperModel(2, CLIP_SHAPE)
    first = hypermodel.build(keras_tuner.HyperParameters())
    second = hypermodel.build(keras_tuner.HyperParameters())
    for a, b in zip(first.backbone.weights, second.backbone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_random_search_with_feature_cache(tmp_path, clips):
    x_train, y_train, x_val, y_val = clips
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE)
    assert hypermodel.uses_feature_cache
    tuner = keras_tuner.RandomSearch(
        hypermodel,
        objective="val_accuracy",
        max_trials=3,
        directory=str(tmp_path),
        seed=1,
    )
    tuner.search(x_train, y_train, validation_data=(x_val, y_val),
                 epochs=2, batch_size=6, verbose=0)
    assert len(tuner.oracle.trials) == 3
    # Features of the training and the validation clips, computed once each.
    assert len(hypermodel.feature_cache) == 2
    best = tuner.get_best_models(1)[0]
    assert isinstance(best, VGG4DClassifier)
    # The whole model predicts on raw clips as its head did on the features.
    cached = hypermodel.feature_cache.get(best, x_val)
    np.testing.assert_allclose(
        best.predict(x_val, verbose=0),
        best.head_model().predict(cached.inputs, verbose=0),
        rtol=1e-4,
        atol=1e-5,
    )
    path = str(tmp_path / "best.keras")
    best.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(
        restored.predict(x_val, verbose=0), best.predict(x_val, verbose=0),
        rtol=1e-5, atol=1e-6,
    )
    score = tuner.oracle.get_best_trials(1)[0].score
    _, accuracy = best.evaluate(x_val, y_val, verbose=0)
    assert accuracy == pytest.approx(score, abs=1e-6)


@pytest.mark.parametrize("tuner_class", ["Hyperband", "BayesianOptimization"])
def test_other_tuners_with_datasets(tmp_path, clips, tuner_class):
    x_train, y_train, x_val, y_val = clips
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(6)
    validation = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(6)
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, heads=("lstm", "conv3d"))
    if tuner_class == "Hyperband":
        tuner = keras_tuner.Hyperband(
            hypermodel, objective="val_accuracy", max_epochs=2, factor=2,
            hyperband_iterations=1, directory=str(tmp_path), seed=1,
        )
        tuner.search(train, validation_data=validation, verbose=0)
    else:
        tuner = keras_tuner.BayesianOptimization(
            hypermodel, objective="val_accuracy", max_trials=2,
            directory=str(tmp_path), seed=1,
        )
        tuner.search(train, validation_data=validation, epochs=1, verbose=0)
    assert len(tuner.oracle.trials) >= 2
    assert len(hypermodel.feature_cache) == 2
    best = tuner.get_best_models(1)[0]
    assert best.predict(x_val, verbose=0).shape == (6, 3)


def test_search_without_cache_when_backbone_trains(tmp_path, clips):
    x_train, y_train, x_val, y_val = clips
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, heads=("framewise",),
                                 trainable_blocks=1)
    assert not hypermodel.uses_feature_cache
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_accuracy", max_trials=1,
        directory=str(tmp_path),
    )
    tuner.search(x_train, y_train, validation_data=(x_val, y_val),
                 epochs=1, batch_size=6, verbose=0)
    assert len(hypermodel.feature_cache) == 0
    best = tuner.get_best_models(1)[0]
    assert len(best.trainable_weights) > len(best.head.trainable_weights)
    assert best.predict(x_val, verbose=0).shape == (6, 3)


# `validation_split` with the cache: tests/test_cache_path.py checks that it
# trains and validates on the clips the plain path does.
