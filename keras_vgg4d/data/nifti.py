"""Clips from 4D NIfTI volumes `(X, Y, Z, T)`: slices over time.

Needs nibabel, the `nifti` extra: `pip install keras_vgg4d[nifti]`.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from keras_vgg4d.validation import check_image_size
from keras_vgg4d.validation import check_integer


def _import_nibabel():
    try:
        import nibabel
    except ImportError as error:
        raise ImportError(
            "load_nifti needs nibabel, which is not installed. Install the "
            "nifti extra: `pip install keras_vgg4d[nifti]`."
        ) from error
    return nibabel


def load_nifti(
    path,
    labels=None,
    slice_axis: int = 2,
    slices=None,
    size: int | tuple[int, int] | None = None,
    channels: int = 1,
    clip_percentiles: tuple[float, float] | None = None,
    verbose: int = 1,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Clips of 2D slices over time from 4D NIfTI volumes.

    A volume `(X, Y, Z, T)`, such as a cine MRI or an fMRI run, becomes one
    clip a slice along `slice_axis`: with `slice_axis=2`, clip `z` is
    `volume[:, :, z, :]` laid out `(T, X, Y, channels)`. Intensities are
    scaled to `[0, 255]` per volume, from its minimum and maximum (or the
    percentiles in `clip_percentiles`, values beyond them clipped), so the
    clips look like the 8-bit images the backbone expects. A volume of one
    value gives zeros.

    Args:
        path: A `.nii` / `.nii.gz` file, or a list of them.
        labels: Optional class of each volume (an int for one file, a list
            for several); every slice of a volume gets its label.
        slice_axis: The spatial axis, `0`, `1` or `2`, to slice along.
        slices: Optional indices (a list, or a Python `slice`) of the
            slices to keep, e.g. `slice(4, 12)`; all by default.
        size: `(height, width)` or an int to resize the slices to
            (bilinear, antialiased); `None` keeps them, and the volumes
            must then agree in the two in-plane sizes.
        channels: Channels of the output; the gray slice is repeated, e.g.
            `3` for an RGB backbone.
        clip_percentiles: Optional `(low, high)` percentiles of the volume
            that map to 0 and 255, e.g. `(0.5, 99.5)` against outliers.
        verbose: `1` shows a progress bar over several volumes, `0` none.

    Returns:
        A tuple `(x, y)`: `x` float32 `(clips, T, height, width, channels)`
        with the clips of each volume in turn; `y` int32 `(clips,)`, or
        `None` without `labels`.

    Example:

    >>> import os, tempfile
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from keras_vgg4d.data import load_nifti
    >>> path = os.path.join(tempfile.mkdtemp(), "cine.nii.gz")
    >>> volume = np.random.default_rng(0).random((32, 32, 6, 10))
    >>> nib.save(nib.Nifti1Image(volume.astype("float32"), np.eye(4)), path)
    >>> x, y = load_nifti(path, labels=1, verbose=0)
    >>> x.shape, float(x.min()), float(x.max()), y[:3].tolist()
    ((6, 10, 32, 32, 1), 0.0, 255.0, [1, 1, 1])
    """
    nibabel = _import_nibabel()
    paths = (
        [path] if isinstance(path, (str, os.PathLike)) else list(path)
    )
    if not paths:
        raise ValueError("load_nifti received an empty list of paths.")
    paths = [os.fspath(p) for p in paths]
    check_integer("load_nifti (a spatial axis of the (X, Y, Z, T) volume)",
                  "slice_axis", slice_axis, 0, 2)
    check_integer("load_nifti", "channels", channels, 1)
    if clip_percentiles is not None and not (
        len(clip_percentiles) == 2
        and 0 <= clip_percentiles[0] < clip_percentiles[1] <= 100
    ):
        raise ValueError(
            "`clip_percentiles` must be (low, high) with 0 <= low < high <= "
            f"100; received clip_percentiles={clip_percentiles!r}."
        )
    volume_labels = _volume_labels(labels, paths)
    size = check_image_size("load_nifti", "size", size)

    progress = keras.utils.Progbar(
        len(paths), verbose=verbose if len(paths) > 1 else 0, unit_name="file"
    )
    all_clips, all_labels = [], []
    for index, volume_path in enumerate(paths):
        clips = _volume_clips(
            nibabel, volume_path, slice_axis, slices, clip_percentiles
        )
        if size is not None and clips.shape[2:4] != tuple(size):
            time = clips.shape[1]
            clips = tf.image.resize(
                clips.reshape(-1, *clips.shape[2:]), size, antialias=True
            ).numpy()
            clips = np.clip(clips, 0, 255).reshape(-1, time, *size, 1)
        if all_clips and clips.shape[1:] != all_clips[0].shape[1:]:
            raise ValueError(
                f"{volume_path!r} gives clips of (time, height, width) "
                f"{clips.shape[1:4]}, but {paths[0]!r} gives "
                f"{all_clips[0].shape[1:4]}. Pass size= to resize the "
                "slices; volumes must share the number of time points."
            )
        all_clips.append(clips)
        if volume_labels is not None:
            all_labels.append(np.full(len(clips), volume_labels[index]))
        progress.add(1)
    x = np.concatenate(all_clips).astype("float32")
    if channels > 1:
        x = np.repeat(x, channels, axis=-1)
    y = None if volume_labels is None else np.concatenate(all_labels)
    return x, None if y is None else y.astype("int32")


