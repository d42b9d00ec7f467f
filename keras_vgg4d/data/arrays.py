"""Clips from arrays and `.npz` files, validated before any training."""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from keras_vgg4d.layout import validate_time_axis
from keras_vgg4d.validation import check_finite
from keras_vgg4d.validation import list_some
from keras_vgg4d.validation import validate_labels

def load_arrays(
    x,
    y=None,
    time_axis: int = 1,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validates clips and labels and returns them time-major.

    Everything is checked before training: the rank, that every clip has
    the same shape, that no value is NaN or infinite, and that the labels
    are integers in range, one per clip. Errors name the clip or label
    index and what is wrong.

    Args:
        x: Clips `(n, time, height, width, channels)`, or
            `(n, height, width, channels, time)` with `time_axis=-1`.
            Grayscale clips without a channel axis, `(n, time, height,
            width)` (or `(n, height, width, time)`), get one. A list of
            clips of equal shapes works too.
        y: Optional integer labels `(n,)`. Floats holding whole numbers are
            accepted; one-hot labels are not (use `np.argmax(y, -1)`).
        time_axis: `1` or `-1`, where time is in `x`.
        num_classes: Optional number of classes: labels must then lie in
            `[0, num_classes)`.

    Returns:
        A tuple `(x, y)`: `x` float32 `(n, time, height, width, channels)`,
        `y` int32 `(n,)`, or `None` when no labels were given.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d.data import load_arrays
    >>> x, y = load_arrays(np.zeros((4, 32, 32, 6)), [0, 1, 1, 0],
    ...                    time_axis=-1)
    >>> x.shape, y.dtype.name
    ((4, 6, 32, 32, 1), 'int32')
    """
    time_axis = validate_time_axis(time_axis)
    clips = _stack_clips(x)
    if clips.ndim not in (4, 5):
        raise ValueError(
            "load_arrays expects clips of rank 5, (n, time, height, width, "
            "channels), or rank 4 for grayscale (n, time, height, width), "
            f"with time_axis={time_axis}; received shape {clips.shape} "
            f"(rank {clips.ndim})."
        )
    if clips.ndim == 4:
        clips = clips[..., None] if time_axis == 1 else clips[..., None, :]
    if time_axis == -1:
        clips = np.moveaxis(clips, -1, 1)
    if 0 in clips.shape:
        raise ValueError(
            "load_arrays received empty clips: shape "
            f"{clips.shape} (n, time, height, width, channels) has a zero "
            "axis."
        )
    clips = np.ascontiguousarray(clips, dtype="float32")
    check_finite(clips)
    labels = None
    if y is not None:
        labels = validate_labels(y, len(clips), num_classes)
    return clips, labels


def _stack_clips(x) -> np.ndarray:
    if isinstance(x, np.ndarray):
        clips = x
    elif isinstance(x, (list, tuple)):
        if not x:
            raise ValueError("load_arrays received an empty list of clips.")
        shapes = [np.shape(clip) for clip in x]
        bad = [i for i, shape in enumerate(shapes) if shape != shapes[0]]
        if bad:
            listed = list_some(f"{i} {shapes[i]}" for i in bad)
            raise ValueError(
                "load_arrays expects every clip to have the same shape; clip "
                f"0 has shape {shapes[0]} but clip(s) {listed} differ. Pad "
                "or crop them to one length and resize them to one size "
                "first, or load them with `load_folder`."
            )
        clips = np.stack([np.asarray(clip) for clip in x])
    else:
        clips = np.asarray(x)
    if clips.dtype == object or not (
        np.issubdtype(clips.dtype, np.number) or clips.dtype == bool
    ):
        raise ValueError(
            "load_arrays expects numeric clips; received dtype "
            f"{clips.dtype}. Ragged clips (different shapes) cannot be "
            "stacked: pad or crop them first, or load them with "
            "`load_folder`."
        )
    return clips


def load_npz(
    path: str | os.PathLike,
    x_key: str = "x",
    y_key: str | None = "y",
    time_axis: int = 1,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Clips and labels from an `.npz` file, validated like `load_arrays`.

    Args:
        path: An `.npz` file, as written by `np.savez`.
        x_key: The name of the clips array in the file.
        y_key: The name of the labels array, or `None` to load clips only.
        time_axis: `1` or `-1`, where time is in the clips.
        num_classes: Optional number of classes to check labels against.

    Returns:
        A tuple `(x, y)` as `load_arrays` returns it.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from keras_vgg4d.data import load_npz
    >>> path = os.path.join(tempfile.mkdtemp(), "clips.npz")
    >>> np.savez(path, x=np.ones((2, 3, 32, 32, 3)), y=[0, 1])
    >>> x, y = load_npz(path)
    >>> x.shape, y.tolist()
    ((2, 3, 32, 32, 3), [0, 1])
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such .npz file: {path!r}")
    # A truncated or corrupt file fails on opening or on reading a member.
    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
    try:
        archive = np.load(path, allow_pickle=False)
    except unreadable as error:
        raise ValueError(f"Cannot read {path!r} as .npz: {error}") from error
    with archive:
        keys = list(archive.keys())
        for name, key in (("x_key", x_key), ("y_key", y_key)):
            if key is not None and key not in keys:
                raise ValueError(
                    f"{path!r} holds no array named {key!r} ({name}); it "
                    f"holds {keys}. Pass {name}= one of them."
                )
        try:
            x = archive[x_key]
            y = None if y_key is None else archive[y_key]
        except unreadable as error:
            raise ValueError(
                f"Cannot read {path!r} as .npz (corrupt or truncated): {error}"
            ) from error
    try:
        return load_arrays(x, y, time_axis=time_axis, num_classes=num_classes)
    except ValueError as error:
        raise ValueError(f"In {path!r}: {error}") from error
