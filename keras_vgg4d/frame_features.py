"""Every frame's backbone features, cached once; clips sampled from them.

A search over a streaming clip dataset (`clip_dataset_from_directory`)
with a frozen backbone computes the features of every frame of every clip
once (at the dataset's `frame_step`), into a memory-mapped array, reading
one clip at a time: neither the raw clips nor the features need to fit in
memory. Each epoch, `SampledFeatures` then draws the frames of every clip
anew from the cached ones, with the dataset's own sampling rule, so the
head sees a fresh temporal sample each epoch, as it would on raw clips.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
import tempfile

import keras
import numpy as np

from keras_vgg4d.data.sampling import sample_frame_indices
from keras_vgg4d.data.sources import read_clip
from keras_vgg4d.data.streaming import resize_clip


def is_clip_dataset(x) -> bool:
    """Whether `x` came from `clip_dataset_from_directory`."""
    return hasattr(x, "clip_sources") and hasattr(x, "clip_spec")


@dataclasses.dataclass
class FrameFeatures:
    """Backbone features of every frame of a set of clips.

    Attributes:
        features: `(total_frames, h, w, channels)`, clip after clip.
        frame_mask: `(total_frames,)`, false for frames the model masks.
        offsets: `(clips + 1,)`: clip `i` holds frames
            `offsets[i]:offsets[i + 1]`.
        labels: `(clips,)` integer labels.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d.frame_features import FrameFeatures
    >>> cached = FrameFeatures(
    ...     features=np.arange(5, dtype="float32").reshape(5, 1, 1, 1),
    ...     frame_mask=np.ones(5, bool),
    ...     offsets=np.array([0, 2, 5]),  # clip 0: 2 frames, clip 1: 3
    ...     labels=np.array([0, 1]))
    >>> features, mask = cached.gather(1, [0, 2], frames=3)
    >>> features.ravel().tolist(), mask.tolist()
    ([2.0, 4.0, 0.0], [True, True, False])
    """

    features: np.ndarray
    frame_mask: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def gather(self, clip: int, indices: np.ndarray, frames: int):
        """Features `(frames, ...)` and mask of `indices` of `clip`, padded."""
        rows = self.offsets[clip] + np.asarray(indices, "int64")
        features = np.zeros((frames, *self.features.shape[1:]),
                            self.features.dtype)
        mask = np.zeros((frames,), bool)
        features[: len(rows)] = self.features[rows]
        mask[: len(rows)] = self.frame_mask[rows]
        return features, mask


def _read(source, spec):
    """Every `frame_step`-th frame of `source`, as the dataset resizes it."""
    clip = read_clip(source, frame_step=spec.frame_step, channels=spec.channels)
    if spec.resize:
        clip = resize_clip(clip, spec.image_size, spec.interpolation,
                           spec.crop_to_aspect_ratio, spec.pad_to_aspect_ratio)
    return np.asarray(clip, "float32")


def compute_frame_features(
    model, dataset, directory: str | None = None, chunk: int = 64,
    verbose="auto", dtype_policy: str | None = None,
) -> FrameFeatures:
    """The features of every frame of `dataset`'s clips under `model`.

    Args:
        model: A built `VGG4DClassifier`.
        dataset: A dataset from `clip_dataset_from_directory`.
        directory: Where the memory-mapped features go (a temporary
            folder if `None`).
        chunk: Frames per backbone call.
        verbose: `0` for no progress bar.
        dtype_policy: The backbone's policy for these features (e.g.
            `"mixed_bfloat16"`); `None` for the model's own.

    Returns:
        `FrameFeatures`.
    """
    spec, sources = dataset.clip_spec, dataset.clip_sources
    steps = [math.ceil(s.length / spec.frame_step) for s in sources]
    extractor = model.feature_extractor(
        _model_layout((None, *spec.image_size, spec.channels), model),
        "float32",
        dtype_policy,
    )
    shape = extractor.output[0].shape[2:]
    features = _open_memmap(directory, (sum(steps), *shape))
    frame_mask = np.zeros(sum(steps), bool)
    offsets = np.zeros(len(sources) + 1, "int64")
    progress = keras.utils.Progbar(len(sources), verbose=0 if verbose == 0
                                   else 1, unit_name="clip")
    for i, clip in enumerate(_read_ahead(sources, spec)):
        start = offsets[i]
        for first in range(0, len(clip), chunk):
            part = clip[None, first : first + chunk]
            part_features, part_mask = extractor.predict_on_batch(
                _model_layout(part, model))
            end = start + first + part_features.shape[1]
            features[start + first : end] = part_features[0]
            frame_mask[start + first : end] = part_mask[0]
        offsets[i + 1] = start + len(clip)
        progress.add(1)
    labels = np.asarray([s.label for s in sources], "int32")
    return FrameFeatures(features, frame_mask, offsets, labels)


def _read_ahead(sources, spec, ahead: int = 4):
    """The sources' clips in order, decoded by threads at most `ahead`
    clips ahead, so decoding overlaps the backbone and memory stays bounded.
    """
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        pending = []
        for source in sources:
            pending.append(pool.submit(_read, source, spec))
            if len(pending) > ahead:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def _model_layout(clip, model):
    """A time-major clip shape `(time, h, w, c)` or batch of clips
    `(batch, time, h, w, c)` in the layout `model` reads."""
    if model.time_axis == 1:
        return clip
    if isinstance(clip, tuple):
        return (*clip[1:], clip[0])
    return np.moveaxis(clip, 1, -1)


def _open_memmap(directory, shape):
    directory = directory or tempfile.mkdtemp(prefix="vgg4d_features_")
    os.makedirs(directory, exist_ok=True)
    handle, path = tempfile.mkstemp(prefix="frames-", suffix=".npy",
                                    dir=directory)
    os.close(handle)
    return np.lib.format.open_memmap(path, "w+", "float32", shape)


class SampledFeatures(keras.utils.PyDataset):
    """Batches of clips' features, their frames drawn from cached frames.

    In training, every epoch draws each clip's frames anew (by the dataset's
    `sampling`, from a generator seeded by `(seed, epoch, clip)`) and
    shuffles the clips; otherwise the frames are the deterministic ones the
    dataset takes for validation, in order. Yields
    `((features, mask), labels)` for `VGG4DClassifier.head_model()`.

    Args:
        frame_features: `FrameFeatures`.
        spec: The dataset's `clip_spec`.
        batch_size: Clips a batch.
        training: Whether to draw and shuffle anew each epoch.
        seed: Seed of the draws.
    """

    def __init__(self, frame_features, spec, batch_size, training, seed=None):
        super().__init__()
        self.frame_features = frame_features
        self.spec = spec
        self.batch_size = batch_size
        self.training = training
        self.seed = np.random.SeedSequence(seed).entropy
        self.epoch = 0
        self._order = self._epoch_order()

    def __len__(self) -> int:
        return math.ceil(len(self.frame_features) / self.batch_size)

    def _epoch_order(self):
        n = len(self.frame_features)
        if not self.training:
            return np.arange(n)
        return np.random.default_rng((self.seed, self.epoch)).permutation(n)

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._epoch_order()

    def __getitem__(self, index):
        clips = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        spec, cached = self.spec, self.frame_features
        features, masks = [], []
        for clip in clips:
            rng = (np.random.default_rng((self.seed, self.epoch, int(clip)))
                   if self.training else None)
            length = int(cached.offsets[clip + 1] - cached.offsets[clip])
            indices = sample_frame_indices(
                length, spec.frames, spec.sampling, 1, spec.short_clips, rng)
            clip_features, mask = cached.gather(clip, indices, spec.frames)
            features.append(clip_features)
            masks.append(mask)
        return (np.stack(features), np.stack(masks)), cached.labels[clips]
