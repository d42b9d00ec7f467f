"""Demo clips drawn procedurally (no download), and a picture of clips.

Four tasks tell the temporal strategies apart:

- `"appearance"`: the class is what is shown: a red disk, a green striped
  square, a blue checkered triangle or a yellow cross (in grayscale, the
  shape and its fill). One frame is enough: the frame-wise strategy works.
- `"order"`: every clip holds the same kind of frames, a shape whose size,
  contrast and stripe frequency grow with a hidden level; the class is the
  order of the frames (rising or falling level, and with more classes
  rising-then-falling and falling-then-rising). A clip of each class could
  hold exactly the same frames, so a frame-wise model is at chance.
- `"motion"`: the class is the direction of motion of a shape (right, left,
  down, up, and with more classes clockwise and anticlockwise rotation).
- `"event"`: the class is what one single frame shows (the `"appearance"`
  objects), at a random time and place; every other frame is background.
  `return_info=True` tells which frame and where, so explanations can be
  checked against it.

Every clip gets random nuisance: position, size, angle, texture phase,
background, pixel noise, and the shape's colour (its brightness only, in
`"appearance"`, where colour is part of the class).
"""

from __future__ import annotations

import numpy as np

from keras_vgg4d.layout import validate_time_axis
from keras_vgg4d.pictures import draw_frame
from keras_vgg4d.pictures import matplotlib_classes
from keras_vgg4d.validation import check_bool
from keras_vgg4d.validation import check_integer
from keras_vgg4d.validation import is_integer

TASKS = ("appearance", "order", "motion", "event")
_DEFAULT_CLASSES = {"appearance": 3, "order": 2, "motion": 4, "event": 3}
_MAX_CLASSES = {"appearance": 4, "order": 4, "motion": 6, "event": 4}
_SHAPES = ("disk", "square", "triangle", "cross")
# What each class of the "appearance" task shows: shape, fill and colour.
_APPEARANCE_FILLS = ("solid", "stripes", "checks", "solid")
_APPEARANCE_COLOURS = np.array(
    [[255, 70, 50], [60, 225, 80], [70, 120, 255], [245, 225, 60]], "float32"
)
_MOTIONS = ("right", "left", "down", "up", "clockwise", "anticlockwise")
_APPEARANCE_NAMES = (
    "red disk", "green striped square", "blue checkered triangle",
    "yellow cross",
)
_CLASS_NAMES = {
    "appearance": _APPEARANCE_NAMES,
    "order": ("rising", "falling", "rise-fall", "fall-rise"),
    "motion": _MOTIONS,
    "event": _APPEARANCE_NAMES,
}


