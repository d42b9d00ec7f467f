"""One answer per study: aggregation of clip probabilities, and its report.

Expected values are computed here by plain loops over the clips, apart
from the vectorized code under test.
"""

import re

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_vgg4d.data import ClipSource
from keras_vgg4d.studies import aggregate_studies
from keras_vgg4d.studies import evaluate_studies
from keras_vgg4d.studies import study_accuracy
from keras_vgg4d.studies import study_ids

PROBABILITIES = np.array([
    [0.7, 0.2, 0.1],   # a
    [0.1, 0.5, 0.4],   # a
    [0.2, 0.45, 0.35],  # a
    [0.05, 0.05, 0.9],  # b
    [0.7, 0.2, 0.1],   # c
    [0.1, 0.5, 0.4],   # c
])
STUDIES = ["a", "a", "a", "b", "c", "c"]


def by_loops(probabilities, studies, method):
    """Each study's aggregate, one study at a time."""
    result = {}
    for study in dict.fromkeys(studies):
        rows = np.array([p for p, s in zip(probabilities, studies)
                         if s == study])
        if method == "mean":
            result[study] = rows.mean(axis=0)
        elif method == "max":
            result[study] = rows.max(axis=0) / rows.max(axis=0).sum()
        else:
            votes = np.bincount(rows.argmax(axis=1),
                                minlength=rows.shape[1])
            result[study] = votes / len(rows)
    return result


@pytest.mark.parametrize("method", ["mean", "max", "vote"])
def test_each_method_matches_a_loop_over_studies(method):
    result = aggregate_studies(PROBABILITIES, STUDIES, method)
    expected = by_loops(PROBABILITIES, STUDIES, method)
    assert result.studies == ["a", "b", "c"]
    assert result.clips.tolist() == [3, 1, 2]
    np.testing.assert_allclose(result.probabilities,
                               np.stack(list(expected.values())), atol=1e-6)
    assert result.labels is None


def test_methods_can_disagree_and_vote_ties_go_to_the_mean():
    mean = aggregate_studies(PROBABILITIES, STUDIES, "mean").predictions
    maximum = aggregate_studies(PROBABILITIES, STUDIES, "max").predictions
    vote = aggregate_studies(PROBABILITIES, STUDIES, "vote").predictions
    # a: mean favours class 1 (0.383), one confident clip class 0 (0.7).
    assert mean.tolist() == [1, 2, 0]
    assert maximum.tolist() == [0, 2, 0]
    # c: one vote each for classes 0 and 1; the mean breaks the tie: 0.40
    # against 0.35.
    assert vote.tolist() == [1, 2, 0]


@settings(max_examples=25, deadline=None)
@given(data=st.data(), clips=st.integers(1, 12), classes=st.integers(2, 4))
def test_clip_order_never_changes_a_study_s_answer(data, clips, classes):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    probabilities = rng.dirichlet(np.ones(classes), clips)
    studies = [f"s{k}" for k in rng.integers(0, 4, clips)]
    order = rng.permutation(clips)
    method = data.draw(st.sampled_from(["mean", "max", "vote"]))
    first = aggregate_studies(probabilities, studies, method)
    second = aggregate_studies(probabilities[order],
                               [studies[k] for k in order], method)
    for study, p, y in zip(first.studies, first.probabilities,
                           first.predictions):
        k = second.studies.index(study)
        np.testing.assert_allclose(second.probabilities[k], p, atol=1e-6)
        assert second.predictions[k] == y


def test_binary_outputs_and_the_accuracy_report():
    sigmoid = np.array([0.9, 0.8, 0.3, 0.2, 0.4])  # P(class 1)
    labels = [1, 1, 1, 0, 0]
    report = study_accuracy(sigmoid, labels, ["p", "p", "p", "q", "q"])
    assert report == {
        "clips": 5, "studies": 2, "clip_accuracy": 0.8,
        "study_accuracy": 1.0, "method": "mean",
    }
    column = study_accuracy(sigmoid[:, None], labels, list("pppqq"), "vote")
    assert column["study_accuracy"] == 1.0


