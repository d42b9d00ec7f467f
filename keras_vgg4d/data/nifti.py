"""Clips from 4D NIfTI volumes `(X, Y, Z, T)`: slices over time.

Needs nibabel, the `nifti` extra: `pip install keras_vgg4d[nifti]`.
Intensities map to 0..255 per volume by the `intensity` option that DICOM
shares (see `keras_vgg4d.data.intensity`); a NIfTI file's own window is
its header's `cal_min`/`cal_max`.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from keras_vgg4d.backend import LazyTensorFlow
from keras_vgg4d.data.intensity import Window
from keras_vgg4d.data.intensity import apply_window
from keras_vgg4d.data.intensity import check_intensity
from keras_vgg4d.data.intensity import intensity_window
from keras_vgg4d.data.intensity import needs_values
from keras_vgg4d.validation import check_image_size
from keras_vgg4d.validation import check_integer

tf = LazyTensorFlow("Loading NIfTI clips into a tf.data pipeline")


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
    intensity="minmax",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Clips of 2D slices over time from 4D NIfTI volumes.

    A volume `(X, Y, Z, T)`, such as a cine MRI or an fMRI run, becomes one
    clip a slice along `slice_axis`: with `slice_axis=2`, clip `z` is
    `volume[:, :, z, :]` laid out `(T, X, Y, channels)`. Intensities are
    scaled to `[0, 255]` per volume, from its minimum and maximum by
    default (`intensity`: also the header's window, percentiles, or a
    fixed window; values beyond it clipped), so the clips look like the
    8-bit images the backbone expects. A volume of one value gives zeros.

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
            that map to 0 and 255, e.g. `(0.5, 99.5)` against outliers;
            the same as `intensity=(low, high)`.
        verbose: `1` shows a progress bar over several volumes, `0` none.
        intensity: How a volume's values map to 0..255, as for DICOM:
            `"minmax"` (default), `"window"` (the header's `cal_min` to
            `cal_max`, else the 0.5th to 99.5th percentiles),
            `"percentiles"` (0.5th to 99.5th), percentiles `(low, high)`,
            or a fixed window `{"center": c, "width": w}`; see
            `keras_vgg4d.data.intensity`.

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
    intensity = _intensity_option(intensity, clip_percentiles)
    volume_labels = _volume_labels(labels, paths)
    size = check_image_size("load_nifti", "size", size)

    progress = keras.utils.Progbar(
        len(paths), verbose=verbose if len(paths) > 1 else 0, unit_name="file"
    )
    all_clips, all_labels = [], []
    for index, volume_path in enumerate(paths):
        clips = _volume_clips(
            nibabel, volume_path, slice_axis, slices, intensity
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


def _intensity_option(intensity, clip_percentiles):
    """`intensity`, or `clip_percentiles` as one, checked."""
    if clip_percentiles is None:
        return check_intensity("load_nifti", intensity)
    if not (
        len(clip_percentiles) == 2
        and 0 <= clip_percentiles[0] < clip_percentiles[1] <= 100
    ):
        raise ValueError(
            "`clip_percentiles` must be (low, high) with 0 <= low < high <= "
            f"100; received clip_percentiles={clip_percentiles!r}."
        )
    if not (isinstance(intensity, str) and intensity == "minmax"):
        raise ValueError(
            "load_nifti: pass either clip_percentiles or intensity, not "
            f"both; received clip_percentiles={clip_percentiles!r}, "
            f"intensity={intensity!r}. intensity=(low, high) is the same "
            "as clip_percentiles=(low, high)."
        )
    return check_intensity("load_nifti", tuple(clip_percentiles))


def volume_window(image, intensity, volume: np.ndarray | None = None):
    """The `Window` of a nibabel image that `intensity` picks.

    Reads the volume only if `intensity` needs its values (and `volume`
    is not given); `ValueError` if it holds NaN or infinity.
    """
    header = image.header
    low, high = (float(header.get(k, 0.0)) for k in ("cal_min", "cal_max"))
    stored = Window((low + high) / 2, high - low) if high > low else None
    if not needs_values(intensity, stored):
        return intensity_window(None, intensity, stored)
    if volume is None:
        volume = np.asarray(image.dataobj, dtype="float32")
        if not np.isfinite(volume).all():
            raise ValueError("holds NaN or infinite values")
    return intensity_window(volume, intensity, stored)


def _volume_labels(labels, paths, what="volume"):
    """One non-negative integer label a path, or `None`."""
    if labels is None:
        return None
    values = np.atleast_1d(np.asarray(labels))
    if len(values) != len(paths):
        raise ValueError(
            f"Expected one label a {what}: {len(paths)} path(s) but "
            f"{len(values)} label(s), labels={labels!r}."
        )
    if not np.issubdtype(values.dtype, np.integer) or (values < 0).any():
        raise ValueError(
            f"Labels must be non-negative integers, one a {what}; received "
            f"labels={labels!r}."
        )
    return values


def _volume_clips(nibabel, path, slice_axis, slices, intensity):
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
    window = volume_window(image, intensity, volume)
    return apply_window(clips, window)[..., None]