def demo_clips(
    n: int = 96,
    frames: int = 8,
    size: int = 32,
    channels: int = 3,
    task: str = "appearance",
    seed: int = 0,
    num_classes: int | None = None,
    return_info: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, dict]:
    """Procedurally drawn clips of moving, rotating or changing shapes.

    Deterministic for a given `seed`, needs no download, and takes well
    under a second for a few hundred small clips. Classes are balanced
    (their counts differ by at most one) and the clips are shuffled.

    Tasks:

    - `"appearance"` (3 classes by default, up to 4): the class is what is
      shown, a red disk, a green striped square, a blue checkered triangle
      or a yellow cross (with `channels=3`; other channel counts get the
      shape and its fill alone), moving and rotating at random. One frame
      tells the class: frame-wise classification works.
    - `"order"` (2 classes by default, up to 4): the frames show a shape
      whose size, contrast and stripe frequency follow a hidden level; the
      frames of a clip are drawn once, then ordered by the class: rising
      level, falling level, rise-then-fall, fall-then-rise. The same frames
      could make a clip of any class, so a frame-wise model is at chance
      and only an order-aware one (LSTM, Conv3D) learns the task.
    - `"motion"` (4 classes by default, up to 6): the class is the
      direction a shape moves, right, left, down or up, then clockwise and
      anticlockwise rotation. A clip of one direction played backwards is
      a clip of the opposite direction.
    - `"event"` (3 classes by default, up to 4): one single frame, at a
      random time, shows one of the `"appearance"` objects at a random
      place, size and angle; every other frame is background. The class is
      that object. Which frame it is and where the object lies come with
      `return_info=True`: ground truth for `keras_vgg4d.explain`.

    Args:
        n: Number of clips, at least `num_classes`.
        frames: Frames per clip (at least 2 for `"order"` and `"motion"`,
            at least 3 for `"order"` with more than 2 classes).
        size: Height and width of a frame, at least 8.
        channels: Channels of a frame: 3 gives colour, 1 grayscale; any
            positive count works.
        task: One of `"appearance"`, `"order"`, `"motion"`, `"event"`.
        seed: Seed of the random draw.
        num_classes: Number of classes; `None` takes the task's default.
        return_info: Whether to return a third item, a dict describing the
            draw. For `"event"` it holds `"event_frame"`, int32 `(n,)`, the
            index of the frame that shows the object, and `"object_mask"`,
            bool `(n, size, size)`, the pixels the object covers in that
            frame (at least half covered). Empty for the other tasks. The
            clips and labels are the same either way.

    Returns:
        A tuple `(x, y)`: `x` float32 of shape
        `(n, frames, size, size, channels)` with values in `[0, 255]` (raw
        pixels: the backbone preprocesses inside), `y` int32 of shape `(n,)`
        with labels in `[0, num_classes)`. `(x, y, info)` with
        `return_info=True`.

    Example:

    >>> from keras_vgg4d.data import demo_clips
    >>> x, y = demo_clips(n=12, frames=4, size=32, task="order", seed=0)
    >>> x.shape, x.dtype.name, sorted(set(y.tolist()))
    ((12, 4, 32, 32, 3), 'float32', [0, 1])
    >>> x, y, info = demo_clips(n=6, frames=5, task="event", return_info=True)
    >>> info["event_frame"].shape, info["object_mask"].shape
    ((6,), (6, 32, 32))
    """
    num_classes = _check_arguments(
        n, frames, size, channels, task, num_classes
    )
    check_bool("demo_clips", "return_info", return_info)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % num_classes).astype("int32")
    painter = _Painter(size, channels)
    draw = {
        "appearance": _appearance_clip,
        "order": _order_clip,
        "motion": _motion_clip,
        "event": _event_clip,
    }[task]
    x = np.empty((n, frames, size, size, channels), "float32")
    info = {}
    if task == "event":
        info["event_frame"] = np.empty(n, "int32")
        info["object_mask"] = np.empty((n, size, size), bool)
    for i, label in enumerate(labels):
        drawn = draw(painter, rng, frames, int(label), num_classes)
        if task == "event":
            x[i], info["event_frame"][i], info["object_mask"][i] = drawn
        else:
            x[i] = drawn
    return (x, labels, info) if return_info else (x, labels)


def _check_arguments(n, frames, size, channels, task, num_classes):
    """Validates `demo_clips`' arguments; returns the number of classes."""
    num_classes = _resolve_classes(task, num_classes)
    if not is_integer(n) or n < num_classes:
        raise ValueError(
            f"demo_clips expects `n` to be an integer of at least "
            f"num_classes={num_classes} (a clip of each class), received: n={n!r}"
        )
    check_integer("demo_clips", "frames", frames, 1)
    check_integer("demo_clips", "size", size, 8)
    check_integer("demo_clips", "channels", channels, 1)
    if task in ("order", "motion") and frames < 2:
        raise ValueError(
            f"The {task!r} demo task needs at least 2 frames a clip; "
            f"received frames={frames}."
        )
    if task == "order" and num_classes > 2 and frames < 3:
        raise ValueError(
            "The 'order' demo task with more than 2 classes needs at least 3 "
            f"frames a clip; received frames={frames}, "
            f"num_classes={num_classes}."
        )
    return num_classes


def demo_class_names(task: str, num_classes: int | None = None) -> list[str]:
    """Names of the classes of a `demo_clips` task, in label order.

    Example:

    >>> from keras_vgg4d.data import demo_class_names
    >>> demo_class_names("order")
    ['rising', 'falling']
    """
    count = _resolve_classes(task, num_classes)
    return list(_CLASS_NAMES[task][:count])


def _resolve_classes(task, num_classes):
    """The number of classes of `task`, validated."""
    if task not in TASKS:
        raise ValueError(
            f"Unknown demo task: task={task!r}. Expected one of {TASKS}."
        )
    if num_classes is None:
        return _DEFAULT_CLASSES[task]
    check_integer("demo_clips", "num_classes", num_classes, 2)
    if num_classes > _MAX_CLASSES[task]:
        raise ValueError(
            f"The {task!r} demo task has at most {_MAX_CLASSES[task]} "
            f"classes; received num_classes={num_classes}."
        )
    return num_classes


