"""Temporal sampling and video decoding (PyAV), checked against known frames.

Every video here is written by PyAV's own encoders, and each frame shows
its index (see `video_testing`), so decoding, frame order and sampling are
compared with the indices asked for.
"""

import doctest
import importlib
import sys

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import keras_vgg4d.data.video as video_module
from keras_vgg4d.data import probe_video
from keras_vgg4d.data import read_video
from keras_vgg4d.data import sample_frame_indices
from keras_vgg4d.data import write_video
from video_testing import index_frames
from video_testing import read_indices
from video_testing import write_index_video

# (extension, encoder): H.264 and MPEG-4 Part 2 in the usual containers.
FORMATS = [
    ("mp4", "libx264"),
    ("avi", "mpeg4"),
    ("mkv", "libx264"),
    ("mov", "mpeg4"),
    ("webm", "libvpx"),
]


def test_the_encoders_used_here_are_in_the_av_wheel():
    assert {"libx264", "mpeg4", "libvpx"} <= set(av.codecs_available)


# --- sample_frame_indices ---------------------------------------------------


def test_deterministic_sampling_of_each_mode():
    assert sample_frame_indices(10, 4, "uniform").tolist() == [0, 3, 6, 9]
    assert sample_frame_indices(12, 4, "segments").tolist() == [1, 4, 7, 10]
    # The centred window: 20 frames, span 7, start (20 - 7) // 2.
    assert sample_frame_indices(20, 4, "random", frame_step=2).tolist() == [
        6, 8, 10, 12
    ]


def test_short_clips_pad_or_loop():
    assert sample_frame_indices(3, 5, "segments").tolist() == [0, 1, 2]
    assert sample_frame_indices(3, 5, "segments", short_clips="loop"
                                ).tolist() == [0, 1, 2, 0, 1]
    # "random" needs (frames - 1) * frame_step + 1 = 7 frames.
    assert sample_frame_indices(5, 4, "random", frame_step=2).tolist() == [
        0, 2, 4
    ]
    assert sample_frame_indices(
        5, 4, "random", frame_step=2, short_clips="loop"
    ).tolist() == [0, 2, 4, 1]


@settings(max_examples=200, deadline=None)
@given(
    length=st.integers(1, 200),
    frames=st.integers(1, 24),
    sampling=st.sampled_from(["uniform", "random", "segments"]),
    frame_step=st.integers(1, 4),
    short_clips=st.sampled_from(["pad", "loop"]),
    seed=st.one_of(st.none(), st.integers(0, 2**32)),
)
def test_sampled_indices_stay_in_the_clip_and_follow_their_mode(
    length, frames, sampling, frame_step, short_clips, seed
):
    step = frame_step if sampling == "random" else 1
    indices = sample_frame_indices(
        length, frames, sampling, step, short_clips, seed
    )
    assert indices.dtype == np.int64
    assert ((indices >= 0) & (indices < length)).all()
    span = (frames - 1) * step + 1
    if length < span:
        if short_clips == "pad":
            assert indices.tolist() == list(range(0, length, step))[:frames]
        else:
            assert len(indices) == frames
        return
    assert len(indices) == frames
    if sampling == "random":
        assert (np.diff(indices) == step).all()
    elif sampling == "segments":
        edges = np.floor(np.arange(frames + 1) * length / frames)
        assert ((indices >= edges[:-1]) & (indices < edges[1:])).all()
    elif frames > 1:
        assert indices[0] == 0 and indices[-1] == length - 1
        assert (np.diff(indices) >= 0).all()


def test_random_draws_vary_and_repeat_with_their_seed():
    draws = {
        tuple(sample_frame_indices(100, 8, "segments", rng=seed))
        for seed in range(20)
    }
    assert len(draws) > 15
    assert (sample_frame_indices(100, 8, "random", rng=3).tolist()
            == sample_frame_indices(100, 8, "random", rng=3).tolist())
    uniform = {tuple(sample_frame_indices(100, 8, "uniform", rng=s))
               for s in range(5)}
    assert len(uniform) == 1  # uniform is never random


