"""The cached path is the plain path: same clips, same batches, same result.

With a frozen backbone, `VGG4DHyperModel.fit` trains the head on cached
backbone features. Called the same way with the cache on and off (same
initial weights, same seed, `shuffle=False`), it must train on the same
clips in the same number of batches, validate on the same clips, run the
same epochs under the same callbacks, and end at the same metrics.
"""

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from keras_vgg4d.hypermodel import VGG4DHyperModel

pytestmark = pytest.mark.backends

CLIP_SHAPE = (3, 32, 32, 3)


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, *CLIP_SHAPE)).astype("float32")
    x[0, 2:] = 0  # a padded clip
    return x, rng.integers(0, 3, n).astype("int32")


class BatchLog(keras.callbacks.Callback):
    """Counts training and validation batches, and records learning rates."""

    def __init__(self):
        super().__init__()
        self.train_batches = 0
        self.test_batches = 0
        self.learning_rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.train_batches += 1

    def on_test_batch_end(self, batch, logs=None):
        self.test_batches += 1

    def on_epoch_end(self, epoch, logs=None):
        self.learning_rates.append(float(self.model.optimizer.learning_rate))


def _pair(head="lstm", learning_rate=1e-3, **hypermodel_kwargs):
    """Two classifiers with equal weights: one trained cached, one plain."""
    hp = keras_tuner.HyperParameters()
    hp.Fixed("temporal_head", head)
    hp.Fixed("dropout", 0.0)
    hp.Fixed("learning_rate", learning_rate)
    cached = VGG4DHyperModel(3, CLIP_SHAPE, **hypermodel_kwargs)
    plain = VGG4DHyperModel(3, CLIP_SHAPE, cache_features=False,
                            **hypermodel_kwargs)
    model_cached = cached.build(hp)
    model_plain = plain.build(hp)
    model_plain.set_weights(model_cached.get_weights())
    return (cached, model_cached), (plain, model_plain), hp


def _fit_both(fit_kwargs, callbacks=None, head="lstm", learning_rate=1e-3,
              **hypermodel_kwargs):
    pair = _pair(head, learning_rate, **hypermodel_kwargs)
    results = []
    for hypermodel, model in pair[:2]:
        log = BatchLog()
        extra = callbacks() if callbacks else []
        keras.utils.set_random_seed(7)
        history = hypermodel.fit(
            pair[2], model, shuffle=False, verbose=0,
            callbacks=[log, *extra], **fit_kwargs(),
        )
        results.append((history.history, log, model))
    return results


def _assert_same_history(cached, plain):
    assert cached.keys() == plain.keys()
    for key in plain:
        np.testing.assert_allclose(cached[key], plain[key], rtol=2e-4,
                                   atol=2e-5, err_msg=key)


def _arrays_with_split():
    x, y = _data(10, 0)
    return {"x": x, "y": y, "validation_split": 0.3, "batch_size": 3,
            "epochs": 2}


def _arrays_with_validation_data():
    x, y = _data(9, 0)
    val = _data(5, 1)
    return {"x": x, "y": y, "validation_data": val, "batch_size": 4,
            "epochs": 2}


def _arrays_with_weighted_validation_data():
    x, y = _data(9, 0)
    val_x, val_y = _data(5, 1)
    # Two clips weigh nothing: a validation loss that drops the weights
    # averages over all five and differs.
    weights = np.array([1.0, 0.0, 3.0, 0.0, 1.0], "float32")
    return {"x": x, "y": y, "validation_data": (val_x, val_y, weights),
            "batch_size": 4, "epochs": 2}


def _datasets():
    x, y = _data(9, 0)
    val_x, val_y = _data(5, 1)
    return {
        "x": tf.data.Dataset.from_tensor_slices((x, y)).batch(4),
        "validation_data": tf.data.Dataset.from_tensor_slices(
            (val_x, val_y)).batch(2),
        "epochs": 2,
    }