def order_permutation(frames: int, label: int) -> np.ndarray:
    """The frame order of class `label` in the `"order"` task.

    Frame `i` of a drawn clip has the `i`-th smallest level; the clip of
    class `label` shows them in this order: 0 rising, 1 falling,
    2 rise-then-fall, 3 fall-then-rise.
    """
    rising = np.arange(frames)
    if label == 0:
        return rising
    if label == 1:
        return rising[::-1].copy()
    peak = np.concatenate([rising[0::2], rising[1::2][::-1]])
    return peak if label == 2 else peak[::-1].copy()


class _Painter:
    """Draws textured shapes over a textured, noisy background."""

    def __init__(self, size, channels):
        self.size = size
        self.channels = channels
        grid = (np.arange(size, dtype="float32") + 0.5) / size
        self.yy, self.xx = np.meshgrid(grid, grid, indexing="ij")

    def colour(self, rng, low, high):
        if self.channels == 1:
            return rng.uniform(low, high, (1,)).astype("float32")
        colour = rng.uniform(low, high, (self.channels,))
        # At least one channel bright, so the shape stands out in colour.
        colour[rng.integers(self.channels)] = high
        return colour.astype("float32")

    def background(self, rng, frames):
        """`(frames, size, size, channels)` dim background with a texture."""
        base = self.colour(rng, 15.0, 70.0)
        angle = rng.uniform(0, np.pi)
        frequency = rng.uniform(1.0, 3.0)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(
            2 * np.pi * frequency
            * (self.xx * np.cos(angle) + self.yy * np.sin(angle))
            + phase
        )
        frame = base * (1.0 + 0.3 * wave[..., None])
        return np.broadcast_to(frame, (frames, *frame.shape))

    def shapes(self, kind, fill, centres, radii, angles, frequencies, phase):
        """Coverage `(T, size, size)` and fill `(T, size, size)` in [0, 1].

        `centres` is `(T, 2)` as (x, y) in image units, `radii`, `angles`
        (radians) and `frequencies` (stripes across the shape) are `(T,)`.
        """
        dx = self.xx[None] - centres[:, 0, None, None]
        dy = self.yy[None] - centres[:, 1, None, None]
        cos = np.cos(angles)[:, None, None]
        sin = np.sin(angles)[:, None, None]
        u = cos * dx + sin * dy
        v = -sin * dx + cos * dy
        r = radii[:, None, None]
        if kind == "disk":
            inside = r - np.sqrt(u**2 + v**2)
        elif kind == "square":
            inside = 0.85 * r - np.maximum(np.abs(u), np.abs(v))
        elif kind == "triangle":
            edges = [
                np.cos(a) * u + np.sin(a) * v
                for a in (np.pi / 2, 7 * np.pi / 6, 11 * np.pi / 6)
            ]
            inside = 0.55 * r - np.maximum.reduce(edges)
        else:  # cross
            arm = 0.35 * r
            inside = np.maximum(
                np.minimum(arm - np.abs(u), r - np.abs(v)),
                np.minimum(arm - np.abs(v), r - np.abs(u)),
            )
        coverage = np.clip(inside * self.size + 0.5, 0.0, 1.0)
        # Stripes and checks are drawn in the shape's own frame, so they
        # move and turn with it; `frequencies` is cycles across the shape.
        f = (np.pi * frequencies / np.maximum(radii, 1e-3))[:, None, None]
        if fill == "solid":
            pattern = np.ones_like(u)
        elif fill == "stripes":
            pattern = 0.5 + 0.5 * np.sin(f * u + phase)
        else:  # checks
            pattern = (np.sin(f * u + phase) * np.sin(f * v + phase) > 0)
        return coverage, 0.35 + 0.65 * pattern

    def compose(self, rng, background, coverage, fill, colour, contrast=1.0):
        """Shape over background plus pixel noise, clipped to [0, 255]."""
        shape = colour * (np.asarray(contrast)[..., None, None, None]
                          * fill[..., None])
        cover = coverage[..., None]
        frames = background * (1.0 - cover) + shape * cover
        frames = frames + rng.normal(0.0, 6.0, frames.shape)
        # Never an all-zero frame: zero frames mean padding to the models.
        return np.clip(frames, 1.0, 255.0).astype("float32")


