"""Search objectives, their metrics and class weights."""

import keras_tuner
import numpy as np
import pytest

from keras_vgg4d.class_weight import balanced_class_weight
from keras_vgg4d.class_weight import resolve_class_weight
from keras_vgg4d.hypermodel import VGG4DHyperModel
from keras_vgg4d.metrics import OBJECTIVES
from keras_vgg4d.metrics import SparseAUC
from keras_vgg4d.metrics import SparseMacroF1

CLIP_SHAPE = (3, 32, 32, 3)


@pytest.mark.parametrize(
    "name, direction",
    [("val_accuracy", "max"), ("val_loss", "min"), ("val_auc", "max"),
     ("val_macro_f1", "max")],
)
def test_each_objective_has_its_direction_and_metric(name, direction):
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, objective=name)
    assert hypermodel.objective.name == name
    assert hypermodel.objective.direction == direction
    model = hypermodel.build(keras_tuner.HyperParameters())
    x = np.random.default_rng(0).uniform(0, 255, (4, *CLIP_SHAPE))
    logs = model.evaluate(x, np.array([0, 1, 2, 0]), return_dict=True,
                          verbose=0)
    assert name.removeprefix("val_") in logs
    assert set(OBJECTIVES) == {"val_accuracy", "val_loss", "val_auc",
                               "val_macro_f1"}


def test_macro_f1_scores_the_majority_answer_low_where_accuracy_is_high():
    labels = np.array([0] * 8 + [1, 2])
    always_zero = np.tile([0.8, 0.1, 0.1], (10, 1))
    f1 = SparseMacroF1(3)
    f1.update_state(labels, always_zero)
    # Class 0: precision 0.8, recall 1 -> F1 0.889; classes 1 and 2: 0.
    assert float(f1.result()) == pytest.approx(0.889 / 3, abs=1e-3)


def test_sparse_auc_equals_the_mean_one_vs_rest_auc():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    probabilities = rng.dirichlet([1, 1, 1], 200)
    probabilities[np.arange(200), labels] += 0.3
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    auc = SparseAUC(3, name="auc")
    auc.update_state(labels, probabilities)

    def rank_auc(scores, positive):
        # Mann-Whitney U / (n_pos * n_neg).
        order = scores.argsort().argsort() + 1
        n_pos = positive.sum()
        n_neg = len(positive) - n_pos
        return (order[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)

    expected = np.mean([rank_auc(probabilities[:, c], labels == c)
                        for c in range(3)])
    assert float(auc.result()) == pytest.approx(expected, abs=5e-3)


def test_balanced_weights_equalize_the_classes():
    labels = np.array([0] * 6 + [1] * 3 + [2])
    weights = balanced_class_weight(labels, 3)
    assert weights == pytest.approx({0: 10 / 18, 1: 10 / 9, 2: 10 / 3})
    weighted_counts = [weights[c] * np.sum(labels == c) for c in range(3)]
    assert weighted_counts == pytest.approx([10 / 3] * 3)


def test_a_dict_of_class_weights_is_completed_with_ones():
    assert resolve_class_weight({2: 0.5}, None, 3) == {0: 1.0, 1: 1.0, 2: 0.5}
    assert resolve_class_weight(None, [0, 1], 2) is None


@pytest.mark.parametrize(
    "class_weight, labels, match",
    [
        ("balanced", [0, 0, 1], r"class\(es\) \[2\] have none"),
        ({3: 1.0}, None, r"class 3.*\[0, 3\)"),
        ({1: -1.0}, None, r"class 1.*-1\.0.*>= 0"),
        ({1: float("nan")}, None, r"class 1.*nan"),
        ("inverse", None, r"'balanced'.*class_weight='inverse'"),
        ([1.0, 2.0], None, r"dict.*list"),
    ],
)
def test_bad_class_weights_are_named(class_weight, labels, match):
    with pytest.raises(ValueError, match=match):
        resolve_class_weight(class_weight, labels, 3)


def test_a_search_optimizes_macro_f1(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, *CLIP_SHAPE)).astype("float32")
    y = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, heads=("framewise",),
                                 objective="val_macro_f1",
                                 class_weight="balanced")
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective=hypermodel.objective, max_trials=1,
        directory=str(tmp_path),
    )
    tuner.search(x, y, validation_data=(x, y), epochs=1, batch_size=4,
                 verbose=0)
    trial = tuner.oracle.get_best_trials(1)[0]
    assert trial.score == pytest.approx(
        trial.metrics.get_last_value("val_macro_f1"))


@pytest.mark.parametrize("metric_class", [SparseAUC, SparseMacroF1])
def test_metrics_round_trip_through_their_config(metric_class):
    import keras

    metric = metric_class(4, name="m")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(metric))
    assert type(restored) is metric_class
    assert restored.num_classes == 4 and restored.name == "m"
