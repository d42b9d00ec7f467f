"""`clip_dataset_from_directory`: a streaming `tf.data.Dataset` of clips.

Shaped after `keras.utils.image_dataset_from_directory`: the same
argument names where they mean the same, `.class_names` and `.file_paths`
on the dataset, `subset="both"`. Listing probes each clip cheaply; frames
are decoded batch by batch in a parallel `map`, so only the batches in
flight are ever in memory.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import warnings
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np

from keras_vgg4d.backend import LazyTensorFlow
from keras_vgg4d.data.sampling import check_sampling
from keras_vgg4d.data.sampling import sample_frame_indices
from keras_vgg4d.data.sources import check_common_size
from keras_vgg4d.data.sources import _index_directory
from keras_vgg4d.data.sources import read_sampled_clip
from keras_vgg4d.data.sources import split_clip_sources
from keras_vgg4d.layout import validate_time_axis
from keras_vgg4d.validation import check_bool
from keras_vgg4d.validation import check_choice
from keras_vgg4d.validation import check_image_size
from keras_vgg4d.validation import check_integer
from keras_vgg4d.validation import is_integer
from keras_vgg4d.validation import is_number
from keras_vgg4d.validation import list_some

tf = LazyTensorFlow("clip_dataset_from_directory (a tf.data pipeline)")

_OWNER = "clip_dataset_from_directory"
COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}
LABEL_MODES = ("int", "categorical", "binary", None)
INTERPOLATIONS = (
    "bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5",
    "gaussian", "mitchellcubic",
)


def resize_clip(
    clip: tf.Tensor | np.ndarray,
    image_size: tuple[int, int],
    interpolation: str = "bilinear",
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
) -> tf.Tensor:
    """Resizes every frame of a clip `(time, height, width, channels)`.

    As `keras.utils.image_dataset_from_directory` resizes images:
    stretched to `image_size` by default; with `crop_to_aspect_ratio`, the
    largest centred window of the target's aspect ratio is cut out first;
    with `pad_to_aspect_ratio`, the frame is fitted inside and the rest
    padded with zeros. Downscaling is antialiased.

    Args:
        clip: A tensor or array `(time, height, width, channels)`.
        image_size: `(height, width)` of the output frames.
        interpolation: `"bilinear"`, `"nearest"`, `"bicubic"`, `"area"`,
            `"lanczos3"`, `"lanczos5"`, `"gaussian"` or `"mitchellcubic"`.
        crop_to_aspect_ratio: Crop to keep the aspect ratio.
        pad_to_aspect_ratio: Pad to keep the aspect ratio.

    Returns:
        float32 `(time, image_size[0], image_size[1], channels)`.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d.data import resize_clip
    >>> clip = np.full((2, 60, 80, 3), 200, "uint8")
    >>> padded = resize_clip(clip, (64, 64), pad_to_aspect_ratio=True)
    >>> top, middle = padded[0, 0, 0, 0], padded[0, 32, 0, 0]
    >>> tuple(padded.shape), float(top), float(middle)
    ((2, 64, 64, 3), 0.0, 200.0)
    """
    height, width = check_image_size("resize_clip", "image_size", image_size)
    clip = tf.cast(clip, "float32")
    if crop_to_aspect_ratio:
        shape = tf.shape(clip)
        h, w = tf.cast(shape[1], "float64"), tf.cast(shape[2], "float64")
        crop_h = tf.minimum(h, tf.round(w * height / width))
        crop_w = tf.minimum(w, tf.round(h * width / height))
        clip = tf.image.crop_to_bounding_box(
            clip,
            tf.cast((h - crop_h) // 2, "int32"),
            tf.cast((w - crop_w) // 2, "int32"),
            tf.cast(crop_h, "int32"),
            tf.cast(crop_w, "int32"),
        )
    if pad_to_aspect_ratio:
        return tf.image.resize_with_pad(
            clip, height, width, method=interpolation, antialias=True
        )
    return tf.image.resize(
        clip, (height, width), method=interpolation, antialias=True
    )


@dataclasses.dataclass(frozen=True)
class _ClipSpec:
    """How a source becomes a clip: checked arguments of the dataset."""

    frames: int
    sampling: str
    frame_step: int
    short_clips: str
    image_size: tuple[int, int] | None
    channels: int
    interpolation: str
    crop_to_aspect_ratio: bool
    pad_to_aspect_ratio: bool
    dtype: str
    time_axis: int
    resize: bool = True  # False: image_size=None, every clip at one size


def _check_arguments(arguments: dict) -> _ClipSpec:
    a = arguments
    frames, sampling, frame_step, short_clips = check_sampling(
        _OWNER, a["frames"], a["sampling"], a["frame_step"],
        a["short_clips"],
    )
    check_choice(_OWNER, "label_mode", a["label_mode"], LABEL_MODES)
    check_choice(_OWNER, "color_mode", a["color_mode"], tuple(COLOR_MODES))
    check_choice(_OWNER, "interpolation", a["interpolation"], INTERPOLATIONS)
    check_choice(_OWNER, "dtype", a["dtype"], ("float32", "uint8"))
    check_choice(_OWNER, "subset", a["subset"],
                 ("training", "validation", "both", None))
    check_integer(_OWNER, "batch_size", a["batch_size"], minimum=1,
                  allow_none=True)
    check_integer(_OWNER, "seed", a["seed"], allow_none=True)
    for name in ("shuffle", "follow_links", "crop_to_aspect_ratio",
                 "pad_to_aspect_ratio", "skip_bad"):
        check_bool(_OWNER, name, a[name])
    if a["crop_to_aspect_ratio"] and a["pad_to_aspect_ratio"]:
        raise ValueError(
            f"{_OWNER}: pass only one of crop_to_aspect_ratio=True and "
            "pad_to_aspect_ratio=True."
        )
    _check_split(a["validation_split"], a["subset"], a["shuffle"], a["seed"])
    return _ClipSpec(
        frames, sampling, frame_step, short_clips,
        check_image_size(_OWNER, "image_size", a["image_size"]), COLOR_MODES[a["color_mode"]],
        a["interpolation"], a["crop_to_aspect_ratio"],
        a["pad_to_aspect_ratio"], a["dtype"],
        validate_time_axis(a["time_axis"]),
    )


def _check_split(validation_split, subset, shuffle, seed):
    """Keras' rules for `validation_split` and `subset`."""
    if validation_split is not None and not (
        is_number(validation_split) and 0 < validation_split < 1
    ):
        raise ValueError(
            f"{_OWNER} expects `validation_split` in (0, 1) or None, "
            f"received: validation_split={validation_split!r}"
        )
    if bool(validation_split) != bool(subset):
        raise ValueError(
            f"{_OWNER}: `subset` and `validation_split` go together; "
            f"received validation_split={validation_split!r}, "
            f"subset={subset!r}. Pass both (subset='training', "
            "'validation' or 'both') or neither."
        )
    if validation_split and shuffle and seed is None:
        raise ValueError(
            f"{_OWNER}: with validation_split and shuffle=True, pass a "
            "`seed`, so that calls for subset='training' and "
            "subset='validation' split the clips the same way."
        )