def _linear_path(rng, frames, radius, speed):
    """Random start and direction; the path stays inside the frame."""
    margin = radius + 0.02
    angle = rng.uniform(0, 2 * np.pi)
    step = speed * np.array([np.cos(angle), np.sin(angle)])
    travel = step * (frames - 1)
    low = margin + np.maximum(-travel, 0)
    high = 1.0 - margin - np.maximum(travel, 0)
    start = rng.uniform(low, np.maximum(low, high))
    return start + np.arange(frames)[:, None] * step


def _appearance_clip(painter, rng, frames, label, num_classes):
    kind, fill = _SHAPES[label], _APPEARANCE_FILLS[label]
    radius = rng.uniform(0.2, 0.3)
    centres = _linear_path(rng, frames, radius, rng.uniform(0.0, 0.04))
    angles = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.3, 0.3) * np.arange(
        frames
    )
    coverage, pattern = painter.shapes(
        kind,
        fill,
        centres,
        np.full(frames, radius),
        angles,
        np.full(frames, rng.uniform(2.0, 3.0)),
        rng.uniform(0, 2 * np.pi),
    )
    colour = _appearance_colour(painter, rng, label)
    return painter.compose(
        rng, painter.background(rng, frames), coverage, pattern, colour
    )


def _appearance_colour(painter, rng, label):
    """The colour of class `label`'s object, with a random brightness."""
    if painter.channels == 3:
        colour = _APPEARANCE_COLOURS[label]
    else:
        colour = np.full(painter.channels, 230.0, "float32")
    colour = colour * rng.uniform(0.75, 1.0) + rng.uniform(
        -15, 15, painter.channels
    )
    return np.clip(colour, 0, 255).astype("float32")


def _event_clip(painter, rng, frames, label, num_classes):
    """Class `label`'s object in one frame, background in all the others.

    Returns the clip, the index of the object's frame and the object's
    `(size, size)` boolean mask in that frame.
    """
    event = int(rng.integers(frames))
    radius = rng.uniform(0.2, 0.3)
    centre = rng.uniform(radius + 0.02, 1.0 - radius - 0.02, (1, 2))
    coverage, pattern = painter.shapes(
        _SHAPES[label],
        _APPEARANCE_FILLS[label],
        centre,
        np.full(1, radius),
        rng.uniform(0, 2 * np.pi, 1),
        np.full(1, rng.uniform(2.0, 3.0)),
        rng.uniform(0, 2 * np.pi),
    )
    colour = _appearance_colour(painter, rng, label)
    # No object in the other frames: nothing covers their background.
    full_coverage = np.zeros((frames, painter.size, painter.size), "float32")
    full_coverage[event] = coverage[0]
    full_pattern = np.ones_like(full_coverage)
    full_pattern[event] = pattern[0]
    clip = painter.compose(
        rng,
        painter.background(rng, frames),
        full_coverage,
        full_pattern,
        colour,
    )
    return clip, event, coverage[0] >= 0.5


def _order_clip(painter, rng, frames, label, num_classes):
    # Levels drawn once for the clip, sorted: frame i has the i-th level.
    levels = np.sort(
        (np.arange(frames) + rng.uniform(0.1, 0.9, frames)) / frames
    )
    kind = _SHAPES[rng.integers(len(_SHAPES))]
    centre = rng.uniform(0.4, 0.6, 2)
    centres = centre + rng.uniform(-0.04, 0.04, (frames, 2))
    radii = 0.1 + 0.3 * levels
    clip = _striped_clip(
        painter, rng, kind, centres, radii,
        rng.uniform(0, 2 * np.pi) + rng.uniform(-0.2, 0.2, frames),
        1.0 + 3.0 * levels, darkest=150.0, contrast=0.45 + 0.55 * levels,
    )
    return clip[order_permutation(frames, label)]


