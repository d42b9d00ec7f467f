"""Trials share compiled head steps: one per architecture, rates as data.

`VGG4DHyperModel(compile_once=True)` (the default) trains the heads of
trials on cached features through `keras_vgg4d.compiled_steps`: a second
trial of an architecture neither traces (TensorFlow) nor compiles (JAX)
again, and trains as it would alone.
"""

import keras
import numpy as np
import pytest

from keras_vgg4d import VGG4DClassifier
from keras_vgg4d.backbone import TemporalVGG19
from keras_vgg4d.compiled_steps import SharedHeadSteps
from keras_vgg4d.compiled_steps import VariableRateDropout
from keras_vgg4d.compiled_steps import architecture_key
from keras_vgg4d.hypermodel import VGG4DHyperModel
from search_testing import split_clips
from search_testing import trial

pytestmark = pytest.mark.backends

CLIP_SHAPE = (2, 32, 32, 3)


@pytest.fixture(scope="module")
def clips():
    return split_clips(16, 12)


def run(hypermodel, hp, clips, epochs=2):
    x, y, x_val, y_val = clips
    model = hypermodel.build(hp)
    history = hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val),
                             epochs=epochs, batch_size=4, verbose=0)
    return model, history.history


@pytest.fixture
def traces(monkeypatch):
    """How many times Keras traced (or compiled) a train and a test step:
    the Python step runs only while a compiled function is made."""
    counts = {"train": 0, "test": 0}
    for kind in counts:
        original = getattr(keras.Model, f"{kind}_step")

        def counted(self, *args, _kind=kind, _original=original, **kwargs):
            counts[_kind] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(keras.Model, f"{kind}_step", counted)
    return counts


eager = pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="PyTorch runs Keras' steps eagerly: there is nothing to share")


@eager
def test_a_second_trial_of_an_architecture_does_not_trace_again(
        clips, traces):
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, seed=1)
    run(hypermodel, trial("framewise", framewise_units=64,
                          learning_rate=0.01, dropout=0.0), clips)
    first = dict(traces)
    assert first["train"] >= 1 and first["test"] >= 1
    # Another learning rate and dropout rate: the same architecture.
    run(hypermodel, trial("framewise", framewise_units=64,
                          learning_rate=0.002, dropout=0.4), clips)
    assert traces == first
    assert len(hypermodel.compiled_steps) == 1
    # Another width is another architecture: it traces its own step.
    run(hypermodel, trial("framewise", framewise_units=256), clips)
    assert traces["train"] > first["train"]
    assert len(hypermodel.compiled_steps) == 2


@eager
def test_without_compile_once_every_trial_traces(clips, traces):
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, seed=1, compile_once=False)
    values = dict(framewise_units=64, dropout=0.0)
    run(hypermodel, trial("framewise", **values), clips)
    first = traces["train"]
    run(hypermodel, trial("framewise", **values, learning_rate=0.01), clips)
    assert traces["train"] > first
    assert len(hypermodel.compiled_steps) == 0


@eager
def test_a_trial_on_a_shared_step_trains_as_it_would_alone(clips):
    dropout = 0.0  # VariableRateDropout draws other masks than Dropout
    second = trial("framewise", framewise_units=64, learning_rate=0.004,
                   dropout=dropout)
    alone = VGG4DHyperModel(3, CLIP_SHAPE, seed=5, compile_once=False)
    alone_model, alone_history = run(alone, second, clips, epochs=3)

    shared = VGG4DHyperModel(3, CLIP_SHAPE, seed=5)
    # The step first trains another trial: other rates, other weights, and
    # it leaves its optimizer state and dropout rate behind.
    run(shared, trial("framewise", framewise_units=64, learning_rate=0.03,
                      dropout=0.4), clips, epochs=3)
    model, history = run(shared, second, clips, epochs=3)
    step = next(iter(shared.compiled_steps._steps.values()))
    assert step.trials == 2
    assert float(keras.ops.convert_to_numpy(step.dropout_rate)) == (
        pytest.approx(dropout))
    assert float(keras.ops.convert_to_numpy(
        step.model.optimizer.learning_rate)) == pytest.approx(0.004)

    # The trial's own classifier holds what it trained, as it would alone.
    for got, expected in zip(model.head.get_weights(),
                             alone_model.head.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(history["loss"], alone_history["loss"],
                               rtol=1e-5)
    np.testing.assert_allclose(history["val_accuracy"],
                               alone_history["val_accuracy"])
    clips_x = clips[2]
    np.testing.assert_allclose(model.predict(clips_x, verbose=0),
                               alone_model.predict(clips_x, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="PyTorch only")
def test_on_torch_each_trial_trains_its_own_head_model(clips):
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, seed=1)
    hp = trial("framewise")
    x, y, x_val, y_val = clips
    model = hypermodel.build(hp)
    initial = model.head.classifier.get_weights()[0].copy()
    hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val), epochs=2,
                   batch_size=4, verbose=0)
    assert len(hypermodel.compiled_steps) == 0
    assert not np.allclose(model.head.classifier.get_weights()[0], initial)


