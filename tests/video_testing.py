"""Clips whose frames show their own index, written as real files.

Frame `t` is dark with a bright vertical bar 3 pixels wide at
`x = 4 + 4 * t`, gray so chroma subsampling leaves it alone, so the index
of a decoded frame reads back from the bar's position even after lossy
coding and resizing. Videos are written with PyAV's own encoders.
"""

from __future__ import annotations

import os

import nibabel
import numpy as np
import tensorflow as tf

from keras_vgg4d.data import write_video

BACKGROUND, BAR = 20, 235


def width_for(frames: int) -> int:
    """The narrowest even frame width (at least 64) that fits the bars."""
    return max(64, 4 * frames + 8)


def index_frames(frames: int, height: int = 48, width: int | None = None):
    """uint8 `(frames, height, width, 3)`: frame `t` has its bar at `t`."""
    width = width or width_for(frames)
    clip = np.full((frames, height, width, 3), BACKGROUND, "uint8")
    for t in range(frames):
        clip[t, :, 4 + 4 * t: 7 + 4 * t] = BAR
    return clip


def read_indices(clip, source_width: int | None = None) -> list[int]:
    """The index each frame of `clip` `(time, h, w, c)` shows; -1 if blank.

    `source_width`: the width the frames were drawn at, if they were
    resized since.
    """
    clip = np.asarray(clip, "float32")
    indices = []
    for frame in clip:
        columns = frame.mean(axis=(0, 2))
        if columns.max() - np.median(columns) < (BAR - BACKGROUND) / 4:
            indices.append(-1)  # padding, or no bar
            continue
        centre = np.average(np.arange(len(columns)),
                            weights=np.maximum(columns - columns.max() / 2, 0))
        if source_width is not None:
            centre = (centre + 0.5) * source_width / frame.shape[1] - 0.5
        indices.append(int(round((centre - 5) / 4)))
    return indices


def write_index_video(path, frames: int, **kwargs) -> str:
    """A video of `index_frames(frames)`; kwargs go to `write_video`."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    height = kwargs.pop("height", 48)
    write_video(path, index_frames(frames, height), **kwargs)
    return path


def write_frame_folder(path, frames: int, height: int = 48, width=None):
    """A folder of PNG frames of `index_frames`."""
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    for t, frame in enumerate(index_frames(frames, height, width)):
        tf.io.write_file(
            os.path.join(path, f"frame_{t:03d}.png"), tf.io.encode_png(frame)
        )
    return path


def write_npy(path, frames: int, height: int = 48, width=None):
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, index_frames(frames, height, width))
    return path


def write_nifti(path, slices: int, frames: int, height: int = 48):
    """A 4D `(X, Y, Z, T)` volume; slice z of time t is `index_frames`'s
    frame t in gray (X = height, Y = width)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    gray = index_frames(frames, height)[..., 0].astype("float32")
    volume = np.repeat(np.transpose(gray, (1, 2, 0))[:, :, None], slices, 2)
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), path)
    return path
