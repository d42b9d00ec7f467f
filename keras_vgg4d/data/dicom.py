"""Clips from DICOM, as scanners write them: cine files and series.

Needs pydicom, and for compressed files its decoder plugins: the `dicom`
extra, `pip install "keras_vgg4d[dicom]"`.

- A multi-frame file (NumberOfFrames > 1: cine MRI, ultrasound,
  angiography) is one clip, its frames in file order.
- Single-frame files are grouped by series (SeriesInstanceUID), wherever
  they lie, then by slice position (ImagePositionPatient projected on the
  slice normal, else SliceLocation), and each position's frames ordered
  in time by TriggerTime, then TemporalPositionIdentifier, then
  InstanceNumber (those of the three present on every frame, compared in
  that order): one clip a slice position. A series with one frame at
  every position (a 3D volume, no time) is one clip whose frames are its
  slices in spatial order.

Stored values are rescaled (RescaleSlope, RescaleIntercept, or a
Modality LUT) and mapped to 0..255 by a window per clip (see
`keras_vgg4d.data.intensity`); MONOCHROME1 is inverted, colour (RGB,
YBR_FULL, YBR_FULL_422, palette) comes out RGB. A clip's group is its
PatientID (else its StudyInstanceUID).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import threading
from collections.abc import Sequence

import keras
import numpy as np

from keras_vgg4d.backend import LazyTensorFlow
from keras_vgg4d.data.intensity import Window
from keras_vgg4d.data.intensity import apply_window
from keras_vgg4d.data.intensity import check_intensity
from keras_vgg4d.data.intensity import intensity_window
from keras_vgg4d.data.intensity import needs_values
from keras_vgg4d.validation import check_bool
from keras_vgg4d.validation import check_choice
from keras_vgg4d.validation import check_image_size
from keras_vgg4d.validation import check_integer
from keras_vgg4d.validation import list_some

tf = LazyTensorFlow("Reading DICOM clips into a tf.data pipeline")

DICOM_EXTENSIONS = (".dcm", ".dicom", ".ima")
TIME_KEYS = ("TriggerTime", "TemporalPositionIdentifier", "InstanceNumber")
# Pixel Data, Float Pixel Data, Double Float Pixel Data.
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
# The end of encapsulated (compressed) pixel data: a Sequence Delimiter.
_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_UNDEFINED_LENGTH = 0xFFFFFFFF
_EXTRA = 'pip install "keras_vgg4d[dicom]"'
# Transfer syntax keyword prefix -> the packages whose plugins decode it.
_PLUGIN_PACKAGES = (
    ("JPEG2000", "pylibjpeg pylibjpeg-openjpeg"),
    ("HTJ2K", "pylibjpeg pylibjpeg-openjpeg"),
    ("JPEG", "pylibjpeg pylibjpeg-libjpeg"),
    ("RLE", "pylibjpeg pylibjpeg-rle"),
)


def import_pydicom():
    """pydicom, or one `ImportError` naming the `dicom` extra."""
    try:
        import pydicom
        import pydicom.pixels  # noqa: F401 - pydicom 3's decoders
    except ImportError as error:
        raise ImportError(
            "Reading DICOM needs pydicom 3 and its decoder plugins, which "
            f"are not installed. Install the dicom extra: `{_EXTRA}`."
        ) from error
    return pydicom


def is_dicom_file(path: str) -> bool:
    """Whether `path` starts like a DICOM file: 'DICM' at byte 128."""
    try:
        with open(path, "rb") as file:
            head = file.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


# --- probing: headers only ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DicomFile:
    """What the header of one DICOM file says, for grouping and ordering.

    `position` sorts slices in space (`None` without one); `position_mm`
    names it in messages; `times` holds `TIME_KEYS`' values (`None` where
    absent).
    """

    path: str
    frames: int
    height: int
    width: int
    channels: int
    patient: str | None
    study: str | None
    series: str | None
    position: tuple | None
    position_mm: float | None
    times: tuple


def _text(dataset, keyword) -> str | None:
    value = dataset.get(keyword)
    value = "" if value is None else str(value).strip()
    return value or None


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _position(dataset):
    """`(sort key, millimetres)` of a frame's slice, or `(None, None)`."""
    origin = dataset.get("ImagePositionPatient")
    cosines = dataset.get("ImageOrientationPatient")
    if origin is not None and cosines is not None and (
        len(origin) == 3 and len(cosines) == 6
    ):
        cosines = np.asarray(cosines, "float64")
        normal = np.cross(cosines[:3], cosines[3:])
        mm = float(np.dot(np.asarray(origin, "float64"), normal))
        orientation = tuple(np.round(cosines, 3).tolist())
        return (orientation, round(mm, 2)), mm
    location = _number(dataset.get("SliceLocation"))
    if location is not None:
        return ((), round(location, 2)), location
    return None, None


