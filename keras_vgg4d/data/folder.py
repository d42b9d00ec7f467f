"""Clips from a folder laid out one subfolder per class.

The layout of `keras.utils.image_dataset_from_directory`, one level deeper:

    root/
      class_a/
        clip_001.npy              # a clip as one array
        clip_002/                 # a clip as frame images, sorted by name
          frame_000.png
          frame_001.png
      class_b/
        ...

Frames are decoded with `tf.io` in a `tf.data` pipeline that runs
`num_parallel_calls` decodes at a time.
"""

from __future__ import annotations

import collections
import os
import re
import warnings

import keras
import numpy as np

from keras_vgg4d.backend import LazyTensorFlow
from keras_vgg4d.validation import check_image_size
from keras_vgg4d.validation import check_integer
from keras_vgg4d.validation import list_some
from keras_vgg4d.layout import validate_time_axis

tf = LazyTensorFlow("Loading frame folders (decoded with tf.io)")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SAMPLINGS = ("pad", "crop", "tsn")
# Files an operating system leaves in folders; never clips or frames.
_SYSTEM_FILES = ("thumbs.db", "desktop.ini")

FolderClips = collections.namedtuple(
    "FolderClips", ["x", "y", "class_names", "mask", "skipped"]
)
FolderClips.__doc__ = """Clips loaded by `load_folder`.

Attributes:
    x: float32 `(n, frames, height, width, channels)`, pixel values as
        stored (0..255 for 8-bit images); padded frames are zero.
    y: int32 `(n,)` class indices into `class_names`.
    class_names: The class subfolder names, in label order.
    mask: bool `(n, frames)`, true for real frames, false for padding.
    skipped: `(path, reason)` of each clip left out with `skip_bad=True`;
        empty otherwise.
"""


class _Clip:
    """One clip found on disk: a `.npy` file or a folder of frames."""

    def __init__(self, path, label, frame_paths=None):
        self.path = path
        self.label = label
        self.frame_paths = frame_paths  # None for a .npy clip
        self.length = None if frame_paths is None else len(frame_paths)
        self.indices = None  # which of its frames fill the output slots


