"""Searches repeat: one seed and one data set give one leaderboard.

`VGG4DHyperModel(seed=...)` seeds every trial from the seed and the trial's
hyperparameter values, so a trial trains the same whatever ran before it;
`vgg4d-tune --seed` passes its seed on.
"""

import json
import random

import keras
import keras_tuner
import numpy as np
import pytest

from keras_vgg4d.hypermodel import VGG4DHyperModel
from search_testing import split_clips
from search_testing import trial

CLIP_SHAPE = (2, 32, 32, 3)


@pytest.fixture(scope="module")
def clips():
    return split_clips(12, 8)


def head_weights(model):
    return [np.asarray(w) for w in model.head.get_weights()]


def kernels(model):
    return np.concatenate([w.ravel() for w in head_weights(model)])


def train(hypermodel, hp, clips):
    x, y, x_val, y_val = clips
    model = hypermodel.build(hp)
    history = hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val),
                             epochs=2, batch_size=4, verbose=0)
    return history.history, head_weights(model)


def test_a_trial_trains_the_same_whatever_ran_before_it(clips):
    # The dropout makes the trial draw masks, and the batches are shuffled.
    first = trial("framewise", framewise_units=64, dropout=0.3)
    alone, alone_weights = train(VGG4DHyperModel(3, CLIP_SHAPE, seed=7),
                                 first, clips)

    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, seed=7)
    # Another trial first: it computes the cached features, draws its own.
    train(hypermodel, trial("framewise", framewise_units=256, dropout=0.1),
          clips)
    # Whatever else draws from the global generators in between.
    random.random(), np.random.rand(3), keras.utils.set_random_seed(99)
    before = hypermodel.trial_seed(first)
    after, after_weights = train(hypermodel, first, clips)

    assert after.keys() == alone.keys()
    for name in alone:
        np.testing.assert_allclose(after[name], alone[name], atol=1e-6)
    for a, b in zip(after_weights, alone_weights):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # Trained again (Keras Tuner's `executions_per_trial`), the trial runs
    # from another seed.
    assert hypermodel.trial_seed(first) != before


def test_a_trial_seed_follows_the_seed_and_the_values():
    hp = trial("framewise", framewise_units=64)
    seeded = VGG4DHyperModel(3, CLIP_SHAPE, seed=7)
    assert VGG4DHyperModel(3, CLIP_SHAPE).trial_seed(hp) is None
    assert seeded.trial_seed(hp) == VGG4DHyperModel(
        3, CLIP_SHAPE, seed=7).trial_seed(trial("framewise",
                                                framewise_units=64))
    assert seeded.trial_seed(hp) != seeded.trial_seed(
        trial("framewise", framewise_units=256))
    assert seeded.trial_seed(hp) != seeded.trial_seed(hp, "fit")

    # The same trial built again gets the same model, whatever was drawn
    # in between; under another seed, another one.
    weights = kernels(seeded.build(hp))
    keras.utils.set_random_seed(99)
    np.testing.assert_array_equal(kernels(seeded.build(hp)), weights)
    other = kernels(VGG4DHyperModel(3, CLIP_SHAPE, seed=8).build(hp))
    assert not np.allclose(weights, other)


def test_a_bad_seed_is_named():
    with pytest.raises(ValueError, match="seed"):
        VGG4DHyperModel(3, CLIP_SHAPE, seed=-1)


@pytest.mark.slow
@pytest.mark.tensorflow
def test_a_search_repeats(tmp_path, capsys):
    from keras_vgg4d.tuning import search

    def leaderboard(name):
        directory = tmp_path / name
        assert search.main([
            "--max-trials", "2", "--epochs", "2", "--num-clips", "24",
            "--frames", "3", "--image-size", "32", "--weights", "none",
            "--seed", "0", "--directory", str(directory), "--quiet",
        ]) == 0
        project = directory / "search"
        rows = json.loads((project / "results.json").read_text())
        curves = {row["trial"]: json.loads(
            (project / f"trial_{row['trial']}" / "history.json").read_text())
            for row in rows}
        return rows, curves, (project / "report.md").read_text()

    rows, curves, report = leaderboard("first")
    again, curves_again, _ = leaderboard("again")
    assert again[0]["trial"] == rows[0]["trial"]  # the same best trial
    for row, other in zip(rows, again):
        assert other["trial"] == row["trial"]
        assert other["hyperparameters"] == row["hyperparameters"]
        assert other["score"] == pytest.approx(row["score"], abs=1e-6)
    # Every epoch of every trial, not only the (coarse) accuracy.
    for name, curve in curves.items():
        for metric, values in curve.items():
            np.testing.assert_allclose(curves_again[name][metric], values,
                                       atol=1e-6)
    # The report says what the scores came from.
    settings = report.split("## Settings")[1].split("\n## ")[0]
    for line in ("| seed | 0 |", "| deterministic ops | off |",
                 f"| keras | {keras.__version__} |",
                 f"| keras_tuner | {keras_tuner.__version__} |",
                 f"| numpy | {np.__version__} |", "| backend | tensorflow "):
        assert line in settings
    assert "| feature precision | " in settings
