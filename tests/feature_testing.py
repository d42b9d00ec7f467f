"""A stand-in classifier for the tests of feature caching."""

import types

import keras
import numpy as np


class FrameMeans:
    """Stands in for a built `VGG4DClassifier` where features are cached.

    `feature_extractor(clip_shape, dtype, dtype_policy)` gives what the
    classifier's does: `predict_on_batch(clips)` returns features
    `(batch, time, 1, 1, channels)` (here each frame's mean per channel)
    and the frame mask (frames not all zero; all true with
    `mask_padded_frames=False`), and `output` holds their symbolic shapes.
    Like a Keras model, it refuses clips of another shape than it was built
    for. It logs every extractor built, and the shape of every batch.
    """

    def __init__(self, time_axis=1, mask_padded_frames=True, name="backbone"):
        self.time_axis = time_axis
        self.mask_padded_frames = mask_padded_frames
        self.backbone = types.SimpleNamespace(
            get_config=lambda: {"name": name, "pooling": None})
        self.extractors = []
        self.batches = []
        self.shapes = []

    def feature_extractor(self, clip_shape, dtype="float32",
                          dtype_policy=None):
        clip_shape = tuple(clip_shape)
        self.extractors.append(
            (clip_shape, keras.backend.standardize_dtype(dtype), dtype_policy))
        return _MeansExtractor(self, clip_shape)

    def expected(self, clips):
        """The features and mask the extractor gives for `clips`."""
        clips = np.asarray(clips, "float32")
        if self.time_axis == -1:
            clips = np.moveaxis(clips, -1, 1)
        mask = np.any(clips != 0, axis=(2, 3, 4))
        if not self.mask_padded_frames:
            mask = np.ones_like(mask)
        return clips.mean(axis=(2, 3), keepdims=True), mask


class _MeansExtractor:
    def __init__(self, owner, clip_shape):
        self.owner = owner
        self.clip_shape = clip_shape
        channels = clip_shape[-1] if owner.time_axis == 1 else clip_shape[-2]
        self.output = [types.SimpleNamespace(shape=(None, None, 1, 1, channels)),
                       types.SimpleNamespace(shape=(None, None))]

    def predict_on_batch(self, clips):
        clips = np.asarray(clips)
        fits = len(clips.shape) == len(self.clip_shape) + 1 and all(
            want is None or want == got
            for want, got in zip(self.clip_shape, clips.shape[1:]))
        assert fits, (f"clips of shape {clips.shape} given to an extractor "
                      f"built for {self.clip_shape}")
        self.owner.batches.append(len(clips))
        self.owner.shapes.append(clips.shape)
        return self.owner.expected(clips)