def clip_dataset_from_directory(
    directory: str | os.PathLike,
    labels: str | Sequence[int] | None = "inferred",
    label_mode: str | None = "int",
    class_names: list[str] | None = None,
    color_mode: str = "rgb",
    batch_size: int | None = 8,
    image_size: int | tuple[int, int] | None = (224, 224),
    frames: int = 16,
    sampling: str = "segments",
    frame_step: int = 1,
    short_clips: str = "pad",
    shuffle: bool = True,
    seed: int | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    groups: str | Callable[[str], object] | Mapping[str, object] | None = None,
    interpolation: str = "bilinear",
    follow_links: bool = False,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    skip_bad: bool = False,
    dtype: str = "float32",
    time_axis: int = 1,
    verbose: bool = True,
    intensity=None,
    slices=None,
) -> tf.data.Dataset | tuple[tf.data.Dataset, tf.data.Dataset]:
    """Streams clips from a directory as a `tf.data.Dataset`.

    Like `keras.utils.image_dataset_from_directory`, for clips. With
    `labels="inferred"` the directory holds one subfolder per class; any
    tree of clips under it counts, and every clip source mixes freely:

    ```
    directory/
    ...class_a/
    ......v_class_a_g01_c01.mp4   # a video: .mp4 .avi .mov .mkv .webm ...
    ......clip_002/               # a folder of frame images (sorted)
    .........frame_000.png
    ......clip_003.npy            # (time, height, width[, channels])
    ......scan.nii.gz             # 4D (X, Y, Z, T): one clip a Z slice
    ...class_b/
    ```

    Listing is cheap: each clip is probed (a video's header and first
    frame, a frame folder's first image, a `.npy` or NIfTI header), and
    bad clips are reported before anything else runs. Frames are then
    decoded as the dataset is iterated, in a parallel `map`
    (`num_parallel_calls=tf.data.AUTOTUNE`), and prefetched: only the
    batches in flight are in memory. Videos need PyAV, the `video` extra
    (`pip install "keras_vgg4d[video]"`), and only the frames up to the
    last one sampled are decoded (see `read_video`).

    Each clip gives `frames` frames, chosen by `sampling` (see
    `sample_frame_indices`): `"uniform"` (evenly over the whole clip),
    `"random"` (a window of frames `frame_step` apart at a random start)
    or `"segments"` (TSN: a random frame in each of `frames` equal
    segments). Training data (`shuffle=True`, not the validation subset)
    draws anew every epoch, reproducibly given `seed`; validation data and
    `shuffle=False` take the same frames every time (the centred window,
    the segments' centres). Clips shorter than that are padded with
    all-zero frames at the end (`short_clips="pad"`; the model masks
    them) or repeated from the start (`"loop"`).

    With `validation_split`, clips of one group never land on both sides
    (see `groups`), and every class has clips on both sides, in about the
    proportion asked for.

    Bad input raises a `ValueError` naming the files and the reason at
    listing: a file FFmpeg cannot read (corrupt, truncated, not a video
    despite its extension), a video with no frames or an unsupported
    codec, a file that is not a clip, an empty class folder, a class with
    all its clips in one group (with `validation_split`), frame sizes that
    differ with `image_size=None`. With `skip_bad=True` bad clips are left
    out and listed in one warning instead (an empty class is still an
    error). A clip that fails only while it is decoded, inside the
    pipeline, stops iteration with an error (a
    `tf.errors.InvalidArgumentError` from `model.fit` or a loop) whose
    message names the file; with `skip_bad=True` it is left out with a
    warning naming it.

    Args:
        directory: The root of the clips.
        labels: `"inferred"` (from the class subfolders), `None` (no
            labels), or a list of integer labels, one a clip path found
            under `directory` (a NIfTI file counts once), in sorted order
            of the paths.
        label_mode: `"int"` (int32 class index), `"categorical"` (float32
            one-hot), `"binary"` (float32 `(1,)`, two classes), or `None`
            (clips only).
        class_names: With `labels="inferred"`, the class subfolders to
            use, in label order; all of them, sorted, by default.
        color_mode: `"rgb"`, `"grayscale"` or `"rgba"`: 3, 1 or 4
            channels.
        batch_size: Clips a batch, or `None` for single clips.
        image_size: `(height, width)` (or an int) to resize frames to, or
            `None` to keep them, which then must all have one size.
        frames: Frames a clip.
        sampling: `"uniform"`, `"random"` or `"segments"`.
        frame_step: Spacing of the frames of `sampling="random"`.
        short_clips: `"pad"` or `"loop"`.
        shuffle: Shuffle the clips (anew each epoch) and draw frames at
            random; `False` keeps the sorted order and fixed frames.
        seed: Seed of the shuffle, the frame draws and the split.
        validation_split: Fraction of clips to validate, in `(0, 1)`.
        subset: `"training"`, `"validation"` or `"both"` (a tuple of the
            two datasets), with `validation_split`.
        groups: Which clips belong together, kept on one side of the
            split. `None`: UCF101's `_gNN_` in the file name (group
            `"gNN"`, the same group across classes, as UCF101's own
            splits hold groups out), else each file its own group (a
            NIfTI file's slices share one). A string: a regular
            expression searched in each path relative to `directory`, its
            first capturing group (or whole match) the group; a path that
            does not match is its own group. A callable: path (relative,
            with `/`) -> group. A mapping: relative path or file name ->
            group. Prefix groups with the class to keep them per class.
        interpolation: The resizing method, as in `resize_clip`.
        follow_links: Walk into symbolic links to folders.
        crop_to_aspect_ratio: Resize without distortion, cropping.
        pad_to_aspect_ratio: Resize without distortion, padding.
        skip_bad: Leave out bad clips, with a warning, instead of raising.
        dtype: `"float32"` (values 0..255) or `"uint8"`.
        time_axis: `1` for `(batch, frames, height, width, channels)`, or
            `-1` for `(batch, height, width, channels, frames)`; also the
            layout of `.npy` clips on disk.
        verbose: Print how many clips, groups and classes were found.
        intensity: How DICOM and NIfTI values map to 0..255: `"window"`
            (the file's own window, else percentiles), `"percentiles"`,
            `"minmax"`, a pair of percentiles, or `{"center": c, "width":
            w}`; `None`: `"window"` for DICOM, `"minmax"` for NIfTI. See
            docs/medical.md.
        slices: Which slice positions of a DICOM series (or Z slices of a
            NIfTI volume) become clips: `None` (all), `"middle"`, an index,
            a list or a `slice`.

    Returns:
        A `tf.data.Dataset` of `(clips, labels)` batches, or of `clips`
        without labels; with `subset="both"`, a tuple `(training,
        validation)`. Each has `class_names`, `file_paths` (one a clip, in
        listing order, which is the order of iteration with
        `shuffle=False`) and `clip_sources` (`ClipSource` of each clip:
        path, label, group, length, ... ; see `read_clip`).

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from keras_vgg4d.data import clip_dataset_from_directory
    >>> root = tempfile.mkdtemp()
    >>> for name in ["cat", "dog"]:
    ...     os.makedirs(os.path.join(root, name))
    ...     for i in range(3):
    ...         np.save(os.path.join(root, name, f"clip{i}.npy"),
    ...                 np.ones((10, 40, 40, 3), "uint8"))
    >>> train, val = clip_dataset_from_directory(
    ...     root, batch_size=2, image_size=(32, 32), frames=4,
    ...     validation_split=0.34, subset="both", seed=0, verbose=False)
    >>> train.class_names, len(train.file_paths), len(val.file_paths)
    (['cat', 'dog'], 4, 2)
    >>> clips, labels = next(iter(train))
    >>> tuple(clips.shape), labels.dtype.name
    ((2, 4, 32, 32, 3), 'int32')
    """
    spec = _check_arguments(dict(locals()))
    index = _index_directory(
        directory, labels, class_names, groups, follow_links, skip_bad,
        spec.time_axis, verbose, owner=_OWNER, intensity=intensity,
        slices=slices,
    )
    sources = _check_channels(index.sources, spec, skip_bad)
    if spec.image_size is None:
        spec = dataclasses.replace(
            spec, image_size=check_common_size(sources), resize=False
        )
    if label_mode == "binary" and len(index.class_names or ()) != 2:
        raise ValueError(
            f"{_OWNER}: label_mode='binary' needs exactly 2 classes; "
            f"found class_names={index.class_names}."
        )
    if labels is None:
        label_mode = None
    num_classes = len(index.class_names or ())
    make = functools.partial(
        _make_dataset, spec=spec, label_mode=label_mode,
        num_classes=num_classes, batch_size=batch_size, seed=seed,
        skip_bad=skip_bad, class_names=index.class_names,
    )
    if not validation_split:
        return make(sources, training=shuffle)
    train, val = split_clip_sources(
        sources, validation_split, seed or 0, index.class_names
    )
    if verbose:
        for name, part in (("training", train), ("validation", val)):
            print(f"Using {len(part)} clips ({len({s.group for s in part})} "
                  f"groups) for {name}.")
    if subset == "training":
        return make(train, training=shuffle)
    if subset == "validation":
        return make(val, training=False)
    return make(train, training=shuffle), make(val, training=False)


