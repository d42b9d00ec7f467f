"""`clip_dataset_from_directory`: streaming, sampling, groups, bad input.

Clips show their frame index (see `video_testing`), so the frames each
epoch delivers are compared with the indices `sample_frame_indices` gives.
"""

import os
import re
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_vgg4d.data import clip_dataset_from_directory
from keras_vgg4d.data import group_split
from keras_vgg4d.data import index_clip_directory
from keras_vgg4d.data import read_clip
from keras_vgg4d.data import sample_frame_indices
from keras_vgg4d.data import split_balanced
from keras_vgg4d.data import split_clip_sources
from video_testing import read_indices
from video_testing import write_frame_folder
from video_testing import write_index_video
from video_testing import write_nifti
from video_testing import write_npy

LENGTH = 20  # frames of each video


def dataset(root, **kwargs):
    arguments = dict(batch_size=None, image_size=None, frames=4,
                     shuffle=False, verbose=False)
    return clip_dataset_from_directory(str(root), **(arguments | kwargs))


def video_tree(root, classes=("jump", "run"), groups=3, clips=2,
               length=LENGTH, extension="mp4"):
    """UCF101-style names: `v_<class>_g<group>_c<clip>.<extension>`."""
    for name in classes:
        for g in range(1, groups + 1):
            for c in range(1, clips + 1):
                write_index_video(
                    root / name / f"v_{name}_g{g:02d}_c{c:02d}.{extension}",
                    length,
                )
    return root


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return video_tree(tmp_path_factory.mktemp("videos"))


def shown_indices(data):
    """The frame indices each clip shows, over one pass of unbatched data."""
    shown = []
    for clip, _ in data:
        shown.append(read_indices(clip.numpy()))
    return shown


# --- the dataset ------------------------------------------------------------


def test_class_names_file_paths_shapes_and_labels(videos):
    data = dataset(videos, batch_size=3, image_size=(32, 48), frames=5)
    assert data.class_names == ["jump", "run"]
    assert len(data.file_paths) == 12
    assert data.file_paths == sorted(data.file_paths)
    assert data.element_spec[0].shape.as_list() == [None, 5, 32, 48, 3]
    assert data.element_spec[0].dtype == tf.float32
    labels = np.concatenate([y.numpy() for _, y in data])
    assert labels.tolist() == [0] * 6 + [1] * 6
    assert [s.group for s in data.clip_sources[:3]] == ["g01", "g01", "g02"]


@pytest.mark.parametrize("sampling, frame_step", [
    ("uniform", 1), ("segments", 1), ("random", 3),
])
def test_evaluation_frames_are_the_deterministic_draw(
    videos, sampling, frame_step
):
    data = dataset(videos, frames=5, sampling=sampling,
                   frame_step=frame_step)
    expected = sample_frame_indices(LENGTH, 5, sampling, frame_step).tolist()
    assert shown_indices(data) == [expected] * 12
    assert shown_indices(data) == [expected] * 12  # the same every epoch


@pytest.mark.parametrize("sampling", ["random", "segments"])
def test_training_frames_are_drawn_anew_each_epoch_reproducibly(
    videos, sampling
):
    def epochs(seed):
        data = dataset(videos, frames=4, sampling=sampling, shuffle=True,
                       seed=seed)
        return [shown_indices(data) for _ in range(2)]

    first, second = epochs(seed=5)
    assert first != second  # a new draw (and order) every epoch
    assert epochs(seed=5) == [first, second]  # the same run to run
    for clip in first + second:
        if sampling == "random":
            assert np.diff(clip).tolist() == [1, 1, 1]
        else:
            edges = np.arange(5) * LENGTH // 4
            assert all(edges[k] <= i < edges[k + 1]
                       for k, i in enumerate(clip))


def test_validation_side_stays_fixed_while_training_redraws(videos):
    train, val = dataset(videos, frames=4, sampling="random", frame_step=2,
                         shuffle=True, seed=1, validation_split=0.34,
                         subset="both")
    centre = sample_frame_indices(LENGTH, 4, "random", 2).tolist()
    assert shown_indices(val) == [centre] * len(val.file_paths)
    assert shown_indices(val) == [centre] * len(val.file_paths)
    assert shown_indices(train) != shown_indices(train)


