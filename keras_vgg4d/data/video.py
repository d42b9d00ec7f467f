"""Video files read with PyAV (FFmpeg): probe cheaply, decode what is needed.

Needs PyAV, the `video` extra: `pip install "keras_vgg4d[video]"`. It is
imported when the first video is read, so everything else works without
it.

Conventions:

- A frame's index is its position in presentation order: frame `i` is
  the `i`-th frame FFmpeg decodes. With a variable frame rate (VFR, as
  phones record) indices are not evenly spaced in time, so sampling that
  is even in frames is not quite even in seconds.
- Rotation: a display matrix (the `rotate` tag of phone videos) is
  applied, in multiples of 90 degrees, so frames come out upright as
  players show them, and `probe_video` reports the rotated size.
  Mirroring in a display matrix is ignored.
- Frames are uint8, `(time, height, width, channels)`: RGB, or gray or
  RGBA when asked.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence

import numpy as np

from keras_vgg4d.validation import check_choice
from keras_vgg4d.validation import check_integer

VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg",
    ".wmv", ".flv", ".3gp", ".ogv", ".ts", ".mts", ".m2ts", ".vob",
)
# FFmpeg pixel formats of the channel counts frames are decoded to.
_PIXEL_FORMATS = {1: "gray", 3: "rgb24", 4: "rgba"}
# A video with fewer than this share of the frames its header promises is
# truncated; a frame or two fewer is a header that rounds.
TRUNCATED_SHARE = 0.9
# Seek forward only when the keyframe to seek to lies at least this many
# frames past the next frame sequential decoding would give: a seek costs
# about as much as decoding a few frames.
_SEEK_GAIN = 16

VideoInfo = collections.namedtuple(
    "VideoInfo", ["frames", "height", "width", "fps", "codec", "rotation"]
)
VideoInfo.__doc__ = """What `probe_video` learns of a video file.

Attributes:
    frames: Number of frames: the container's count where it keeps one
        (MP4, MOV, AVI), else the video packets counted by demuxing, which
        reads the file but decodes nothing (MKV, WebM, MPEG-PS).
    height: Frame height, after rotation.
    width: Frame width, after rotation.
    fps: Average frame rate, or `None` if the container gives none.
    codec: FFmpeg's name of the video codec, e.g. `"h264"`.
    rotation: Counter-clockwise rotation applied to frames, in degrees:
        0, 90, 180 or 270.
"""


class VideoEndedEarly(ValueError):
    """A video gave fewer frames than the index asked for.

    Attributes:
        frames: How many frames it gave.
    """

    def __init__(self, message: str, frames: int):
        super().__init__(message)
        self.frames = frames


def import_av():
    """PyAV, or an `ImportError` that names the extra to install."""
    try:
        import av
    except ImportError as error:
        raise ImportError(
            "Reading video files needs PyAV, which is not installed. "
            'Install the video extra: `pip install "keras_vgg4d[video]"` '
            "(or `pip install av`)."
        ) from error
    return av


def is_video_file(path: str | os.PathLike) -> bool:
    """Whether `path` has a video extension (see `VIDEO_EXTENSIONS`)."""
    return os.fspath(path).lower().endswith(VIDEO_EXTENSIONS)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, size, rate and codec of a video, decoding one frame.

    Cheap: the container's header, its index where it has one, and the
    first frame (which proves the codec decodes and carries the
    rotation). Raises `ValueError` naming the file when FFmpeg cannot
    read it (not a video, truncated before its header or index, corrupt),
    when it holds no video stream or no frames, when its codec is one
    this FFmpeg build does not decode, or when its index points past the
    end of the file (truncated).

    Args:
        path: A video file.

    Returns:
        A `VideoInfo`.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from keras_vgg4d.data import probe_video, write_video
    >>> path = os.path.join(tempfile.mkdtemp(), "clip.mp4")
    >>> write_video(path, np.zeros((6, 48, 64, 3), "uint8"), fps=25)
    >>> info = probe_video(path)
    >>> info.frames, info.height, info.width, info.fps
    (6, 48, 64, 25.0)
    """
    av = import_av()
    path = os.fspath(path)
    with _open(av, path) as container:
        stream = _video_stream(container, path)
        try:
            frames = stream.frames or _count_packets(container, stream, path)
            _check_not_truncated(stream, frames, path)
            first = next(container.decode(stream), None)
        except av.FFmpegError as error:
            raise ValueError(
                f"{path!r} cannot be read (corrupt data?): {_reason(error)}"
            ) from None
        if first is None:
            raise ValueError(f"{path!r}: none of its frames decodes.")
        rotation = _rotation(first)
        height, width = first.height, first.width
        if rotation in (90, 270):
            height, width = width, height
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            frames, height, width, float(rate) if rate else None,
            stream.codec_context.name, rotation,
        )


