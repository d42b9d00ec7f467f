"""The one place for argument and clip checks.

Layers, the model, the hypermodel and the loaders call these, so a wrong
argument, a wrong layout, a NaN or a label out of range is named at the call
that received it, with what was expected, rather than deep inside
TensorFlow. Like Keras' own `argument_validation`, it holds checks only.

NumPy clips are checked in one pass: the shape checks are free and
`check_finite` sums the clips once. `tf.data` datasets, generators and
tensors pass `check_arrays` unchecked: Keras checks them as it reads them.
"""

from __future__ import annotations

import numbers

import numpy as np

from keras_vgg4d.layout import LAYOUTS
from keras_vgg4d.layout import to_time_major_shape

# VGG19's five poolings leave a 1x1 map of a 32x32 frame.
MIN_FRAME_SIZE = 32
# How many bad indices an error message lists before "and N more".
_MAX_LISTED = 10


# --- arguments -------------------------------------------------------------


def is_integer(value) -> bool:
    """Whether `value` is an integer (Python or NumPy), and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """Whether `value` is a real number (Python or NumPy), and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_integer(
    owner: str,
    name: str,
    value,
    minimum: int | None = None,
    maximum: int | None = None,
    allow_none: bool = False,
) -> int | None:
    """Returns `value` as an `int` if it is an integer in range.

    Args:
        owner: The class or function that received it, for the message.
        name: The argument's name.
        value: What was received.
        minimum: The smallest value allowed, if any.
        maximum: The largest value allowed, if any.
        allow_none: Whether `None` is allowed (and returned).

    Raises:
        ValueError: naming `owner`, the argument and the value received.
    """
    if value is None and allow_none:
        return None
    in_range = is_integer(value) and (
        (minimum is None or value >= minimum)
        and (maximum is None or value <= maximum)
    )
    if not in_range:
        if minimum is not None and maximum is not None:
            expected = f"an integer from {minimum} to {maximum}"
        elif minimum is not None:
            expected = f"an integer >= {minimum}"
        else:
            expected = "an integer"
        if allow_none:
            expected += " or None"
        raise ValueError(
            f"{owner} expects `{name}` to be {expected}, received: "
            f"{name}={value!r}"
        )
    return int(value)


def check_rate(owner: str, name: str, value) -> float:
    """Returns `value` as a `float` if it is a rate in `[0, 1)`."""
    if not is_number(value) or not 0.0 <= float(value) < 1.0:
        raise ValueError(
            f"{owner} expects `{name}` in [0, 1), received: {name}={value!r}"
        )
    return float(value)


def check_positive(owner: str, name: str, value, hint: str = "") -> float:
    """Returns `value` as a `float` if it is finite and > 0 (NaN is not)."""
    if not (is_number(value) and 0.0 < float(value) < float("inf")):
        raise ValueError(
            f"{owner} expects `{name}` to be a positive number{hint}, "
            f"received: {name}={value!r}"
        )
    return float(value)


def check_choice(owner: str, name: str, value, choices):
    """Returns `value` if it is one of `choices`, else `ValueError`."""
    if value not in choices:
        raise ValueError(
            f"{owner} expects `{name}` to be one of {list(choices)}, "
            f"received: {name}={value!r}"
        )
    return value


