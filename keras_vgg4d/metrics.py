"""Metrics for integer labels and softmax probabilities, and search objectives.

Keras' `F1Score` and `AUC` read one-hot labels; the classifier is trained
on integer labels. These subclasses one-hot the labels first and are
otherwise Keras' own. `OBJECTIVES` names what a search may optimize, with
the direction Keras Tuner needs.
"""

from __future__ import annotations

import keras
from keras import ops

# Search objectives, defined where vgg4d-tune's command line is read.
from keras_vgg4d_cli import OBJECTIVES  # noqa: F401


class _FromIntegerLabels:
    """Mixin: one-hot integer labels before a one-hot Keras metric reads
    them. Sets `num_classes`, which the config holds."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        y_true = ops.one_hot(y_true, self.num_classes, dtype=self.dtype)
        return super().update_state(y_true, y_pred, sample_weight)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name,
                "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class SparseMacroF1(_FromIntegerLabels, keras.metrics.F1Score):
    """Macro-averaged F1 of integer labels against class probabilities.

    The unweighted mean of the per-class F1 scores: on imbalanced data, a
    model that always answers the majority class scores low, where its
    accuracy would be high. The predicted class is the most probable one.

    Args:
        num_classes: Number of classes.
        name: Name of the metric.
        dtype: Dtype of the metric's result.

    Example:

    >>> from keras_vgg4d.metrics import SparseMacroF1
    >>> metric = SparseMacroF1(num_classes=2)
    >>> metric.update_state([0, 0, 0, 1], [[.9, .1], [.8, .2], [.7, .3], [.6, .4]])
    >>> round(float(metric.result()), 3)  # F1 0.857 for class 0, 0 for 1
    0.429
    """

    def __init__(self, num_classes: int, name: str = "macro_f1", dtype=None):
        super().__init__(average="macro", name=name, dtype=dtype)
        self.num_classes = num_classes


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class SparseAUC(_FromIntegerLabels, keras.metrics.AUC):
    """ROC AUC of integer labels against class probabilities.

    One-vs-rest AUC of each class, averaged over the classes (Keras'
    `AUC(multi_label=True)` on one-hot labels). With two classes it is the
    usual binary AUC (the mean of two equal AUCs).

    Args:
        num_classes: Number of classes.
        name: Name of the metric.
        dtype: Dtype of the metric's result.

    Example:

    >>> from keras_vgg4d.metrics import SparseAUC
    >>> metric = SparseAUC(num_classes=2)
    >>> metric.update_state([0, 1, 1], [[.9, .1], [.4, .6], [.3, .7]])
    >>> float(metric.result())
    1.0
    """

    def __init__(self, num_classes: int, name: str = "auc", dtype=None):
        super().__init__(
            multi_label=True, num_labels=num_classes, name=name, dtype=dtype
        )
        self.num_classes = num_classes


def objective_metrics(num_classes: int) -> list:
    """The metrics a classifier is compiled with: every objective's."""
    return [
        "accuracy",
        SparseAUC(num_classes, name="auc"),
        SparseMacroF1(num_classes, name="macro_f1"),
    ]