def probe_dicom(path: str) -> DicomFile:
    """Reads the header of one DICOM file and checks it can be decoded.

    Proves, without decoding, that the file is DICOM, holds pixel data of
    a known size that the file holds whole, and is in a transfer syntax an
    installed plugin decodes; a multi-frame file also has its first frame
    decoded.

    Raises:
        ValueError: saying what is wrong (the caller names the file).
    """
    pydicom = import_pydicom()
    try:
        dataset = pydicom.dcmread(path, defer_size=1024)
    except pydicom.errors.InvalidDicomError:
        raise ValueError(
            "is not a DICOM file (no 'DICM' marker at byte 128)"
        ) from None
    except Exception as error:  # pydicom raises several kinds on bad files
        if "End of file" in str(error):  # an EOFError, or its warning
            raise ValueError(f"is truncated: {error}") from None
        raise ValueError(f"cannot be read as DICOM: {error}") from None
    try:
        return _describe_file(path, dataset)
    except (TypeError, AttributeError, KeyError, IndexError) as error:
        raise ValueError(
            f"has a header that cannot be interpreted: {error}"
        ) from None


def _describe_file(path, dataset) -> DicomFile:
    element = next(
        (dataset.get_item(tag, keep_deferred=True) for tag in _PIXEL_TAGS
         if tag in dataset), None,
    )
    if element is None:
        raise ValueError(
            "holds no pixel data: a truncated file, or no image (a "
            "DICOMDIR, a report, ...)"
        )
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    if not syntax:
        raise ValueError("names no transfer syntax in its file meta header")
    check_decodable(syntax)
    height, width = (int(_number(dataset.get(k)) or 0)
                     for k in ("Rows", "Columns"))
    if not height or not width:
        raise ValueError(f"holds an image of {height}x{width} pixels")
    _check_complete(path, element)
    frames = int(_number(dataset.get("NumberOfFrames")) or 1)
    if frames > 1:
        _decode_first_frame(path)
    photometric = _text(dataset, "PhotometricInterpretation") or ""
    color = photometric == "PALETTE COLOR" or (
        int(_number(dataset.get("SamplesPerPixel")) or 1) > 1
    )
    position, mm = _position(dataset)
    return DicomFile(
        path, frames, height, width, 3 if color else 1,
        _text(dataset, "PatientID"), _text(dataset, "StudyInstanceUID"),
        _text(dataset, "SeriesInstanceUID"), position, mm,
        tuple(_number(dataset.get(key)) for key in TIME_KEYS),
    )


def _decoder_plugins(syntax: str) -> tuple[str, ...] | None:
    """The installed plugins that decode `syntax`: `("pydicom",)` for
    uncompressed data, `()` for none, `None` where pydicom has no decoder
    at all for it."""
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        return None
    if decoder.is_native:
        return ("pydicom",)
    return tuple(decoder.available_plugins)


def check_decodable(syntax: str) -> None:
    """`ValueError` naming the syntax and the packages, if none decodes it."""
    from pydicom.uid import UID

    syntax = UID(str(syntax))
    plugins = _decoder_plugins(syntax)
    name = f"{syntax.name} ({syntax})" if syntax.name != syntax else syntax
    if plugins is None:
        video = syntax.keyword.startswith(("MPEG", "HEVC"))
        raise ValueError(
            f"is in transfer syntax {name}, whose pixel data pydicom does "
            "not decode"
            + (" (a video stream inside DICOM: export it as a video file "
               "and list that instead)" if video else "")
        )
    if not plugins:
        packages = next(
            (p for prefix, p in _PLUGIN_PACKAGES
             if syntax.keyword.startswith(prefix)), None,
        )
        hint = f"`pip install {packages}`, or " if packages else ""
        raise ValueError(
            f"is compressed as {name}, which no installed pydicom plugin "
            f"decodes: {hint}the dicom extra `{_EXTRA}`"
        )


