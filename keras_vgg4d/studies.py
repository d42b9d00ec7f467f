"""One answer per study: clip probabilities aggregated by study or patient.

A scan gives several clips (the slice positions of a cine series, the
slices of a NIfTI volume, several series of one visit), and a patient
several scans; a clinician wants one answer per study or per patient.
`aggregate_studies` turns clip probabilities into one prediction per
study, `study_accuracy` reports it beside clip-level accuracy, and
`evaluate_studies` does both for a model and a dataset from
`clip_dataset_from_directory`, whose clips carry their study ids.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np

from keras_vgg4d.validation import check_choice
from keras_vgg4d.validation import list_some

AGGREGATIONS = ("mean", "max", "vote")
STUDY_KEYS = ("group", "study", "path")
# How far outside [0, 1] a probability may stray (float rounding).
_TOLERANCE = 1e-4

StudyPredictions = collections.namedtuple(
    "StudyPredictions",
    ["studies", "probabilities", "predictions", "labels", "clips"],
)
StudyPredictions.__doc__ = """One prediction a study, from `aggregate_studies`.

Attributes:
    studies: Study ids, in the order of their first clip.
    probabilities: float32 `(studies, classes)`, aggregated.
    predictions: int32 `(studies,)`, the class each study is given.
    labels: int32 `(studies,)` (the label its clips share), or `None`.
    clips: int32 `(studies,)`, clips of each study.