def test_a_study_split_into_slices_gives_one_prediction(tmp_path):
    """A cine series of 3 slice positions is 3 clips of one patient; with
    another patient's cine file, predictions come back one a patient."""
    pytest.importorskip("pydicom")
    from test_data_dicom import stored_frame
    from test_data_dicom import uid
    from test_data_dicom import write_dicom
    from test_data_dicom import write_series

    from keras_vgg4d.data import clip_dataset_from_directory

    write_series(tmp_path / "sick" / "A", positions=3, phases=2,
                 PatientID="A", StudyInstanceUID=uid(6, 1))
    write_dicom(tmp_path / "healthy" / "B.dcm",
                np.stack([stored_frame(t) for t in range(2)]),
                multi_frame=True, PatientID="B", StudyInstanceUID=uid(6, 2),
                SeriesInstanceUID=uid(6, 2, 1))
    data = clip_dataset_from_directory(
        str(tmp_path), image_size=32, frames=2, batch_size=2,
        shuffle=False, verbose=False)
    ids = study_ids(data.clip_sources)
    assert ids == ["B", "A", "A", "A"]
    assert study_ids(data.clip_sources, by="study") == [
        uid(6, 2), uid(6, 1), uid(6, 1), uid(6, 1)]
    assert len(set(study_ids(data.clip_sources, by="path"))) == 2
    model = keras.Sequential([
        keras.Input((2, 32, 32, 3)),
        keras.layers.GlobalAveragePooling3D(),
        keras.layers.Dense(2, activation="softmax"),
    ])
    report = evaluate_studies(model, data)
    assert report["clips"] == 4 and report["studies"] == 2
    assert report["by"] == "group" and report["study_accuracy"] in (
        0.0, 0.5, 1.0)
    per_patient = aggregate_studies(model.predict(data, verbose=0), ids,
                                    labels=[0, 1, 1, 1])
    assert per_patient.studies == ["B", "A"]
    assert per_patient.labels.tolist() == [0, 1]


def source(group, label=0, study=None):
    return ClipSource("clip", "npy", label, group, 4, 32, 32, 3,
                      study=study)


class _Shuffled:
    clip_sources = [source("a")]
    redraws_each_epoch = True


CASES = [
    ("method", lambda: aggregate_studies(PROBABILITIES, STUDIES, "median"),
     r"`method`.*'median'"),
    ("lengths", lambda: aggregate_studies(PROBABILITIES, STUDIES[:4]),
     r"6 clips but 4 study ids"),
    ("logits", lambda: aggregate_studies(PROBABILITIES * 10 - 3, STUDIES),
     r"look like logits: apply a softmax"),
    ("nan", lambda: aggregate_studies([[np.nan, 1.0]], ["a"]), r"NaN"),
    ("rank", lambda: aggregate_studies(np.zeros((2, 2, 2)), ["a", "b"]),
     r"shape \(clips, classes\).*\(2, 2, 2\)"),
    ("mixed_labels", lambda: study_accuracy(
        PROBABILITIES, [0, 1, 0, 2, 0, 0], STUDIES),
     r"study 'a' \(\[0, 1\]\) mix labels.*by='study'"),
    ("labels_length", lambda: study_accuracy(PROBABILITIES, [0], STUDIES),
     r"6 clips but 1 labels"),
    ("by", lambda: study_ids([source("a")], by="patient"),
     r"`by`.*'patient'"),
    ("shuffled_dataset", lambda: evaluate_studies(None, _Shuffled()),
     r"listing order.*shuffle=False"),
    ("not_a_clip_dataset", lambda: evaluate_studies(None, [1, 2]),
     r"clip_dataset_from_directory"),
]


@pytest.mark.parametrize("call, pattern", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_named(call, pattern):
    with pytest.raises(ValueError) as raised:
        call()
    assert re.search(pattern, str(raised.value), re.S), str(raised.value)
