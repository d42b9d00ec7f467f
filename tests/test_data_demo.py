import sys

import numpy as np
import pytest

from keras_vgg4d.data import TASKS
from keras_vgg4d.data import demo_class_names
from keras_vgg4d.data import demo_clips
from keras_vgg4d.data import save_clip_grid
from keras_vgg4d.data import demo as demo_module


@pytest.mark.parametrize(
    "task, default_classes",
    [("appearance", 3), ("order", 2), ("motion", 4), ("event", 3)],
)
def test_shapes_dtypes_range_and_balance(task, default_classes):
    x, y = demo_clips(n=14, frames=4, size=32, channels=3, task=task, seed=0)
    assert x.shape == (14, 4, 32, 32, 3) and x.dtype == np.float32
    assert y.shape == (14,) and y.dtype == np.int32
    assert 0.0 <= x.min() and x.max() <= 255.0
    # Never an all-zero frame: models read those as padding.
    assert (np.abs(x).reshape(14 * 4, -1).max(axis=1) > 0).all()
    counts = np.bincount(y, minlength=default_classes)
    assert len(counts) == default_classes
    assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_by_seed(task):
    a = demo_clips(n=8, frames=3, task=task, seed=3)
    b = demo_clips(n=8, frames=3, task=task, seed=3)
    c = demo_clips(n=8, frames=3, task=task, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_clips_are_shuffled_not_grouped_by_class():
    _, y = demo_clips(n=40, frames=2, task="appearance", seed=0)
    assert not np.array_equal(y, np.sort(y))


@pytest.mark.parametrize(
    "task, num_classes", [("appearance", 4), ("order", 4), ("motion", 6),
                          ("motion", 2), ("appearance", 2), ("event", 4),
                          ("event", 2)]
)
def test_num_classes(task, num_classes):
    _, y = demo_clips(n=24, frames=4, task=task, num_classes=num_classes)
    assert sorted(set(y.tolist())) == list(range(num_classes))


@pytest.mark.parametrize("channels", [1, 4])
def test_other_channel_counts(channels):
    for task in TASKS:
        x, _ = demo_clips(n=4, frames=3, size=16, channels=channels, task=task)
        assert x.shape == (4, 3, 16, 16, channels)


def test_appearance_frames_differ_between_classes():
    """Red disks against green striped squares: one frame tells them apart."""
    x, y = demo_clips(n=60, frames=2, task="appearance", seed=1)
    # The brightest pixels of a clip have the class colour.
    pixels = x.reshape(60, -1, 3)
    brightest = np.argsort(pixels.sum(axis=2), axis=1)[:, -20:]
    colour = np.take_along_axis(pixels, brightest[..., None], axis=1).mean(1)
    assert (colour[y == 0].argmax(axis=1) == 0).mean() > 0.9  # red
    assert (colour[y == 1].argmax(axis=1) == 1).mean() > 0.9  # green
    assert (colour[y == 2].argmax(axis=1) == 2).mean() > 0.9  # blue


def brightness_trend(x):
    """Slope of each clip's mean frame brightness over time."""
    means = x.mean(axis=(2, 3, 4))
    time = np.arange(x.shape[1]) - (x.shape[1] - 1) / 2
    return (means * time).sum(axis=1)


def test_order_classes_are_rising_and_falling():
    x, y = demo_clips(n=60, frames=6, task="order", seed=0)
    slope = brightness_trend(x)
    assert (slope[y == 0] > 0).mean() > 0.9
    assert (slope[y == 1] < 0).mean() > 0.9


def test_order_same_frames_in_every_class():
    """The frame-wise model is blind: one draw makes a clip of any class."""
    painter = demo_module._Painter(32, 3)
    draws = [
        demo_module._order_clip(
            painter, np.random.default_rng(7), 6, label, 4
        )
        for label in range(4)
    ]
    rising = draws[0]
    for label, clip in enumerate(draws):
        order = demo_module.order_permutation(6, label)
        np.testing.assert_array_equal(clip, rising[order])
    np.testing.assert_array_equal(draws[1], rising[::-1])
    # Across the dataset too: the sorted per-frame brightness profile (a
    # frame-wise statistic) has the same distribution in both classes.
    # Within 4 standard errors; in time order they are far apart.
    x, y = demo_clips(n=200, frames=6, task="order", seed=2)
    means = x.mean(axis=(2, 3, 4))

    def gap_in_standard_errors(profile):
        a, b = profile[y == 0], profile[y == 1]
        error = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
        return np.abs(a.mean(0) - b.mean(0)) / error

    assert gap_in_standard_errors(np.sort(means, axis=1)).max() < 4
    assert gap_in_standard_errors(means).min() > 4


@pytest.mark.parametrize("frames", [2, 3, 5, 8])
def test_order_permutations_are_distinct_permutations(frames):
    count = 2 if frames == 2 else 4
    orders = [demo_module.order_permutation(frames, k) for k in range(count)]
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(frames))
    assert len({tuple(o) for o in orders}) == count