def _open(av, path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such video file: {path!r}")
    try:
        return av.open(path, metadata_errors="ignore")
    except av.FFmpegError as error:
        raise ValueError(
            f"{path!r} is not a video FFmpeg can read (a corrupt or "
            f"truncated file, or not a video): {_reason(error)}"
        ) from None


def _reason(error) -> str:
    return getattr(error, "strerror", None) or str(error)


def _video_stream(container, path):
    if not container.streams.video:
        raise ValueError(f"{path!r} holds no video stream.")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise ValueError(
            f"{path!r} is in a video codec this FFmpeg build cannot decode "
            "(unsupported codec). Convert it, e.g. `ffmpeg -i in -c:v "
            "libx264 out.mp4`."
        )
    return stream


def _count_packets(container, stream, path) -> int:
    """Frames of a stream whose container keeps no count: its packets."""
    count = sum(1 for packet in container.demux(stream) if packet.size)
    if count == 0:
        raise ValueError(f"{path!r} holds a video stream with no frames.")
    duration = container.duration
    rate = stream.average_rate or stream.guessed_rate
    if duration and rate:
        expected = duration / 1e6 * float(rate)
        if count < TRUNCATED_SHARE * expected - 1:
            raise ValueError(
                f"{path!r} is truncated: its header promises "
                f"{duration / 1e6:.2f} s (about {expected:.0f} frames) but "
                f"it holds {count} frames."
            )
    container.seek(0)
    return count


def _check_not_truncated(stream, frames, path):
    entries = stream.index_entries
    if len(entries) and frames > 0:
        last = entries[len(entries) - 1]
        size = os.path.getsize(path)
        if last.pos >= 0 and last.pos + last.size > size:
            raise ValueError(
                f"{path!r} is truncated: its index points to byte "
                f"{last.pos + last.size} but the file has {size} bytes."
            )


def _rotation(frame) -> int:
    """A frame's display rotation rounded to 0, 90, 180 or 270 degrees."""
    return int(round(float(getattr(frame, "rotation", 0) or 0) / 90)) % 4 * 90


def read_video(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray | None = None,
    frame_step: int = 1,
    channels: int = 3,
) -> np.ndarray:
    """Decodes frames of a video: the ones at `indices`, or all of them.

    Decoding stops after the last frame needed. Where the container has
    an index of keyframes and a constant frame rate, it seeks to the
    keyframe before a needed frame instead of decoding every frame up to
    it, when that keyframe lies well past the frame decoding would reach
    next (MP4, MOV, AVI, MKV with cues). Seeking lands on the same frames
    sequential decoding gives; where timestamps do not allow that to be
    checked, the video is decoded from its start.

    Args:
        path: A video file.
        indices: Frame indices, in any order and with repeats, e.g. from
            `sample_frame_indices`; `None` decodes every `frame_step`-th
            frame to the end.
        frame_step: With `indices=None`, the spacing of the frames kept.
        channels: 3 for RGB, 1 for gray, 4 for RGBA.

    Returns:
        uint8 `(len(indices), height, width, channels)`, upright.

    Raises:
        VideoEndedEarly: (a `ValueError`) if the video ends before an
            index; its `frames` says how many frames it gave.
        ValueError: if FFmpeg cannot read or decode it, naming the file.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from keras_vgg4d.data import read_video, write_video
    >>> path = os.path.join(tempfile.mkdtemp(), "clip.avi")
    >>> ramp = np.arange(8, dtype="uint8")[:, None, None, None] * 30
    >>> write_video(path, np.broadcast_to(ramp, (8, 32, 32, 3)), fps=25)
    >>> frames = read_video(path, [6, 0, 6])
    >>> frames.shape, [round(float(f.mean()) / 30) for f in frames]
    ((3, 32, 32, 3), [6, 0, 6])
    """
    av = import_av()
    path = os.fspath(path)
    check_choice("read_video", "channels", channels, tuple(_PIXEL_FORMATS))
    frame_step = check_integer("read_video", "frame_step", frame_step,
                               minimum=1)
    with _open(av, path) as container:
        stream = _video_stream(container, path)
        if indices is None:
            return _read_every(av, container, stream, path, frame_step,
                               channels)
        indices = np.asarray(indices, dtype="int64").reshape(-1)
        if len(indices) == 0:
            raise ValueError(f"read_video({path!r}) received no indices.")
        if indices.min() < 0:
            raise ValueError(
                f"read_video({path!r}) received negative frame indices: "
                f"{indices[indices < 0].tolist()}."
            )
        wanted = np.unique(indices)
        try:
            decoded = _read_wanted(av, container, stream, path, wanted,
                                   channels, seek=True)
        except _SeekMissed:
            container.seek(0)
            decoded = _read_wanted(av, container, stream, path, wanted,
                                   channels, seek=False)
    return np.stack([decoded[int(i)] for i in indices])


class _SeekMissed(Exception):
    """After a seek, a frame's timestamp did not land on a frame index."""


def _to_array(frame, channels):
    array = frame.to_ndarray(format=_PIXEL_FORMATS[channels])
    if array.ndim == 2:
        array = array[:, :, None]
    turns = _rotation(frame) // 90
    return np.rot90(array, turns) if turns else array


def _decode_error(path, error, index):
    return ValueError(
        f"{path!r} fails to decode at frame {index} (corrupt data or an "
        f"unsupported codec feature): {_reason(error)}"
    )


def _read_every(av, container, stream, path, frame_step, channels):
    kept, index = [], 0
    try:
        for frame in container.decode(stream):
            if index % frame_step == 0:
                kept.append(_to_array(frame, channels))
            index += 1
    except av.FFmpegError as error:
        raise _decode_error(path, error, index) from None
    if not kept:
        raise VideoEndedEarly(f"{path!r} holds no frames that decode.", 0)
    return np.stack(kept)


def _read_wanted(av, container, stream, path, wanted, channels, seek):
    """`{index: frame}` of the sorted unique `wanted` indices."""
    keyframes = _keyframes(stream, wanted[-1]) if seek else None
    decoded, frames, position = {}, None, 0
    for target in wanted:
        key = _keyframe_before(keyframes, target)
        if frames is None or key >= position + _SEEK_GAIN:
            frames = _indexed_frames(container, stream, keyframes, key,
                                     first=frames is None)
        try:
            for index, frame in frames:
                position = index + 1
                if index == target:
                    decoded[int(target)] = _to_array(frame, channels)
                    break
                if index > target:
                    raise _SeekMissed()
            else:
                raise VideoEndedEarly(
                    f"{path!r} ends after {position} frames, before frame "
                    f"{target}; it is truncated or its header overstates "
                    "its length.",
                    position,
                )
        except av.FFmpegError as error:
            raise _decode_error(path, error, position) from None
    return decoded


_Keyframes = collections.namedtuple(
    "_Keyframes", ["indices", "start", "scale"]
)


def _keyframes(stream, last_wanted):
    """Keyframe indices and timestamps, or `None` where seeking is unsafe.

    Seeking needs a constant frame rate (so a timestamp tells a frame's
    index) and an index of keyframes; without them, or when every wanted
    frame lies near the start, decoding runs from the start.
    """
    rate, guessed = stream.average_rate, stream.guessed_rate
    if last_wanted < _SEEK_GAIN or not rate or stream.start_time is None:
        return None
    if guessed and guessed != rate:
        return None  # a variable frame rate
    entries = stream.index_entries
    timestamps = np.array(
        [e.timestamp for e in entries if e.is_keyframe], dtype="int64"
    )
    if len(timestamps) < 2:
        return None
    scale = float(stream.time_base * rate)  # frames a timestamp tick
    indices = np.round((timestamps - timestamps[0]) * scale).astype("int64")
    return _Keyframes(indices, stream.start_time, scale)


def _keyframe_before(keyframes, target) -> int:
    if keyframes is None:
        return 0
    at = np.searchsorted(keyframes.indices, target, side="right") - 1
    return int(keyframes.indices[max(at, 0)])


def _indexed_frames(container, stream, keyframes, key, first):
    """`(index, frame)` from the start, or from a seek to keyframe `key`."""
    if first and key == 0:
        yield from enumerate(container.decode(stream))
        return
    # The keyframe's presentation time: index timestamps may be decoding
    # times, earlier by the reordering delay, and would land a GOP early.
    container.seek(
        keyframes.start + int(round(key / keyframes.scale)), stream=stream,
        backward=True, any_frame=False,
    )
    for frame in container.decode(stream):
        if frame.pts is None:
            raise _SeekMissed()
        exact = (frame.pts - keyframes.start) * keyframes.scale
        index = int(round(exact))
        if abs(exact - index) > 0.1:
            raise _SeekMissed()
        yield index, frame


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: int = 25,
    codec: str | None = None,
    rotation: int = 0,
) -> None:
    """Writes uint8 RGB frames `(time, height, width, 3)` as a video file.

    For tests, examples and benchmarks. The codec follows the extension
    unless given: H.264 (`libx264`) for `.mp4`, `.mov` and `.mkv`, MPEG-4
    Part 2 (`mpeg4`) for `.avi`, VP8 for `.webm`. Height and width must be
    even (the YUV 4:2:0 pixel format of these codecs).

    Args:
        path: The file to write; the extension picks the container.
        frames: uint8 `(time, height, width, 3)`.
        fps: Frame rate.
        codec: FFmpeg's encoder name, e.g. `"mpeg4"`, to override.
        rotation: Display rotation to record, counter-clockwise degrees
            (as a phone records it); the frames are stored unrotated.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from keras_vgg4d.data import probe_video, write_video
    >>> path = os.path.join(tempfile.mkdtemp(), "clip.mkv")
    >>> write_video(path, np.zeros((4, 32, 48, 3), "uint8"))
    >>> probe_video(path).frames
    4
    """
    av = import_av()
    path = os.fspath(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            "write_video expects uint8 frames (time, height, width, 3); "
            f"received {frames.dtype} {frames.shape}."
        )
    extension = os.path.splitext(path)[1].lower()
    codec = codec or {".avi": "mpeg4", ".webm": "libvpx"}.get(
        extension, "libx264"
    )
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in frames:
            picture = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(frame), format="rgb24"
            )
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