def test_short_clips_pad_with_zero_frames_or_loop(tmp_path):
    write_index_video(tmp_path / "a" / "short.avi", 3, codec="mpeg4")
    padded = next(iter(dataset(tmp_path, frames=5)))[0].numpy()
    assert read_indices(padded) == [0, 1, 2, -1, -1]
    assert not padded[3:].any()  # zero frames, which the model masks
    looped = next(iter(dataset(tmp_path, frames=5, short_clips="loop")))[0]
    assert read_indices(looped.numpy()) == [0, 1, 2, 0, 1]


def test_mixed_sources_in_one_tree(tmp_path):
    write_index_video(tmp_path / "a" / "clip.mp4", 8)
    write_frame_folder(tmp_path / "a" / "frames", 8)
    write_npy(tmp_path / "b" / "clip.npy", 8)
    write_nifti(tmp_path / "b" / "scan.nii.gz", slices=3, frames=8)
    data = dataset(tmp_path, frames=4, sampling="uniform", batch_size=6)
    kinds = [s.kind for s in data.clip_sources]
    assert kinds == ["video", "frames", "npy"] + ["nifti"] * 3
    assert [s.index for s in data.clip_sources[3:]] == [0, 1, 2]
    assert len({s.group for s in data.clip_sources[3:]}) == 1  # one file
    clips, labels = next(iter(data))
    assert clips.shape == (6, 4, 48, 64, 3)
    assert labels.numpy().tolist() == [0, 0, 1, 1, 1, 1]
    expected = sample_frame_indices(8, 4, "uniform").tolist()
    for clip in clips.numpy():
        assert read_indices(clip) == expected


def test_resizing_keeps_aspect_ratio_by_crop_or_pad(tmp_path):
    write_index_video(tmp_path / "a" / "wide.mp4", 24)  # 48x104
    uniform = dict(frames=4, sampling="uniform")  # frames 0, 8, 15, 23
    pad = next(iter(dataset(tmp_path, image_size=(104, 104),
                            pad_to_aspect_ratio=True, **uniform)))[0]
    pad = pad.numpy()
    assert not pad[:, :28].any() and not pad[:, -28:].any()  # 28 rows each
    assert read_indices(pad) == [0, 8, 15, 23]
    crop = next(iter(dataset(tmp_path, image_size=(48, 48),
                             crop_to_aspect_ratio=True, **uniform)))[0]
    # The centred 48x48 window, columns 28..75, shows frames 6..17 only,
    # their bars 28 columns (7 frames) to the left.
    assert read_indices(crop.numpy()) == [-1, 8 - 7, 15 - 7, -1]


def test_layouts_dtypes_colors_and_label_modes(videos):
    data = dataset(videos, batch_size=2, image_size=32, time_axis=-1,
                   dtype="uint8", color_mode="grayscale",
                   label_mode="categorical")
    clips, labels = next(iter(data))
    assert clips.shape == (2, 32, 32, 1, 4) and clips.dtype == tf.uint8
    assert labels.shape == (2, 2) and labels.dtype == tf.float32
    binary = dataset(videos, batch_size=2, image_size=32,
                     label_mode="binary")
    assert next(iter(binary))[1].shape == (2, 1)
    alone = dataset(videos, batch_size=2, image_size=32, labels=None)
    assert alone.element_spec.shape.as_list() == [None, 4, 32, 32, 3]


def test_explicit_labels_and_the_sources_api(videos):
    index = index_clip_directory(str(videos), verbose=False)
    assert len(index.sources) == 12 and index.class_names == ["jump", "run"]
    data = dataset(videos, labels=list(range(12)), label_mode="int")
    assert [int(y) for _, y in data] == list(range(12))
    train, val = split_clip_sources(index.sources, 0.34, seed=0)
    assert len(train) + len(val) == 12
    every_frame = read_clip(index.sources[0], frame_step=4)
    assert read_indices(every_frame) == [0, 4, 8, 12, 16]