def _weighted_datasets():
    x, y = _data(9, 0)
    val_x, val_y = _data(5, 1)
    weights = np.array([1, 0, 2, 1, 0, 1, 3, 1, 0], "float32")
    val_weights = np.array([1.0, 0.0, 3.0, 0.0, 1.0], "float32")
    return {
        "x": tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(4),
        "validation_data": tf.data.Dataset.from_tensor_slices(
            (val_x, val_y, val_weights)).batch(2),
        "epochs": 2,
    }


@pytest.mark.parametrize(
    "fit_kwargs, train_batches, test_batches",
    [
        # 10 clips, the last 3 validate: 7 train in batches of 3.
        (_arrays_with_split, 2 * 3, 2 * 1),
        (_arrays_with_validation_data, 2 * 3, 2 * 2),
        (_arrays_with_weighted_validation_data, 2 * 3, 2 * 2),
        (_datasets, 2 * 3, 2 * 3),
        (_weighted_datasets, 2 * 3, 2 * 3),
    ],
    ids=["validation_split", "validation_data", "weighted_validation_data",
         "datasets", "weighted_datasets"],
)
def test_cached_fit_trains_and_validates_as_the_plain_fit(
    fit_kwargs, train_batches, test_batches
):
    (cached, log_c, _), (plain, log_p, _) = _fit_both(fit_kwargs)
    assert log_p.train_batches == log_c.train_batches == train_batches
    assert log_p.test_batches == log_c.test_batches == test_batches
    _assert_same_history(cached, plain)


def test_validation_sample_weights_change_the_validation_loss():
    """The weighted case above compares two fits; this shows the weights
    matter, so that comparison would catch a cached fit that drops them."""
    weighted = _fit_both(_arrays_with_weighted_validation_data)[0][0]

    def unweighted():
        kwargs = _arrays_with_weighted_validation_data()
        kwargs["validation_data"] = kwargs["validation_data"][:2]
        return kwargs

    plain = _fit_both(unweighted)[0][0]
    assert abs(weighted["val_loss"][-1] - plain["val_loss"][-1]) > 1e-3


def test_validation_split_takes_the_last_clips_like_keras():
    (hypermodel, model), _, _ = _pair()
    x, y = _data(10, 0)
    train, validation = hypermodel.feature_cache.get(model, x, y).split(0.3)
    whole = hypermodel.feature_cache.get(model, x, y)
    assert len(train.features) == 7 and len(validation.features) == 3
    np.testing.assert_array_equal(validation.labels, y[7:])
    np.testing.assert_array_equal(validation.features, whole.features[7:])
    np.testing.assert_array_equal(train.features, whole.features[:7])


def test_validation_split_with_a_dataset_is_refused_both_ways():
    (cached, model_c), (plain, model_p), hp = _pair()
    x, y = _data(4, 0)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    for hypermodel, model in ((cached, model_c), (plain, model_p)):
        with pytest.raises(ValueError, match="validation_split"):
            hypermodel.fit(hp, model, dataset, validation_split=0.5,
                           epochs=1, verbose=0)


# --- callbacks ---------------------------------------------------------------


class StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


CALLBACKS = {
    "early_stopping": lambda: [keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=0, min_delta=10.0)],
    "early_stopping_restore": lambda: [keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=1, min_delta=10.0,
        restore_best_weights=True)],
    "reduce_lr": lambda: [keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss", factor=0.5, patience=0, min_delta=10.0)],
    "scheduler": lambda: [keras.callbacks.LearningRateScheduler(
        lambda epoch, lr: 1e-3 / (epoch + 1))],
    "user_stop": lambda: [StopAfterFirstEpoch()],
}


