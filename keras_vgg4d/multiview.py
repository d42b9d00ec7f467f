"""Multi-view answers: each clip's probabilities averaged over several views.

Video classifiers are evaluated on several views of each clip, not one:
SlowFast and X3D take 10 windows in time times 3 crops in space and average
the 30 answers. A view is a window of a clip's frames (as many as the model
was trained on) and a crop of its frames; the clip's answer is the mean of
the model's probabilities over its views.

- `view_windows`, `view_frame_indices`, `spatial_crops`: where the views
  of a clip lie.
- `predict_views`: clips in memory (NumPy), e.g. from `load_folder` or
  `load_dicom`.
- `predict_sources`: clips on disk, from `clip_dataset_from_directory`
  (or `index_clip_directory`): each clip's frames are read once and the
  views cut from them, so a long video gives several windows.
- `predict_studies`: one answer per study or patient, the mean over the
  views of all its clips (see `keras_vgg4d.studies`).
- `multiview_accuracy`: single-view and multi-view accuracy side by side.

Views that coincide (a clip no longer than the window, a square frame's
three crops of its whole side) are counted once. Views are predicted in
batches, but each is a forward pass of its own: the time grows with the
number of views.

Backend-neutral: NumPy and the model's `predict`.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence

import keras
import numpy as np

from keras_vgg4d.data.sampling import check_sampling
from keras_vgg4d.data.sampling import sample_frame_indices
from keras_vgg4d.data.sources import ClipSource
from keras_vgg4d.data.sources import read_sampled_clip
from keras_vgg4d.layout import validate_time_axis
from keras_vgg4d.studies import STUDY_KEYS
from keras_vgg4d.studies import StudyPredictions
from keras_vgg4d.studies import aggregate_studies
from keras_vgg4d.studies import study_accuracy
from keras_vgg4d.studies import study_ids
from keras_vgg4d.validation import check_choice
from keras_vgg4d.validation import check_clip_shape
from keras_vgg4d.validation import check_image_size
from keras_vgg4d.validation import check_integer
from keras_vgg4d.validation import is_integer

CROPS = (1, 3)
# Clips read ahead of the model, by threads, when predicting sources.
_READ_AHEAD = 4


# --- where the views lie ---------------------------------------------------


def _window_starts(owner, length, window, num_windows, frame_step):
    length = check_integer(owner, "length", length, minimum=1)
    window = check_integer(owner, "window", window, minimum=1)
    num_windows = check_integer(owner, "num_windows", num_windows, minimum=1)
    frame_step = check_integer(owner, "frame_step", frame_step, minimum=1)
    spare = length - ((window - 1) * frame_step + 1)
    if spare <= 0:
        return np.zeros(1, "int64")
    if num_windows == 1:
        return np.array([spare // 2], "int64")  # centred, as for validation
    count = min(num_windows, spare + 1)
    # floor(x + 0.5), not np.round: starts at least 1 apart stay distinct.
    return np.floor(np.linspace(0, spare, count) + 0.5).astype("int64")


def view_windows(
    length: int, window: int, num_windows: int = 1, frame_step: int = 1
) -> np.ndarray:
    """First frames of `num_windows` windows evenly spaced over a clip.

    A window is `window` frames, `frame_step` apart. With two or more
    windows the first starts at frame 0, the last ends at the clip's last
    frame, and the others are evenly spaced between (rounded to frames);
    one window is centred, as `sample_frame_indices(..., "random")` takes
    it for validation. No window reaches outside the clip. A clip with
    fewer distinct positions than `num_windows` gets one window a
    position; a clip shorter than a window gets one window at 0, padded
    at its end (the model masks the padding, as the loaders pad).

    Args:
        length: Frames in the clip.
        window: Frames a window.
        num_windows: Windows wanted.
        frame_step: Spacing of a window's frames.

    Returns:
        int64 array of start frames, `num_windows` of them or fewer.

    Example:

    >>> from keras_vgg4d.multiview import view_windows
    >>> view_windows(16, 8, 3).tolist()
    [0, 4, 8]
    >>> view_windows(16, 8, 1).tolist(), view_windows(10, 8, 5).tolist()
    ([4], [0, 1, 2])
    >>> view_windows(6, 8, 3).tolist()
    [0]
    """
    return _window_starts("view_windows", length, window, num_windows,
                          frame_step)


def view_frame_indices(
    length: int,
    frames: int,
    num_windows: int = 1,
    sampling: str = "random",
    frame_step: int = 1,
    short_clips: str = "pad",
) -> list[np.ndarray]:
    """The frame indices of each temporal view of a clip of `length`.

    Views follow the sampling the model was trained with (see
    `sample_frame_indices`), so each is a sample the model has met:

    - `"random"`: `num_windows` windows of `frames` frames, `frame_step`
      apart, at the starts `view_windows` gives.
    - `"segments"`: the clip cut into `frames` equal segments, as TSN
      does; view `k` takes the frame at `(k + 1/2) / num_windows` of each
      segment, so the views sweep every segment evenly (one view: each
      segment's centre, the frames validation takes).
    - `"uniform"`: one view, `frames` frames spread over the whole clip;
      it leaves no other to take.

    With one view, or a clip too short for a window, the view is
    `sample_frame_indices`' deterministic draw (with `short_clips="pad"`,
    fewer than `frames` indices: the rest is padding). Views that would
    repeat one another are given once.

    Args:
        length: Frames in the clip.
        frames: Frames a view.
        num_windows: Temporal views wanted.
        sampling: `"random"`, `"segments"` or `"uniform"`.
        frame_step: Spacing of `"random"`'s frames.
        short_clips: `"pad"` or `"loop"`, for clips shorter than a view.

    Returns:
        A list of int64 index arrays, one a view.

    Example:

    >>> from keras_vgg4d.multiview import view_frame_indices
    >>> [v.tolist() for v in view_frame_indices(10, 4, 3)]
    [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    >>> [v.tolist() for v in view_frame_indices(12, 3, 2, "segments")]
    [[0, 4, 8], [2, 6, 10]]
    """
    owner = "view_frame_indices"
    length = check_integer(owner, "length", length, minimum=1)
    num_windows = check_integer(owner, "num_windows", num_windows, minimum=1)
    frames, sampling, frame_step, short_clips = check_sampling(
        owner, frames, sampling, frame_step, short_clips
    )
    step = frame_step if sampling == "random" else 1
    if length < (frames - 1) * step + 1 or sampling == "uniform" or (
        num_windows == 1
    ):
        return [sample_frame_indices(length, frames, sampling, frame_step,
                                     short_clips)]
    if sampling == "random":
        offsets = np.arange(frames, dtype="int64") * step
        starts = _window_starts(owner, length, frames, num_windows, step)
        return [start + offsets for start in starts]
    edges = np.floor(np.arange(frames + 1) * length / frames).astype("int64")
    sizes = np.diff(edges)
    count = min(num_windows, int(sizes.min()))
    # Positions at least one frame apart in every segment: distinct views.
    return [edges[:-1] + ((2 * k + 1) * sizes - 1) // (2 * count)
            for k in range(count)]


def _crop_boxes(owner, height, width, crops, crop_size):
    height = check_integer(owner, "height", height, minimum=1)
    width = check_integer(owner, "width", width, minimum=1)
    if not is_integer(crops) or crops not in CROPS:
        raise ValueError(
            f"{owner} expects `crops` to be 1 (the centre) or 3 (both ends "
            "and the centre of the longer side), received: "
            f"crops={crops!r}"
        )
    if crop_size is None:
        size = (height, width) if crops == 1 else (min(height, width),) * 2
    else:
        size = check_image_size(owner, "crop_size", crop_size)
        if size[0] > height or size[1] > width:
            raise ValueError(
                f"{owner}: crop_size={crop_size!r} ({size[0]}x{size[1]}) "
                f"does not fit in frames of {height}x{width}. Pass a "
                "crop_size no larger than the frames, or None."
            )
    h, w = size
    top, left = (height - h) // 2, (width - w) // 2  # as keras' CenterCrop
    if crops == 1:
        boxes = [(top, left)]
    elif height > width:  # the longer side is the height: top to bottom
        boxes = [(0, left), (top, left), (height - h, left)]
    else:  # left to right (a square frame too, as SlowFast does)
        boxes = [(top, 0), (top, left), (top, width - w)]
    boxes = list(dict.fromkeys(boxes))  # crops that coincide, once
    return np.array([(t, l, h, w) for t, l in boxes], "int64")


def spatial_crops(
    height: int,
    width: int,
    crops: int = 1,
    crop_size: int | tuple[int, int] | None = None,
) -> np.ndarray:
    """Where the crops of a frame of `height` x `width` lie.

    `crops=1` is one centred crop: the whole frame unless `crop_size` is
    given, so one view is the clip as the model sees it. `crops=3` is
    SlowFast's 3-crop test: crops at both ends and the centre of the
    frame's longer side (left to right for a square frame), centred on
    the shorter one, each a square of the shorter side unless `crop_size`
    is given. Crops are not resized: `VGG4DClassifier` takes frames of any
    size from 32x32, its heads pooling over space. Crops that coincide
    (three squares of a square frame's side) are given once.

    Args:
        height: Frame height.
        width: Frame width.
        crops: 1 or 3.
        crop_size: `(height, width)` or an int (a square) of each crop,
            within the frame; `None` as above.

    Returns:
        int64 `(crops, 4)`: `(top, left, height, width)` of each crop.

    Example:

    >>> from keras_vgg4d.multiview import spatial_crops
    >>> spatial_crops(40, 48, 3).tolist()
    [[0, 0, 40, 40], [0, 4, 40, 40], [0, 8, 40, 40]]
    >>> spatial_crops(40, 48, 1, crop_size=32).tolist()
    [[4, 8, 32, 32]]
    >>> spatial_crops(32, 32, 3).tolist()
    [[0, 0, 32, 32]]
    """
    return _crop_boxes("spatial_crops", height, width, crops, crop_size)


# --- predicting over views -------------------------------------------------


class _ViewMean:
    """Collects views of clips, predicts them in batches of one shape, and
    averages each clip's probabilities."""

    def __init__(self, model, count, batch_size, time_axis, verbose):
        self.model = model
        self.count = count
        self.batch_size = batch_size
        self.time_axis = time_axis
        self.sums = None
        self.views = np.zeros(count, "int64")
        self.pending = {}  # view shape -> ([views], [clip of each])
        self.added = 0
        self.progress = keras.utils.Progbar(
            count, verbose=verbose, unit_name="clip"
        )

    def add(self, clip, frames, indices, boxes):
        """Adds the views of one time-major clip: each index array (padded
        with zero frames to `frames`) under each crop box."""
        for index in indices:
            for top, left, h, w in boxes:
                view = np.zeros((frames, h, w, clip.shape[-1]), clip.dtype)
                view[: len(index)] = clip[index, top: top + h,
                                          left: left + w]
                views, owners = self.pending.setdefault(view.shape, ([], []))
                views.append(view)
                owners.append(self.added)
                if len(views) == self.batch_size:
                    self._predict(view.shape)
        self.added += 1
        self.progress.update(self.added)

    def _predict(self, shape):
        views, owners = self.pending.pop(shape)
        batch = np.stack(views)
        if self.time_axis == -1:
            batch = np.moveaxis(batch, 1, -1)
        probabilities = np.asarray(
            self.model.predict(batch, batch_size=len(batch), verbose=0),
            "float64",
        )
        if self.sums is None:
            self.sums = np.zeros((self.count, probabilities.shape[-1]))
        np.add.at(self.sums, owners, probabilities)
        np.add.at(self.views, owners, 1)

    def result(self):
        for shape in list(self.pending):
            self._predict(shape)
        return (self.sums / self.views[:, None]).astype("float32"), self.views


def _model_time_axis(model, time_axis):
    if time_axis is None:
        time_axis = getattr(model, "time_axis", 1)
    return validate_time_axis(time_axis)


def _check_options(owner, num_windows, batch_size, verbose):
    check_integer(owner, "num_windows", num_windows, minimum=1)
    check_integer(owner, "batch_size", batch_size, minimum=1)
    check_integer(owner, "verbose", verbose, minimum=0, maximum=2)


def _real_length(clip):
    """Frames of a time-major clip up to its last that is not all zero:
    the rest is the padding the loaders add, which the model masks."""
    real = np.flatnonzero(clip.reshape(len(clip), -1).any(axis=1))
    return int(real[-1]) + 1 if len(real) else len(clip)


def _is_source_data(data) -> bool:
    if hasattr(data, "clip_sources"):
        return True
    return isinstance(data, (list, tuple)) and len(data) > 0 and all(
        isinstance(s, ClipSource) for s in data
    )


def predict_views(
    model,
    clips,
    *,
    window: int | None = None,
    num_windows: int = 5,
    crops: int = 1,
    crop_size: int | tuple[int, int] | None = None,
    frame_step: int = 1,
    batch_size: int = 8,
    time_axis: int | None = None,
    verbose: int = 1,
) -> np.ndarray:
    """Each clip's probabilities, averaged over its views.

    A view is a window of `window` frames (`frame_step` apart) and a crop
    of its frames (see `view_windows` and `spatial_crops`); a clip gives
    up to `num_windows * crops` views, and its answer is the mean of the
    model's probabilities over them.

    `window=None` takes each clip whole: clips of the length the model was
    trained on then get spatial views only, and with `crops=1` the answer
    is `model.predict(clips)`. To gain temporal views, pass clips longer
    than the model's training clips and `window` its training length.
    Clips padded at their end with all-zero frames (as `load_folder` pads
    short clips) are windowed over their real frames only, when the model
    masks padding (`mask_padded_frames`, the default).

    Args:
        model: A trained classifier whose `predict` gives probabilities,
            e.g. a `VGG4DClassifier`.
        clips: NumPy clips `(n, time, height, width, channels)`, or
            `(n, height, width, channels, time)` with `time_axis=-1`.
        window: Frames a view, or `None` for the whole clip.
        num_windows: Windows a clip, evenly spaced from its start to its
            end (one: the centred window).
        crops: 1 (centre) or 3 (both ends and the centre of the frames'
            longer side).
        crop_size: `(height, width)` or an int of each crop; `None`: the
            whole frame with `crops=1`, squares of the shorter side with
            `crops=3`.
        frame_step: Spacing of a window's frames.
        batch_size: Views a `model.predict` batch.
        time_axis: The clips' layout, `1` or `-1`; `None`: the model's
            `time_axis` (else 1).
        verbose: `1` shows a progress bar over the clips, `0` none.

    Returns:
        float32 `(n, num_classes)`: each clip's mean probabilities.

    Example:

    ```python
    from keras_vgg4d.multiview import predict_views

    # 16-frame clips, a model trained on 8-frame windows:
    probabilities = predict_views(model, x_val, window=8, num_windows=5,
                                  crops=3)
    ```
    """
    return _predict_views(
        "predict_views", model, clips, window=window,
        num_windows=num_windows, crops=crops, crop_size=crop_size,
        frame_step=frame_step, batch_size=batch_size, time_axis=time_axis,
        verbose=verbose,
    )[0]


def _predict_views(owner, model, clips, *, window=None, num_windows=5,
                   crops=1, crop_size=None, frame_step=1, batch_size=8,
                   time_axis=None, verbose=1):
    """`predict_views` naming `owner`; returns the probabilities and the
    views of each clip."""
    if _is_source_data(clips):
        raise ValueError(
            f"{owner} takes clips in memory (a NumPy array); for a dataset "
            "from clip_dataset_from_directory or a list of `ClipSource`s, "
            "use predict_sources(model, dataset, ...)."
        )
    _check_options(owner, num_windows, batch_size, verbose)
    time_axis = _model_time_axis(model, time_axis)
    clips = np.asarray(clips)
    check_clip_shape(f"`clips` passed to {owner}", clips.shape, time_axis)
    x = clips if time_axis == 1 else np.moveaxis(clips, -1, 1)
    n, length, height, width = x.shape[:4]
    frame_step = check_integer(owner, "frame_step", frame_step, minimum=1)
    if window is None:
        if frame_step != 1:
            raise ValueError(
                f"{owner}: `frame_step` spaces the frames of a window; with "
                f"window=None the clip is taken whole. Received frame_step="
                f"{frame_step}: pass a `window`, or frame_step=1."
            )
        window = length
    window = check_integer(owner, "window", window, minimum=1)
    span = (window - 1) * frame_step + 1
    if span > length:
        spaced = f" {frame_step} apart spans {span} frames," if (
            frame_step > 1) else ""
        raise ValueError(
            f"{owner}: a window of {window} frames{spaced} is longer than "
            f"the clips ({length} frames, input shape {clips.shape}, "
            f"time_axis={time_axis}). Pass a shorter window (at most the "
            "clips' length), or window=None for the whole clip."
        )
    boxes = _crop_boxes(owner, height, width, crops, crop_size)
    trims = getattr(model, "mask_padded_frames", True)
    mean = _ViewMean(model, n, batch_size, time_axis, verbose)
    for clip in x:
        indices = view_frame_indices(
            _real_length(clip) if trims else length, window, num_windows,
            "random", frame_step,
        )
        mean.add(clip, window, indices, boxes)
    return mean.result()


def predict_sources(
    model,
    sources,
    *,
    window: int | None = None,
    num_windows: int = 5,
    crops: int = 1,
    crop_size: int | tuple[int, int] | None = None,
    sampling: str | None = None,
    frame_step: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    batch_size: int = 8,
    verbose: int = 1,
) -> np.ndarray:
    """Each clip on disk's probabilities, averaged over its views.

    Each clip is read once, only the frames its views need, and its views
    cut from them (see `view_frame_indices` and `spatial_crops`): a long
    video gives `num_windows` windows, a clip no longer than a window one.
    From a dataset of `clip_dataset_from_directory`, its clips are made as
    the dataset makes them (channels, resizing, dtype, layout), views
    sample frames as it does (`sampling`, `frames`, `frame_step`,
    `short_clips`), and one view (`num_windows=1, crops=1`) is the clip
    the dataset yields for validation: `model.predict(dataset)`. Clips are
    read by threads, a few ahead of the model.

    Args:
        model: A trained classifier, e.g. a `VGG4DClassifier`.
        sources: A dataset from `clip_dataset_from_directory` (its
            `clip_sources`, in order), or a list of `ClipSource`s (e.g.
            `index_clip_directory(...).sources`), read at their own size
            and converted to the model's channel count.
        window: Frames a view; `None`: the dataset's `frames`, or each
            listed source whole.
        num_windows: Temporal views a clip.
        crops: 1 or 3, as in `predict_views`.
        crop_size: Size of each crop, as in `predict_views`.
        sampling: `"random"` (windows), `"segments"` or `"uniform"`; see
            `view_frame_indices`. `None`: the dataset's, or `"random"`.
        frame_step: Spacing of `"random"`'s frames; `None`: the
            dataset's, or 1.
        image_size: For a list of sources, `(height, width)` or an int to
            resize frames to, as `clip_dataset_from_directory` does; a
            dataset resizes as it was told.
        batch_size: Views a `model.predict` batch.
        verbose: `1` shows a progress bar over the clips, `0` none.

    Returns:
        float32 `(clips, num_classes)`, one row a source, in their order.

    Example:

    ```python
    from keras_vgg4d.data import clip_dataset_from_directory
    from keras_vgg4d.multiview import predict_sources

    val = clip_dataset_from_directory("videos/", frames=8,
                                      sampling="random", subset="validation",
                                      validation_split=0.2, seed=1)
    probabilities = predict_sources(model, val, num_windows=10, crops=3)
    ```
    """
    return _predict_sources(
        "predict_sources", model, sources, window=window,
        num_windows=num_windows, crops=crops, crop_size=crop_size,
        sampling=sampling, frame_step=frame_step, image_size=image_size,
        batch_size=batch_size, verbose=verbose,
    )[0]


def _source_plan(owner, model, sources, window, sampling, frame_step,
                 image_size):
    """The sources and how to make each clip, from a dataset's `clip_spec`
    or from the arguments."""
    spec = getattr(sources, "clip_spec", None)
    if spec is not None:
        if image_size is not None:
            raise ValueError(
                f"{owner}: `image_size` is for a list of sources; a dataset "
                f"resizes to its own image_size ({spec.image_size}). "
                f"Received image_size={image_size!r}: leave it None."
            )
        plan = {
            "frames": spec.frames if window is None else window,
            "sampling": spec.sampling if sampling is None else sampling,
            "frame_step": spec.frame_step if frame_step is None
            else frame_step,
            "short_clips": spec.short_clips,
            "channels": spec.channels,
            "resize": (spec.image_size, spec.interpolation,
                       spec.crop_to_aspect_ratio, spec.pad_to_aspect_ratio)
            if spec.resize else None,
            "dtype": spec.dtype,
            "time_axis": spec.time_axis,
        }
        if frame_step is None and plan["sampling"] != "random":
            plan["frame_step"] = 1  # the dataset's spaces "random" only
        return list(sources.clip_sources), plan
    if not _is_source_data(sources):
        raise ValueError(
            f"{owner} expects a dataset from clip_dataset_from_directory or "
            "a non-empty list of `ClipSource`s (e.g. "
            "index_clip_directory(...).sources); received "
            f"{type(sources).__name__}. For clips in memory, use "
            "predict_views."
        )
    size = check_image_size(owner, "image_size", image_size)
    return list(getattr(sources, "clip_sources", sources)), {
        "frames": window,
        "sampling": "random" if sampling is None else sampling,
        "frame_step": 1 if frame_step is None else frame_step,
        "short_clips": "pad",
        "channels": getattr(model, "input_channels", None),
        "resize": None if size is None else (size, "bilinear", False, False),
        "dtype": "float32",
        "time_axis": _model_time_axis(model, None),
    }


def _read_views(source, plan, num_windows):
    """`(clip, frames, rows)`: the frames the views of `source` need,
    time-major and made as the dataset makes them, the frames a view, and
    each view's rows of `clip`."""
    found = {}

    def sample(length):
        frames = plan["frames"] or length
        views = view_frame_indices(length, frames, num_windows,
                                   plan["sampling"], plan["frame_step"],
                                   plan["short_clips"])
        needed = np.unique(np.concatenate(views))
        found.update(frames=frames, views=views, needed=needed)
        return needed

    try:
        clip = read_sampled_clip(source, sample, plan["channels"])
    except ValueError as error:
        reason = str(error)
        if source.path not in reason:
            reason = f"{source.path!r}: {reason}"
        raise ValueError(
            f"predict_sources could not read a clip: {reason}. Fix or remove "
            "the file."
        ) from None
    if plan["resize"] is not None:
        from keras_vgg4d.data.streaming import resize_clip

        clip = np.asarray(resize_clip(clip, *plan["resize"]))
    if plan["dtype"] == "uint8" and clip.dtype != np.uint8:
        clip = np.clip(np.round(clip), 0, 255).astype("uint8")
    elif plan["dtype"] != "uint8":
        clip = clip.astype("float32", copy=False)
    rows = [np.searchsorted(found["needed"], v) for v in found["views"]]
    return clip, found["frames"], rows


def _read_ahead(sources, read):
    """`read(source)` of each source in order, by threads at most
    `_READ_AHEAD` clips ahead: decoding overlaps the model, memory stays
    bounded."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        pending = []
        for source in sources:
            pending.append(pool.submit(read, source))
            if len(pending) > _READ_AHEAD:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def _predict_sources(owner, model, sources, *, window=None, num_windows=5,
                     crops=1, crop_size=None, sampling=None, frame_step=None,
                     image_size=None, batch_size=8, verbose=1):
    """`predict_sources` naming `owner`; returns the probabilities and the
    views of each clip."""
    _check_options(owner, num_windows, batch_size, verbose)
    check_integer(owner, "window", window, minimum=1, allow_none=True)
    sources, plan = _source_plan(owner, model, sources, window, sampling,
                                 frame_step, image_size)
    if plan["frames"] is not None:  # checks sampling and frame_step now
        check_sampling(owner, plan["frames"], plan["sampling"],
                       plan["frame_step"], plan["short_clips"])
    else:
        check_sampling(owner, 1, plan["sampling"], plan["frame_step"], "pad")
    if crop_size is not None or crops != 1:  # fail before reading anything
        first = sources[0]
        size = plan["resize"][0] if plan["resize"] else (first.height,
                                                         first.width)
        _crop_boxes(owner, *size, crops, crop_size)
    mean = _ViewMean(model, len(sources), batch_size, plan["time_axis"],
                     verbose)

    def read(source):
        return _read_views(source, plan, num_windows)

    for clip, frames, rows in _read_ahead(sources, read):
        boxes = _crop_boxes(owner, clip.shape[1], clip.shape[2], crops,
                            crop_size)
        mean.add(clip, frames, rows, boxes)
    return mean.result()


# --- studies and accuracy --------------------------------------------------


def _predict_any(owner, model, data, options):
    """Multi-view probabilities, and views a clip, of clips in memory (an
    array, or `load_dicom`'s / `load_folder`'s result) or on disk."""
    on_disk = _is_source_data(data)
    allowed = _SOURCE_OPTIONS if on_disk else _ARRAY_OPTIONS
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        where = "on disk" if on_disk else "in memory"
        raise ValueError(
            f"{owner} got unexpected view options {unknown}; for clips "
            f"{where} it takes {list(allowed)}."
        )
    if on_disk:
        return _predict_sources(owner, model, data, **options)
    return _predict_views(owner, model, getattr(data, "x", data), **options)


_ARRAY_OPTIONS = ("window", "num_windows", "crops", "crop_size",
                  "frame_step", "batch_size", "time_axis", "verbose")
_SOURCE_OPTIONS = ("window", "num_windows", "crops", "crop_size",
                   "sampling", "frame_step", "image_size", "batch_size",
                   "verbose")


def _clip_sources(data):
    if hasattr(data, "clip_sources"):
        return list(data.clip_sources)
    if _is_source_data(data):
        return list(data)
    return getattr(data, "sources", None)  # load_dicom's DicomClips


def _clip_labels(owner, data, labels, count):
    """The labels given, else the data's own, else `None`."""
    if labels is None:
        labels = getattr(data, "y", None)
    if labels is None:
        sources = _clip_sources(data)
        if sources and all(s.label is not None for s in sources):
            labels = [s.label for s in sources]
    if labels is None:
        return None
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != count:
        raise ValueError(
            f"{owner} expects one label a clip: {count} clips but "
            f"{len(labels)} labels."
        )
    return labels


def _study_ids(owner, data, studies, by, count):
    """The study id of each clip: `studies` given, else `by` on the data's
    sources; `None` with neither."""
    if studies is not None and by is not None:
        raise ValueError(
            f"{owner}: pass `studies` (one id a clip) or `by` (one of "
            f"{list(STUDY_KEYS)}, read from the clips' sources), not both."
        )
    if studies is None and by is None:
        return None
    if by is not None:
        check_choice(owner, "by", by, STUDY_KEYS)
        sources = _clip_sources(data)
        if sources is None:
            raise ValueError(
                f"{owner}: by={by!r} reads the clips' sources, which clips "
                "in an array lack. Pass `studies=` (one id a clip), or data "
                "that carries sources (a clip_dataset_from_directory "
                "dataset, or load_dicom's result)."
            )
        studies = study_ids(sources, by)
    ids = [str(s) for s in np.asarray(studies, dtype=object).reshape(-1)]
    if len(ids) != count:
        raise ValueError(
            f"{owner} expects one study id a clip: {count} clips but "
            f"{len(ids)} study ids."
        )
    return ids


def _count(data) -> int:
    if hasattr(data, "x"):
        return len(data.x)
    sources = _clip_sources(data)
    return len(data) if sources is None else len(sources)


def predict_studies(
    model,
    data,
    studies: Sequence | None = None,
    *,
    by: str | None = None,
    method: str = "mean",
    labels: Sequence[int] | np.ndarray | None = None,
    **options,
) -> StudyPredictions:
    """One answer per study: its clips' multi-view probabilities, aggregated.

    Each clip's probabilities are averaged over its views (`predict_views`
    or `predict_sources`), then over the clips of its study by
    `aggregate_studies` (`method="mean"`: the mean over all of them).

    Args:
        model: A trained classifier.
        data: Clips in memory (an array, or `load_dicom`'s result, whose
            `sources` name each clip's patient and study), or on disk (a
            `clip_dataset_from_directory` dataset or a list of
            `ClipSource`s).
        studies: The study id of each clip; or
        by: What a study is, read from the clips' sources: `"group"` (the
            patient), `"study"` (the DICOM StudyInstanceUID) or `"path"`;
            see `study_ids`. `"group"` when neither is given and the data
            has sources.
        method: `"mean"`, `"max"` or `"vote"`; see `aggregate_studies`.
        labels: The label of each clip; `None`: the data's own, if any.
        **options: View options of `predict_views` (clips in memory) or
            `predict_sources` (on disk): `window`, `num_windows`,
            `crops`, `crop_size`, `batch_size`, `verbose`, ...

    Returns:
        `StudyPredictions(studies, probabilities, predictions, labels,
        clips)`, one row a study, in the order of their first clip.

    Example:

    ```python
    from keras_vgg4d.data import load_dicom
    from keras_vgg4d.multiview import predict_studies

    scans = load_dicom("cine/", labels=..., size=64)
    result = predict_studies(model, scans, by="study", window=8, crops=3)
    result.studies, result.predictions
    ```
    """
    owner = "predict_studies"
    if studies is None and by is None and _clip_sources(data) is not None:
        by = "group"
    count = _count(data)
    ids = _study_ids(owner, data, studies, by, count)
    if ids is None:
        raise ValueError(
            f"{owner} needs the study of each clip: pass `studies=` (one id "
            "a clip) for clips in an array."
        )
    labels = _clip_labels(owner, data, labels, count)
    probabilities, _ = _predict_any(owner, model, data, options)
    return aggregate_studies(probabilities, ids, method, labels)


def multiview_accuracy(
    model,
    data,
    labels: Sequence[int] | np.ndarray | None = None,
    *,
    studies: Sequence | None = None,
    by: str | None = None,
    method: str = "mean",
    **options,
) -> dict:
    """Single-view and multi-view accuracy, side by side.

    The single view is the centred window and the centre crop (the whole
    frame, unless `crop_size` is given): what a plain evaluation sees. The
    multi-view answer averages over the views `options` ask for. With
    `studies` or `by`, study-level accuracies come beside them
    (`study_accuracy`). It predicts both ways: the cost is one more view
    than the multi-view prediction alone.

    Args:
        model: A trained classifier.
        data: Clips in memory or on disk, as for `predict_studies`.
        labels: The label of each clip; `None`: the data's own.
        studies: Optional study id of each clip, for study accuracies.
        by: Or what a study is, read from the clips' sources (`"group"`,
            `"study"`, `"path"`).
        method: How clips make a study's answer; see `aggregate_studies`.
        **options: View options of `predict_views` or `predict_sources`.

    Returns:
        A dict: `clips`, `views` (mean views a clip), `single_view_accuracy`,
        `multi_view_accuracy`; with studies also `studies`,
        `single_view_study_accuracy`, `multi_view_study_accuracy` and
        `method`.

    Example:

    ```python
    from keras_vgg4d.multiview import multiview_accuracy

    report = multiview_accuracy(model, x_val, y_val, window=8,
                                num_windows=5, crops=3)
    print(f"{report['single_view_accuracy']:.3f} -> "
          f"{report['multi_view_accuracy']:.3f} over {report['views']} views")
    ```
    """
    owner = "multiview_accuracy"
    count = _count(data)
    labels = _clip_labels(owner, data, labels, count)
    if labels is None:
        raise ValueError(
            f"{owner} needs the label of each clip: pass `labels=`, or "
            "labelled data."
        )
    ids = _study_ids(owner, data, studies, by, count)
    single_options = {**options, "num_windows": 1, "crops": 1}
    multi, views = _predict_any(owner, model, data, options)
    single, _ = _predict_any(owner, model, data, single_options)
    report = {
        "clips": int(count),
        "views": float(np.mean(views)),
        "single_view_accuracy": float(np.mean(single.argmax(1) == labels)),
        "multi_view_accuracy": float(np.mean(multi.argmax(1) == labels)),
    }
    if ids is not None:
        one = study_accuracy(single, labels, ids, method)
        many = study_accuracy(multi, labels, ids, method)
        report.update(
            studies=one["studies"],
            single_view_study_accuracy=one["study_accuracy"],
            multi_view_study_accuracy=many["study_accuracy"],
            method=method,
        )
    return report
