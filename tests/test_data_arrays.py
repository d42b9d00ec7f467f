import numpy as np
import pytest

from keras_vgg4d.data import load_arrays
from keras_vgg4d.data import load_npz


def clips(shape=(4, 3, 32, 32, 3), seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


def test_time_major_passes_through():
    x = clips()
    got, labels = load_arrays(x, [0, 1, 2, 1])
    np.testing.assert_array_equal(got, x)
    assert got.dtype == np.float32 and labels.dtype == np.int32
    assert labels.tolist() == [0, 1, 2, 1]


def test_time_last_is_moved_to_axis_1():
    x = clips()
    got, labels = load_arrays(np.moveaxis(x, 1, -1), time_axis=-1)
    np.testing.assert_array_equal(got, x)
    assert labels is None


@pytest.mark.parametrize("time_axis", [1, -1])
def test_grayscale_gets_a_channel_axis(time_axis):
    x = clips((2, 5, 32, 32, 1))
    gray = x[..., 0] if time_axis == 1 else np.moveaxis(x[..., 0], 1, -1)
    got, _ = load_arrays(gray, time_axis=time_axis)
    np.testing.assert_array_equal(got, x)


def test_integer_pixels_become_float32():
    x = clips().astype("uint8")
    got, _ = load_arrays(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, x.astype("float32"))


def test_list_of_equal_clips_is_stacked():
    x = clips()
    got, _ = load_arrays(list(x))
    np.testing.assert_array_equal(got, x)


def test_mismatched_clip_shapes_name_the_index():
    parts = [np.zeros((3, 32, 32, 3)), np.zeros((3, 32, 32, 3)),
             np.zeros((4, 32, 32, 3))]
    with pytest.raises(ValueError, match=r"clip\(s\) 2 \(4, 32, 32, 3\)"):
        load_arrays(parts)


@pytest.mark.parametrize("bad, kind", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_non_finite_values_name_clip_and_frame(bad, kind):
    x = clips()
    x[3, 1, 5, 5, 0] = bad
    with pytest.raises(ValueError, match=rf"clip 3 \({kind}.*frame 1\)"):
        load_arrays(x)


def test_huge_finite_values_are_not_mistaken_for_infinity():
    x = np.full((2, 2, 4, 4, 1), 3e38, "float32")  # the sum overflows
    got, _ = load_arrays(x)
    assert np.isfinite(got).all()


@pytest.mark.parametrize(
    "shape", [(4, 32, 32), (1, 4, 3, 32, 32, 3), (4,)]
)
def test_wrong_rank(shape):
    with pytest.raises(ValueError, match=r"rank 5.*received shape"):
        load_arrays(np.zeros(shape))


@pytest.mark.parametrize("shape", [(0, 3, 32, 32, 3), (2, 0, 32, 32, 3)])
def test_empty_clips(shape):
    with pytest.raises(ValueError, match="empty"):
        load_arrays(np.zeros(shape))


def test_empty_list():
    with pytest.raises(ValueError, match="empty list"):
        load_arrays([])


def test_non_numeric_clips():
    with pytest.raises(ValueError, match="numeric"):
        load_arrays(np.full((2, 3, 4, 4, 1), "a"))


def test_whole_float_labels_are_accepted():
    _, labels = load_arrays(clips(), np.array([0.0, 1.0, 2.0, 1.0]))
    assert labels.dtype == np.int32 and labels.tolist() == [0, 1, 2, 1]


@pytest.mark.parametrize(
    "labels, num_classes, match",
    [
        ([0, 1.5, 1, 0], None, r"integers; label\(s\) at index 1 \(1.5\)"),
        ([0, 1, 3, 1], 3, r"in \[0, 3\).*index 2 \(3\)"),
        ([0, -1, 1, 1], None, r"non-negative.*index 1 \(-1\)"),
        ([0, 1, 1], None, "4 clips but 3 labels"),
        (np.eye(4), None, "one-hot"),
        (["a", "b", "c", "d"], None, "integers; received dtype"),
        ([0, 1, np.nan, 1], None, r"index 2"),
        ([True, False, True, True], None, "integers"),
        ([0, 1, 1, 0], 0, "num_classes"),
    ],
)
def test_bad_labels(labels, num_classes, match):
    with pytest.raises(ValueError, match=match):
        load_arrays(clips(), labels, num_classes=num_classes)


def test_column_labels_are_flattened():
    _, labels = load_arrays(clips(), np.array([[0], [1], [1], [0]]))
    assert labels.tolist() == [0, 1, 1, 0]


def test_bad_time_axis():
    with pytest.raises(ValueError, match="time_axis"):
        load_arrays(clips(), time_axis=2)


def test_npz_round_trip(tmp_path):
    x = clips()
    path = tmp_path / "clips.npz"
    np.savez(path, x=x, y=[1, 0, 1, 0])
    got, labels = load_npz(path)
    np.testing.assert_array_equal(got, x)
    assert labels.tolist() == [1, 0, 1, 0]


def test_npz_custom_keys_time_last_and_no_labels(tmp_path):
    x = clips()
    path = str(tmp_path / "clips.npz")
    np.savez_compressed(path, volumes=np.moveaxis(x, 1, -1), classes=[0] * 4)
    got, labels = load_npz(path, x_key="volumes", y_key=None, time_axis=-1)
    np.testing.assert_array_equal(got, x)
    assert labels is None


def test_npz_missing_key_lists_the_keys(tmp_path):
    path = str(tmp_path / "clips.npz")
    np.savez(path, clips=clips(), labels=[0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"no array named 'x'.*'clips'"):
        load_npz(path)


def test_npz_bad_labels_name_the_file(tmp_path):
    path = str(tmp_path / "clips.npz")
    np.savez(path, x=clips(), y=[0, 1, 5, 1])
    with pytest.raises(ValueError, match=r"clips.npz.*index 2 \(5\)"):
        load_npz(path, num_classes=2)


def test_npz_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        load_npz(tmp_path / "nothing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("not an archive")
    with pytest.raises(ValueError, match="Cannot read"):
        load_npz(bad)
