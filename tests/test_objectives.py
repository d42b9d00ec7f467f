"""Search objectives, their metrics and class weights."""

import keras
import keras_tuner
import numpy as np
import pytest

from keras_vgg4d.class_weight import balanced_class_weight
from keras_vgg4d.class_weight import resolve_class_weight
from keras_vgg4d.hypermodel import VGG4DHyperModel
from keras_vgg4d.metrics import OBJECTIVES
from keras_vgg4d.metrics import SparseAUC
from keras_vgg4d.metrics import SparseMacroF1
from keras_vgg4d.metrics import objective_metrics

pytestmark = pytest.mark.backends

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
    # Accuracy, and the objective's own metric: no other metric's cost.
    assert set(logs) == {"loss", "accuracy", name.removeprefix("val_")}
    assert isinstance(model.optimizer, keras.optimizers.Adam)
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


@pytest.mark.slow
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
    metric = metric_class(4, name="m")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(metric))
    assert type(restored) is metric_class
    assert restored.num_classes == 4 and restored.name == "m"


# --- class weights: what each rule must and must not accept ------------------


def test_balanced_weights_take_labels_of_any_shape_and_order():
    """Labels as a column, a list or NumPy ints weigh the same: a class's
    weight is n / (classes * count) however the labels come."""
    labels = np.array([2, 0, 0, 1, 0, 0])
    expected = {c: 6 / (3 * np.sum(labels == c)) for c in range(3)}
    for given in (labels, labels[:, None], labels.tolist(),
                  labels.astype("uint8")):
        assert balanced_class_weight(given, 3) == pytest.approx(expected)


def test_balanced_weights_name_every_missing_class_and_the_fix():
    labels = [1, 1, 3, 1]
    message = (r"^class_weight='balanced' needs a clip of every class; "
               r"class\(es\) \[0, 2\] have none among the 4 training labels\. "
               r"Pass a dict of weights instead\.$")
    with pytest.raises(ValueError, match=message):
        balanced_class_weight(labels, 4)


def test_balanced_weights_are_read_from_a_callable_only_when_needed():
    """`fit` passes the labels as a callable: reading a dataset's labels
    costs a pass over it, so only "balanced" may call it."""
    calls = []

    def labels():
        calls.append(1)
        return [0, 1, 1, 1]

    assert resolve_class_weight({1: 2.0}, labels, 2) == {0: 1.0, 1: 2.0}
    assert resolve_class_weight(None, labels, 2) is None
    assert calls == []
    assert resolve_class_weight("balanced", labels, 2) == pytest.approx(
        {0: 2.0, 1: 2 / 3})
    assert calls == [1]
    # The same labels given directly weigh the same.
    assert resolve_class_weight("balanced", labels(), 2) == pytest.approx(
        {0: 2.0, 1: 2 / 3})


@pytest.mark.parametrize("weight", [0, 0.0, 0.25, 3, np.float32(1.5),
                                    np.int64(2)])
def test_any_finite_weight_at_least_zero_is_kept_as_a_float(weight):
    """Zero (ignore a class) and integer weights are valid; NumPy scalar
    keys and weights come back as Python ones."""
    weights = resolve_class_weight({np.int64(1): weight}, None, 3)
    assert weights == {0: 1.0, 1: float(weight), 2: 1.0}
    assert all(type(k) is int and type(v) is float for k, v in weights.items())


_ANY_CLASS = (r"^class_weight must be None, 'balanced' or a dict from class "
              r"index to weight; received ")


@pytest.mark.parametrize(
    "class_weight, message",
    [
        ("inverse", _ANY_CLASS + r"class_weight='inverse'$"),
        ("Balanced", _ANY_CLASS + r"class_weight='Balanced'$"),
        ([1.0, 2.0], _ANY_CLASS + r"list$"),
        (2.0, _ANY_CLASS + r"float$"),
        ({True: 2.0}, r"^class_weight names class True, which is not a class "
                      r"index in \[0, 3\)$"),
        ({-1: 2.0}, r"^class_weight names class -1, which is not a class "
                    r"index in \[0, 3\)$"),
        ({"1": 2.0}, r"^class_weight names class '1', which is not a class "
                     r"index in \[0, 3\)$"),
        ({1: "2"}, r"^class_weight gives class 1 the weight '2'; weights must "
                   r"be finite numbers >= 0$"),
        ({1: float("inf")}, r"^class_weight gives class 1 the weight inf; "
                            r"weights must be finite numbers >= 0$"),
        ({0: -0.5}, r"^class_weight gives class 0 the weight -0\.5; weights "
                    r"must be finite numbers >= 0$"),
        ({2: True}, r"^class_weight gives class 2 the weight True; weights "
                    r"must be finite numbers >= 0$"),
    ],
)
def test_a_wrong_class_weight_message_names_what_was_received(class_weight,
                                                               message):
    """The whole message: what is accepted, and what was received."""
    with pytest.raises(ValueError, match=message):
        resolve_class_weight(class_weight, [0, 1, 2], 3)