def test_nested_folders_and_links_followed_only_when_asked(tmp_path):
    write_index_video(tmp_path / "elsewhere" / "clip.mp4", 4)
    write_index_video(tmp_path / "root" / "a" / "day1" / "clip.mp4", 4)
    os.symlink(tmp_path / "elsewhere", tmp_path / "root" / "a" / "linked")
    assert len(dataset(tmp_path / "root").file_paths) == 1
    assert len(dataset(tmp_path / "root", follow_links=True).file_paths) == 2


def test_the_model_fits_on_the_stream(videos):
    data = dataset(videos, batch_size=4, image_size=32, frames=2,
                   shuffle=True, seed=0)
    model = keras.Sequential([
        keras.Input((2, 32, 32, 3)),
        keras.layers.GlobalAveragePooling3D(),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(data, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


# --- groups -----------------------------------------------------------------


def sides(data):
    train, val = data
    return ({s.group for s in train.clip_sources},
            {s.group for s in val.clip_sources})


@pytest.mark.parametrize("seed", range(6))
def test_no_group_on_both_sides_of_the_dataset_split(videos, seed):
    train_groups, val_groups = sides(dataset(
        videos, validation_split=0.3, subset="both", seed=seed,
        shuffle=True,
    ))
    assert train_groups and val_groups and not train_groups & val_groups


@settings(max_examples=150, deadline=None)
@given(
    clip_groups=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 7)),
                         min_size=4, max_size=60),
    fraction=st.floats(0.1, 0.6),
    seed=st.integers(0, 10**6),
)
def test_group_split_never_splits_a_group(clip_groups, fraction, seed):
    labels = np.array([c for c, _ in clip_groups])
    groups = np.array([f"g{g}" for _, g in clip_groups])
    per_class = {c: set(groups[labels == c]) for c in set(labels.tolist())}
    if min(len(g) for g in per_class.values()) < 2:
        with pytest.raises(ValueError, match="cannot be split"):
            group_split(labels, groups, fraction, seed)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validating = group_split(labels, groups, fraction, seed)
    assert not set(groups[validating]) & set(groups[~validating])
    if not caught:  # no warning: every class on both sides
        for c in per_class:
            assert validating[labels == c].any()
            assert not validating[labels == c].all()


def test_groups_from_a_callable_a_mapping_and_balanced_classes(videos):
    by_clip = dataset(videos, groups=lambda path: path[-7:-4],  # "c01"
                      validation_split=0.5, subset="both", seed=0,
                      shuffle=True)
    train_groups, val_groups = sides(by_clip)
    assert train_groups | val_groups == {"c01", "c02"}
    assert not train_groups & val_groups
    mapping = {
        os.path.basename(path): path.split("_")[-2]
        for path in dataset(videos).file_paths
    }
    train, val = dataset(videos, groups=mapping, validation_split=0.34,
                         subset="both", seed=3, shuffle=True)
    for part in (train, val):
        labels = [s.label for s in part.clip_sources]
        assert sorted(set(labels)) == [0, 1]  # both classes on both sides


def test_split_balanced_takes_groups():
    x = np.arange(12)
    y = np.repeat([0, 1], 6)
    groups = np.tile([1, 1, 2, 2, 3, 3], 2)
    (x_train, y_train), (x_val, y_val) = split_balanced(
        x, y, 0.34, seed=0, groups=groups
    )
    assert not set(groups[x_train]) & set(groups[x_val])
    assert set(y_train.tolist()) == set(y_val.tolist()) == {0, 1}


# --- bad input --------------------------------------------------------------