# The callbacks reach the head's `fit` through Python wiring that is the
# same on every backend: two of them run under each backend, the rest once
# (on TensorFlow), which keeps the JAX half of CI short.
ON_EVERY_BACKEND = ("early_stopping_restore", "reduce_lr")


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if name in ON_EVERY_BACKEND
                 else pytest.mark.tensorflow)
    for name in sorted(CALLBACKS)
])
def test_callbacks_act_the_same_with_and_without_the_cache(name):
    def fit_kwargs():
        return dict(_arrays_with_validation_data(), epochs=4)

    (cached, log_c, model_c), (plain, log_p, model_p) = _fit_both(
        fit_kwargs, callbacks=CALLBACKS[name]
    )
    assert len(cached["loss"]) == len(plain["loss"])
    assert log_c.learning_rates == pytest.approx(log_p.learning_rates)
    _assert_same_history(cached, plain)
    for w_c, w_p in zip(model_c.head.get_weights(), model_p.head.get_weights()):
        np.testing.assert_allclose(w_c, w_p, rtol=2e-4, atol=2e-5)
    if name in ("early_stopping", "user_stop"):
        assert len(plain["loss"]) < 4
    if name in ("reduce_lr", "scheduler"):
        assert log_p.learning_rates[-1] < log_p.learning_rates[0]


def test_terminate_on_nan_stops_both_ways_after_the_first_batch():
    results = _fit_both(
        lambda: dict(_arrays_with_validation_data(), epochs=3),
        callbacks=lambda: [keras.callbacks.TerminateOnNaN()],
        learning_rate=1e30,  # diverges at once
    )
    for history, log, _ in results:
        assert len(history["loss"]) == 1 and np.isnan(history["loss"][0])
        # It stops at the first batch whose loss is not finite.
        assert log.train_batches == results[1][1].train_batches < 3


def test_model_checkpoint_saves_the_same_classifiers_both_ways(tmp_path):
    folders = iter([tmp_path / "cached", tmp_path / "plain"])

    def checkpoint():
        pattern = str(next(folders) / "epoch{epoch}.keras")
        return [keras.callbacks.ModelCheckpoint(pattern)]

    results = _fit_both(
        lambda: dict(_arrays_with_validation_data(), epochs=1),
        callbacks=checkpoint)
    x, _ = _data(4, 2)
    cached, plain = (keras.saving.load_model(tmp_path / side / "epoch1.keras")
                     for side in ("cached", "plain"))
    assert type(cached).__name__ == "VGG4DClassifier"
    np.testing.assert_allclose(cached.predict(x, verbose=0),
                               plain.predict(x, verbose=0),
                               rtol=2e-4, atol=2e-5)
    # It is the trained classifier itself, whole.
    np.testing.assert_allclose(cached.predict(x, verbose=0),
                               results[0][2].predict(x, verbose=0), rtol=1e-5)


class InterruptAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("killed")


def test_backup_and_restore_resumes_both_ways_where_it_stopped(tmp_path):
    pair = _pair()
    final = []
    for (hypermodel, model), side in zip(pair[:2], ("cached", "plain")):
        backup = str(tmp_path / side)
        keras.utils.set_random_seed(7)
        with pytest.raises(KeyboardInterrupt):
            hypermodel.fit(pair[2], model, shuffle=False, verbose=0,
                           callbacks=[keras.callbacks.BackupAndRestore(backup),
                                      InterruptAfterEpoch(1)],
                           **dict(_arrays_with_validation_data(), epochs=4))
        log = BatchLog()
        history = hypermodel.fit(
            pair[2], model, shuffle=False, verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup), log],
            **dict(_arrays_with_validation_data(), epochs=4))
        # Epochs 0 and 1 were done and backed up: 2 and 3 are left.
        assert len(history.history["loss"]) == 2
        assert log.train_batches == 2 * 3
        final.append(model.head.get_weights())
    for w_c, w_p in zip(*final):
        np.testing.assert_allclose(w_c, w_p, rtol=2e-4, atol=2e-5)


# --- frame masking off -------------------------------------------------------