# --- integer-label metrics are Keras' one-hot metrics ------------------------


def _scores(n=60, classes=3, seed=0):
    """Labels, class scores in [0, 1] and sample weights.

    Each class's score is informative but imperfect, and class 0's scores
    are all raised: its one-vs-rest AUC is unchanged by that, but pooling
    every class's scores (a micro average) is not.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    scores = rng.uniform(0.0, 0.3, (n, classes))
    scores[np.arange(n), labels] += 0.2
    scores[:, 0] += 0.25
    weights = rng.uniform(0.0, 3.0, n)
    return labels, scores.astype("float32"), weights.astype("float32")


ONE_HOT_TWINS = {
    SparseMacroF1: lambda n: keras.metrics.F1Score(average="macro"),
    SparseAUC: lambda n: keras.metrics.AUC(multi_label=True, num_labels=n),
}


@pytest.mark.parametrize("metric_class", [SparseMacroF1, SparseAUC])
def test_integer_labels_score_as_keras_scores_their_one_hot(metric_class):
    """Labels as ints (a vector or a column), with or without sample
    weights: the Keras metric on one-hot labels gives the same value."""
    labels, probabilities, weights = _scores()
    one_hot = np.eye(3, dtype="float32")[labels]
    for sample_weight in (None, weights):
        expected = ONE_HOT_TWINS[metric_class](3)
        expected.update_state(one_hot, probabilities, sample_weight)
        for given in (labels, labels[:, None].astype("float32")):
            metric = metric_class(3)
            metric.update_state(given, probabilities, sample_weight)
            assert float(metric.result()) == pytest.approx(
                float(expected.result()), abs=1e-6)
    unweighted = metric_class(3)
    unweighted.update_state(labels, probabilities)
    assert abs(float(unweighted.result()) - float(metric.result())) > 0.01


def test_sparse_auc_averages_the_classes_rather_than_pooling_them():
    labels, probabilities, _ = _scores()
    macro, pooled = SparseAUC(3), keras.metrics.AUC()
    macro.update_state(labels, probabilities)
    pooled.update_state(np.eye(3)[labels], probabilities)
    assert abs(float(macro.result()) - float(pooled.result())) > 0.05


def test_macro_f1_averages_the_classes_to_one_number():
    labels, probabilities, _ = _scores()
    per_class = np.array([
        2 * np.sum((labels == c) & (probabilities.argmax(1) == c))
        / (np.sum(labels == c) + np.sum(probabilities.argmax(1) == c))
        for c in range(3)])
    metric = SparseMacroF1(3)
    metric.update_state(labels, probabilities)
    assert np.shape(metric.result()) == ()
    assert float(metric.result()) == pytest.approx(per_class.mean(), abs=1e-5)


def test_sparse_auc_holds_its_state_from_construction():
    """Keras' multi-label AUC builds its state on the first batch unless it
    is told the number of labels; SparseAUC tells it, so its per-class
    counts exist at once and read as 0 before any batch and after a reset."""
    metric = SparseAUC(4)
    assert [tuple(v.shape) for v in metric.variables] == [
        (metric.num_thresholds, 4)] * 4
    assert float(metric.result()) == 0.0
    labels, scores, _ = _scores(classes=4)
    metric.update_state(labels, scores)
    assert float(metric.result()) > 0.5
    metric.reset_state()
    assert float(metric.result()) == 0.0


@pytest.mark.parametrize("metric_class", [SparseMacroF1, SparseAUC])
def test_metric_names_and_dtypes_survive_their_config(metric_class):
    """Default names are the ones the objectives read ("val_" + name), and
    a non-default dtype is kept through `get_config`."""
    assert "val_" + metric_class(3).name in OBJECTIVES
    metric = metric_class(5, name="score", dtype="float64")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(metric))
    assert (restored.num_classes, restored.name, restored.dtype) == (
        5, "score", "float64")


@pytest.mark.skipif(
    keras.backend.backend() == "jax",
    reason="JAX computes float64 as float32 unless jax_enable_x64 is set",
)
def test_macro_f1_computes_in_its_dtype():
    labels, probabilities, _ = _scores()
    metric = SparseMacroF1(3, dtype="float64")
    metric.update_state(labels, probabilities)
    assert metric.result().dtype == "float64"


def test_objective_metrics_log_every_objective():
    """A model compiled with `objective_metrics` logs each objective's
    metric, and each is the integer-label metric of its name."""
    labels, _, _ = _scores(n=12)
    x = np.random.default_rng(1).normal(size=(12, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy",
                  metrics=objective_metrics(3))
    history = model.fit(x, labels, validation_data=(x, labels), epochs=1,
                        batch_size=12, verbose=0)
    assert set(OBJECTIVES) <= set(history.history)
    probabilities = model.predict(x, verbose=0)
    for metric_class, name in ((SparseAUC, "auc"), (SparseMacroF1, "macro_f1")):
        metric = metric_class(3)
        metric.update_state(labels, probabilities)
        assert history.history[f"val_{name}"][0] == pytest.approx(
            float(metric.result()), abs=1e-5)
