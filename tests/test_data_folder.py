import os
import re

import numpy as np
import pytest
import tensorflow as tf

from keras_vgg4d.data import FolderClips
from keras_vgg4d.data import load_folder
from keras_vgg4d.data.folder import frame_indices


def random_frames(count, size=(32, 32), channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, *size, channels), dtype=np.uint8)


def write_frames(clip_dir, frames, fmt="png", names=None):
    os.makedirs(clip_dir, exist_ok=True)
    encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
    for t, frame in enumerate(frames):
        name = names[t] if names else f"frame_{t:03d}.{fmt}"
        tf.io.write_file(os.path.join(clip_dir, name), encode(frame))


def make_folder(root, lengths=None, size=(32, 32)):
    """Two classes, three PNG clips each, of the given lengths.

    Returns {clip path: frames written}.
    """
    lengths = lengths or {"cat": [4, 2, 5], "dog": [3, 4, 4]}
    written = {}
    for c, (name, clip_lengths) in enumerate(sorted(lengths.items())):
        for k, length in enumerate(clip_lengths):
            clip_dir = os.path.join(root, name, f"clip_{k}")
            frames = random_frames(length, size, seed=10 * c + k)
            write_frames(clip_dir, frames)
            written[clip_dir] = frames
    return written


def test_pad_loads_frames_exactly_with_mask(tmp_path):
    written = make_folder(str(tmp_path))
    result = load_folder(tmp_path, frames=4, sampling="pad", verbose=0)
    assert isinstance(result, FolderClips)
    assert result.x.shape == (6, 4, 32, 32, 3) and result.x.dtype == np.float32
    assert result.class_names == ["cat", "dog"]
    assert result.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert result.mask.sum(axis=1).tolist() == [4, 2, 4, 3, 4, 4]
    assert result.skipped == []
    for i, frames in enumerate(written.values()):
        real = min(len(frames), 4)
        np.testing.assert_array_equal(result.x[i, :real], frames[:real])
        assert not result.x[i, real:].any()  # padding is zero frames


def test_frames_none_takes_the_longest_clip(tmp_path):
    make_folder(str(tmp_path))
    result = load_folder(tmp_path, frames=None, verbose=0)
    assert result.x.shape[1] == 5
    assert result.mask.sum(axis=1).tolist() == [4, 2, 5, 3, 4, 4]


@pytest.mark.parametrize(
    "length, frames, sampling, expected",
    [
        (10, 4, "tsn", [1, 3, 6, 8]),
        (3, 6, "tsn", [0, 0, 1, 1, 2, 2]),
        (10, 4, "crop", [3, 4, 5, 6]),
        (10, 4, "pad", [0, 1, 2, 3]),
        (2, 4, "pad", [0, 1]),
    ],
)
def test_frame_indices(length, frames, sampling, expected):
    assert frame_indices(length, frames, sampling).tolist() == expected


@pytest.mark.parametrize("sampling", ["tsn", "crop"])
def test_sampling_picks_those_frames(tmp_path, sampling):
    # Frame t of the clip is filled with the value 10 * t.
    frames = np.stack(
        [np.full((32, 32, 3), 10 * t, np.uint8) for t in range(10)]
    )
    for name in ["a", "b"]:
        write_frames(os.path.join(tmp_path, name, "clip"), frames)
    result = load_folder(tmp_path, frames=4, sampling=sampling, verbose=0)
    expected = frame_indices(10, 4, sampling) * 10
    np.testing.assert_array_equal(result.x[:, :, 0, 0, 0], [expected] * 2)
    assert result.mask.all()


def test_frames_sorted_by_name(tmp_path):
    frames = random_frames(3)
    # Written in reverse order; file names decide the order.
    write_frames(os.path.join(tmp_path, "a", "clip"), frames[::-1],
                 names=["c.png", "b.png", "a.png"])
    result = load_folder(tmp_path, frames=3, verbose=0)
    np.testing.assert_array_equal(result.x[0], frames)


def test_crop_with_short_clip_names_it(tmp_path):
    make_folder(str(tmp_path))
    short = os.path.join(str(tmp_path), "cat", "clip_1")
    with pytest.raises(
        ValueError, match=rf"{re.escape(short)}: has 2 frames.*'tsn'"
    ):
        load_folder(tmp_path, frames=3, sampling="crop", verbose=0)
    with pytest.warns(UserWarning, match=r"skipped 2 bad clip\(s\)"):
        result = load_folder(tmp_path, frames=4, sampling="crop",
                             skip_bad=True, verbose=0)
    assert [p for p, _ in result.skipped] == [
        short, os.path.join(str(tmp_path), "dog", "clip_0")
    ]
    assert len(result.x) == 4 and result.y.tolist() == [0, 0, 1, 1]