def _check_complete(path, element):
    """`ValueError` if the file ends before its pixel data does."""
    tell = getattr(element, "value_tell", None)
    if tell is None:  # small, read already: pydicom checks its length
        return
    size = os.path.getsize(path)
    if element.length != _UNDEFINED_LENGTH:
        if tell + element.length > size:
            raise ValueError(
                f"is truncated: its pixel data ends at byte "
                f"{tell + element.length}, the file at byte {size}"
            )
        return
    with open(path, "rb") as file:
        file.seek(max(tell, size - len(_DELIMITER)))
        if file.read() == _DELIMITER:
            return
        file.seek(tell)
        if _DELIMITER in file.read():
            return
    raise ValueError(
        "is truncated: its compressed pixel data has no end (no sequence "
        "delimiter)"
    )


def _decode_first_frame(path):
    from pydicom.pixels import pixel_array

    try:
        pixel_array(path, index=0)
    except Exception as error:  # any decoder failure: say which
        raise ValueError(f"cannot be decoded: {error}") from None


# --- series: group, place, order ---------------------------------------------


@dataclasses.dataclass
class DicomClip:
    """A clip that DICOM files make, before it becomes a `ClipSource`.

    `path` is the file (of a multi-frame file, or a series of one file),
    or the folder holding a series' files; `frame_paths`
    the series' files in time order (`None` for a multi-frame file);
    `index` the slice position in spatial order, of `positions` (`None`
    for a multi-frame file, or a 3D series made one clip); `header` the
    `DicomFile` of its (first) file, whose frame size, channels, patient,
    study and series are the clip's; `first` the listing order of its
    first file.
    """

    path: str
    frame_paths: tuple[str, ...] | None
    index: int | None
    positions: int
    length: int
    header: DicomFile
    label: int | None
    first: int


def assemble_clips(files: list[tuple[int, DicomFile, int | None]]):
    """The clips of probed DICOM files: one a multi-frame file, and the
    slice positions of each series of single-frame files.

    Args:
        files: `(listing order, DicomFile, label)` of each file.

    Returns:
        `(clips, problems)`: `DicomClip` list, and `(path, reason)` of each
        series that makes no clip (unordered frames, several sizes, ...).
    """
    clips, problems = [], []
    series = collections.defaultdict(list)
    for order, file, label in files:
        if file.frames > 1 or file.series is None:
            clips.append(DicomClip(file.path, None, None, 1, file.frames,
                                   file, label, order))
        else:
            series[file.series].append((order, file, label))
    for uid, members in series.items():
        folder = os.path.commonpath(
            [os.path.dirname(file.path) for _, file, _ in members]
        )
        try:
            clips.extend(_series_clips(members, folder))
        except ValueError as error:
            problems.append((folder, f"series {uid}: {error}"))
    return clips, problems


def _series_clips(members, folder):
    labels = sorted({label for _, _, label in members}, key=str)
    if len(labels) > 1:
        raise ValueError(
            f"its files have different labels {labels} (a series copied "
            "into several classes?)"
        )
    files = [file for _, file, _ in sorted(members, key=lambda m: m[0])]
    _check_one_size(files)
    if all(file.position is not None for file in files):
        by_position = collections.defaultdict(list)
        for file in files:
            by_position[file.position].append(file)
    else:
        by_position = {None: files}
    keys = sorted(by_position, key=lambda k: (k is None, k))
    stacks = [by_position[key] for key in keys]
    volume = len(stacks) > 1 and all(len(stack) == 1 for stack in stacks)
    if volume:  # one frame a position, no time: one clip through space
        ordered = [[stack[0] for stack in stacks]]
    else:
        ordered = [_order_in_time(stack) for stack in stacks]
    head, first = files[0], min(order for order, _, _ in members)
    path = head.path if len(files) == 1 else folder
    return [
        DicomClip(
            path, tuple(f.path for f in frames), None if volume else k,
            len(ordered), len(frames), head, labels[0], first,
        )
        for k, frames in enumerate(ordered)
    ]