def _motion_clip(painter, rng, frames, label, num_classes):
    motion = _MOTIONS[label]
    # Each motion is drawn as its "forward" twin (right, down, clockwise)
    # and played backwards for the opposite one.
    forward = motion in ("right", "down", "clockwise")
    if motion in ("clockwise", "anticlockwise"):
        kind = ("triangle", "square")[rng.integers(2)]
        radius = rng.uniform(0.25, 0.32)
        centres = np.broadcast_to(
            rng.uniform(0.4, 0.6, 2), (frames, 2)
        ) + rng.uniform(-0.01, 0.01, (frames, 2))
        step = rng.uniform(0.25, 0.35)  # radians a frame, under 45 degrees
        angles = rng.uniform(0, 2 * np.pi) + step * np.arange(frames)
    else:
        kind = _SHAPES[rng.integers(len(_SHAPES))]
        radius = rng.uniform(0.14, 0.2)
        margin = radius + 0.02
        travel = min(0.6, 1.0 - 2 * margin)
        along = margin + rng.uniform(0, 1.0 - 2 * margin - travel)
        along = along + travel * np.arange(frames) / (frames - 1)
        across = np.full(frames, rng.uniform(margin, 1.0 - margin))
        horizontal = motion in ("right", "left")
        centres = np.stack(
            [along, across] if horizontal else [across, along], axis=1
        )
        angles = np.full(frames, rng.uniform(0, 2 * np.pi))
    clip = _striped_clip(
        painter, rng, kind, centres, np.full(frames, radius), angles,
        np.full(frames, rng.uniform(1.5, 2.5)), darkest=120.0,
    )
    return clip if forward else clip[::-1].copy()


def _striped_clip(painter, rng, kind, centres, radii, angles, frequencies,
                  darkest, contrast=1.0):
    """Striped `kind` shapes over a textured background, in a colour drawn
    between `darkest` and 255: the frames of the order and motion tasks."""
    coverage, pattern = painter.shapes(
        kind, "stripes", centres, radii, angles, frequencies,
        rng.uniform(0, 2 * np.pi),
    )
    return painter.compose(
        rng,
        painter.background(rng, len(centres)),
        coverage,
        pattern,
        painter.colour(rng, darkest, 255.0),
        contrast=contrast,
    )


def save_clip_grid(
    x,
    path: str,
    max_clips: int = 8,
    labels=None,
    class_names=None,
    time_axis: int = 1,
    dpi: int = 100,
) -> str:
    """Writes a PNG of clips, one row of frames a clip.

    Needs matplotlib, the `plot` extra: `pip install keras_vgg4d[plot]`.

    Args:
        x: Clips `(n, time, height, width, channels)` (or time last with
            `time_axis=-1`; grayscale without a channel axis works too),
            pixel values in `[0, 255]`. One channel is drawn in gray, three
            in colour, any other count as its first channel in gray.
        path: Where to write the PNG.
        max_clips: Draw at most this many clips (the first ones).
        labels: Optional integer label of each clip, written at the start
            of its row.
        class_names: Optional names of the labels.
        time_axis: `1` or `-1`, where time is in `x`.
        dpi: Resolution; a frame takes about `1.1 * dpi` pixels a side.

    Returns:
        `path`.

    Example:

    >>> import os, tempfile
    >>> from keras_vgg4d.data import demo_clips, save_clip_grid
    >>> x, y = demo_clips(n=4, frames=4, task="motion")
    >>> path = os.path.join(tempfile.mkdtemp(), "clips.png")
    >>> save_clip_grid(x, path, labels=y) == path
    True
    """
    Figure, FigureCanvasAgg = matplotlib_classes("save_clip_grid")
    time_axis = validate_time_axis(time_axis)
    clips = np.asarray(x)
    if clips.ndim == 4:
        clips = clips[..., None] if time_axis == 1 else clips[..., None, :]
    if clips.ndim != 5 or clips.shape[0] == 0:
        raise ValueError(
            "save_clip_grid expects clips (n, time, height, width, channels), "
            f"received shape {np.shape(x)}."
        )
    if time_axis == -1:
        clips = np.moveaxis(clips, -1, 1)
    check_integer("save_clip_grid", "max_clips", max_clips, 1)
    clips = clips[:max_clips]
    rows, columns = clips.shape[:2]
    figure = Figure(figsize=(1.1 * columns + 0.8, 1.1 * rows), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for row in range(rows):
        for column in range(columns):
            ax = axes[row, column]
            draw_frame(ax, clips[row, column])
            if row == 0:
                ax.set_title(f"t={column}", fontsize=8)
        if labels is not None:
            label = int(np.asarray(labels)[row])
            text = class_names[label] if class_names is not None else label
            axes[row, 0].set_ylabel(
                str(text), fontsize=8, rotation=0, ha="right", va="center"
            )
    figure.tight_layout()
    figure.savefig(path)
    return path