def test_resize_and_channels(tmp_path):
    make_folder(str(tmp_path), size=(40, 48))
    result = load_folder(tmp_path, frames=2, size=32, channels=1, verbose=0)
    assert result.x.shape == (6, 2, 32, 32, 1)
    result = load_folder(tmp_path, frames=2, size=(20, 24), verbose=0)
    assert result.x.shape == (6, 2, 20, 24, 3)
    # A constant frame stays constant when resized.
    write_frames(os.path.join(tmp_path, "cat", "flat"),
                 np.full((2, 40, 48, 3), 77, np.uint8))
    result = load_folder(tmp_path, frames=2, size=16, verbose=0)
    np.testing.assert_allclose(result.x[3], 77.0, atol=1e-3)


def test_jpeg_frames(tmp_path):
    frames = np.stack([np.full((32, 32, 3), v, np.uint8) for v in (40, 200)])
    for name in ["a", "b"]:
        write_frames(os.path.join(tmp_path, name, "clip"), frames, fmt="jpg")
    result = load_folder(tmp_path, frames=2, verbose=0)
    np.testing.assert_allclose(result.x[0, :, 0, 0, 0], [40, 200], atol=3)


def test_npy_clips_time_first_and_time_last(tmp_path):
    clip = np.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3))
    for name in ["a", "b"]:
        os.makedirs(tmp_path / name)
    np.save(tmp_path / "a" / "first.npy", clip.astype("float32"))
    np.save(tmp_path / "b" / "gray.npy", clip[..., 0].astype("float32"))
    result = load_folder(tmp_path, frames=5, verbose=0)
    np.testing.assert_allclose(result.x[0], clip, rtol=1e-6)
    # A one-channel clip is repeated to the first clip's three channels.
    np.testing.assert_allclose(result.x[1], np.repeat(clip[..., :1], 3, -1),
                               rtol=1e-6)
    os.remove(tmp_path / "a" / "first.npy")
    os.remove(tmp_path / "b" / "gray.npy")
    np.save(tmp_path / "a" / "last.npy", np.moveaxis(clip, 0, -1))
    np.save(tmp_path / "b" / "last.npy", np.moveaxis(clip, 0, -1))
    result = load_folder(tmp_path, frames=5, time_axis=-1, verbose=0)
    np.testing.assert_allclose(result.x[0], clip, rtol=1e-6)


def test_npy_and_frame_clips_mix(tmp_path):
    frames = random_frames(3)
    write_frames(os.path.join(tmp_path, "a", "png_clip"), frames)
    os.makedirs(tmp_path / "b")
    np.save(tmp_path / "b" / "clip.npy", frames)
    result = load_folder(tmp_path, frames=4, verbose=0)
    np.testing.assert_array_equal(result.x[0], result.x[1])
    np.testing.assert_array_equal(result.x[0, :3], frames)


def test_npy_with_nan_names_the_file(tmp_path):
    make_folder(str(tmp_path))
    clip = np.zeros((3, 32, 32, 3), "float32")
    clip[2, 0, 0, 0] = np.nan
    bad = os.path.join(str(tmp_path), "dog", "nan.npy")
    np.save(bad, clip)
    with pytest.raises(
        ValueError, match=rf"{re.escape(bad)}: holds NaN.*frame 2"
    ):
        load_folder(tmp_path, frames=4, verbose=0)


def test_unreadable_frame_names_the_file_or_is_skipped(tmp_path):
    make_folder(str(tmp_path))
    bad_frame = os.path.join(str(tmp_path), "dog", "clip_1", "frame_002.png")
    with open(bad_frame, "wb") as f:
        f.write(b"this is not a png")
    with pytest.raises(
        ValueError,
        match=rf"frame {re.escape(bad_frame)} cannot be decoded.*skip_bad",
    ):
        load_folder(tmp_path, frames=4, verbose=0)
    with pytest.warns(
        UserWarning, match=rf"skipped 1 bad clip.*{re.escape(bad_frame)}"
    ):
        result = load_folder(tmp_path, frames=4, skip_bad=True, verbose=0)
    assert result.skipped[0][0] == os.path.dirname(bad_frame)
    assert "cannot be decoded" in result.skipped[0][1]
    assert result.y.tolist() == [0, 0, 0, 1, 1]
    assert len(result.x) == len(result.mask) == 5


def test_bad_frame_not_chosen_is_not_read(tmp_path):
    make_folder(str(tmp_path))
    # clip_0 of cat has 4 frames; with frames=2 ("pad") the last is unused.
    with open(os.path.join(tmp_path, "cat", "clip_0", "frame_003.png"),
              "wb") as f:
        f.write(b"broken")
    result = load_folder(tmp_path, frames=2, verbose=0)
    assert len(result.x) == 6