def load_folder(
    path: str | os.PathLike,
    frames: int | None = 16,
    size: int | tuple[int, int] | None = None,
    sampling: str = "pad",
    channels: int | None = None,
    skip_bad: bool = False,
    class_names: list[str] | None = None,
    time_axis: int = 1,
    num_parallel_calls: int = -1,
    verbose: int = 1,
) -> FolderClips:
    """Loads clips from a folder with one subfolder per class.

    Each clip is either a `.npy` file, `(time, height, width[, channels])`,
    or a folder of frame images (PNG, JPEG, BMP, GIF) taken in the order of
    their sorted file names. Clips of different lengths are brought to
    `frames` frames by `sampling`:

    - `"pad"`: the first `frames` frames; shorter clips are padded at the
      end with zero frames, marked false in the returned `mask`.
    - `"crop"`: a centred window of `frames` frames; a shorter clip is an
      error.
    - `"tsn"`: one frame from the middle of each of `frames` equal segments
      (TSN's sampling), so the clip's whole span is covered; a shorter clip
      repeats frames.

    Everything is checked before the clips are returned: an empty root, a
    class without clips, a file that is neither clip nor frame, a frame
    that does not decode, sizes that differ (without `size`), NaN in a
    `.npy` clip. The error names the file and what is wrong. With
    `skip_bad=True`, bad clips are left out instead, and listed in a
    warning and in the result's `skipped`; a class left without clips is
    still an error.

    Args:
        path: The root folder.
        frames: Frames per clip in the output; `None` takes the longest
            clip's length (with `sampling="pad"`).
        size: `(height, width)` or an int for square frames to resize every
            frame to (bilinear, antialiased); `None` keeps the frames' own
            size, which must then be the same everywhere.
        sampling: `"pad"`, `"crop"` or `"tsn"`, as above.
        channels: Channels of the output: images are decoded to this many
            (1 gray, 3 RGB, 4 RGBA) and `.npy` clips with one channel are
            repeated; `None` takes the first clip's.
        skip_bad: Leave out bad clips, reporting them, instead of raising.
        class_names: Optional list of the class subfolders to load, in
            label order; by default all subfolders in sorted order.
        time_axis: Layout of `.npy` clips: `1` for time first,
            `(time, height, width[, channels])`, or `-1` for time last,
            `(height, width[, channels], time)`.
        num_parallel_calls: Frames decoded at a time; `-1` (the default,
            `tf.data.AUTOTUNE`) lets `tf.data` choose, `1` decodes one
            after another.
        verbose: `1` shows a progress bar over the files read, `0` is
            silent.

    Returns:
        A `FolderClips` named tuple `(x, y, class_names, mask, skipped)`.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from keras_vgg4d.data import load_folder
    >>> root = tempfile.mkdtemp()
    >>> for name in ["cat", "dog"]:
    ...     os.makedirs(os.path.join(root, name))
    ...     np.save(os.path.join(root, name, "clip.npy"),
    ...             np.ones((5, 32, 32, 3), "uint8"))
    >>> clips = load_folder(root, frames=8, verbose=0)
    >>> clips.x.shape, clips.class_names, int(clips.mask[0].sum())
    ((2, 8, 32, 32, 3), ['cat', 'dog'], 5)
    """
    root = os.fspath(path)
    time_axis = validate_time_axis(time_axis)
    size = _check_arguments(frames, sampling, size, channels)
    class_names = _find_classes(root, class_names)
    clips, problems = _find_clips(root, class_names)
    _read_npy_lengths(clips, problems, time_axis)
    _raise_or_skip(problems, skip_bad, "before decoding")
    clips = _without(clips, problems)
    if frames is None:
        frames = max(c.length for c in clips) if clips else 1
    for clip in clips:
        problem = _choose_frames(clip, frames, sampling)
        if problem:
            problems.append((clip.path, problem))
    _raise_or_skip(problems, skip_bad, "before decoding")
    clips = _without(clips, problems)
    _check_classes_have_clips(clips, class_names, root, problems)

    shape = _probe(clips, size, channels, time_axis)
    x = np.zeros((len(clips), frames, *shape), "float32")
    mask = np.zeros((len(clips), frames), bool)
    for i, clip in enumerate(clips):
        mask[i, : len(clip.indices)] = True
    num_files = sum(
        1 if c.frame_paths is None else len(c.indices) for c in clips
    )
    progress = keras.utils.Progbar(
        num_files, verbose=verbose, unit_name="file"
    )
    decode_problems = _read_npy_clips(
        clips, x, shape, size, time_axis, progress
    ) + _decode_frame_clips(
        clips, x, shape, size, num_parallel_calls, progress
    )
    progress.update(num_files, finalize=True)
    _raise_or_skip(decode_problems, skip_bad, "while decoding")
    problems += decode_problems
    if decode_problems:
        keep = np.array(
            [c.path not in _paths(decode_problems) for c in clips], bool
        )
        x, mask = x[keep], mask[keep]
        clips = _without(clips, decode_problems)
        _check_classes_have_clips(clips, class_names, root, problems)
    if problems:
        warnings.warn(
            f"load_folder skipped {len(problems)} bad clip(s) of {root!r} "
            f"(skip_bad=True): {_describe(problems)}",
            stacklevel=2,
        )
    y = np.array([c.label for c in clips], "int32")
    return FolderClips(x, y, list(class_names), mask, list(problems))