def _check_channels(sources, spec, skip_bad):
    """Leaves out (or reports) clips whose channels cannot convert."""
    bad = [
        (s.path, f"has {s.channels} channels, which cannot become "
                 f"{spec.channels} (color_mode)")
        for s in sources
        if s.kind in ("npy", "nifti") and s.channels != spec.channels
        and s.channels not in (1, 3, 4)
    ]
    if not bad:
        return sources
    described = list_some(f"{path}: {reason}" for path, reason in bad)
    if not skip_bad:
        raise ValueError(
            f"{_OWNER} found {len(bad)} clip(s) it cannot convert: "
            f"{described}. Pass skip_bad=True to leave them out."
        )
    warnings.warn(
        f"{_OWNER} skipped {len(bad)} clip(s) (skip_bad=True): {described}",
        stacklevel=3,
    )
    paths = {path for path, _ in bad}
    return [s for s in sources if s.path not in paths]


class _ClipReader:
    """Reads and samples one source; the Python side of the map.

    Called by `tf.numpy_function` with the source's position and a random
    draw (ignored when not training); returns the clip at its own size and
    whether it read.
    """

    def __init__(self, sources, spec, training, skip_bad):
        self.sources = sources
        self.spec = spec
        self.training = training
        self.skip_bad = skip_bad
        self.float_output = any(s.dtype != "uint8" for s in sources)
        self.skipped = set()
        self.lock = threading.Lock()

    @property
    def output_dtype(self):
        return tf.float32 if self.float_output else tf.uint8

    @property
    def resize(self):
        return self.spec.resize

    def __call__(self, position, draw):
        source = self.sources[int(position)]
        spec = self.spec
        rng = (
            np.random.default_rng(int(draw) & 0xFFFFFFFFFFFFFFFF)
            if self.training else None
        )
        sample = functools.partial(
            sample_frame_indices, frames=spec.frames, sampling=spec.sampling,
            frame_step=spec.frame_step, short_clips=spec.short_clips, rng=rng,
        )
        try:
            clip = read_sampled_clip(source, sample, spec.channels)
        except Exception as error:  # noqa: BLE001 - any failure names the file
            return self._failed(source, error)
        dtype = "float32" if self.float_output else "uint8"
        return clip.astype(dtype, copy=False), True

    def _failed(self, source, error):
        reason = str(error) or type(error).__name__
        if source.path not in reason:
            reason = f"{source.path!r}: {reason}"
        if not self.skip_bad:
            raise ValueError(
                f"{_OWNER} could not read a clip: {reason}. Fix or remove "
                "the file, or pass skip_bad=True to leave such clips out."
            ) from None
        with self.lock:
            first = source.path not in self.skipped
            self.skipped.add(source.path)
        if first:
            warnings.warn(
                f"{_OWNER} skips a clip that fails to decode "
                f"(skip_bad=True): {reason}",
                stacklevel=2,
            )
        empty = np.zeros(
            (0, *self.spec.image_size, self.spec.channels),
            "float32" if self.float_output else "uint8",
        )
        return empty, False