def test_callbacks_see_the_trained_head_each_epoch(clips):
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, seed=2)
    hp = trial("framewise", framewise_units=0)
    x, y, x_val, y_val = clips
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.head.classifier.get_weights()[0].copy())

    model = hypermodel.build(hp)
    initial = model.head.classifier.get_weights()[0].copy()
    hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val), epochs=2,
                   batch_size=4, verbose=0, callbacks=[Record()])
    assert len(seen) == 2
    assert not np.allclose(seen[0], initial)
    assert not np.allclose(seen[1], seen[0])
    np.testing.assert_array_equal(seen[1], model.head.classifier.get_weights()[0])


@eager
def test_dropout_masks_depend_on_the_trial_alone(clips):
    second = trial("lstm", learning_rate=0.004, dropout=0.3)
    first, _ = run(VGG4DHyperModel(3, CLIP_SHAPE, seed=5), second, clips)
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, seed=5)
    run(hypermodel, trial("lstm", learning_rate=0.02, dropout=0.5), clips)
    after, _ = run(hypermodel, second, clips)
    assert len(hypermodel.compiled_steps) == 1
    for got, expected in zip(after.head.get_weights(),
                             first.head.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_the_trial_model_keeps_an_optimizer_of_its_own(clips):
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, seed=2)
    hp = trial("framewise", framewise_units=0)
    x, y, x_val, y_val = clips
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val), epochs=2,
                   batch_size=4, verbose=0,
                   callbacks=[keras.callbacks.EarlyStopping(patience=5)])
    step = next(iter(hypermodel.compiled_steps._steps.values()))
    assert model.optimizer is not step.model.optimizer
    # Built on the trial's head, holding the trained state.
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 6
    before = model.head.classifier.get_weights()[0].copy()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert not np.allclose(model.head.classifier.get_weights()[0], before)


def test_a_resumed_epoch_does_not_carry_over_to_the_next_trial(clips):
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, seed=2)
    x, y, x_val, y_val = clips
    epochs = []

    class Resume(keras.callbacks.Callback):
        # What BackupAndRestore does on the model it sees.
        def on_train_begin(self, logs=None):
            self.model._initial_epoch = 2

    class Count(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs.append(epoch)

    for callbacks in ([Resume(), Count()], [Count()]):
        hp = trial("framewise", framewise_units=0)
        model = hypermodel.build(hp)
        hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val),
                       epochs=3, batch_size=4, verbose=0, callbacks=callbacks)
    assert epochs == [2, 0, 1, 2]


def test_a_loss_keras_cannot_compile_again_is_not_shared(clips):
    def my_loss(y_true, y_pred):  # neither registered nor importable
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)

    class OwnLoss(VGG4DHyperModel):
        def compile_model(self, model, hp):
            model.compile(optimizer="adam", loss=my_loss,
                          metrics=["accuracy"])

    hypermodel = OwnLoss(3, CLIP_SHAPE, seed=2)
    model, history = run(hypermodel, trial("framewise"), clips)
    assert len(history["loss"]) == 2
    assert len(hypermodel.compiled_steps) == 0


def test_what_a_callback_sets_at_an_epoch_end_is_what_trains_next(clips):
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, seed=2)
    hp = trial("framewise", framewise_units=0)
    x, y, x_val, y_val = clips

    class SetKernel(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                kernel = self.model.head.classifier.kernel
                kernel.assign(np.full(kernel.shape, 100.0, "float32"))

    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val), epochs=2,
                   batch_size=4, verbose=0, callbacks=[SetKernel()])
    # One more epoch of Adam steps (3 of rate 3e-3) moved it from 100.
    kernel = model.head.classifier.get_weights()[0]
    assert np.all(np.abs(kernel - 100.0) < 0.1)