"""


def study_ids(sources: Sequence, by: str = "group") -> list[str]:
    """The study id of each clip source, to aggregate by.

    Args:
        sources: `ClipSource`s, e.g. `dataset.clip_sources`.
        by: `"group"`: the clip's group (the DICOM PatientID by default,
            or whatever `groups` made it): one answer per patient.
            `"study"`: the DICOM StudyInstanceUID (the group for clips
            without one): one answer per visit. `"path"`: the clip's file
            or series folder: one answer per NIfTI volume or per series.

    Returns:
        One string per source.

    Example:

    >>> from keras_vgg4d.data import ClipSource
    >>> from keras_vgg4d.studies import study_ids
    >>> sources = [ClipSource("p1/cine", "dicom", 0, "P1", 8, 32, 32, 1,
    ...                       study="1.2.1"),
    ...            ClipSource("p1/cine", "dicom", 0, "P1", 8, 32, 32, 1,
    ...                       study="1.2.1")]
    >>> study_ids(sources), study_ids(sources, by="study")
    (['P1', 'P1'], ['1.2.1', '1.2.1'])
    """
    check_choice("study_ids", "by", by, STUDY_KEYS)
    if by == "group":
        return [str(s.group) for s in sources]
    if by == "study":
        return [str(s.study or s.group) for s in sources]
    return [str(s.path) for s in sources]


def _class_probabilities(probabilities, owner):
    """`(clips, classes)` float probabilities; sigmoid outputs as two
    classes. `ValueError` on logits, NaN or a wrong shape."""
    p = np.asarray(probabilities, "float64")
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim == 1:  # P(class 1) of a binary classifier
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(
            f"{owner} expects probabilities of shape (clips, classes), or "
            f"(clips,) for two classes; received shape {p.shape}."
        )
    if not np.isfinite(p).all():
        raise ValueError(f"{owner} received NaN or infinite probabilities.")
    if p.min() < -_TOLERANCE or p.max() > 1 + _TOLERANCE:
        raise ValueError(
            f"{owner} expects probabilities in [0, 1]; received values from "
            f"{p.min():.3g} to {p.max():.3g}, which look like logits: apply "
            "a softmax (or sigmoid) first."
        )
    return p


def aggregate_studies(
    probabilities: np.ndarray,
    study_ids: Sequence,
    method: str = "mean",
    labels: Sequence[int] | np.ndarray | None = None,
) -> StudyPredictions:
    """One prediction per study from the probabilities of its clips.

    Args:
        probabilities: `(clips, classes)` class probabilities (e.g. from
            `model.predict`), or `(clips,)` / `(clips, 1)` of class 1 of a
            binary classifier.
        study_ids: The study (or patient) of each clip, e.g.
            `study_ids(dataset.clip_sources)`.
        method: `"mean"`: the mean of the clips' probabilities. `"max"`:
            each class's highest probability over the clips, normalized to
            sum to 1 (one confident clip decides). `"vote"`: the share of
            clips predicting each class; a tie goes to the tied class with
            the highest mean probability.
        labels: Optional label of each clip; the clips of a study must
            share one.

    Returns:
        A `StudyPredictions(studies, probabilities, predictions, labels,
        clips)`, studies in the order of their first clip.

    Example:

    >>> from keras_vgg4d.studies import aggregate_studies
    >>> probabilities = [[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]]
    >>> result = aggregate_studies(probabilities, ["a", "a", "a", "b"])
    >>> result.studies, result.predictions.tolist(), result.clips.tolist()
    (['a', 'b'], [0, 1], [3, 1])
    >>> aggregate_studies(probabilities, ["a", "a", "a", "b"],
    ...                   method="vote").predictions.tolist()
    [1, 1]
    """
    owner = "aggregate_studies"
    check_choice(owner, "method", method, AGGREGATIONS)
    p = _class_probabilities(probabilities, owner)
    ids = [str(s) for s in np.asarray(study_ids, dtype=object).reshape(-1)]
    if len(ids) != len(p):
        raise ValueError(
            f"{owner} expects one study id a clip: {len(p)} clips but "
            f"{len(ids)} study ids."
        )
    studies = list(dict.fromkeys(ids))
    of = {study: k for k, study in enumerate(studies)}
    index = np.array([of[s] for s in ids])
    counts = np.bincount(index, minlength=len(studies))
    mean = np.zeros((len(studies), p.shape[1]))
    np.add.at(mean, index, p)
    mean /= counts[:, None]
    if method == "mean":
        result = mean
    elif method == "max":
        result = np.full_like(mean, -np.inf)
        np.maximum.at(result, index, p)
        totals = result.sum(axis=1, keepdims=True)
        even = np.full_like(result, 1.0 / p.shape[1])
        result = np.divide(result, totals, out=even, where=totals > 0)
    else:
        result = np.zeros_like(mean)
        np.add.at(result, (index, p.argmax(axis=1)), 1.0)
        result /= counts[:, None]
    top = result.max(axis=1, keepdims=True)
    # Ties (votes) go to the highest mean probability among the tied.
    predictions = np.where(result >= top - 1e-12, mean, -1.0).argmax(axis=1)
    return StudyPredictions(
        studies, result.astype("float32"), predictions.astype("int32"),
        _study_labels(labels, index, studies, owner), counts.astype("int32"),
    )


def _study_labels(labels, index, studies, owner):
    if labels is None:
        return None
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(index):
        raise ValueError(
            f"{owner} expects one label a clip: {len(index)} clips but "
            f"{len(labels)} labels."
        )
    result = np.zeros(len(studies), "int32")
    mixed = []
    for k, study in enumerate(studies):
        found = np.unique(labels[index == k])
        if len(found) > 1:
            mixed.append(f"{study!r} ({found.tolist()})")
        result[k] = found[0]
    if mixed:
        raise ValueError(
            f"{owner}: the clips of a study must share one label, but study "
            f"{list_some(mixed, 5)} mix labels. Aggregate by something "
            "finer (e.g. by='study' or by='path'), or fix the labels."
        )
    return result


def study_accuracy(
    probabilities: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    study_ids: Sequence,
    method: str = "mean",
) -> dict:
    """Study-level accuracy beside clip-level accuracy.

    Args:
        probabilities: `(clips, classes)` (or binary `(clips,)`)
            probabilities, as for `aggregate_studies`.
        labels: The label of each clip.
        study_ids: The study (or patient) of each clip.
        method: `"mean"`, `"max"` or `"vote"`, as for `aggregate_studies`.

    Returns:
        A dict: `clips`, `studies` (counts), `clip_accuracy`,
        `study_accuracy`, `method`.

    Example:

    >>> from keras_vgg4d.studies import study_accuracy
    >>> probabilities = [[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]]
    >>> report = study_accuracy(probabilities, [0, 0, 0, 1],
    ...                         ["a", "a", "a", "b"])
    >>> report["clip_accuracy"], report["study_accuracy"], report["studies"]
    (0.5, 1.0, 2)
    """
    result = aggregate_studies(probabilities, study_ids, method, labels)
    clip_labels = np.asarray(labels).reshape(-1)
    clip_predictions = _class_probabilities(probabilities, "").argmax(axis=1)
    return {
        "clips": int(len(clip_labels)),
        "studies": int(len(result.studies)),
        "clip_accuracy": float(np.mean(clip_predictions == clip_labels)),
        "study_accuracy": float(np.mean(result.predictions == result.labels)),
        "method": method,
    }


def evaluate_studies(
    model,
    dataset,
    by: str = "group",
    method: str = "mean",
    verbose: int = 0,
) -> dict:
    """Predicts a dataset's clips and scores them per clip and per study.

    Args:
        model: A trained classifier (`model.predict` gives probabilities).
        dataset: A labelled dataset from `clip_dataset_from_directory`
            that yields its clips in listing order: the validation subset,
            or one made with `shuffle=False`.
        by: What a study is: `"group"` (patient), `"study"` or `"path"`;
            see `study_ids`.
        method: `"mean"`, `"max"` or `"vote"`; see `aggregate_studies`.
        verbose: Passed to `model.predict`.

    Returns:
        The dict of `study_accuracy`, and `by`.
    """
    owner = "evaluate_studies"
    sources = getattr(dataset, "clip_sources", None)
    if sources is None or getattr(dataset, "redraws_each_epoch", True):
        raise ValueError(
            f"{owner} needs a dataset from clip_dataset_from_directory that "
            "yields its clips in listing order, so that predictions match "
            "`dataset.clip_sources`: the validation subset, or one made "
            "with shuffle=False."
        )
    if any(s.label is None for s in sources):
        raise ValueError(f"{owner} needs labelled clips (labels=None gives "
                         "none).")
    ids = study_ids(sources, by)  # checks `by` before predicting
    check_choice(owner, "method", method, AGGREGATIONS)
    probabilities = model.predict(dataset, verbose=verbose)
    if len(probabilities) != len(sources):
        raise ValueError(
            f"{owner}: the model gave {len(probabilities)} predictions for "
            f"{len(sources)} clips; clips that failed to decode were left "
            "out (skip_bad=True), so predictions no longer match clips."
        )
    result = study_accuracy(
        probabilities, [s.label for s in sources], ids, method
    )
    result["by"] = by
    return result