def truncated(root):
    path = write_index_video(root / "a" / "v_g01_c01.mp4", 12)
    write_index_video(root / "a" / "v_g02_c01.mp4", 12)
    data = open(path, "rb").read()
    with open(path, "wb") as file:
        file.write(data[: len(data) // 2])
    return root


def truncated_after_header(root, extension):
    """Noise frames (they compress badly), cut after the header: an MKV
    (no frame count in it) or an MP4 whose index comes first."""
    import av

    noise = np.random.default_rng(0).integers(0, 256, (12, 48, 64, 3),
                                              dtype=np.uint8)
    path = str(root / "a" / f"noise.{extension}")
    write_index_video(root / "a" / "good.mp4", 4)
    with av.open(path, "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        for frame in noise:
            container.mux(stream.encode(
                av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    data = open(path, "rb").read()
    with open(path, "wb") as file:
        file.write(data[: len(data) * 6 // 10])
    return root


def not_a_video(root):
    write_index_video(root / "a" / "good.mp4", 4)
    (root / "a" / "notes.mp4").write_text("these are notes, not a video\n")
    return root


def zero_frames(root):
    import av

    write_index_video(root / "a" / "good.avi", 4, codec="mpeg4")
    with av.open(str(root / "a" / "empty.avi"), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    return root


def unsupported_codec(root):
    path = write_index_video(root / "a" / "odd.avi", 4, codec="mpeg4")
    write_index_video(root / "a" / "good.avi", 4, codec="mpeg4")
    data = open(path, "rb").read()
    with open(path, "wb") as file:  # a FourCC no decoder knows
        file.write(data.replace(b"FMP4", b"ZZZZ"))
    return root


def empty_class(root):
    write_index_video(root / "full" / "clip.mp4", 4)
    (root / "empty").mkdir()
    return root


def one_group_class(root):
    video_tree(root, classes=("jump",), groups=2, clips=1, length=4)
    for c in (1, 2):
        write_index_video(root / "run" / f"v_run_g07_c0{c}.mp4", 4)
    return root


def mixed_sizes(root):
    write_index_video(root / "a" / "small.mp4", 4)
    write_index_video(root / "a" / "tall.mp4", 4, height=64)
    return root


def stray_file(root):
    write_index_video(root / "a" / "good.mp4", 4)
    (root / "a" / "notes.txt").write_text("not a clip")
    return root


def listing(make_tree, **kwargs):
    return lambda p: dataset(make_tree(p), **kwargs)


CASES = [
    ("video/truncated", listing(truncated),
     ValueError, r"v_g01_c01\.mp4.*(truncated|not a video)"),
    ("video/truncated_mkv", lambda p: dataset(
        truncated_after_header(p, "mkv")),
     ValueError, r"noise\.mkv.*truncated.*0\.48 s \(about 12 frames\)"),
    ("video/truncated_mp4_index_first", lambda p: dataset(
        truncated_after_header(p, "mp4")),
     ValueError, r"noise\.mp4.*truncated: its index points to byte"),
    ("video/not_a_video", listing(not_a_video),
     ValueError, r"notes\.mp4.*not a video FFmpeg can read"),
    ("video/zero_frames", listing(zero_frames),
     ValueError, r"empty\.avi.*no frames"),
    ("video/unsupported_codec", listing(unsupported_codec),
     ValueError, r"odd\.avi.*unsupported codec"),
    ("tree/empty_class", listing(empty_class),
     ValueError, r"\['empty'\].*hold no clips"),
    ("tree/not_a_clip", listing(stray_file),
     ValueError, r"notes\.txt.*is not a clip"),
    ("tree/missing", lambda p: dataset(p / "nowhere"),
     FileNotFoundError, r"nowhere"),
    ("split/one_group_holds_a_class", listing(
        one_group_class, validation_split=0.5, subset="both", seed=0),
     ValueError, r"class 'run' \(2 clip\(s\), all in group 'g07'\)"),
    ("split/without_seed", listing(
        one_group_class, validation_split=0.5, subset="training",
        shuffle=True),
     ValueError, r"pass a `seed`"),
    ("split/subset_alone", listing(one_group_class, subset="training"),
     ValueError, r"`subset` and `validation_split` go together"),
    ("split/pattern_matches_nothing", listing(
        one_group_class, groups=r"actor(\d+)"),
     ValueError, r"clip_dataset_from_directory: groups='actor.*matches none"),
    ("split/pattern_invalid", listing(one_group_class, groups="_(g"),
     ValueError, r"groups='_\(g' is not a valid regular expression"),
    ("size/mixed_without_image_size", listing(mixed_sizes),
     ValueError, r"48x64: .*small\.mp4.*64x64: .*tall\.mp4.*image_size"),
    ("arguments/sampling", listing(mixed_sizes, sampling="tsn"),
     ValueError, r"sampling.*'tsn'"),
    ("arguments/frame_step_with_uniform", listing(
        mixed_sizes, sampling="uniform", frame_step=2),
     ValueError, r"frame_step.*sampling='random'"),
    ("arguments/crop_and_pad", listing(
        mixed_sizes, image_size=32, crop_to_aspect_ratio=True,
        pad_to_aspect_ratio=True),
     ValueError, r"only one of crop_to_aspect_ratio"),
    ("arguments/batch_size", listing(mixed_sizes, batch_size=0),
     ValueError, r"batch_size=0"),
    ("arguments/binary_with_three_classes", lambda p: dataset(video_tree(
        p, classes=("a", "b", "c"), groups=1, clips=1, length=2),
        label_mode="binary"),
     ValueError, r"exactly 2 classes"),
]


@pytest.mark.parametrize(
    "call, error, pattern", [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_fails_early_with_a_clear_message(
    call, error, pattern, tmp_path
):
    with pytest.raises(error) as raised:
        call(tmp_path)
    assert raised.type is error
    assert re.search(pattern, str(raised.value), re.S), str(raised.value)


def test_a_header_that_overstates_a_little_is_corrected(tmp_path):
    video_tree(tmp_path, classes=("a",), groups=1, clips=1, length=12)
    data = dataset(tmp_path, frames=4, sampling="uniform")
    source = data.clip_sources[0]
    source.length = 13  # as if the header counted a frame that never comes
    assert shown_indices(data) == [[0, 4, 7, 11]]
    assert source.length == 12
    source.length = 40  # far more than it holds: truncated
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"truncated: it decodes to 12 frames.*40"):
        shown_indices(data)


def test_skip_bad_leaves_bad_clips_out_with_one_warning(tmp_path):
    for make_tree in (not_a_video, zero_frames, unsupported_codec):
        make_tree(tmp_path)
    with pytest.warns(UserWarning) as caught:
        data = dataset(tmp_path, skip_bad=True)
    messages = [str(w.message) for w in caught
                if "skipped" in str(w.message)]
    assert len(messages) == 1
    assert all(name in messages[0]
               for name in ("notes.mp4", "empty.avi", "odd.avi"))
    assert sorted(os.path.basename(p) for p in data.file_paths) == [
        "good.avi", "good.mp4"
    ]
    assert len(list(data)) == 2


def test_a_clip_failing_inside_the_pipeline_names_its_file(tmp_path):
    video_tree(tmp_path, classes=("a", "b"), groups=1, clips=2, length=4)
    data = dataset(tmp_path, batch_size=2, image_size=32, frames=2)
    broken = data.file_paths[2]
    with open(broken, "wb") as file:  # changed after listing
        file.write(b"\x00" * 100)
    model = keras.Sequential([
        keras.Input((2, 32, 32, 3)), keras.layers.Flatten(),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        model.fit(data, epochs=1, verbose=0)
    message = str(raised.value)
    assert re.search(
        re.escape(repr(broken)) + r".*not a video FFmpeg can read", message
    ), message
    assert "skip_bad=True" in message


def test_skip_bad_leaves_out_a_clip_failing_inside_the_pipeline(tmp_path):
    video_tree(tmp_path, classes=("a", "b"), groups=1, clips=2, length=4)
    data = dataset(tmp_path, batch_size=2, image_size=32, frames=2,
                   skip_bad=True)
    with open(data.file_paths[1], "wb") as file:  # changed after listing
        file.write(b"\x00" * 100)
    with pytest.warns(UserWarning, match=r"skips a clip.*not a video"):
        labels = np.concatenate([y.numpy() for _, y in data])
    assert labels.tolist() == [0, 1, 1]


def test_without_pyav_videos_name_the_extra_and_arrays_still_load(
    tmp_path, monkeypatch
):
    write_npy(tmp_path / "arrays" / "a" / "clip.npy", 4)
    write_index_video(tmp_path / "videos" / "a" / "clip.mp4", 4)
    monkeypatch.setitem(sys.modules, "av", None)
    assert len(dataset(tmp_path / "arrays").file_paths) == 1
    with pytest.raises(ImportError,
                       match=r'pip install "keras_vgg4d\[video\]"'):
        dataset(tmp_path / "videos")