@pytest.mark.parametrize("kwargs, pattern", [
    ({"sampling": "tsn"}, r"sampling.*'tsn'"),
    ({"frames": 0}, r"frames=0"),
    ({"frame_step": 2, "sampling": "uniform"}, r"frame_step.*'random'"),
    ({"short_clips": "repeat"}, r"short_clips.*'repeat'"),
])
def test_sampling_arguments_are_checked(kwargs, pattern):
    arguments = {"length": 10, "frames": 4} | kwargs
    with pytest.raises(ValueError, match=pattern):
        sample_frame_indices(**arguments)


# --- decoding -------------------------------------------------------------


@pytest.mark.parametrize("extension, codec", FORMATS)
def test_decoded_frames_are_the_ones_asked_for(tmp_path, extension, codec):
    path = write_index_video(tmp_path / f"clip.{extension}", 12, codec=codec)
    info = probe_video(path)
    assert (info.frames, info.height, info.width) == (12, 48, 64)
    assert info.fps == 25.0 and info.rotation == 0
    wanted = [11, 0, 5, 5, 7]  # any order, repeats
    frames = read_video(path, wanted)
    assert frames.dtype == np.uint8 and frames.shape == (5, 48, 64, 3)
    assert read_indices(frames) == wanted
    assert read_indices(read_video(path, frame_step=5)) == [0, 5, 10]


def test_decoding_stops_after_the_last_frame_needed(tmp_path, monkeypatch):
    path = write_index_video(tmp_path / "clip.mp4", 30)
    seen = []
    real = video_module._indexed_frames

    def spy(*args, **kwargs):
        for index, frame in real(*args, **kwargs):
            seen.append(index)
            yield index, frame

    monkeypatch.setattr(video_module, "_indexed_frames", spy)
    assert read_indices(read_video(path, [2, 1])) == [2, 1]
    assert seen == [0, 1, 2]


@pytest.mark.parametrize("extension, codec", [("mp4", "libx264"),
                                              ("avi", "mpeg4")])
def test_far_frames_are_reached_by_seeking_to_a_keyframe(
    tmp_path, monkeypatch, extension, codec
):
    path = str(tmp_path / f"gop.{extension}")
    clip = index_frames(40)
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width = clip.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": "8", "sc_threshold": "0"}
        for frame in clip:
            container.mux(stream.encode(
                av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    seen = []
    real = video_module._indexed_frames

    def spy(*args, **kwargs):
        for index, frame in real(*args, **kwargs):
            seen.append(index)
            yield index, frame

    monkeypatch.setattr(video_module, "_indexed_frames", spy)
    wanted = [1, 35, 38]
    assert read_indices(read_video(path, wanted)) == wanted
    assert seen[:2] == [0, 1] and 32 <= seen[2] <= 35  # skipped 2..31
    assert len(seen) < 12


def test_rotation_metadata_turns_frames_upright(tmp_path):
    path = str(tmp_path / "phone.mp4")
    write_video(path, index_frames(4), rotation=90)
    info = probe_video(path)
    assert (info.height, info.width, info.rotation) == (64, 48, 90)
    frames = read_video(path, [3])
    assert frames.shape == (1, 64, 48, 3)
    # Turned 90 degrees counter-clockwise, the bar at x = 16..18 of 64
    # lies across rows 64 - 19 .. 64 - 17.
    rows = frames[0].mean(axis=(1, 2))
    assert set(np.flatnonzero(rows > 128)) <= {45, 46, 47}


def test_gray_and_rgba_frames(tmp_path):
    path = write_index_video(tmp_path / "clip.avi", 4, codec="mpeg4")
    assert read_video(path, [1], channels=1).shape == (1, 48, 64, 1)
    rgba = read_video(path, [1], channels=4)
    assert rgba.shape == (1, 48, 64, 4) and (rgba[..., 3] == 255).all()


def test_without_pyav_a_video_names_the_extra(tmp_path, monkeypatch):
    path = write_index_video(tmp_path / "clip.mp4", 2)
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ImportError, match=r'keras_vgg4d\[video\]'):
        read_video(path)


@pytest.mark.parametrize("name", [
    "keras_vgg4d.data.sampling",
    "keras_vgg4d.data.video",
    "keras_vgg4d.data.sources",
    "keras_vgg4d.data.streaming",
    "keras_vgg4d.data.groups",
])
def test_docstring_examples(name):
    # tests/test_doctests.py lists modules by name; these run here too.
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.ELLIPSIS
    )
    assert result.attempted > 0 and result.failed == 0
