"""Temporal sampling: which frames of a clip make a training sample.

One function, `sample_frame_indices`, shared by the streaming dataset
(`clip_dataset_from_directory`) and by anything that samples frames of
data already decoded, e.g. features cached one a frame: it maps a clip's
length to frame indices and knows nothing of files.
"""

from __future__ import annotations

import numpy as np

from keras_vgg4d.validation import check_choice
from keras_vgg4d.validation import check_integer

SAMPLINGS = ("uniform", "random", "segments")
SHORT_CLIPS = ("pad", "loop")


def check_sampling(
    owner: str, frames, sampling, frame_step, short_clips
) -> tuple[int, str, int, str]:
    """Validates sampling arguments for `owner`; returns them normalized."""
    frames = check_integer(owner, "frames", frames, minimum=1)
    check_choice(owner, "sampling", sampling, SAMPLINGS)
    frame_step = check_integer(owner, "frame_step", frame_step, minimum=1)
    check_choice(owner, "short_clips", short_clips, SHORT_CLIPS)
    if frame_step != 1 and sampling != "random":
        raise ValueError(
            f"{owner}: `frame_step` sets the spacing of sampling='random' "
            f"only; sampling={sampling!r} spreads its frames over the whole "
            f"clip. Received frame_step={frame_step}: pass frame_step=1, or "
            "sampling='random'."
        )
    return frames, sampling, frame_step, short_clips


def sample_frame_indices(
    length: int,
    frames: int,
    sampling: str = "segments",
    frame_step: int = 1,
    short_clips: str = "pad",
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Indices of the frames of a clip of `length` that fill `frames` slots.

    Three ways to choose, each random with an `rng` (training: a new draw
    every call) and deterministic without one (evaluation):

    - `"uniform"`: `frames` indices evenly spread from the first frame to
      the last, `round(linspace(0, length - 1, frames))` (one frame: the
      middle one). Never random.
    - `"random"`: a window of `frames` frames, `frame_step` apart, at a
      random start; without `rng` the window is centred in the clip.
    - `"segments"` (TSN): the clip cut into `frames` equal segments, one
      random frame from each; without `rng` each segment's centre frame.

    A clip is short when it has fewer frames than the window needs
    (`frames`, or `(frames - 1) * frame_step + 1` for `"random"`). A short
    clip gives, with `short_clips="pad"`, its frames in order (every
    `frame_step`-th with `"random"`) and fewer indices than `frames`: the
    slots left are padding, which the loaders fill with all-zero frames
    that the model masks. With `short_clips="loop"`, the clip is repeated
    from its start until the `frames` slots are full.

    Args:
        length: Frames in the clip (e.g. features cached one a frame).
        frames: Slots to fill.
        sampling: `"uniform"`, `"random"` or `"segments"`.
        frame_step: Spacing of `"random"`'s frames; must be 1 otherwise.
        short_clips: `"pad"` or `"loop"`, as above.
        rng: A `np.random.Generator` or an int seed for a random draw, or
            `None` for the deterministic one.

    Returns:
        int64 array of indices in `[0, length)`, `frames` of them, or
        fewer for a short clip with `short_clips="pad"`.

    Example:

    >>> from keras_vgg4d.data import sample_frame_indices
    >>> sample_frame_indices(10, 4, "uniform").tolist()
    [0, 3, 6, 9]
    >>> sample_frame_indices(12, 4, "segments").tolist()
    [1, 4, 7, 10]
    >>> sample_frame_indices(20, 4, "random", frame_step=2).tolist()
    [6, 8, 10, 12]
    >>> sample_frame_indices(3, 5, "uniform", short_clips="loop").tolist()
    [0, 1, 2, 0, 1]
    """
    owner = "sample_frame_indices"
    length = check_integer(owner, "length", length, minimum=1)
    frames, sampling, frame_step, short_clips = check_sampling(
        owner, frames, sampling, frame_step, short_clips
    )
    if rng is not None and not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    step = frame_step if sampling == "random" else 1
    span = (frames - 1) * step + 1
    if length < span:
        if short_clips == "pad":
            return np.arange(0, length, step, dtype="int64")[:frames]
        return (np.arange(frames, dtype="int64") * step) % length
    if sampling == "uniform":
        if frames == 1:
            return np.array([(length - 1) // 2], "int64")  # the middle
        return np.round(np.linspace(0, length - 1, frames)).astype("int64")
    if sampling == "random":
        spare = length - span
        start = spare // 2 if rng is None else rng.integers(0, spare + 1)
        return start + np.arange(frames, dtype="int64") * step
    edges = np.floor(np.arange(frames + 1) * length / frames).astype("int64")
    if rng is None:
        return (edges[:-1] + edges[1:] - 1) // 2
    return rng.integers(edges[:-1], edges[1:]).astype("int64")