def _volume_labels(labels, paths):
    if labels is None:
        return None
    values = np.atleast_1d(np.asarray(labels))
    if len(values) != len(paths):
        raise ValueError(
            f"Expected one label a volume: {len(paths)} file(s) but "
            f"{len(values)} label(s), labels={labels!r}."
        )
    if not np.issubdtype(values.dtype, np.integer) or (values < 0).any():
        raise ValueError(
            "Labels must be non-negative integers, one a volume; received "
            f"labels={labels!r}."
        )
    return values


def _volume_clips(nibabel, path, slice_axis, slices, clip_percentiles):
    """`(slices, T, height, width, 1)` float32 in `[0, 255]` of one file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such NIfTI file: {path!r}")
    try:
        image = nibabel.load(path)
        volume = np.asarray(image.dataobj, dtype="float32")
    except Exception as error:  # nibabel raises several kinds on bad files
        raise ValueError(
            f"Cannot read {path!r} as NIfTI: {error}"
        ) from error
    if volume.ndim != 4:
        raise ValueError(
            f"{path!r} holds a volume of shape {volume.shape}; load_nifti "
            "expects 4D (X, Y, Z, T), slices over time. A 3D volume has no "
            "time axis."
        )
    finite = np.isfinite(volume)
    if not finite.all():
        raise ValueError(
            f"{path!r} holds {int((~finite).sum())} NaN or infinite "
            f"values, first at voxel {np.argwhere(~finite)[0].tolist()}."
        )
    # (X, Y, Z, T) -> (slice, T, in-plane axes in their order).
    plane = [a for a in (0, 1, 2) if a != slice_axis]
    clips = np.transpose(volume, (slice_axis, 3, *plane))
    if slices is not None:
        try:
            clips = clips[slices] if isinstance(slices, slice) else clips[
                np.asarray(slices, dtype=int)
            ]
        except IndexError as error:
            raise ValueError(
                f"slices={slices!r} does not fit the {clips.shape[0]} "
                f"slices along axis {slice_axis} of {path!r}: {error}"
            ) from error
        if len(clips) == 0:
            raise ValueError(
                f"slices={slices!r} keeps no slice of {path!r}, which has "
                f"{volume.shape[slice_axis]} along axis {slice_axis}."
            )
    if clip_percentiles is None:
        low, high = float(volume.min()), float(volume.max())
    else:
        low, high = np.percentile(volume, clip_percentiles)
    scale = 255.0 / (high - low) if high > low else 0.0
    clips = np.clip((clips - low) * scale, 0.0, 255.0)
    return clips[..., None].astype("float32")