def test_a_search_with_frame_masking_off_runs_on_the_cache(tmp_path):
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, heads=("lstm",),
                                 mask_padded_frames=False)
    x, y = _data(6, 0)
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_loss", max_trials=1,
        directory=str(tmp_path),
    )
    tuner.search(x, y, validation_split=0.5, epochs=1, batch_size=3,
                 verbose=0)
    assert len(hypermodel.feature_cache) == 1
    best = tuner.get_best_models(1)[0]
    assert best.mask_padded_frames is False
    cached = hypermodel.feature_cache.get(best, x)
    # Without masking, the padded frames of clip 0 count as real.
    assert cached.mask.all()


# --- objectives and class weights --------------------------------------------


@pytest.mark.parametrize("objective", ["val_auc", "val_macro_f1"])
def test_objective_metrics_are_the_same_with_and_without_the_cache(objective):
    (cached, log_c, _), (plain, log_p, _) = _fit_both(
        _arrays_with_validation_data, objective=objective
    )
    assert objective in cached and objective in plain
    _assert_same_history(cached, plain)


def test_balanced_class_weight_weighs_the_loss_the_same_both_ways():
    def skewed():
        x, _ = _data(9, 0)
        y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2], "int32")
        return {"x": x, "y": y, "batch_size": 3, "epochs": 1}

    weighted = _fit_both(skewed, class_weight="balanced")
    (cached, _, _), (plain, _, _) = weighted
    _assert_same_history(cached, plain)
    (unweighted, _, _), _ = _fit_both(skewed)
    assert abs(unweighted["loss"][0] - cached["loss"][0]) > 1e-4


def test_trials_checkpoint_only_their_head_and_load_whole(tmp_path):
    """A cached search writes the head's weights per trial; the tuner still
    returns whole classifiers that predict as the trained ones did."""
    import os

    x, y = _data(8, 0)
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, heads=("lstm",),
                                 feature_cache_dir=str(tmp_path / "cache"))
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_loss", max_trials=1,
        directory=str(tmp_path / "search"),
    )
    tuner.search(x, y, validation_data=(x, y), epochs=2, batch_size=4,
                 verbose=0)
    trial = tuner.oracle.get_best_trials(1)[0]
    checkpoint = tuner._get_checkpoint_fname(trial.trial_id)
    model = tuner.get_best_models(1)[0]
    head_bytes = sum(w.nbytes for w in model.head.get_weights())
    # The head's weights alone: no backbone, no optimizer moments.
    assert head_bytes < os.path.getsize(checkpoint) < head_bytes + 100_000
    whole_bytes = sum(w.nbytes for w in model.get_weights())
    assert whole_bytes > 50 * head_bytes
    # The random backbone is kept as its seed, and the best model predicts
    # on raw clips what its head gives on the cached features.
    assert os.listdir(tmp_path / "cache").count("backbone_seed.json") == 1
    assert os.path.getsize(tmp_path / "cache" / "backbone_seed.json") < 200
    cached = hypermodel.feature_cache.get(model, x)
    np.testing.assert_allclose(
        model.head_model().predict_on_batch(cached.inputs),
        model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert float(model.evaluate(x, y, verbose=0)[0]) == pytest.approx(
        trial.score, rel=1e-4)


def test_a_new_process_rebuilds_the_same_backbone(tmp_path):
    first = VGG4DHyperModel(3, CLIP_SHAPE, feature_cache_dir=str(tmp_path))
    model = first.build(keras_tuner.HyperParameters())
    keras.utils.set_random_seed(99)  # another process, another draw
    second = VGG4DHyperModel(3, CLIP_SHAPE, feature_cache_dir=str(tmp_path))
    again = second.build(keras_tuner.HyperParameters())
    for a, b in zip(model.backbone.get_weights(), again.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_cached_fit_warns_of_nothing():
    """Keras warns when a dataset comes with `shuffle=True`; the head's
    dataset of cached features shuffles itself, and says nothing."""
    import warnings

    x, y = _data(6, 0)
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, heads=("framewise",))
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hypermodel.fit(hp, model, x, y, validation_split=0.5, epochs=1,
                       batch_size=3, verbose=0)
    assert [str(w.message) for w in caught
            if issubclass(w.category, UserWarning)] == []