def shape_centroid(x):
    """(clips, frames, 2) x, y centroid of the bright shape pixels."""
    bright = x.max(axis=-1) > 120
    h, w = x.shape[2:4]
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    count = np.maximum(bright.sum(axis=(2, 3)), 1)
    return np.stack(
        [(bright * xx).sum(axis=(2, 3)) / count,
         (bright * yy).sum(axis=(2, 3)) / count], axis=-1
    )


def test_motion_directions():
    x, y = demo_clips(n=80, frames=6, size=48, task="motion", seed=0)
    travel = shape_centroid(x)[:, -1] - shape_centroid(x)[:, 0]
    expected = {0: (0, 1), 1: (0, -1), 2: (1, 1), 3: (1, -1)}
    for label, (axis, sign) in expected.items():
        moved = travel[y == label]
        assert (np.sign(moved[:, axis]) == sign).mean() > 0.9
        along, across = np.abs(moved[:, axis]), np.abs(moved[:, 1 - axis])
        assert (along > across).mean() > 0.9


def test_motion_rotation_classes_are_each_others_reverse():
    painter = demo_module._Painter(32, 3)
    clockwise = demo_module._motion_clip(
        painter, np.random.default_rng(3), 5, 4, 6
    )
    anticlockwise = demo_module._motion_clip(
        painter, np.random.default_rng(3), 5, 5, 6
    )
    np.testing.assert_array_equal(anticlockwise, clockwise[::-1])
    assert not np.array_equal(clockwise[0], clockwise[-1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task": "colour"},
         r"Unknown demo task.*appearance.*order.*motion.*event"),
        ({"task": "order", "num_classes": 5}, "at most 4"),
        ({"task": "motion", "num_classes": 1}, "num_classes"),
        ({"n": 2, "num_classes": 3}, "n"),
        ({"task": "order", "frames": 1}, "at least 2 frames"),
        ({"task": "order", "frames": 2, "num_classes": 3}, "at least 3"),
        ({"size": 4}, "size"),
        ({"channels": 0}, "channels"),
        ({"frames": 2.5}, "frames"),
        ({"task": "event", "num_classes": 5}, "at most 4"),
        ({"task": "event", "return_info": 1}, r"`return_info` to be True or "
                                              r"False, received: return_info=1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        demo_clips(**{"n": 8, **kwargs})


def test_event_one_frame_shows_the_object_the_others_background():
    x, y, info = demo_clips(n=60, frames=5, task="event", seed=4,
                            return_info=True)
    frame, drawn = info["event_frame"], info["object_mask"]
    assert frame.dtype == np.int32 and frame.shape == (60,)
    assert drawn.dtype == bool and drawn.shape == (60, 32, 32)
    assert sorted(set(frame.tolist())) == [0, 1, 2, 3, 4]
    rows = np.arange(60)
    event = x[rows, frame]
    others = np.stack([x[i, np.arange(5) != frame[i]] for i in rows])
    # Outside the object every frame shows the same background (pixel noise
    # aside); inside it the event frame differs from all the others.
    outside = np.abs(event[:, None] - others)[~drawn[:, None].repeat(4, 1)]
    inside = np.abs(event[:, None] - others)[drawn[:, None].repeat(4, 1)]
    assert outside.mean() < 10 and inside.mean() > 40
    background = np.abs(others[:, :1] - others[:, 1:]).mean()
    assert background < 10
    # The object is 5-30% of the frame; its colour is its class's.
    assert 0.05 < drawn.mean(axis=(1, 2)).min()
    assert drawn.mean(axis=(1, 2)).max() < 0.3
    colour = np.stack([event[i][drawn[i]].mean(axis=0) for i in rows])
    for label in range(3):  # red, green, blue
        assert (colour[y == label].argmax(axis=1) == label).mean() > 0.9


def test_return_info_changes_nothing_else():
    for task in TASKS:
        x, y = demo_clips(n=6, frames=3, task=task, seed=2)
        x_info, y_info, info = demo_clips(n=6, frames=3, task=task, seed=2,
                                          return_info=True)
        np.testing.assert_array_equal(x, x_info)
        np.testing.assert_array_equal(y, y_info)
        assert (info == {}) == (task != "event")
    _, _, a = demo_clips(n=6, frames=3, task="event", seed=2,
                         return_info=True)
    _, _, b = demo_clips(n=6, frames=3, task="event", seed=2,
                         return_info=True)
    np.testing.assert_array_equal(a["event_frame"], b["event_frame"])
    np.testing.assert_array_equal(a["object_mask"], b["object_mask"])


def test_an_event_clip_of_one_frame_is_the_object():
    x, y, info = demo_clips(n=3, frames=1, task="event", return_info=True)
    assert x.shape == (3, 1, 32, 32, 3) and not info["event_frame"].any()


def test_demo_class_names_match_the_labels():
    for task in TASKS:
        _, y = demo_clips(n=12, frames=3, task=task)
        assert len(demo_class_names(task)) == len(set(y.tolist()))
    assert demo_class_names("order") == ["rising", "falling"]
    assert demo_class_names("motion", 6)[4:] == ["clockwise", "anticlockwise"]
    assert demo_class_names("event") == demo_class_names("appearance")
    with pytest.raises(ValueError, match="at most 4"):
        demo_class_names("order", 5)
    with pytest.raises(ValueError, match="Unknown demo task"):
        demo_class_names("colour")


def read_png(path):
    import matplotlib.image

    return matplotlib.image.imread(path)


def test_save_clip_grid_writes_png(tmp_path):
    x, y = demo_clips(n=5, frames=3, task="order", seed=0)
    path = str(tmp_path / "grid.png")
    assert save_clip_grid(x, path, max_clips=3, labels=y,
                          class_names=["rising", "falling"]) == path
    image = read_png(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    # Taller with more rows: max_clips is honoured.
    save_clip_grid(x, str(tmp_path / "all.png"), max_clips=5)
    assert read_png(str(tmp_path / "all.png")).shape[0] > image.shape[0]


def test_save_clip_grid_grayscale_and_time_last(tmp_path):
    x, _ = demo_clips(n=4, frames=3, channels=1, task="motion")
    gray = x[..., 0]
    save_clip_grid(gray, str(tmp_path / "gray.png"))
    save_clip_grid(np.moveaxis(x, 1, -1), str(tmp_path / "last.png"),
                   time_axis=-1)
    assert read_png(str(tmp_path / "gray.png")).shape == read_png(
        str(tmp_path / "last.png")
    ).shape


def test_save_clip_grid_bad_shape(tmp_path):
    with pytest.raises(ValueError, match="received shape"):
        save_clip_grid(np.zeros((3, 32, 32)), str(tmp_path / "x.png"))


def test_save_clip_grid_without_matplotlib(monkeypatch, tmp_path):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    x, _ = demo_clips(n=3, frames=2)
    with pytest.raises(ImportError, match=r"pip install keras_vgg4d\[plot\]"):
        save_clip_grid(x, str(tmp_path / "x.png"))
