"""Class weights for imbalanced labels: `"balanced"` or a checked dict."""

from __future__ import annotations

import numpy as np

from keras_vgg4d.validation import is_number


def balanced_class_weight(labels, num_classes: int) -> dict[int, float]:
    """Weights that make every class count as much in the loss.

    Class `c` gets `n / (num_classes * count(c))`, scikit-learn's
    `"balanced"` rule: the weighted counts are equal and sum to `n`.

    Args:
        labels: Integer labels `(n,)`.
        num_classes: Number of classes.

    Returns:
        A dict from class index to weight, for `fit(class_weight=...)`.

    Raises:
        ValueError: if a class has no clip.

    Example:

    >>> from keras_vgg4d.class_weight import balanced_class_weight
    >>> balanced_class_weight([0, 0, 0, 1], num_classes=2)
    {0: 0.6666666666666666, 1: 2.0}
    """
    labels = np.asarray(labels).reshape(-1).astype("int64")
    counts = np.bincount(labels, minlength=num_classes)[:num_classes]
    missing = np.flatnonzero(counts == 0)
    if len(missing):
        raise ValueError(
            f"class_weight='balanced' needs a clip of every class; class(es) "
            f"{missing.tolist()} have none among the {len(labels)} training "
            "labels. Pass a dict of weights instead."
        )
    return {
        c: len(labels) / (num_classes * float(counts[c]))
        for c in range(num_classes)
    }


def resolve_class_weight(class_weight, labels, num_classes: int):
    """`class_weight` as `fit` takes it: `None`, or a dict of every class.

    Args:
        class_weight: `None`, `"balanced"` (from `labels`), or a dict from
            class index to a weight >= 0; classes left out weigh 1.
        labels: Integer training labels, read for `"balanced"` only; a
            callable returning them is called only then.
        num_classes: Number of classes.

    Raises:
        ValueError: naming the class or the weight that is wrong.
    """
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                "class_weight must be None, 'balanced' or a dict from class "
                f"index to weight; received class_weight={class_weight!r}"
            )
        return balanced_class_weight(
            labels() if callable(labels) else labels, num_classes
        )
    if not isinstance(class_weight, dict):
        raise ValueError(
            "class_weight must be None, 'balanced' or a dict from class index "
            f"to weight; received {type(class_weight).__name__}"
        )
    weights = {c: 1.0 for c in range(num_classes)}
    for key, weight in class_weight.items():
        if key not in weights or isinstance(key, bool):
            raise ValueError(
                f"class_weight names class {key!r}, which is not a class "
                f"index in [0, {num_classes})"
            )
        if not is_number(weight) or not np.isfinite(weight) or weight < 0:
            raise ValueError(
                f"class_weight gives class {key} the weight {weight!r}; "
                "weights must be finite numbers >= 0"
            )
        weights[int(key)] = float(weight)
    return weights