def _make_dataset(
    sources, training, spec, label_mode, num_classes, batch_size, seed,
    skip_bad, class_names,
):
    """The streaming dataset of `sources`: shuffle, draw, read, batch."""
    if not sources:
        raise ValueError(f"{_OWNER}: no clips are left for this dataset.")
    reader = _ClipReader(sources, spec, training, skip_bad)
    positions = tf.data.Dataset.range(len(sources))
    if training:
        # Only indices are shuffled, so the whole list fits the buffer.
        positions = positions.shuffle(
            len(sources), seed=seed, reshuffle_each_iteration=True
        )
        # A new draw for every clip of every epoch, the same run to run.
        draws = tf.data.Dataset.random(
            seed=None if seed is None else seed + 1,
            rerandomize_each_iteration=True,
        )
    else:
        draws = tf.data.Dataset.from_tensors(np.int64(0)).repeat()
    labels = tf.constant(
        [0 if s.label is None else s.label for s in sources], tf.int32
    )
    load = functools.partial(
        _load, reader=reader, labels=labels, label_mode=label_mode,
        num_classes=num_classes,
    )
    dataset = tf.data.Dataset.zip(positions, draws).map(
        load, num_parallel_calls=tf.data.AUTOTUNE
    )
    if skip_bad:
        dataset = dataset.filter(lambda *element: element[-1])
    dataset = dataset.map(_without_flag)
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    dataset.class_names = class_names
    dataset.file_paths = [s.path for s in sources]
    dataset.clip_sources = list(sources)
    # How clips are made and drawn, for caches that sample frames themselves
    # (`VGG4DHyperModel` caches every frame's features once).
    dataset.clip_spec = spec
    dataset.redraws_each_epoch = training
    dataset.clip_batch_size = batch_size
    dataset.clip_seed = seed
    return dataset