def _check_arguments(frames, sampling, size, channels):
    """Validates the arguments of `load_folder`; returns `size` as a pair."""
    if sampling not in SAMPLINGS:
        raise ValueError(
            f"Unknown sampling={sampling!r}; expected one of {SAMPLINGS}."
        )
    check_integer("load_folder", "frames", frames, 1, allow_none=True)
    if frames is None and sampling != "pad":
        raise ValueError(
            f"frames=None (the longest clip's length) needs sampling='pad'; "
            f"received sampling={sampling!r}. Pass frames=N."
        )
    check_integer("load_folder", "channels", channels, 1, allow_none=True)
    return check_image_size("load_folder", "size", size)


def _visible(names):
    return sorted(
        name for name in names
        if not name.startswith(".") and name.lower() not in _SYSTEM_FILES
    )


def _find_classes(root, class_names):
    if not os.path.exists(root):
        raise FileNotFoundError(f"No such folder of clips: {root!r}")
    if not os.path.isdir(root):
        raise ValueError(
            f"load_folder expects a folder with one subfolder per class; "
            f"{root!r} is a file."
        )
    entries = _visible(os.listdir(root))
    found = [e for e in entries if os.path.isdir(os.path.join(root, e))]
    stray = [e for e in entries if e not in found]
    if not found:
        raise ValueError(
            f"Found no class subfolders in {root!r}"
            + (f" (only files: {list_some(stray)})" if stray else " (empty)")
            + ". Expected one subfolder per class, each holding clips: "
            "`.npy` files or subfolders of frame images."
        )
    if stray:
        warnings.warn(
            f"load_folder ignores {len(stray)} file(s) at the top of "
            f"{root!r}, where only class subfolders are read: "
            f"{list_some(stray)}",
            stacklevel=3,
        )
    if class_names is None:
        return found
    class_names = list(class_names)
    missing = [name for name in class_names if name not in found]
    if missing or len(set(class_names)) != len(class_names):
        raise ValueError(
            f"class_names={class_names} must name distinct subfolders of "
            f"{root!r}; missing: {missing}. Subfolders found: {found}."
        )
    return class_names


def _find_clips(root, class_names):
    """Every clip under the class folders, and `(path, reason)` problems."""
    clips, problems = [], []
    for label, name in enumerate(class_names):
        class_dir = os.path.join(root, name)
        for entry in _visible(os.listdir(class_dir)):
            clip_path = os.path.join(class_dir, entry)
            if os.path.isdir(clip_path):
                frame_paths, problem = _find_frames(clip_path)
                if problem:
                    problems.append((clip_path, problem))
                else:
                    clips.append(_Clip(clip_path, label, frame_paths))
            elif entry.lower().endswith(".npy"):
                clips.append(_Clip(clip_path, label))
            else:
                problems.append((
                    clip_path,
                    "is not a clip: expected a .npy file or a folder of "
                    f"frame images ({', '.join(IMAGE_EXTENSIONS)})",
                ))
    return clips, problems


def _find_frames(clip_dir):
    entries = _visible(os.listdir(clip_dir))
    frames = [e for e in entries if e.lower().endswith(IMAGE_EXTENSIONS)]
    others = [e for e in entries if e not in frames]
    if others:
        return None, (
            f"holds {len(others)} file(s) that are not frame images "
            f"({', '.join(IMAGE_EXTENSIONS)}): {list_some(others, 3)}"
        )
    if not frames:
        return None, "is an empty clip folder (no frame images)"
    return [os.path.join(clip_dir, f) for f in frames], None


def _paths(problems):
    return {p for p, _ in problems}


def _without(clips, problems):
    bad = _paths(problems)
    return [c for c in clips if c.path not in bad]


def _describe(problems):
    return list_some(f"{path}: {reason}" for path, reason in problems)


def _raise_or_skip(problems, skip_bad, when):
    if problems and not skip_bad:
        raise ValueError(
            f"load_folder found {len(problems)} bad clip(s) {when}: "
            f"{_describe(problems)}. Fix them, or pass skip_bad=True to "
            "leave them out (they are then listed in the result's "
            "`skipped`)."
        )


