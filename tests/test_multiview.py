"""Multi-view answers: where views lie, and that answers are their mean.

Most tests use `Recorder`, a stand-in model that keeps every view it is
given and answers from the view's pixels, so the views themselves are
checked (which frames, which crop, padded or not), and the mean is
recomputed here from what it saw. One tiny `VGG4DClassifier` checks the
mean against `model.predict` on views cut by hand.
"""

import collections
import math
import re

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import keras_vgg4d
from keras_vgg4d import VGG4DClassifier
from keras_vgg4d.data import ClipSource
from keras_vgg4d.data import clip_dataset_from_directory
from keras_vgg4d.data import index_clip_directory
from keras_vgg4d.data import sample_frame_indices
from keras_vgg4d.multiview import multiview_accuracy
from keras_vgg4d.multiview import predict_sources
from keras_vgg4d.multiview import predict_studies
from keras_vgg4d.multiview import predict_views
from keras_vgg4d.multiview import spatial_crops
from keras_vgg4d.multiview import view_frame_indices
from keras_vgg4d.multiview import view_windows
from video_testing import read_indices
from video_testing import write_frame_folder
from video_testing import write_index_video
from video_testing import write_npy

pytestmark = pytest.mark.backends


class Recorder:
    """A model that keeps the views it predicts (time-major) and answers
    `[1 - v, v]`, `v` the view's mean of channel 0 over 255."""

    def __init__(self, time_axis=1, mask_padded_frames=True):
        self.time_axis = time_axis
        self.mask_padded_frames = mask_padded_frames
        self.views = []
        self.calls = 0

    def predict(self, x, batch_size=None, verbose=0):
        x = np.asarray(x, "float32")
        if self.time_axis == -1:
            x = np.moveaxis(x, -1, 1)
        self.views.extend(x)
        self.calls += 1
        v = np.clip(x[..., 0].reshape(len(x), -1).mean(axis=1) / 255, 0, 1)
        return np.stack([1 - v, v], axis=1)


def coded_clips(n, frames, height=40, width=48):
    """float32 clips whose pixels tell where they are: channel 0 the frame
    (10 * (t + 1)) plus the clip (i), channel 1 the row, channel 2 the
    column."""
    t, h, w = np.meshgrid(np.arange(frames), np.arange(height),
                          np.arange(width), indexing="ij")
    clip = np.stack([10.0 * (t + 1), h, w], axis=-1).astype("float32")
    return np.stack([clip + np.array([i, 0, 0], "float32")
                     for i in range(n)])