def check_bool(owner: str, name: str, value) -> bool:
    """Returns `value` if it is `True` or `False` (a NumPy bool too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"{owner} expects `{name}` to be True or False, received: "
            f"{name}={value!r}"
        )
    return bool(value)


def check_image_size(owner: str, name: str, value) -> tuple[int, int] | None:
    """`None`, or `value` (an int or `(height, width)`) as a pair of ints."""
    if value is None:
        return None
    if is_integer(value):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(
            f"{owner} expects `{name}` to be None, an int or (height, "
            f"width); received: {name}={value!r}"
        )
    return tuple(check_integer(owner, name, size, minimum=1) for size in value)


def check_num_classes(owner: str, num_classes) -> int:
    """Returns `num_classes` if it is an integer >= 2, else `ValueError`."""
    return check_integer(owner, "num_classes", num_classes, minimum=2)


def list_some(items, limit: int = _MAX_LISTED) -> str:
    """`items` joined by commas, at most `limit` of them, then a count."""
    items = [str(item) for item in items]
    text = ", ".join(items[:limit])
    if len(items) > limit:
        text += f" and {len(items) - limit} more"
    return text


# --- clips -----------------------------------------------------------------


def _frames_fit(shape, time_axis: int, known: bool = False) -> bool:
    height, width = to_time_major_shape(shape, time_axis)[2:4]
    return all(
        (size is None and not known) or (size or 0) >= MIN_FRAME_SIZE
        for size in (height, width)
    )


def check_clip_shape(
    what: str,
    shape: tuple,
    time_axis: int,
    channels: int | None = None,
    known_frame_size: bool = False,
    allow_empty: bool = False,
) -> tuple:
    """Validates a clip batch shape; returns it time-major.

    Args:
        what: How the message names the value, e.g. "`x` passed to
            VGG4DClassifier.fit".
        shape: `(batch, ...)` shape laid out as `time_axis` says; `batch`
            and `time` may be `None`.
        time_axis: `1` or `-1`.
        channels: The channel count the model was built for, if any.
        known_frame_size: Whether height and width must be known (a layer
            building its weights needs them).
        allow_empty: Whether a batch of no clips is allowed (a layer may be
            called on one; data given to `fit` may not).

    Raises:
        ValueError: wrong rank, an empty axis, frames under 32x32, an
            unknown channel count or one the model was not built for.
    """
    shape = tuple(None if size is None else int(size) for size in shape)
    layout = LAYOUTS[time_axis]
    if len(shape) != 5:
        raise ValueError(
            f"{what} must be clips of rank 5, {layout} with "
            f"time_axis={time_axis}; received input shape {shape} (rank "
            f"{len(shape)}). Grayscale clips need a channel axis of size 1."
        )
    batch, time, height, width, chans = to_time_major_shape(shape, time_axis)
    if (batch == 0 and not allow_empty) or time == 0:
        kind = "an empty batch" if batch == 0 else "clips of zero frames"
        raise ValueError(
            f"{what} is empty: shape {shape}, {layout} with "
            f"time_axis={time_axis}, holds {kind}. Pass at least one clip "
            "of at least one frame."
        )
    if not _frames_fit(shape, time_axis, known_frame_size):
        other = -time_axis
        hint = (
            f" With time_axis={other} its frames would be large enough: if "
            f"time is on axis {other}, pass time_axis={other}."
            if _frames_fit(shape, other, known_frame_size)
            else " Resize the frames (e.g. `keras.layers.Resizing`)."
        )
        raise ValueError(
            f"{what} must hold frames of at least {MIN_FRAME_SIZE}x"
            f"{MIN_FRAME_SIZE}; received input shape {shape}, read as {layout} "
            f"with time_axis={time_axis}, so frames of {height}x{width}."
            + hint
        )
    if chans is None or chans < 1:
        raise ValueError(
            f"{what} must have a known channel count of at least 1; received "
            f"input shape {shape} with time_axis={time_axis}."
        )
    if channels is not None and chans != channels:
        raise ValueError(
            f"{what} has {chans} channels (shape {shape}, time_axis="
            f"{time_axis}) but the model was built for {channels}. Convert "
            f"the clips to {channels} channels, or build a new model for "
            f"{chans}."
        )
    return batch, time, height, width, chans


def check_finite(clips: np.ndarray, names=None) -> None:
    """Raises `ValueError` naming the clips that hold NaN or infinity.

    Args:
        clips: `(n, time, ...)` array.
        names: Optional name of each clip (e.g. its file) for the message;
            by default clips are named by index.
    """
    if not np.issubdtype(clips.dtype, np.floating):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        total = clips.sum()
    if np.isfinite(total):
        # Fast path: a sum is finite only if every value is (barring an
        # overflow, which the slow path below then checks exactly).
        return
    finite = np.isfinite(clips.reshape(len(clips), -1)).all(axis=1)
    bad = np.flatnonzero(~finite)
    if len(bad) == 0:
        return
    described = []
    for i in bad[:_MAX_LISTED]:
        values = clips[i].reshape(clips.shape[1], -1)
        frame = int(np.argmin(np.isfinite(values).all(axis=1)))
        kind = "NaN" if np.isnan(values).any() else "infinite values"
        name = f"clip {i}" if names is None else str(names[i])
        described.append(f"{name} ({kind}, first in frame {frame})")
    more = len(bad) - len(described)
    raise ValueError(
        f"{len(bad)} clip(s) hold NaN or infinite values: "
        + ", ".join(described)
        + (f" and {more} more" if more else "")
        + ". Fix or drop them before training (e.g. `np.nan_to_num`)."
    )


def validate_labels(y, num_clips: int, num_classes: int | None = None):
    """Integer labels `(num_clips,)` as int32, else `ValueError` naming why.

    Args:
        y: Labels, one per clip.
        num_clips: How many clips the labels must match.
        num_classes: Optional; labels must then lie in `[0, num_classes)`.

    Returns:
        int32 array `(num_clips,)`.
    """
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise ValueError(
            "Labels must be integer class indices of shape (n,); received "
            f"shape {labels.shape}, which looks one-hot. Use "
            "`np.argmax(y, axis=-1)`."
        )
    if labels.ndim == 2:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"Labels must have shape (n,); received shape {labels.shape}."
        )
    if len(labels) != num_clips:
        raise ValueError(
            f"Expected one label a clip: {num_clips} clips but "
            f"{len(labels)} labels."
        )
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.number):
        raise ValueError(
            "Labels must be integers; received dtype "
            f"{labels.dtype}. Map class names to indices first."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        not_whole = np.flatnonzero(
            ~np.isfinite(labels) | (labels != np.round(labels))
        )
        if len(not_whole):
            listed = list_some(
                f"{i} ({labels[i].item()!r})" for i in not_whole
            )
            raise ValueError(
                f"Labels must be integers; label(s) at index {listed} are "
                "not."
            )
    if num_classes is not None and (
        not is_integer(num_classes) or num_classes < 1
    ):
        raise ValueError(
            "`num_classes` must be a positive integer or None; received "
            f"num_classes={num_classes!r}."
        )
    high = np.inf if num_classes is None else num_classes
    out_of_range = np.flatnonzero((labels < 0) | (labels >= high))
    if len(out_of_range):
        listed = list_some(
            f"{i} ({labels[i].item()!r})" for i in out_of_range
        )
        expected = (
            "non-negative" if num_classes is None
            else f"in [0, {num_classes}) for num_classes={num_classes}"
        )
        raise ValueError(
            f"Labels must be {expected}; label(s) at index {listed} are "
            "out of range."
        )
    return labels.astype("int32")


def check_clips(
    what: str, x: np.ndarray, time_axis: int, channels: int | None = None
) -> None:
    """`check_clip_shape` on `x.shape`, then NaN and infinity, in one pass."""
    check_clip_shape(what, x.shape, time_axis, channels)
    if x.dtype == object or not (
        np.issubdtype(x.dtype, np.number) or x.dtype == bool
    ):
        raise ValueError(
            f"{what} must be numeric clips; received dtype {x.dtype}."
        )
    try:
        # Time-major view (no copy), so the message counts frames right.
        check_finite(x if time_axis == 1 else np.moveaxis(x, -1, 1))
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None


def check_labels(
    what: str, y, num_clips: int, num_classes: int | None
) -> None:
    """`validate_labels`, with `what` named in the message."""
    try:
        validate_labels(y, num_clips, num_classes)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None


def is_array(value) -> bool:
    """Whether `value` is a NumPy array (the inputs checked here)."""
    return isinstance(value, np.ndarray)


def check_arrays(
    caller: str,
    x,
    y=None,
    time_axis: int = 1,
    channels: int | None = None,
    num_classes: int | None = None,
    validation_data=None,
) -> None:
    """Checks NumPy clips, labels and validation data given to `caller`.

    Anything that is not a NumPy array (a `tf.data.Dataset`, a tensor, a
    generator, a `PyDataset`) passes through: Keras checks it as it reads
    it.

    Args:
        caller: e.g. `"VGG4DClassifier.fit"`, for messages.
        x: Clips, laid out as `time_axis` says.
        y: Integer labels, one per clip, or `None`.
        time_axis: `1` or `-1`.
        channels: The channel count the model was built for, if built.
        num_classes: Labels must lie in `[0, num_classes)`.
        validation_data: `(x_val, y_val)` or `(x_val, y_val, weights)`.
    """
    if is_array(x):
        check_clips(f"`x` passed to {caller}", x, time_axis, channels)
        if y is not None and (is_array(y) or isinstance(y, (list, tuple))):
            check_labels(f"`y` passed to {caller}", y, len(x), num_classes)
    if isinstance(validation_data, (tuple, list)) and validation_data:
        val_x = validation_data[0]
        val_y = validation_data[1] if len(validation_data) > 1 else None
        if is_array(val_x):
            what = f"`validation_data` passed to {caller}"
            check_clips(f"{what} (clips)", val_x, time_axis, channels)
            if val_y is not None and (
                is_array(val_y) or isinstance(val_y, (list, tuple))
            ):
                check_labels(f"{what} (labels)", val_y, len(val_x),
                             num_classes)