def test_early_stopping_restores_the_trial_best_weights(clips):
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, seed=2)
    hp = trial("framewise", framewise_units=0, learning_rate=0.03)
    x, y, x_val, y_val = clips
    best = {}

    class RememberBest(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs["val_loss"] < best.get("loss", np.inf):
                best.update(loss=logs["val_loss"],
                            weights=self.model.head.get_weights())

    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val), epochs=6,
                   batch_size=4, verbose=0, callbacks=[
                       RememberBest(),
                       keras.callbacks.EarlyStopping(
                           monitor="val_loss", patience=6,
                           restore_best_weights=True)])
    for got, expected in zip(model.head.get_weights(), best["weights"]):
        np.testing.assert_array_equal(got, expected)


def test_trials_share_one_frozen_backbone_layer(clips):
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, seed=1)
    first = hypermodel.build(trial("framewise"))
    second = hypermodel.build(trial("lstm"))
    assert second.backbone is first.backbone
    assert not first.backbone.trainable_weights
    alone = VGG4DHyperModel(3, CLIP_SHAPE, seed=1, compile_once=False)
    assert (alone.build(trial("lstm")).backbone
            is not alone.build(trial("lstm")).backbone)


def test_a_classifier_takes_a_matching_backbone_only():
    backbone = TemporalVGG19(weights=None, pooling=None, name="backbone")
    backbone.build((None, 2, 32, 32, 3))
    model = VGG4DClassifier(2, backbone=backbone)
    model.build((None, 2, 32, 32, 3))
    assert model.backbone is backbone
    assert len(model.weights) == len(backbone.weights) + len(model.head.weights)
    with pytest.raises(ValueError, match="trainable_blocks"):
        VGG4DClassifier(2, trainable_blocks=1, backbone=backbone)
    with pytest.raises(ValueError, match="TemporalVGG19"):
        VGG4DClassifier(2, backbone=keras.layers.Dense(3))


def compiled_head_model(units=0, dropout=0.0, **compile_args):
    model = VGG4DClassifier(2, dropout=dropout,
                            head_options={"units": units})
    model.build((None, 2, 32, 32, 3))
    head_model = model.head_model()
    head_model.compile(**{"optimizer": keras.optimizers.Adam(1e-3),
                          "loss": "sparse_categorical_crossentropy",
                          **compile_args})
    return model.head, head_model


def test_the_architecture_leaves_out_rates_only():
    key = architecture_key(*compiled_head_model())
    assert key == architecture_key(*compiled_head_model(
        dropout=0.3, optimizer=keras.optimizers.Adam(0.02)))
    for other in (
        compiled_head_model(units=64),
        compiled_head_model(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5)),
        compiled_head_model(optimizer=keras.optimizers.SGD(1e-3)),
        compiled_head_model(metrics=["accuracy"]),
    ):
        assert architecture_key(*other) != key


def test_a_schedule_is_part_of_the_architecture():
    def schedule(rate):
        return keras.optimizers.Adam(
            keras.optimizers.schedules.ExponentialDecay(rate, 10, 0.5))

    key = architecture_key(*compiled_head_model(optimizer=schedule(1e-3)))
    assert key != architecture_key(*compiled_head_model(
        optimizer=schedule(1e-2)))


def test_a_compile_configuration_keras_cannot_write_is_not_shared():
    class Unregistered(keras.metrics.Mean):
        def get_config(self):
            raise NotImplementedError

    head, head_model = compiled_head_model(metrics=[Unregistered()])
    assert architecture_key(head, head_model) is None
    assert SharedHeadSteps().get(head, head_model) is None


def test_variable_rate_dropout_drops_at_its_rate_and_changes_with_it():
    layer = VariableRateDropout(0.3, seed=4)
    x = np.ones((1, 20000), "float32")
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    dropped = np.mean(y == 0)
    assert dropped == pytest.approx(0.3, abs=0.02)
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(x, training=False)), x)
    layer.rate.assign(0.6)
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    assert np.mean(y == 0) == pytest.approx(0.6, abs=0.02)
    layer.rate.assign(0.0)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(x, training=True)), x)
    assert VariableRateDropout.from_config(
        VariableRateDropout(0.2, seed=3).get_config()).initial_rate == 0.2


def test_variable_rate_dropout_rejects_a_rate_outside_0_1():
    with pytest.raises(ValueError, match=r"rate.*\[0, 1\)"):
        VariableRateDropout(1.0)
