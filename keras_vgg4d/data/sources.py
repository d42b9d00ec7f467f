"""Clip sources on disk: find them, check them cheaply, read their frames.

A clip source is one of

- a video file (`VIDEO_EXTENSIONS`, decoded with PyAV),
- a folder of frame images, frames in the order of their sorted names,
- a `.npy` array `(time, height, width[, channels])` (time last with
  `time_axis=-1`),
- one slice of a 4D NIfTI volume `(X, Y, Z, T)` along Z: a `.nii` /
  `.nii.gz` file gives one clip a slice, scaled to 0..255 per volume as
  `load_nifti` scales it;
- DICOM (`keras_vgg4d.data.dicom`): a multi-frame file is one clip; the
  single-frame files of a series make one clip a slice position, ordered
  in time; scaled to 0..255 per clip by its window.

`index_clip_directory` lists and probes them (headers, one frame each;
nothing else is decoded); `read_clip` reads the frames of one.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import threading
import warnings
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from multiprocessing.pool import ThreadPool

import numpy as np

from keras_vgg4d.backend import LazyTensorFlow
from keras_vgg4d.data import dicom as dicom_io
from keras_vgg4d.data import video as video_io
from keras_vgg4d.data.folder import IMAGE_EXTENSIONS
from keras_vgg4d.data.folder import _check_classes_have_clips
from keras_vgg4d.data.folder import _decode as _decode_image
from keras_vgg4d.data.folder import _describe
from keras_vgg4d.data.folder import _find_frames
from keras_vgg4d.data.folder import _npy_clip_shape
from keras_vgg4d.data.folder import _op_error
from keras_vgg4d.data.folder import _visible
from keras_vgg4d.data.groups import group_ids
from keras_vgg4d.data.groups import group_split
from keras_vgg4d.data.intensity import apply_window
from keras_vgg4d.data.intensity import check_intensity
from keras_vgg4d.data.nifti import _import_nibabel
from keras_vgg4d.data.nifti import volume_window
from keras_vgg4d.layout import validate_time_axis
from keras_vgg4d.validation import check_integer
from keras_vgg4d.validation import check_rate
from keras_vgg4d.validation import is_integer
from keras_vgg4d.validation import list_some

tf = LazyTensorFlow("Reading clip files for a tf.data pipeline")

NIFTI_EXTENSIONS = (".nii", ".nii.gz")
KINDS = ("video", "frames", "npy", "nifti", "dicom")
# Files that index a DICOM export; never clips, never reported.
_DICOM_INDEXES = ("dicomdir",)
# tf.image.rgb_to_grayscale's weights.
_GRAY_WEIGHTS = np.array([0.2989, 0.587, 0.114], "float32")


@dataclasses.dataclass
class ClipSource:
    """One clip on disk, as `index_clip_directory` found it.

    Attributes:
        path: The video, `.npy`, NIfTI or multi-frame DICOM file, or the
            folder of frames or of a DICOM series' files.
        kind: `"video"`, `"frames"`, `"npy"`, `"nifti"` or `"dicom"`.
        label: Class index, or `None` without labels.
        group: Group id (see `clip_dataset_from_directory`'s `groups`);
            a DICOM clip's PatientID by default.
        length: Frames (time points) in the clip.
        height: Frame height (after a video's rotation).
        width: Frame width.
        channels: Channels as stored: 3 for videos, as decoded for frame
            images, the array's for `.npy`, 1 for NIfTI, 1 or 3 (colour)
            for DICOM.
        dtype: `"uint8"`, or `"float32"` for NIfTI, DICOM and non-uint8
            `.npy`.
        index: The slice of a NIfTI volume, or the slice position of a
            DICOM series in spatial order; `None` otherwise.
        frame_paths: The frame images of a `"frames"` clip, or the files
            of a DICOM series' clip, in time order.
        time_axis: Where time is in a `.npy` array: `1` first, `-1` last.
        patient: DICOM PatientID, or `None`.
        study: DICOM StudyInstanceUID, or `None`.
        series: DICOM SeriesInstanceUID, or `None`.
        intensity: How NIfTI and DICOM values map to 0..255 (see
            `keras_vgg4d.data.intensity`); `None`: `"minmax"` for NIfTI,
            `"window"` for DICOM.
    """

    path: str
    kind: str
    label: int | None
    group: str
    length: int
    height: int
    width: int
    channels: int
    dtype: str = "uint8"
    index: int | None = None
    frame_paths: tuple[str, ...] | None = None
    time_axis: int = 1
    patient: str | None = None
    study: str | None = None
    series: str | None = None
    intensity: object = None


ClipIndex = collections.namedtuple(
    "ClipIndex", ["sources", "class_names", "skipped"]
)
ClipIndex.__doc__ = """What `index_clip_directory` found.

Attributes:
    sources: `ClipSource` list, sorted by path (a NIfTI file's slices and
        a DICOM series' slice positions in order; a series where its
        first file is).
    class_names: Class names in label order, or `None` without labels.
    skipped: `(path, reason)` of each bad clip left out with
        `skip_bad=True`; empty otherwise.
"""


def index_clip_directory(
    directory: str | os.PathLike,
    labels: str | Sequence[int] | None = "inferred",
    class_names: list[str] | None = None,
    groups: str | Callable[[str], object] | Mapping[str, object] | None = None,
    follow_links: bool = False,
    skip_bad: bool = False,
    time_axis: int = 1,
    verbose: bool = True,
    intensity=None,
    slices: int | str | Sequence[int] | slice | None = None,
) -> ClipIndex:
    """Finds the clips under `directory` and checks each one cheaply.

    The listing behind `clip_dataset_from_directory`. Each clip is probed,
    not read: a video's header and first frame, a frame folder's first
    image, a `.npy` or NIfTI header, a DICOM file's header (and a
    multi-frame file's first frame). Bad clips (unreadable, truncated, no
    frames, not a clip, an unsupported codec or DICOM compression, a DICOM
    series whose frames have no order in time or several sizes) raise one
    `ValueError` listing each with its reason, or with `skip_bad=True`
    are left out, listed in one warning and in `skipped`. A class left
    without clips is an error.

    DICOM files are recognised by their extension (`.dcm`, `.dicom`,
    `.ima`) or, whatever their name, by the 'DICM' marker at byte 128;
    `DICOMDIR` files are passed over. A multi-frame file is one clip;
    single-frame files are grouped by series wherever they lie, each
    slice position one clip (see `keras_vgg4d.data.dicom`), its path the
    folder holding the series (the file, for a series of one file). A
    folder holding frame images is a clip of frames, and DICOM files in it
    are an error. With `labels` a list, each DICOM file is one path.

    Args:
        directory: The root of the clips.
        labels: `"inferred"` (one subfolder per class), `None`, or a list
            of integer labels, one a clip path in sorted order.
        class_names: With `labels="inferred"`, the class subfolders to
            use, in label order.
        groups: How clips are grouped, as in `clip_dataset_from_directory`.
        follow_links: Walk into symbolic links to folders.
        skip_bad: Leave out bad clips, with one warning, instead of
            raising.
        time_axis: Where time is in `.npy` clips: `1` first, `-1` last.
        verbose: Print how many clips, groups and classes were found.
        intensity: How NIfTI and DICOM values map to 0..255: `"window"`,
            `"percentiles"`, `"minmax"`, percentiles `(low, high)`, or a
            fixed window `{"center": c, "width": w}` (see
            `keras_vgg4d.data.intensity`); `None`: `"minmax"` per NIfTI
            volume and `"window"` per DICOM clip.
        slices: Which slices of a NIfTI volume, or slice positions of a
            DICOM series, become clips: `None` (all), `"middle"`, an index
            (negative counts from the end), a list of them, or a Python
            `slice`. A volume or series it does not fit is a bad clip.

    Returns:
        A `ClipIndex` `(sources, class_names, skipped)`.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from keras_vgg4d.data import index_clip_directory
    >>> root = tempfile.mkdtemp()
    >>> for name in ["cat", "dog"]:
    ...     os.makedirs(os.path.join(root, name))
    ...     for i in range(2):
    ...         np.save(os.path.join(root, name, f"c_g{i}_.npy"),
    ...                 np.zeros((5, 32, 32, 3), "uint8"))
    >>> index = index_clip_directory(root, groups=r"_(g\\d)_", verbose=False)
    >>> [(s.label, s.group, s.length) for s in index.sources]
    [(0, 'g0', 5), (0, 'g1', 5), (1, 'g0', 5), (1, 'g1', 5)]
    """
    return _index_directory(
        directory, labels, class_names, groups, follow_links, skip_bad,
        time_axis, verbose, owner="index_clip_directory",
        intensity=intensity, slices=slices,
    )


def _index_directory(
    directory, labels, class_names, groups, follow_links, skip_bad,
    time_axis, verbose, owner, intensity=None, slices=None,
):
    """`index_clip_directory`, naming `owner` in messages."""
    root = os.fspath(directory)
    time_axis = validate_time_axis(time_axis)
    intensity = check_intensity(owner, intensity, allow_none=True)
    slices = check_slices(owner, slices)
    folders, class_names = _label_folders(root, labels, class_names, owner)
    candidates, problems = [], []
    for folder, label in folders:
        _walk(folder, label, follow_links, candidates, problems, top=True)
    if labels is not None and not isinstance(labels, str):
        candidates = _assign_labels(candidates, labels, root)
        top = max((y for _, _, y in candidates), default=-1)
        class_names = [str(y) for y in range(top + 1)]
    sources = probe_sources(candidates, time_axis, intensity, slices,
                            problems)
    assign_groups(sources, groups, root, owner)
    _raise_or_skip(problems, skip_bad, owner, root)
    if _inferred(labels):
        _check_classes_have_clips(sources, class_names, root, problems)
    if verbose:
        print(_summary(sources, class_names))
    return ClipIndex(sources, class_names, list(problems))


def _inferred(labels) -> bool:
    return isinstance(labels, str) and labels == "inferred"


def _relative(path, root):
    return os.path.relpath(path, root).replace(os.sep, "/")


def _label_folders(root, labels, class_names, owner):
    """`[(folder, label)]` to walk, and the class names."""
    if not os.path.exists(root):
        raise FileNotFoundError(f"No such folder of clips: {root!r}")
    if not os.path.isdir(root):
        raise ValueError(f"{owner} expects a folder; {root!r} is a file.")
    if not _inferred(labels):
        if labels is not None and not isinstance(
            labels, (list, tuple, np.ndarray)
        ):
            raise ValueError(
                f"{owner} expects `labels` to be 'inferred', None, or a list "
                "of integer labels, one a clip path in sorted order; "
                f"received labels={labels!r}."
            )
        if class_names is not None:
            raise ValueError(
                f"{owner}: `class_names` goes with labels='inferred' only "
                "(the class subfolders); received class_names="
                f"{class_names!r} with labels={type(labels).__name__}."
            )
        return [(root, None)], None
    entries = _visible(os.listdir(root))
    found = [e for e in entries if os.path.isdir(os.path.join(root, e))]
    if not found:
        raise ValueError(
            f"Found no class subfolders in {root!r}. With labels='inferred' "
            "it needs one subfolder per class, each holding clips."
        )
    if class_names is None:
        class_names = found
    else:
        class_names = list(class_names)
        missing = [name for name in class_names if name not in found]
        if missing or len(set(class_names)) != len(class_names):
            raise ValueError(
                f"class_names={class_names} must name distinct subfolders "
                f"of {root!r}; missing: {missing}. Subfolders: {found}."
            )
    folders = [(os.path.join(root, n), i) for i, n in enumerate(class_names)]
    return folders, class_names


def _kind_of(name: str, path: str | None = None) -> str | None:
    """The kind of clip a file is, by its name, else (given its `path`)
    by the DICOM marker in its first bytes."""
    lower = name.lower()
    if lower.endswith(video_io.VIDEO_EXTENSIONS):
        return "video"
    if lower.endswith(".npy"):
        return "npy"
    if lower.endswith(NIFTI_EXTENSIONS):
        return "nifti"
    if lower.endswith(dicom_io.DICOM_EXTENSIONS):
        return "dicom"
    if path is not None and not lower.endswith(IMAGE_EXTENSIONS) and (
        dicom_io.is_dicom_file(path)
    ):
        return "dicom"
    return None


def _walk(folder, label, follow_links, candidates, problems, top=False):
    """Appends `(path, kind, label)` of each clip under `folder`.

    A folder holding frame images is a clip; any other folder is walked
    into (symbolic links only with `follow_links`).
    """
    entries = _visible(os.listdir(folder))
    if not top and any(e.lower().endswith(IMAGE_EXTENSIONS) for e in entries):
        candidates.append((folder, "frames", label))
        return
    for entry in entries:
        path = os.path.join(folder, entry)
        if os.path.isdir(path):
            if follow_links or not os.path.islink(path):
                _walk(path, label, follow_links, candidates, problems)
        elif entry.lower() in _DICOM_INDEXES:
            continue
        elif kind := _kind_of(entry, path):
            candidates.append((path, kind, label))
        else:
            problems.append((
                path,
                "is not a clip: expected a video ("
                + ", ".join(video_io.VIDEO_EXTENSIONS[:6])
                + ", ...), a .npy, .nii(.gz) or DICOM file, or a folder of "
                "frame images" + (" (frames go in a folder a clip)"
                                  if entry.lower().endswith(IMAGE_EXTENSIONS)
                                  else ""),
            ))


def _assign_labels(candidates, labels, root):
    labels = np.asarray(labels)
    if len(labels) != len(candidates) or not (
        np.issubdtype(labels.dtype, np.integer) and (labels >= 0).all()
    ):
        raise ValueError(
            "Expected `labels` to hold one non-negative integer a clip "
            f"path found under {root!r}, in sorted order: found "
            f"{len(candidates)} clip paths, received {len(labels)} labels "
            f"of dtype {labels.dtype}."
        )
    return [(path, kind, int(y)) for (path, kind, _), y in
            zip(candidates, labels)]


def probe_sources(candidates, time_axis, intensity, slices, problems):
    """The `ClipSource`s of `(path, kind, label)` candidates, in order.

    Probes each candidate, assembles DICOM files into clips, keeps the
    `slices` asked for, and appends `(path, reason)` of each bad one to
    `problems`. Groups are left empty (see `assign_groups`).
    """
    placed, dicom_files = [], []
    probed = _probe_all(candidates, time_axis)
    for order, ((path, kind, label), found) in enumerate(
        zip(candidates, probed)
    ):
        if isinstance(found, str):
            problems.append((path, found))
        elif kind == "dicom":
            dicom_files.append((order, found[0], label))
        else:
            placed.append((order, found))
    clips, series_problems = dicom_io.assemble_clips(dicom_files)
    problems.extend(series_problems)
    series = collections.defaultdict(list)  # a series' positions together
    for clip in clips:
        series[clip.first].append(_dicom_source(clip))
    placed.extend(series.items())
    sources = []
    for _, found in sorted(placed, key=lambda item: item[0]):
        sources.extend(_keep_slices(found, slices, problems))
    for source in sources:
        source.intensity = intensity
    return sources


def _dicom_source(clip: dicom_io.DicomClip) -> ClipSource:
    header = clip.header
    return ClipSource(
        clip.path, "dicom", clip.label, "", clip.length, header.height,
        header.width, header.channels, "float32", index=clip.index,
        frame_paths=clip.frame_paths, patient=header.patient,
        study=header.study, series=header.series,
    )


def assign_groups(sources, groups, root, owner):
    """Sets each source's group, as `clip_dataset_from_directory` says.

    A DICOM clip's own group is its PatientID (else StudyInstanceUID),
    which `groups=None` keeps and a pattern that does not match it falls
    back to; other clips' own group is their path.
    """
    relative = [_relative(s.path, root) for s in sources]
    own = [
        (s.patient or s.study or path) if s.kind == "dicom" else path
        for s, path in zip(sources, relative)
    ]
    for source, group, fallback in zip(
        sources, group_ids(relative, groups, own, owner), own
    ):
        keep_own = groups is None and source.kind == "dicom"
        source.group = fallback if keep_own else group


def check_slices(owner: str, slices):
    """`slices` if it is None, "middle", an int, a list of ints or a
    Python `slice`, else `ValueError`."""
    if slices is None or slices == "middle" or is_integer(slices) or (
        isinstance(slices, slice)
    ):
        return slices
    if isinstance(slices, (list, tuple)) and slices and all(
        is_integer(k) for k in slices
    ):
        return [int(k) for k in slices]
    raise ValueError(
        f"{owner} expects `slices` to be None, 'middle', a slice index, a "
        f"non-empty list of them, or a Python slice; received: "
        f"slices={slices!r}"
    )


def select_slices(count: int, slices) -> list[int]:
    """The indices out of `count` slices that `slices` keeps, in order.

    Raises:
        ValueError: if an index does not fit, or none is kept.
    """
    if slices is None:
        return list(range(count))
    if slices == "middle":
        return [(count - 1) // 2]
    if isinstance(slices, slice):
        kept = list(range(count))[slices]
        if not kept:
            raise ValueError(f"has {count} slices; slices={slices!r} keeps "
                             "none")
        return kept
    wanted = [slices] if is_integer(slices) else slices
    if any(not -count <= k < count for k in wanted):
        raise ValueError(
            f"has {count} slice(s); slices={slices!r} does not fit"
        )
    return [k % count for k in wanted]


def _keep_slices(found, slices, problems):
    """The sources of one file or series that `slices` keeps."""
    if slices is None or not found or found[0].index is None:
        return found
    try:
        return [found[k] for k in select_slices(len(found), slices)]
    except ValueError as error:
        problems.append((found[0].path, str(error)))
        return []


def index_dicom_paths(paths, labels, intensity, slices, skip_bad, owner):
    """The sources of DICOM files and folders (walked for DICOM files,
    other files passed over), grouped by patient, with `(path, reason)`
    of the bad ones left out with `skip_bad` (else `ValueError`)."""
    candidates = []
    for path, label in zip(paths, labels):
        if not os.path.exists(path):
            raise FileNotFoundError(f"No such DICOM file or folder: {path!r}")
        if not os.path.isdir(path):
            candidates.append((path, "dicom", label))
            continue
        found = sorted(
            os.path.join(folder, name)
            for folder, _, names in os.walk(path) for name in _visible(names)
            if name.lower() not in _DICOM_INDEXES
            and _kind_of(name, os.path.join(folder, name)) == "dicom"
        )
        if not found:
            raise ValueError(f"{owner} found no DICOM files in {path!r}.")
        candidates.extend((file, "dicom", label) for file in found)
    problems = []
    sources = probe_sources(candidates, 1, intensity, slices, problems)
    root = os.path.dirname(os.path.abspath(paths[0]))
    assign_groups(sources, None, root, owner)
    _raise_or_skip(problems, skip_bad, owner, paths[0] if len(paths) == 1
                   else f"{len(paths)} paths")
    return sources, problems


def _probe_all(candidates, time_axis):
    """Sources of each candidate, or a string: why it is bad."""
    if any(kind == "video" for _, kind, _ in candidates):
        video_io.import_av()  # one clear ImportError, not one a file
    if any(kind == "dicom" for _, kind, _ in candidates):
        dicom_io.import_pydicom()
    if len(candidates) < 8:
        return [_probe(c, time_axis) for c in candidates]
    # Probing waits on the disk as much as on the CPU: more threads than
    # cores.
    with ThreadPool(min(16, 4 * (os.cpu_count() or 1))) as pool:
        return pool.map(lambda c: _probe(c, time_axis), candidates)


def _probe(candidate, time_axis):
    path, kind, label = candidate
    try:
        if kind == "video":
            info = video_io.probe_video(path)
            return [ClipSource(path, kind, label, "", info.frames,
                               info.height, info.width, 3)]
        if kind == "frames":
            return [_probe_frames(path, label)]
        if kind == "npy":
            return [_probe_npy(path, label, time_axis)]
        if kind == "dicom":
            return [dicom_io.probe_dicom(path)]
        return _probe_nifti(path, label)
    except (ValueError, OSError) as error:
        message = str(error)
        # Drop the path the message starts with: the report names it.
        for prefix in (repr(path), path):
            if message.startswith(prefix):
                message = message[len(prefix):].lstrip(" :")
        return message or type(error).__name__


def _probe_frames(path, label):
    frame_paths, problem = _find_frames(path)
    if problem:
        raise ValueError(problem)
    try:
        image = _decode_image(frame_paths[0], 0)
    except tf.errors.OpError as error:
        raise ValueError(_op_error(frame_paths[0], error)) from None
    height, width, channels = image.shape
    return ClipSource(path, "frames", label, "", len(frame_paths), height,
                      width, channels, frame_paths=tuple(frame_paths))


def _probe_npy(path, label, time_axis):
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot be read as .npy: {error}") from None
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"has dtype {array.dtype}, not numbers")
    length, height, width, channels = _npy_clip_shape(array.shape, time_axis)
    if length == 0 or height == 0 or width == 0:
        raise ValueError(f"is empty: shape {array.shape}")
    dtype = "uint8" if array.dtype == np.uint8 else "float32"
    return ClipSource(path, "npy", label, "", length, height, width,
                      channels, dtype, time_axis=time_axis)


def _probe_nifti(path, label):
    nibabel = _import_nibabel()
    try:
        shape = nibabel.load(path).shape
    except Exception as error:  # nibabel raises several kinds on bad files
        raise ValueError(f"cannot be read as NIfTI: {error}") from None
    if len(shape) != 4 or 0 in shape:
        raise ValueError(
            f"holds a volume of shape {shape}; expected 4D (X, Y, Z, T), "
            "slices over time"
        )
    x, y, z, t = shape
    return [ClipSource(path, "nifti", label, "", t, x, y, 1, "float32",
                       index=k) for k in range(z)]


def _raise_or_skip(problems, skip_bad, owner, root):
    if not problems:
        return
    if not skip_bad:
        raise ValueError(
            f"{owner} found {len(problems)} bad clip(s) under {root!r}: "
            f"{_describe(problems)}. Fix or remove them, or pass "
            "skip_bad=True to leave them out."
        )
    every = list_some(
        (f"{path}: {reason}" for path, reason in problems), len(problems)
    )
    warnings.warn(
        f"{owner} skipped {len(problems)} bad clip(s) under {root!r} "
        f"(skip_bad=True): {every}",
        stacklevel=4,  # the caller of clip_dataset_from_directory
    )


_KIND_NAMES = {
    "video": "video files", "frames": "frame folders", "npy": ".npy files",
    "nifti": "NIfTI slices", "dicom": "DICOM clips",
}


def _summary(sources, class_names):
    kinds = collections.Counter(s.kind for s in sources)
    listed = ", ".join(f"{kinds[k]} {_KIND_NAMES[k]}" for k in KINDS
                       if kinds[k])
    text = (
        f"Found {len(sources)} clips ({listed}) in "
        f"{len({s.group for s in sources})} groups"
    )
    if class_names is not None:
        text += f", belonging to {len(class_names)} classes"
    return text + "."


def split_clip_sources(
    sources: list[ClipSource],
    validation_split: float,
    seed: int | None = 0,
    class_names: list[str] | None = None,
) -> tuple[list[ClipSource], list[ClipSource]]:
    """Training and validation sources, no group on both sides.

    Whole groups go to one side, chosen by `group_split` so that each
    class has about `validation_split` of its clips validating, and clips
    on both sides. Sources without labels are split by groups alone.

    Args:
        sources: `ClipSource` list, e.g. `index_clip_directory(...).sources`.
        validation_split: Fraction to validate, in `(0, 1)`.
        seed: Seed of the split.
        class_names: Optional, for messages.

    Returns:
        `(training, validation)`, each in the order of `sources`.
    """
    validation_split = check_rate(
        "split_clip_sources", "validation_split", validation_split
    )
    if validation_split == 0.0:
        raise ValueError(
            "split_clip_sources expects `validation_split` in (0, 1), "
            "received: validation_split=0.0"
        )
    labels = [0 if s.label is None else s.label for s in sources]
    validating = group_split(
        labels, [s.group for s in sources], validation_split, seed,
        class_names,
    )
    return (
        [s for s, v in zip(sources, validating) if not v],
        [s for s, v in zip(sources, validating) if v],
    )


def check_common_size(sources: list[ClipSource]) -> tuple[int, int]:
    """The frame size all `sources` share, else `ValueError` naming files."""
    sizes = collections.defaultdict(list)
    for source in sources:
        sizes[(source.height, source.width)].append(source.path)
    if len(sizes) > 1:
        ranked = sorted(sizes.items(), key=lambda item: -len(item[1]))
        described = "; ".join(
            f"{h}x{w}: {list_some(sorted(set(paths)), 3)}"
            for (h, w), paths in ranked
        )
        raise ValueError(
            f"With image_size=None every clip must have frames of one size; "
            f"found {len(sizes)} sizes (height x width): {described}. Pass "
            "image_size=(height, width) to resize every frame."
        )
    return next(iter(sizes))


def read_clip(
    source: ClipSource,
    indices: Sequence[int] | np.ndarray | None = None,
    frame_step: int = 1,
    channels: int | None = None,
) -> np.ndarray:
    """Reads frames of one clip source at its own size.

    Args:
        source: A `ClipSource`, e.g. from `dataset.clip_sources`.
        indices: Frame indices in any order, repeats allowed (e.g. from
            `sample_frame_indices`); `None` reads every `frame_step`-th
            frame of the whole clip, e.g. to cache features of all of them.
        frame_step: With `indices=None`, the spacing of the frames read.
        channels: 1, 3 or 4 to convert to (gray, RGB, RGBA); `None` keeps
            the source's own.

    Returns:
        `(frames, height, width, channels)`, upright, uint8 for videos,
        frame images and uint8 `.npy` clips, else float32 (NIfTI slices
        scaled to 0..255 per volume, DICOM clips per clip, as the source's
        `intensity` says).

    Raises:
        ValueError: naming the file, if it cannot be read or decoded, or
            a `.npy` clip holds NaN or infinity.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from keras_vgg4d.data import index_clip_directory, read_clip
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "a"))
    >>> clip = np.arange(6, dtype="uint8")[:, None, None, None]
    >>> np.save(os.path.join(root, "a", "c.npy"),
    ...         np.broadcast_to(clip, (6, 32, 32, 1)))
    >>> source = index_clip_directory(root, verbose=False).sources[0]
    >>> frames = read_clip(source, frame_step=2, channels=3)
    >>> frames.shape, frames[:, 0, 0, 0].tolist()
    ((3, 32, 32, 3), [0, 2, 4])
    """
    if not isinstance(source, ClipSource):
        raise ValueError(
            "read_clip expects a `ClipSource` (from `index_clip_directory` or "
            f"`dataset.clip_sources`), received {type(source).__name__} "
            f"{source!r}. To read a video file, use `read_video(path)`."
        )
    step = check_integer("read_clip", "frame_step", frame_step, minimum=1)
    if indices is not None:
        indices = np.asarray(indices, dtype="int64").reshape(-1)
    if source.kind == "video":
        return video_io.read_video(source.path, indices, step, channels or 3)
    if indices is None:
        indices = np.arange(0, source.length, step)
    if len(indices) and (indices.min() < 0 or indices.max() >= source.length):
        raise ValueError(
            f"{source.path!r} has {source.length} frames; indices "
            f"{indices.tolist()} fall outside."
        )
    if source.kind == "frames":
        return _read_frames(source, indices, channels)
    readers = {"npy": _read_npy, "nifti": _read_nifti, "dicom": _read_dicom}
    array = readers[source.kind](source, indices)
    return convert_channels(array, channels or array.shape[-1], source.path)


def _read_dicom(source, indices):
    if not len(indices):
        return np.zeros((0, source.height, source.width, source.channels),
                        "float32")
    return dicom_io.read_dicom_clip(
        source.path, source.frame_paths, source.length, indices,
        source.intensity or "window",
    )


def _read_frames(source, indices, channels):
    images = []
    for i in indices:
        path = source.frame_paths[i]
        try:
            image = _decode_image(path, channels or source.channels).numpy()
        except tf.errors.OpError as error:
            raise ValueError(_op_error(path, error)) from None
        if images and image.shape != images[0].shape:
            raise ValueError(
                f"frame {path} is {image.shape[0]}x{image.shape[1]}, not "
                f"{images[0].shape[0]}x{images[0].shape[1]} like the "
                "clip's other frames"
            )
        images.append(image)
    return np.stack(images)


def _read_npy(source, indices):
    array = np.load(source.path, mmap_mode="r", allow_pickle=False)
    if source.time_axis == -1:
        array = np.moveaxis(array, -1, 0)  # a view: reads stay lazy
    if array.ndim == 3:
        array = array[..., None]
    clip = np.asarray(array[indices])
    if clip.dtype != np.uint8:
        clip = clip.astype("float32")
        finite = np.isfinite(clip.reshape(len(clip), -1)).all(axis=1)
        if not finite.all():
            raise ValueError(
                f"{source.path!r} holds NaN or infinite values, first in "
                f"frame {indices[np.argmin(finite)]}."
            )
    return clip


# (path, modification time, intensity) -> the window of a NIfTI volume,
# so the slices of a volume are scaled alike without reading it once a
# slice.
_NIFTI_WINDOWS = {}
_NIFTI_LOCK = threading.Lock()


def _read_nifti(source, indices):
    nibabel = _import_nibabel()
    intensity = source.intensity or "minmax"
    try:
        image = nibabel.load(source.path)
        key = (source.path, os.path.getmtime(source.path), repr(intensity))
        with _NIFTI_LOCK:
            window = _NIFTI_WINDOWS.get(key)
        if window is None:
            window = volume_window(image, intensity)
            with _NIFTI_LOCK:
                _NIFTI_WINDOWS[key] = window
        # (X, Y, T) of slice z -> (T, X, Y, 1), as load_nifti lays it out.
        plane = np.asarray(image.dataobj[:, :, source.index, :], "float32")
    except Exception as error:  # nibabel raises several kinds on bad files
        raise ValueError(
            f"{source.path!r} cannot be read as NIfTI: {error}"
        ) from None
    clip = np.transpose(plane, (2, 0, 1))[indices]
    return apply_window(clip, window)[..., None]


def convert_channels(
    array: np.ndarray, channels: int, path: str = "clip"
) -> np.ndarray:
    """`(..., c)` frames as `channels` channels (1 gray, 3 RGB, 4 RGBA).

    Gray is repeated into RGB; RGB becomes gray with the weights of
    `tf.image.rgb_to_grayscale`; alpha is dropped, or added opaque.
    """
    have = array.shape[-1]
    if have == channels:
        return array
    if have not in (1, 3, 4) or channels not in (1, 3, 4):
        raise ValueError(
            f"{path!r} has {have} channels and cannot be converted to "
            f"{channels}"
        )
    rgb = np.repeat(array, 3, axis=-1) if have == 1 else array[..., :3]
    if channels == 3:
        return rgb
    if channels == 4:
        opaque = np.full(array.shape[:-1] + (1,), 255, array.dtype)
        return np.concatenate([rgb, opaque], axis=-1)
    gray = rgb.astype("float32") @ _GRAY_WEIGHTS
    if array.dtype == np.uint8:
        return np.round(gray).astype("uint8")[..., None]
    return gray[..., None]


def read_sampled_clip(
    source: ClipSource,
    sample: Callable[[int], np.ndarray],
    channels: int | None = None,
) -> np.ndarray:
    """`read_clip(source, sample(source.length), channels=channels)`.

    A video whose header overstates its length by a little (it decodes a
    few frames fewer) gets its `length` corrected and is sampled again;
    one that decodes to less than 90% of it is truncated: `ValueError`.

    Args:
        source: A `ClipSource`.
        sample: Callable `length -> indices`, e.g. a
            `functools.partial` of `sample_frame_indices`.
        channels: As in `read_clip`.
    """
    try:
        return read_clip(source, sample(source.length), channels=channels)
    except video_io.VideoEndedEarly as error:
        if error.frames < 1 or (
            error.frames < video_io.TRUNCATED_SHARE * source.length - 1
        ):
            raise ValueError(
                f"{source.path!r} is truncated: it decodes to "
                f"{error.frames} frames, its header counts {source.length}."
            ) from None
        source.length = error.frames
        return read_clip(source, sample(source.length), channels=channels)