def _check_one_size(files):
    sizes = collections.defaultdict(list)
    for file in files:
        sizes[(file.height, file.width, file.channels)].append(
            os.path.basename(file.path)
        )
    if len(sizes) > 1:
        described = "; ".join(
            f"{h}x{w}x{c}: {list_some(names, 3)}"
            for (h, w, c), names in sizes.items()
        )
        raise ValueError(
            f"its frames have {len(sizes)} sizes (height x width x "
            f"channels): {described}"
        )


def _order_in_time(files):
    """`files` of one slice position in time order, else `ValueError`."""
    if len(files) == 1:
        return files
    where = (
        "" if files[0].position_mm is None
        else f" at slice position {files[0].position_mm:.2f} mm"
    )
    names = [os.path.basename(f.path) for f in files]
    present = [k for k in range(len(TIME_KEYS))
               if all(f.times[k] is not None for f in files)]
    if not present:
        raise ValueError(
            f"its {len(files)} frames{where} do not all carry one of "
            f"{', '.join(TIME_KEYS)}, so their order in time is unknown: "
            f"{list_some(names, 4)}"
        )
    ordered = sorted(files, key=lambda f: [f.times[k] for k in present])
    for a, b in zip(ordered, ordered[1:]):
        if [a.times[k] for k in present] == [b.times[k] for k in present]:
            shared = ", ".join(
                f"{TIME_KEYS[k]} {a.times[k]:g}" for k in present
            )
            raise ValueError(
                f"two frames{where} share {shared}: "
                f"{os.path.basename(a.path)} and "
                f"{os.path.basename(b.path)} (the same image twice?)"
            )
    return ordered


# --- reading pixels -------------------------------------------------------


def _functional(dataset, frame, sequence, keyword):
    """`keyword`'s value at the top of `dataset`, else in the frame's or
    the shared functional groups (enhanced multi-frame files)."""
    if keyword in dataset:
        return dataset[keyword].value
    for groups, item in (("PerFrameFunctionalGroupsSequence", frame),
                         ("SharedFunctionalGroupsSequence", 0)):
        items = dataset.get(groups)
        if items and item < len(items):
            inner = items[item].get(sequence)
            if inner and keyword in inner[0]:
                return inner[0][keyword].value
    return None


def _first(value):
    if value is not None and not isinstance(value, (str, bytes)) and (
        hasattr(value, "__len__")
    ):
        return value[0] if len(value) else None
    return value


