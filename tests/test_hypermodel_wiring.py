"""`VGG4DHyperModel`'s wiring, where mutation testing found it unchecked.

Each test here was written against a mutant of `keras_vgg4d/hypermodel.py`
that the fast tests of `tests/test_hypermodel.py` and
`tests/test_search_space.py` let live (docs/testing.md, "Mutation testing").
Small clips (32x32 frames, 2 frames) and a random backbone keep each one to
a few seconds.
"""

import re

import keras
import keras_tuner
import numpy as np
import pytest

from keras_vgg4d.data import clip_dataset_from_directory
from keras_vgg4d.hypermodel import VGG4DHyperModel

pytestmark = pytest.mark.backends

FRAMES = 2
SIZE = 32


@pytest.fixture(scope="module")
def npy_clips(tmp_path_factory):
    """Six `.npy` clips of 2-4 frames, three of each of two classes."""
    root = tmp_path_factory.mktemp("wiring_clips")
    rng = np.random.default_rng(0)
    for i, length in enumerate([2, 3, 4, 2, 3, 4]):
        folder = root / "ab"[i % 2]
        folder.mkdir(exist_ok=True)
        clip = rng.integers(0, 256, (length, SIZE, SIZE, 3), dtype="uint8")
        np.save(folder / f"clip{i}.npy", clip)
    return root


def _clip_dataset(root, **kwargs):
    arguments = dict(frames=FRAMES, image_size=(SIZE, SIZE), batch_size=2,
                     shuffle=False, verbose=False)
    return clip_dataset_from_directory(str(root), **{**arguments, **kwargs})


def _framewise(tmp_path):
    hypermodel = VGG4DHyperModel(2, (FRAMES, SIZE, SIZE, 3),
                                 heads=("framewise",),
                                 feature_cache_dir=str(tmp_path))
    hp = keras_tuner.HyperParameters()
    return hypermodel, hypermodel.build(hp), hp


def test_a_clip_dataset_trains_without_validation_data(npy_clips, tmp_path):
    """A clip dataset alone, with `fit`'s own batch size and shuffle
    arguments (the dataset's batches win), trains the head on its cached
    frames: one batch of 2 clips a step, 3 steps an epoch."""
    dataset = _clip_dataset(npy_clips)
    hypermodel, model, hp = _framewise(tmp_path)
    steps = []

    class Steps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(batch)

    history = hypermodel.fit(hp, model, dataset, epochs=2, batch_size=5,
                             shuffle=True, verbose=0, callbacks=[Steps()])
    assert len(history.history["loss"]) == 2
    assert "val_loss" not in history.history
    assert steps == [0, 1, 2, 0, 1, 2]
    assert len(hypermodel.feature_cache) == 1


def test_validation_split_with_a_clip_dataset_is_refused_named(npy_clips,
                                                               tmp_path):
    dataset = _clip_dataset(npy_clips)
    hypermodel, model, hp = _framewise(tmp_path)
    message = ("`validation_split` is only supported for NumPy arrays; make "
               "the split with clip_dataset_from_directory("
               "validation_split=..., subset='both').")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        hypermodel.fit(hp, model, dataset, validation_split=0.5, epochs=1,
                       verbose=0)


@pytest.mark.parametrize("fit_kwargs", [
    {"shuffle": "batch"}, {"sample_weight": np.ones(6)},
    {"steps_per_epoch": 2}, {"validation_steps": 1},
], ids=["shuffle_batch", "sample_weight", "steps_per_epoch",
        "validation_steps"])
def test_cached_fits_that_keep_the_arrays_still_validate(tmp_path, fit_kwargs):
    """With `fit` arguments about batches, samples or steps (most keep the
    cached features as arrays), the validation data is still validated on,
    as by `model.fit`."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (6, FRAMES, SIZE, SIZE, 3)).astype("float32")
    y = np.array([0, 1, 0, 1, 0, 1])
    val = (x[:4] + 1.0, y[:4])
    hypermodel, model, hp = _framewise(tmp_path)
    history = hypermodel.fit(hp, model, x, y, validation_data=val,
                             batch_size=2, epochs=2, verbose=0, **fit_kwargs)
    assert len(history.history["val_loss"]) == 2
    expected = model.evaluate(*val, batch_size=2, verbose=0,
                              return_dict=True,
                              steps=fit_kwargs.get("validation_steps"))
    assert history.history["val_loss"][-1] == pytest.approx(
        expected["loss"], rel=1e-4)


@pytest.mark.parametrize("objective, key", [("val_auc", "val_auc"),
                                            ("val_macro_f1", "val_macro_f1")])
def test_the_objective_metric_is_logged_for_the_tuner(tmp_path, objective,
                                                      key):
    """The tuner reads the objective from the trial's logs: the model must
    be compiled with the metric it names."""
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 255, (4, FRAMES, SIZE, SIZE, 3)).astype("float32")
    y = np.array([0, 1, 0, 1])
    hypermodel = VGG4DHyperModel(2, (FRAMES, SIZE, SIZE, 3),
                                 heads=("framewise",), objective=objective,
                                 feature_cache_dir=str(tmp_path))
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    history = hypermodel.fit(hp, model, x, y, validation_data=(x, y),
                             batch_size=2, epochs=1, verbose=0)
    assert hypermodel.objective.name == key
    assert key in history.history


def test_a_legacy_compile_override_gets_the_trial_hyperparameters(tmp_path):
    """A subclass written for 0.1 overrides `_compile(model, hp)`: it is
    called with the trial's hyperparameters."""
    seen = []
    with pytest.warns(DeprecationWarning, match="compile_model"):
        class Legacy(VGG4DHyperModel):
            def _compile(self, model, hp):
                seen.append(hp.get("learning_rate"))
                model.compile(keras.optimizers.SGD(hp.get("learning_rate")),
                              "sparse_categorical_crossentropy")

    hypermodel = Legacy(2, (FRAMES, SIZE, SIZE, 3), heads=("framewise",),
                        feature_cache_dir=str(tmp_path))
    hp = keras_tuner.HyperParameters()
    hp.Fixed("learning_rate", 0.005)
    model = hypermodel.build(hp)
    assert seen == [0.005]
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)