def _without_flag(*element):
    return element[:-1] if len(element) > 2 else element[0]


def _load(position, draw, reader, labels, label_mode, num_classes):
    """Graph side of the map: read, resize, pad, lay out, label."""
    spec = reader.spec
    clip, ok = tf.numpy_function(
        reader, [position, draw], [reader.output_dtype, tf.bool],
        name="read_clip",
    )
    clip.set_shape((None, None, None, spec.channels))
    ok.set_shape(())
    if reader.resize:
        clip = resize_clip(
            clip, spec.image_size, spec.interpolation,
            spec.crop_to_aspect_ratio, spec.pad_to_aspect_ratio,
        )
    missing = spec.frames - tf.shape(clip)[0]
    clip = tf.pad(clip, [[0, missing], [0, 0], [0, 0], [0, 0]])
    if spec.dtype == "uint8" and clip.dtype != tf.uint8:
        clip = tf.cast(tf.clip_by_value(tf.round(clip), 0, 255), tf.uint8)
    else:
        clip = tf.cast(clip, spec.dtype)
    clip = tf.ensure_shape(clip, (spec.frames, *spec.image_size,
                                  spec.channels))
    if spec.time_axis == -1:
        clip = tf.transpose(clip, (1, 2, 3, 0))
    if label_mode is None:
        return clip, ok
    label = tf.gather(labels, position)
    if label_mode == "categorical":
        label = tf.one_hot(label, num_classes)
    elif label_mode == "binary":
        label = tf.cast(label, tf.float32)[None]
    return clip, label, ok