def test_different_frame_sizes_need_size(tmp_path):
    make_folder(str(tmp_path))
    odd = os.path.join(str(tmp_path), "dog", "clip_2", "frame_001.png")
    tf.io.write_file(odd, tf.io.encode_png(random_frames(1, (40, 40))[0]))
    with pytest.raises(
        ValueError, match=rf"{re.escape(odd)} is 40x40.*pass size="
    ):
        load_folder(tmp_path, frames=4, verbose=0)
    assert load_folder(tmp_path, frames=4, size=32, verbose=0).x.shape == (
        6, 4, 32, 32, 3
    )


def test_missing_and_empty_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_folder(tmp_path / "nowhere", verbose=0)
    with pytest.raises(ValueError, match=r"no class subfolders.*\(empty\)"):
        load_folder(tmp_path, verbose=0)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"only files: notes.txt"):
        load_folder(tmp_path, verbose=0)
    with pytest.raises(ValueError, match="is a file"):
        load_folder(tmp_path / "notes.txt", verbose=0)


def test_class_with_no_clips_is_named(tmp_path):
    make_folder(str(tmp_path))
    os.makedirs(tmp_path / "empty_class")
    with pytest.raises(ValueError, match=r"\['empty_class'\].*hold no clips"):
        load_folder(tmp_path, frames=4, verbose=0)
    # Even with skip_bad: a class left without clips cannot be trained on.
    with pytest.raises(ValueError, match="empty_class"):
        load_folder(tmp_path, frames=4, skip_bad=True, verbose=0)


def test_stray_file_and_empty_clip_folder_are_named(tmp_path):
    make_folder(str(tmp_path))
    stray = os.path.join(str(tmp_path), "cat", "labels.csv")
    with open(stray, "w") as f:
        f.write("x")
    empty = os.path.join(str(tmp_path), "dog", "clip_9")
    os.makedirs(empty)
    with pytest.raises(
        ValueError, match=r"2 bad clip\(s\).*labels.csv: is not a clip"
    ) as error:
        load_folder(tmp_path, frames=4, verbose=0)
    assert f"{empty}: is an empty clip folder" in str(error.value)
    with pytest.warns(UserWarning, match="skipped 2"):
        result = load_folder(tmp_path, frames=4, skip_bad=True, verbose=0)
    assert sorted(p for p, _ in result.skipped) == sorted([stray, empty])
    assert len(result.x) == 6


def test_hidden_files_are_ignored(tmp_path):
    make_folder(str(tmp_path))
    (tmp_path / ".DS_Store").write_text("x")
    (tmp_path / "cat" / ".DS_Store").write_text("x")
    (tmp_path / "cat" / "clip_0" / "Thumbs.db").write_text("x")
    assert load_folder(tmp_path, frames=4, verbose=0).skipped == []


def test_top_level_files_are_reported(tmp_path):
    make_folder(str(tmp_path))
    (tmp_path / "README.txt").write_text("x")
    with pytest.warns(UserWarning, match="ignores 1 file.*README.txt"):
        load_folder(tmp_path, frames=4, verbose=0)


def test_class_names_choose_and_order_classes(tmp_path):
    make_folder(str(tmp_path), {"a": [2, 2], "b": [2], "c": [2, 2, 2]})
    result = load_folder(tmp_path, frames=2, class_names=["c", "a"],
                         verbose=0)
    assert result.class_names == ["c", "a"]
    assert result.y.tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match=r"missing: \['d'\]"):
        load_folder(tmp_path, class_names=["a", "d"], verbose=0)


def test_parallel_and_sequential_decoding_agree(tmp_path):
    make_folder(str(tmp_path))
    parallel = load_folder(tmp_path, frames=5, sampling="tsn", verbose=0)
    sequential = load_folder(tmp_path, frames=5, sampling="tsn",
                             num_parallel_calls=1, verbose=0)
    np.testing.assert_array_equal(parallel.x, sequential.x)
    np.testing.assert_array_equal(parallel.y, sequential.y)


def test_progress_bar(tmp_path, capsys):
    make_folder(str(tmp_path))
    load_folder(tmp_path, frames=4, verbose=1)
    shown = capsys.readouterr().out
    assert "21/21" in shown and "file" in shown  # 4+2+4+3+4+4 frames read
    load_folder(tmp_path, frames=4, verbose=0)
    assert "21/21" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sampling": "random"}, "sampling"),
        ({"frames": 0}, "frames"),
        ({"frames": None, "sampling": "tsn"}, "frames=None"),
        ({"size": (32,)}, "size"),
        ({"size": -3}, "size"),
        ({"channels": 0}, "channels"),
        ({"time_axis": 0}, "time_axis"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    make_folder(str(tmp_path))
    with pytest.raises(ValueError, match=match):
        load_folder(tmp_path, **{"verbose": 0, **kwargs})
