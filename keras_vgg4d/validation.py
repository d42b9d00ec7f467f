"""Early checks of what users give the classifier and the hypermodel.

The model checks NumPy clips and labels before Keras turns them into
tensors, so a wrong layout, a NaN or a label out of range is named at the
call that received it rather than deep inside TensorFlow. One pass over the
array: the shape checks are free and `check_finite` sums the clips once.
`tf.data` datasets, generators and tensors pass through unchecked.
"""

from __future__ import annotations

import numpy as np

from keras_vgg4d.backbone import MIN_FRAME_SIZE
from keras_vgg4d.layout import to_time_major_shape

_LAYOUTS = {
    1: "(batch, time, height, width, channels)",
    -1: "(batch, height, width, channels, time)",
}


def check_num_classes(owner: str, num_classes) -> int:
    """Returns `num_classes` if it is an integer >= 2, else `ValueError`."""
    if isinstance(num_classes, bool) or not isinstance(
        num_classes, (int, np.integer)
    ) or num_classes < 2:
        raise ValueError(
            f"{owner} expects `num_classes` to be an integer >= 2, received: "
            f"num_classes={num_classes!r}"
        )
    return int(num_classes)


def _frames_fit(shape, time_axis: int) -> bool:
    height, width = to_time_major_shape(shape, time_axis)[2:4]
    return all(
        size is None or size >= MIN_FRAME_SIZE for size in (height, width)
    )


def check_clip_shape(
    what: str, shape: tuple, time_axis: int, channels: int | None = None
) -> tuple:
    """Validates a clip batch shape; returns it time-major.

    Args:
        what: How the message names the value, e.g. "`x` passed to
            VGG4DClassifier.fit".
        shape: `(batch, ...)` shape laid out as `time_axis` says; `batch`
            and `time` may be `None`.
        time_axis: `1` or `-1`.
        channels: The channel count the model was built for, if any.

    Raises:
        ValueError: wrong rank, an empty axis, frames under 32x32, an
            unknown channel count or one the model was not built for.
    """
    shape = tuple(None if size is None else int(size) for size in shape)
    layout = _LAYOUTS[time_axis]
    if len(shape) != 5:
        raise ValueError(
            f"{what} must be clips of rank 5, {layout} with "
            f"time_axis={time_axis}; received shape {shape} (rank "
            f"{len(shape)}). Grayscale clips need a channel axis of size 1."
        )
    batch, time, height, width, chans = to_time_major_shape(shape, time_axis)
    if batch == 0 or time == 0:
        kind = "an empty batch" if batch == 0 else "clips of zero frames"
        raise ValueError(
            f"{what} is empty: shape {shape}, {layout} with "
            f"time_axis={time_axis}, holds {kind}. Pass at least one clip "
            "of at least one frame."
        )
    if not _frames_fit(shape, time_axis):
        other = -time_axis
        hint = (
            f" With time_axis={other} its frames would be large enough: if "
            f"time is on axis {other}, pass time_axis={other}."
            if _frames_fit(shape, other)
            else " Resize the frames (e.g. `keras.layers.Resizing`)."
        )
        raise ValueError(
            f"{what} must hold frames of at least {MIN_FRAME_SIZE}x"
            f"{MIN_FRAME_SIZE}; received shape {shape}, read as {layout} "
            f"with time_axis={time_axis}, so frames of {height}x{width}."
            + hint
        )
    if chans is None or chans < 1:
        raise ValueError(
            f"{what} must have a known channel count of at least 1; received "
            f"shape {shape} with time_axis={time_axis}."
        )
    if channels is not None and chans != channels:
        raise ValueError(
            f"{what} has {chans} channels (shape {shape}, time_axis="
            f"{time_axis}) but the model was built for {channels}. Convert "
            f"the clips to {channels} channels, or build a new model for "
            f"{chans}."
        )
    return batch, time, height, width, chans


def check_clips(
    what: str, x: np.ndarray, time_axis: int, channels: int | None = None
) -> None:
    """`check_clip_shape` on `x.shape`, then NaN and infinity, in one pass."""
    # Imported here: `keras_vgg4d.data` loads on first use (see __init__).
    from keras_vgg4d.data.arrays import check_finite

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
    from keras_vgg4d.data.arrays import validate_labels

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