def frames_of(view):
    """The frame index each frame of a recorded view shows; -1: padding."""
    codes = view[:, 0, 0, 0]
    return [int(c // 10) - 1 if c else -1 for c in codes]


def box_of(view):
    """`(top, left, height, width)` of a recorded view's crop."""
    return (int(view[0, 0, 0, 1]), int(view[0, 0, 0, 2]), *view.shape[1:3])


def view_mean(views, owners, count):
    """Each clip's mean of `Recorder`'s answers on its views."""
    answers = Recorder().predict(np.stack(views))
    sums = np.zeros((count, 2))
    np.add.at(sums, owners, answers)
    return sums / np.bincount(owners, minlength=count)[:, None]


# --- where views lie -------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 60), window=st.integers(1, 20),
       num_windows=st.integers(1, 12), frame_step=st.integers(1, 3))
def test_windows_stay_inside_evenly_spaced_from_start_to_end(
    length, window, num_windows, frame_step
):
    starts = view_windows(length, window, num_windows, frame_step)
    span = (window - 1) * frame_step + 1
    spare = length - span
    if spare <= 0:
        assert starts.tolist() == [0]  # one window, padded
        return
    assert starts.dtype == np.int64
    assert len(starts) == min(num_windows, spare + 1)
    assert starts.min() >= 0 and starts.max() + span <= length
    assert len(set(starts.tolist())) == len(starts)
    if num_windows == 1:  # centred, as validation samples it
        expected = sample_frame_indices(length, window, "random", frame_step)
        assert starts[0] == expected[0]
        return
    assert starts[0] == 0 and starts[-1] == spare  # the clip's both ends
    gaps = np.diff(starts)
    assert gaps.max() - gaps.min() <= 1  # evenly spaced, to a frame
    np.testing.assert_allclose(starts, np.linspace(0, spare, len(starts)),
                               atol=0.5)


def test_windows_of_a_few_lengths():
    assert view_windows(16, 8, 3).tolist() == [0, 4, 8]
    assert view_windows(16, 8, 5).tolist() == [0, 2, 4, 6, 8]
    assert view_windows(17, 8, 4).tolist() == [0, 3, 6, 9]
    assert view_windows(10, 8, 10).tolist() == [0, 1, 2]
    assert view_windows(8, 8, 3).tolist() == [0]
    assert view_windows(20, 4, 2, frame_step=3).tolist() == [0, 10]


@pytest.mark.parametrize("length, frames, num_windows", [
    (12, 3, 2), (12, 3, 4), (13, 4, 3), (40, 8, 5), (8, 4, 9),
])
def test_segment_views_sweep_every_segment(length, frames, num_windows):
    views = view_frame_indices(length, frames, num_windows, "segments")
    edges = np.floor(np.arange(frames + 1) * length / frames)
    assert len(views) == min(num_windows, int(np.diff(edges).min()))
    for view in views:  # one frame in each segment
        assert ((view >= edges[:-1]) & (view < edges[1:])).all()
    assert len({tuple(v) for v in views}) == len(views)
    first = np.stack(views)[:, 0]
    assert (np.diff(first) > 0).all()  # view k lies later than view k - 1
    one = view_frame_indices(length, frames, 1, "segments")
    np.testing.assert_array_equal(
        one[0], sample_frame_indices(length, frames, "segments"))


def test_segment_views_take_the_lower_frame_on_a_tie():
    # Segments of 4 frames, two views: the centres of their halves fall
    # between frames 0 and 1, 2 and 3; the lower one, as the centre of a
    # segment of sample_frame_indices.
    views = view_frame_indices(16, 4, 2, "segments")
    assert [v.tolist() for v in views] == [[0, 4, 8, 12], [2, 6, 10, 14]]
    views = view_frame_indices(15, 3, 3, "segments")  # segments of 5
    assert [v.tolist() for v in views] == [[0, 5, 10], [2, 7, 12],
                                           [4, 9, 14]]


def test_uniform_and_short_clips_give_one_view():
    (view,) = view_frame_indices(20, 4, 5, "uniform")
    assert view.tolist() == sample_frame_indices(20, 4, "uniform").tolist()
    (view,) = view_frame_indices(3, 5, 4)
    assert view.tolist() == [0, 1, 2]  # padded by the caller
    (view,) = view_frame_indices(3, 5, 4, short_clips="loop")
    assert view.tolist() == [0, 1, 2, 0, 1]


@pytest.mark.parametrize("height, width, crops, crop_size, expected", [
    (40, 48, 1, None, [(0, 0, 40, 48)]),  # one view: the whole frame
    (40, 48, 1, 32, [(4, 8, 32, 32)]),
    (40, 48, 3, None, [(0, 0, 40, 40), (0, 4, 40, 40), (0, 8, 40, 40)]),
    (48, 40, 3, None, [(0, 0, 40, 40), (4, 0, 40, 40), (8, 0, 40, 40)]),
    (40, 48, 3, 32, [(4, 0, 32, 32), (4, 8, 32, 32), (4, 16, 32, 32)]),
    (41, 48, 3, (33, 40), [(4, 0, 33, 40), (4, 4, 33, 40), (4, 8, 33, 40)]),
    (40, 40, 3, 32, [(4, 0, 32, 32), (4, 4, 32, 32), (4, 8, 32, 32)]),
    (41, 49, 1, 32, [(4, 8, 32, 32)]),  # odd margins: floor, as CenterCrop
    (32, 32, 3, None, [(0, 0, 32, 32)]),  # three crops coincide: one
])
def test_crop_positions(height, width, crops, crop_size, expected):
    boxes = spatial_crops(height, width, crops, crop_size)
    assert [tuple(b) for b in boxes.tolist()] == expected


# --- clips in memory ---------------------------------------------------------


@pytest.fixture(scope="module")
def vgg():
    keras.utils.set_random_seed(7)
    return VGG4DClassifier(3, "lstm", weights=None,
                           head_options={"units": 4})


# VGG19 costs about 20 s to compile under JAX on the CI's CPU; the views and
# their mean are checked on every backend with `Recorder`.
@pytest.mark.tensorflow
def test_the_answer_is_the_mean_of_predict_over_the_views(vgg):
    rng = np.random.default_rng(0)
    clips = rng.uniform(0, 255, (2, 4, 40, 48, 3)).astype("float32")
    # Whole clips first: the views then come at another frame size, which
    # TensorFlow's `predict` once refused (frame sizes relaxed to None).
    whole = vgg.predict(clips, verbose=0)
    probabilities = predict_views(vgg, clips, window=2, num_windows=2,
                                  crops=3, crop_size=32, batch_size=6,
                                  verbose=0)
    cut = [clips[:, s: s + 2, top: top + 32, left: left + 32]
           for s in (0, 2) for top, left in ((4, 0), (4, 8), (4, 16))]
    # One batch shape for both, so JAX compiles the model once.
    views = vgg.predict(np.concatenate(cut), batch_size=6, verbose=0)
    views = views.reshape(len(cut), 2, -1)
    assert probabilities.shape == (2, 3) and probabilities.dtype == "float32"
    np.testing.assert_allclose(probabilities, views.mean(axis=0), atol=1e-5)
    # The views differ: one view alone is not the answer.
    assert np.abs(views[0] - views.mean(axis=0)).max() > 1e-4
    np.testing.assert_allclose(predict_views(vgg, clips, verbose=0), whole,
                               atol=1e-5)


def test_by_default_a_clip_is_one_view_of_itself():
    model = Recorder()
    clips = coded_clips(2, 5)
    predict_views(model, clips, num_windows=4, verbose=0)
    np.testing.assert_array_equal(np.stack(model.views), clips)


def test_windows_and_crops_of_each_clip():
    model = Recorder()
    clips = coded_clips(2, 10)
    probabilities = predict_views(model, clips, window=4, num_windows=3,
                                  crops=3, batch_size=5, verbose=0)
    assert len(model.views) == 2 * 3 * 3
    seen = collections.defaultdict(set)
    for view in model.views:
        clip = int(view[0, 0, 0, 0]) % 10
        seen[clip].add((tuple(frames_of(view)), box_of(view)))
    expected = {
        (tuple(range(s, s + 4)), (0, left, 40, 40))
        for s in (0, 3, 6) for left in (0, 4, 8)
    }
    assert seen == {0: expected, 1: expected}
    owners = [int(v[0, 0, 0, 0]) % 10 for v in model.views]
    np.testing.assert_allclose(probabilities,
                               view_mean(model.views, owners, 2), atol=1e-6)
    assert model.calls == math.ceil(18 / 5)


def test_batch_size_and_layout_do_not_change_answers():
    clips = coded_clips(3, 6)
    answers = predict_views(Recorder(), clips, window=3, num_windows=2,
                            verbose=0)
    for batch_size in (1, 4, 64):
        np.testing.assert_allclose(
            predict_views(Recorder(), clips, window=3, num_windows=2,
                          batch_size=batch_size, verbose=0),
            answers, atol=1e-6)
    time_last = Recorder(time_axis=-1)  # takes its time_axis from the model
    np.testing.assert_allclose(
        predict_views(time_last, np.moveaxis(clips, 1, -1), window=3,
                      num_windows=2, verbose=0),
        answers, atol=1e-6)
    assert [frames_of(v) for v in time_last.views[:2]] == [[0, 1, 2],
                                                           [3, 4, 5]]


def test_padding_at_a_clip_s_end_is_not_windowed():
    clips = coded_clips(2, 9)
    clips[1, 5:] = 0  # clip 1 holds 5 frames, padded to 9
    model = Recorder()
    probabilities = predict_views(model, clips, window=4, num_windows=3,
                                  verbose=0)
    # Each clip's mean over its own views: 3 and 2.
    np.testing.assert_allclose(
        probabilities, view_mean(model.views, [0, 0, 0, 1, 1], 2), atol=1e-6)
    shown = [frames_of(v) for v in model.views]
    assert shown == [[0, 1, 2, 3], [3, 4, 5, 6], [5, 6, 7, 8],
                     [0, 1, 2, 3], [1, 2, 3, 4]]
    clips[1, 2:] = 0  # 2 frames: one window, padded as the loaders pad
    model = Recorder()
    predict_views(model, clips[1:], window=4, num_windows=3, verbose=0)
    assert [frames_of(v) for v in model.views] == [[0, 1, -1, -1]]
    # A model that does not mask padding sees zero frames as frames.
    model = Recorder(mask_padded_frames=False)
    predict_views(model, clips[1:], window=4, num_windows=3, verbose=0)
    assert len(model.views) == 3


def test_studies_average_every_view_of_their_clips():
    clips = coded_clips(4, 6)
    studies = ["p2", "p1", "p2", "p2"]
    result = predict_studies(Recorder(), clips, studies, window=3,
                             num_windows=2, crops=3, labels=[1, 0, 1, 1],
                             verbose=0)
    per_clip = predict_views(Recorder(), clips, window=3, num_windows=2,
                             crops=3, verbose=0)
    assert result.studies == ["p2", "p1"]
    assert result.clips.tolist() == [3, 1]
    assert result.labels.tolist() == [1, 0]
    np.testing.assert_allclose(
        result.probabilities,
        [per_clip[[0, 2, 3]].mean(axis=0), per_clip[1]], atol=1e-6)


def test_studies_read_from_sources_by_patient_or_study():
    Scans = collections.namedtuple("Scans", ["x", "y", "groups", "sources"])
    sources = [
        ClipSource(f"s{i}", "dicom", 0, patient, 6, 40, 48, 3,
                   patient=patient, study=study)
        for i, (patient, study) in enumerate(
            [("A", "1.1"), ("A", "1.2"), ("B", "2.1")])
    ]
    scans = Scans(coded_clips(3, 6), np.array([1, 1, 0]), None, sources)
    by_patient = predict_studies(Recorder(), scans, window=3, verbose=0)
    by_study = predict_studies(Recorder(), scans, by="study", window=3,
                               verbose=0)
    assert by_patient.studies == ["A", "B"]
    assert by_study.studies == ["1.1", "1.2", "2.1"]
    np.testing.assert_allclose(
        by_patient.probabilities[0], by_study.probabilities[:2].mean(axis=0),
        atol=1e-6)
    assert by_patient.labels.tolist() == [1, 0]


def test_accuracy_single_and_multi_view_side_by_side():
    # Frames bright, dark, half-bright: the centred window says class 0,
    # the mean over the three windows class 1 (the label).
    clip = np.ones((1, 9, 32, 32, 3), "float32")
    clip[0, :3] = 255
    clip[0, 6:] = 200
    clips = np.concatenate([clip, np.full_like(clip, 255)])
    report = multiview_accuracy(Recorder(), clips, [1, 1], window=3,
                                num_windows=3, studies=["a", "a"],
                                verbose=0)
    assert report == {
        "clips": 2, "views": 3.0,
        "single_view_accuracy": 0.5, "multi_view_accuracy": 1.0,
        "studies": 1, "single_view_study_accuracy": 1.0,
        "multi_view_study_accuracy": 1.0, "method": "mean",
    }


# --- clips on disk -----------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """One class of a long video, a frame folder and a short .npy clip,
    another of one long .npy clip."""
    root = tmp_path_factory.mktemp("multiview")
    write_index_video(root / "a" / "long.mp4", 12)
    write_frame_folder(root / "a" / "mid", 7)
    write_npy(root / "a" / "short.npy", 3)
    write_npy(root / "b" / "long.npy", 12)
    return root


def test_each_source_gives_its_own_windows(tree):
    sources = index_clip_directory(str(tree), verbose=False).sources
    assert [s.kind for s in sources] == ["video", "frames", "npy", "npy"]
    model = Recorder()
    predict_sources(model, sources, window=4, num_windows=3, verbose=0)
    shown = [read_indices(view) for view in model.views]
    assert shown == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11],  # the video
        [0, 1, 2, 3], [2, 3, 4, 5], [3, 4, 5, 6],    # the frame folder
        [0, 1, 2, -1],                               # short: padded
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11],  # the long .npy
    ]


def test_a_dataset_s_single_view_is_what_it_yields(tree):
    data = clip_dataset_from_directory(
        str(tree), image_size=(32, 40), frames=4, sampling="segments",
        batch_size=2, shuffle=False, verbose=False)
    model = keras.Sequential([
        keras.Input((4, 32, 40, 3)),
        keras.layers.GlobalAveragePooling3D(),
        keras.layers.Dense(2, activation="softmax"),
    ])
    np.testing.assert_allclose(
        predict_sources(model, data, num_windows=1, verbose=0),
        model.predict(data, verbose=0), atol=1e-5)
    recorder = Recorder()
    predict_sources(recorder, data, num_windows=2, verbose=0)
    # The 12-frame video: 4 segments of 3 frames, swept at 1/4 and 3/4.
    first = [read_indices(v, source_width=64) for v in recorder.views[:2]]
    assert first == [[0, 3, 6, 9], [2, 5, 8, 11]]
    assert recorder.views[0].shape == (4, 32, 40, 3)  # resized as it does
    # The 7-frame folder has a segment of 1 frame, the 3-frame clip is
    # short: one view each.
    report = multiview_accuracy(recorder, data, num_windows=2, verbose=0)
    assert report["clips"] == 4 and report["views"] == 1.5
    # Windows instead of the dataset's segments, when asked.
    recorder = Recorder()
    predict_sources(recorder, data, num_windows=2, sampling="random",
                    verbose=0)
    first = [read_indices(v, source_width=64) for v in recorder.views[:2]]
    assert first == [[0, 1, 2, 3], [8, 9, 10, 11]]


def test_lazy_exports():
    from keras_vgg4d import multiview

    for name in ("predict_views", "predict_sources", "predict_studies",
                 "multiview_accuracy", "view_windows", "spatial_crops",
                 "view_frame_indices"):
        assert getattr(keras_vgg4d, name) is getattr(multiview, name)
        assert name in keras_vgg4d.__all__


# --- bad input ---------------------------------------------------------------


CLIPS = np.ones((2, 4, 40, 48, 3), "float32")
SOURCE = ClipSource("c.npy", "npy", 0, "g", 4, 40, 48, 3)

BAD = [
    (lambda: view_windows(0, 4), "length=0"),
    (lambda: view_windows(8, 4, 0), "num_windows=0"),
    (lambda: view_frame_indices(8, 4, 2, "middle"), "sampling='middle'"),
    (lambda: spatial_crops(40, 48, 2), "1 .the centre. or 3.*crops=2"),
    (lambda: spatial_crops(40, 48, True), "crops=True"),
    (lambda: spatial_crops(40, 48, 3, 41), r"crop_size=41 \(41x41\) does "
     "not fit in frames of 40x48"),
    (lambda: predict_views(Recorder(), CLIPS, window=5),
     r"predict_views: a window of 5 frames is longer than the clips \(4 "
     "frames.*window=None"),
    (lambda: predict_views(Recorder(), CLIPS, window=2, frame_step=4),
     "2 frames 4 apart spans 5 frames, is longer"),
    (lambda: predict_views(Recorder(), CLIPS, frame_step=2),
     "window=None the clip is taken whole"),
    (lambda: predict_views(Recorder(), CLIPS, crops=4),
     "predict_views.*crops=4"),
    (lambda: predict_views(Recorder(), CLIPS, num_windows=0),
     "num_windows=0"),
    (lambda: predict_views(Recorder(), CLIPS, batch_size=0), "batch_size=0"),
    (lambda: predict_views(Recorder(), CLIPS[0]), "rank 5"),
    (lambda: predict_views(Recorder(), CLIPS[:, :, :20]), "at least 32x32"),
    (lambda: predict_views(Recorder(), [SOURCE]), "use predict_sources"),
    (lambda: predict_sources(Recorder(), CLIPS), "use predict_views"),
    (lambda: predict_sources(Recorder(), [SOURCE], crops=3, crop_size=64),
     "predict_sources: crop_size=64"),
    (lambda: predict_sources(Recorder(), [SOURCE], sampling="middle"),
     "sampling='middle'"),
    (lambda: predict_studies(Recorder(), CLIPS), "pass `studies=`"),
    (lambda: predict_studies(Recorder(), CLIPS, ["a"]),
     "2 clips but 1 study ids"),
    (lambda: predict_studies(Recorder(), CLIPS, ["a", "b"], by="group"),
     "not both"),
    (lambda: predict_studies(Recorder(), CLIPS, by="group"),
     "clips in an array lack"),
    (lambda: predict_studies(Recorder(), CLIPS, ["a", "b"], sampling="random"),
     r"unexpected view options \['sampling'\]"),
    (lambda: multiview_accuracy(Recorder(), CLIPS), "needs the label"),
    (lambda: multiview_accuracy(Recorder(), CLIPS, [0]),
     "2 clips but 1 labels"),
]


@pytest.mark.parametrize("call, pattern", BAD)
def test_bad_input_is_named(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_a_dataset_keeps_its_own_image_size(tree):
    data = clip_dataset_from_directory(str(tree), image_size=32, frames=2,
                                       shuffle=False, verbose=False)
    with pytest.raises(ValueError, match=re.escape("(32, 32)")):
        predict_sources(Recorder(), data, image_size=40)