def _stored_window(dataset) -> Window | None:
    center, width = (
        _number(_first(_functional(dataset, 0, "FrameVOILUTSequence", k)))
        for k in ("WindowCenter", "WindowWidth")
    )
    if center is None or width is None:
        return None
    function = str(
        _functional(dataset, 0, "FrameVOILUTSequence", "VOILUTFunction")
        or "LINEAR"
    ).upper()
    return Window(center, width, function if function in (
        "LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR")


def _to_values(frame, dataset, index):
    """One decoded frame in the scanner's units, or RGB in 0..255."""
    from pydicom.pixels.processing import apply_color_lut
    from pydicom.pixels.processing import apply_modality_lut

    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(frame, dataset)
        return rgb.astype("float32") * (255.0 / np.iinfo(rgb.dtype).max)
    if frame.ndim == 3:  # RGB: YBR was converted by pydicom
        bits = int(_number(dataset.get("BitsStored")) or 8)
        return frame.astype("float32") * (255.0 / (2 ** bits - 1))
    if dataset.get("ModalityLUTSequence"):
        return apply_modality_lut(frame, dataset).astype("float32")
    slope = _number(_functional(
        dataset, index, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _number(_functional(
        dataset, index, "PixelValueTransformationSequence",
        "RescaleIntercept"))
    values = frame.astype("float32")
    if slope is not None and slope != 1.0:
        values = values * np.float32(slope)
    if intercept:
        values = values + np.float32(intercept)
    return values


def _read_values(path, frame_paths, indices):
    """`(values (n, h, w[, 3]), header)` of the clip's frames at
    `indices` (not empty), in the scanner's units (RGB in 0..255)."""
    import pydicom
    from pydicom.pixels import iter_pixels

    if frame_paths is None:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        wanted = sorted(set(int(i) for i in indices))
        decoded = dict(zip(wanted, iter_pixels(path, indices=wanted)))
        frames = [_to_values(decoded[int(i)], header, int(i))
                  for i in indices]
    else:
        frames, header = [], None
        for i in indices:
            dataset = pydicom.dcmread(frame_paths[int(i)])
            header = header or dataset
            frames.append(_to_values(dataset.pixel_array, dataset, 0))
            if frames[-1].shape != frames[0].shape:
                raise ValueError(
                    f"frame {frame_paths[int(i)]!r} is "
                    f"{frames[-1].shape}, not {frames[0].shape} like the "
                    "clip's other frames"
                )
    return np.stack(frames), header


# (clip, modification time, intensity) -> Window, so that every read of a
# clip maps its values alike without reading the whole clip each time.
_WINDOWS = {}
_WINDOWS_LOCK = threading.Lock()


def read_dicom_clip(
    path: str,
    frame_paths: Sequence[str] | None,
    length: int,
    indices: np.ndarray,
    intensity,
) -> np.ndarray:
    """float32 `(len(indices), h, w, c)` in 0..255 of one DICOM clip.

    Args:
        path: The multi-frame file, or the folder of a series.
        frame_paths: The series' files in time order, or `None`.
        length: Frames in the clip.
        indices: Frames to read, any order, repeats allowed.
        intensity: As `check_intensity` returns it.

    Raises:
        ValueError: naming the file, if it cannot be read or decoded.
    """
    import_pydicom()
    first = frame_paths[0] if frame_paths else path
    try:
        values, header = _read_values(path, frame_paths, indices)
        key = (path, first, os.path.getmtime(first), repr(intensity))
        with _WINDOWS_LOCK:
            window = _WINDOWS.get(key)
        color = values.ndim == 4
        if window is None and not color:
            window = _clip_window(path, frame_paths, length, header,
                                  intensity, values, indices)
            with _WINDOWS_LOCK:
                _WINDOWS[key] = window
    except (ValueError, OSError) as error:
        raise ValueError(_named(first, error)) from None
    except Exception as error:  # pydicom and its plugins raise many kinds
        raise ValueError(_named(first, error, "cannot be decoded: ")) from None
    if color:
        return np.clip(values, 0.0, 255.0)
    invert = header.get("PhotometricInterpretation") == "MONOCHROME1"
    return apply_window(values, window, invert)[..., None]


def _named(path, error, prefix=""):
    message = str(error) or type(error).__name__
    return message if path in message else f"{path!r} {prefix}{message}"


def _clip_window(path, frame_paths, length, header, intensity, values,
                 indices):
    """The clip's window: the file's, a fixed one, or from all its values
    (read once, whichever frames were asked for)."""
    if frame_paths:  # a series: the window of its first frame
        import pydicom

        header = pydicom.dcmread(frame_paths[0], stop_before_pixels=True)
    stored = _stored_window(header)
    if not needs_values(intensity, stored):
        return intensity_window(None, intensity, stored)
    if not np.array_equal(np.asarray(indices), np.arange(length)):
        values, _ = _read_values(path, frame_paths, np.arange(length))
    if not np.isfinite(values).all():
        raise ValueError(f"{path!r} holds NaN or infinite values")
    return intensity_window(values, intensity, stored)


# --- loading into memory ---------------------------------------------------

DicomClips = collections.namedtuple(
    "DicomClips", ["x", "y", "groups", "sources", "skipped"]
)
DicomClips.__doc__ = """Clips loaded by `load_dicom`.

Attributes:
    x: float32 `(clips, time, height, width, channels)` in 0..255.
    y: int32 `(clips,)` labels, or `None` without `labels`.
    groups: The group of each clip, its PatientID (else its
        StudyInstanceUID), for `split_balanced(..., groups=groups)`.
    sources: The `ClipSource` of each clip (path, patient, study, series,
        slice position, ...).
    skipped: `(path, reason)` of each bad file or series left out with
        `skip_bad=True`; empty otherwise.
"""


def load_dicom(
    path,
    labels=None,
    size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    intensity="window",
    slices=None,
    skip_bad: bool = False,
    verbose: int = 1,
) -> DicomClips:
    """Clips from DICOM files and series, as arrays in memory.

    A multi-frame file (cine MRI, ultrasound) is one clip, its frames in
    file order. The single-frame files under a folder are grouped by
    series and slice position, and ordered in time by TriggerTime, then
    TemporalPositionIdentifier, then InstanceNumber: one clip a slice
    position (see `keras_vgg4d.data.dicom` for the rules). Stored values
    are rescaled (RescaleSlope, RescaleIntercept) and mapped to 0..255 per
    clip by `intensity`. For many or long clips, stream them instead with
    `clip_dataset_from_directory`, which reads DICOM the same way.

    Args:
        path: A DICOM file, a folder (walked for DICOM files; other files
            are passed over), or a list of them.
        labels: Optional class of each path (an int for one path, a list
            for several); every clip of a path gets its label.
        size: `(height, width)` or an int to resize frames to (bilinear,
            antialiased); `None` keeps them, and clips must then agree.
        channels: `1` (gray) or `3` (RGB) to convert to; `None` keeps
            each clip's own (1, or 3 for colour), which must then agree.
        intensity: `"window"` (the file's WindowCenter/WindowWidth, else
            the 0.5th to 99.5th percentiles), `"percentiles"`, `"minmax"`,
            percentiles `(low, high)`, or a fixed window
            `{"center": c, "width": w}` in rescaled units (e.g. HU); see
            `keras_vgg4d.data.intensity`.
        slices: Which slice positions of a series become clips: `None`
            (all), `"middle"`, an index, a list of them, or a `slice`.
        skip_bad: Leave out bad files and series, with a warning, instead
            of raising.
        verbose: `1` shows a progress bar over several clips, `0` none.

    Returns:
        `DicomClips(x, y, groups, sources, skipped)`; clips must share
        their number of frames.

    Example:

    >>> from pydicom.data import get_testdata_file
    >>> from keras_vgg4d.data import load_dicom
    >>> clips = load_dicom(get_testdata_file("SC_rgb_rle_2frame.dcm"),
    ...                    labels=1, verbose=0)
    >>> clips.x.shape, clips.y.tolist(), clips.groups
    ((1, 2, 100, 100, 3), [1], ['ID1'])
    """
    # sources imports this module: import it back when called.
    from keras_vgg4d.data.nifti import _volume_labels
    from keras_vgg4d.data.sources import check_slices
    from keras_vgg4d.data.sources import index_dicom_paths
    from keras_vgg4d.data.sources import read_clip

    owner = "load_dicom"
    paths = ([os.fspath(path)] if isinstance(path, (str, os.PathLike))
             else [os.fspath(p) for p in path])
    if not paths:
        raise ValueError("load_dicom received an empty list of paths.")
    path_labels = _volume_labels(labels, paths, what="path")
    size = check_image_size(owner, "size", size)
    check_choice(owner, "channels", channels, (None, 1, 3))
    check_bool(owner, "skip_bad", skip_bad)
    check_integer(owner, "verbose", verbose, 0, 1)
    sources, skipped = index_dicom_paths(
        paths, [None] * len(paths) if path_labels is None else path_labels,
        check_intensity(owner, intensity), check_slices(owner, slices),
        skip_bad, owner,
    )
    if not sources:
        raise ValueError(f"load_dicom found no clips in {paths}.")
    progress = keras.utils.Progbar(
        len(sources), verbose=verbose if len(sources) > 1 else 0,
        unit_name="clip",
    )
    clips = []
    for source in sources:
        clip = read_clip(source, channels=channels)
        if size is not None and clip.shape[1:3] != size:
            clip = np.clip(tf.image.resize(clip, size, antialias=True), 0,
                           255)
        if clips and clip.shape != clips[0].shape:
            raise ValueError(
                f"{source.path!r} gives a clip of (time, height, width, "
                f"channels) {clip.shape}, but {sources[0].path!r} gives "
                f"{clips[0].shape}. Pass size= to resize the frames and "
                "channels= to convert them; clips must share their number "
                "of frames (clip_dataset_from_directory samples frames from "
                "clips of any length)."
            )
        clips.append(clip)
        progress.add(1)
    y = None if labels is None else np.asarray(
        [s.label for s in sources], "int32")
    return DicomClips(np.stack(clips).astype("float32"), y,
                      [s.group for s in sources], sources, list(skipped))