def _check_classes_have_clips(clips, class_names, root, problems):
    counts = np.bincount(
        [c.label for c in clips], minlength=len(class_names)
    )
    empty = [class_names[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        note = (
            f" after skipping {len(problems)} bad clip(s): "
            f"{_describe(problems)}" if problems else ""
        )
        raise ValueError(
            f"Class folder(s) {empty} of {root!r} hold no clips{note}. Every "
            "class needs at least one clip; add clips or pass class_names= "
            "without them."
        )


def _npy_clip_shape(shape, time_axis):
    """`(time, height, width, channels)` of a `.npy` clip of `shape`."""
    if len(shape) not in (3, 4):
        raise ValueError(
            f"has shape {shape}; expected (time, height, width[, channels])"
            + (" with time last (time_axis=-1)" if time_axis == -1 else "")
        )
    if time_axis == -1:
        shape = (shape[-1], *shape[:-1])
    return shape if len(shape) == 4 else (*shape, 1)


def _read_npy_lengths(clips, problems, time_axis):
    for clip in clips:
        if clip.frame_paths is not None:
            continue
        try:
            shape = np.load(clip.path, mmap_mode="r").shape
            clip.length = _npy_clip_shape(shape, time_axis)[0]
        except (OSError, ValueError) as error:
            problems.append((clip.path, f"cannot be read: {error}"))


def frame_indices(length: int, frames: int, sampling: str) -> np.ndarray:
    """Which frames of a clip of `length` fill `frames` slots.

    Returns at most `frames` indices (fewer only with `"pad"`, whose
    remaining slots are padding).
    """
    if sampling == "tsn":
        return np.floor((np.arange(frames) + 0.5) * length / frames).astype(
            int
        )
    if sampling == "crop":
        start = (length - frames) // 2
        return np.arange(start, start + frames)
    return np.arange(min(length, frames))


def _choose_frames(clip, frames, sampling):
    if clip.length == 0:
        return "has no frames"
    if sampling == "crop" and clip.length < frames:
        return (
            f"has {clip.length} frames, fewer than frames={frames} that "
            "sampling='crop' needs; use sampling='pad' or 'tsn'"
        )
    clip.indices = frame_indices(clip.length, frames, sampling)
    return None


def _probe(clips, size, channels, time_axis):
    """`(height, width, channels)` of the output, from the first clip read.

    A clip whose first frame does not decode is passed over here; the
    decoding pipeline reports it with the others.
    """
    for clip in clips:
        if clip.frame_paths is None:
            shape = np.load(clip.path, mmap_mode="r").shape
            native = _npy_clip_shape(shape, time_axis)[1:]
        else:
            try:
                image = _decode(clip.frame_paths[0], channels or 0)
                native = tuple(image.shape)
            except tf.errors.OpError:
                continue
        height, width = size if size is not None else native[:2]
        return height, width, channels or native[2]
    if size is not None and channels is not None:
        return (*size, channels)
    first = clips[0].frame_paths[0]
    raise ValueError(
        "load_folder could not decode the first frame of any clip, e.g. "
        f"{first}: {_diagnose(first, (1, 1, channels or 0), (1, 1))}"
    )


def _decode(path, channels):
    return tf.io.decode_image(
        tf.io.read_file(path), channels=channels, expand_animations=False
    )


def _op_error(path, error):
    message = getattr(error, "message", str(error))
    # Drop TensorFlow's "{{function_node ...}}" prefix and "[Op:...]" suffix.
    message = re.sub(r"\{\{[^}]*\}\}|\[Op:.*$", "", message).strip()
    message = message.splitlines()[0].rstrip(".") if message else "unknown"
    return f"frame {path} cannot be decoded: {message}"


def _adapt_channels(clip, channels):
    have = clip.shape[-1]
    if have == channels:
        return clip
    if have == 1:
        return np.repeat(clip, channels, axis=-1)
    if have == 3 and channels == 1:
        return tf.image.rgb_to_grayscale(clip).numpy()
    raise ValueError(
        f"has {have} channels and cannot be converted to channels="
        f"{channels}"
    )


def _read_npy_clips(clips, x, shape, size, time_axis, progress):
    """Reads every `.npy` clip into `x`; returns `(path, reason)` problems."""
    height, width, channels = shape
    problems = []
    for i, clip in enumerate(clips):
        if clip.frame_paths is not None:
            continue
        try:
            array = np.load(clip.path, allow_pickle=False)
            if not np.issubdtype(array.dtype, np.number):
                raise ValueError(f"has dtype {array.dtype}, not numbers")
            t_h_w_c = _npy_clip_shape(array.shape, time_axis)
            if time_axis == -1:
                array = np.moveaxis(array, -1, 0)
            array = array.reshape(t_h_w_c)[clip.indices].astype("float32")
            finite = np.isfinite(array.reshape(len(array), -1)).all(axis=1)
            if not finite.all():
                raise ValueError(
                    "holds NaN or infinite values, first in frame "
                    f"{clip.indices[np.argmin(finite)]}"
                )
            array = _adapt_channels(array, channels)
            if array.shape[1:3] != (height, width):
                if size is None:
                    raise ValueError(
                        f"has frames of {array.shape[1]}x{array.shape[2]}, "
                        f"not {height}x{width} like the first clip; pass "
                        "size= to resize every frame"
                    )
                array = tf.image.resize(
                    array, (height, width), antialias=True
                ).numpy()
            x[i, : len(array)] = array
        except (OSError, ValueError) as error:
            problems.append((clip.path, str(error)))
        progress.add(1)
    return problems


def _decode_frame_clips(clips, x, shape, size, num_parallel_calls, progress):
    """Decodes the chosen frames of the frame clips into `x` with `tf.data`.

    Returns `(path, reason)` of each clip with a frame that failed.
    """
    paths, clip_of, slot_of = [], [], []
    for i, clip in enumerate(clips):
        if clip.frame_paths is not None:
            for slot, frame in enumerate(clip.indices):
                paths.append(clip.frame_paths[frame])
                clip_of.append(i)
                slot_of.append(slot)
    if not paths:
        return []
    clip_of, slot_of = np.array(clip_of), np.array(slot_of)
    channels = shape[2]

    def decode(index, path):
        image = _decode(path, channels)
        if size is not None:
            image = tf.image.resize(image, size, antialias=True)
        return index, tf.ensure_shape(tf.cast(image, "float32"), shape)

    # Each element carries its index, so the order may change (decodes
    # finish when they finish) and a failed frame shows as a missing index.
    dataset = (
        tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), paths))
        .map(decode, num_parallel_calls=num_parallel_calls,
             deterministic=False)
        .ignore_errors()
        .batch(64)
        .prefetch(tf.data.AUTOTUNE)
    )
    loaded = np.zeros(len(paths), bool)
    for index, images in dataset.as_numpy_iterator():
        x[clip_of[index], slot_of[index]] = images
        loaded[index] = True
        progress.add(len(index))
    failed = {}
    for k in np.flatnonzero(~loaded):
        if clip_of[k] not in failed:
            failed[clip_of[k]] = _diagnose(paths[k], shape, size)
    return [(clips[i].path, failed[i]) for i in sorted(failed)]


def _diagnose(path, shape, size):
    """Why a frame failed in the pipeline, decoded again on its own."""
    try:
        image = _decode(path, shape[2])
    except tf.errors.OpError as error:
        return _op_error(path, error)
    if size is None and tuple(image.shape[:2]) != shape[:2]:
        return (
            f"frame {path} is {image.shape[0]}x{image.shape[1]}, not "
            f"{shape[0]}x{shape[1]} like the first clip; pass size= to "
            "resize every frame"
        )
    return f"frame {path} failed to load"
