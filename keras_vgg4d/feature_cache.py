"""Backbone features computed once per search, for training heads on them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import weakref

import keras
import numpy as np

from keras_vgg4d.backend import is_tensorflow
from keras_vgg4d.frame_features import compute_frame_features
from keras_vgg4d.frame_features import is_clip_dataset


@dataclasses.dataclass
class CachedFeatures:
    """Backbone features of a data set, with frame masks and labels.

    Attributes:
        features: `(n, time, h, w, 512)` feature maps.
        mask: `(n, time)` booleans, true for real frames.
        labels: `(n,)` labels, or `None`.
        batch_size: The batch size the data came in, if it came batched.
        sample_weight: `(n,)` weights of the samples, or `None`.
    """

    features: np.ndarray
    mask: np.ndarray
    labels: np.ndarray | None
    batch_size: int | None = None
    sample_weight: np.ndarray | None = None

    @property
    def inputs(self) -> list[np.ndarray]:
        """The inputs of `VGG4DClassifier.head_model()`."""
        return [self.features, self.mask]

    @property
    def data(self) -> tuple:
        """`(inputs, labels)`, or `(inputs, labels, sample_weight)`: what
        `fit` takes as `validation_data`."""
        if self.sample_weight is None:
            return self.inputs, self.labels
        return self.inputs, self.labels, self.sample_weight

    def split(self, validation_fraction: float):
        """Splits off the last `validation_fraction`, as Keras' `fit` does."""
        cut = training_count(len(self.features), validation_fraction)

        def part(s):
            return CachedFeatures(
                self.features[s],
                self.mask[s],
                None if self.labels is None else self.labels[s],
                self.batch_size,
                None if self.sample_weight is None else self.sample_weight[s],
            )

        return part(slice(0, cut)), part(slice(cut, None))


def training_count(count: int, validation_split: float) -> int:
    """How many of `count` samples train under `validation_split`: the
    first ones, as Keras' `fit` splits arrays (the last share validates)."""
    return int(count * (1.0 - validation_split))


def is_dataset(x) -> bool:
    """Whether `x` yields batches: a `tf.data.Dataset` (or quacks like one)
    or a `keras.utils.PyDataset`."""
    return hasattr(x, "element_spec") or isinstance(x, keras.utils.PyDataset)


def batches(dataset):
    """The batches of a dataset `is_dataset` accepts, once through.

    Raises:
        ValueError: for a `PyDataset` without a number of batches.
    """
    if isinstance(dataset, keras.utils.PyDataset):
        count = dataset.num_batches
        if count is None:
            raise ValueError(
                "VGG4DHyperModel computes the features of a "
                "keras.utils.PyDataset once, so it must be finite: give it "
                "`__len__` (or `num_batches`)."
            )
        return (dataset[i] for i in range(count))
    return iter(dataset)


def _backbone_key(model) -> str:
    """What, besides the data, decides a model's features and masks."""
    return json.dumps(
        [model.backbone.get_config(), model.time_axis, model.mask_padded_frames],
        sort_keys=True,
        default=str,
    )


def _array_key(x: np.ndarray) -> str:
    digest = hashlib.blake2b(np.ascontiguousarray(x).data, digest_size=16)
    digest.update(str((x.shape, x.dtype)).encode())
    return digest.hexdigest()


class FeatureCache:
    """Computes a classifier's backbone features once per data set.

    An array's entries are keyed by a digest of its bytes, a dataset's by
    the dataset object itself (held weakly: an entry lives as long as the
    dataset does), and both by the backbone's config. The caller guarantees
    that every model it asks about holds the same backbone weights
    (`VGG4DHyperModel` does).

    Args:
        directory: Where features larger than `memory_limit_bytes` are kept
            as memory-mapped `.npy` files; `None` keeps everything in memory.
        memory_limit_bytes: The size above which features go to `directory`.
        dtype_policy: The policy the backbone computes the features under,
            e.g. `"mixed_bfloat16"`; `None` for the model's own. Features are
            stored as float32.
    """

    def __init__(
        self,
        directory: str | None = None,
        memory_limit_bytes: int = 2**30,
        dtype_policy: str | None = None,
    ):
        self.directory = directory
        self.memory_limit_bytes = memory_limit_bytes
        self.dtype_policy = dtype_policy
        self._arrays = {}
        self._datasets = weakref.WeakKeyDictionary()

    def __len__(self) -> int:
        return len(self._arrays) + sum(map(len, self._datasets.values()))

    def get(self, model, x, y=None, batch_size=None, verbose="auto"):
        """The `CachedFeatures` of clips `x` (and labels `y`) for `model`.

        `model` is a built `VGG4DClassifier`; its `feature_extractor` gives
        the features. For a dataset from `clip_dataset_from_directory`, the
        `FrameFeatures` of every frame of its clips.
        """
        backbone_key = _backbone_key(model) + str(self.dtype_policy)
        if is_dataset(x):
            entries = self._datasets.setdefault(x, {})
            if backbone_key not in entries:
                entries[backbone_key] = (
                    compute_frame_features(model, x, self.directory,
                                           verbose=verbose,
                                           dtype_policy=self.dtype_policy)
                    if is_clip_dataset(x)
                    else self._from_dataset(model, x, verbose)
                )
            return entries[backbone_key]
        x = np.asarray(x)
        key = (_array_key(x), backbone_key)
        if key not in self._arrays:
            self._arrays[key] = self._from_array(
                model, x, batch_size or 32, key, verbose
            )
        features, mask = self._arrays[key]
        labels = None if y is None else np.asarray(y)
        return CachedFeatures(features, mask, labels, batch_size)

    def _allocate(self, key, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if self.directory is None or nbytes <= self.memory_limit_bytes:
            return np.empty(shape, dtype)
        os.makedirs(self.directory, exist_ok=True)
        name = hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()
        path = os.path.join(self.directory, f"features-{name}.npy")
        return np.lib.format.open_memmap(path, "w+", dtype, shape)

    def _from_array(self, model, x, batch_size, key, verbose):
        extractor = model.feature_extractor(x.shape[1:], x.dtype,
                                            self.dtype_policy)
        n = len(x)
        features = masks = None
        progress = keras.utils.Progbar(n, verbose=0 if verbose == 0 else 1,
                                       unit_name="clip")
        for start in range(0, n, batch_size):
            batch_features, batch_mask = extractor.predict_on_batch(
                x[start : start + batch_size]
            )
            if features is None:
                features = self._allocate(
                    key, (n, *batch_features.shape[1:]), batch_features.dtype
                )
                masks = np.empty((n, *batch_mask.shape[1:]), bool)
            features[start : start + len(batch_features)] = batch_features
            masks[start : start + len(batch_mask)] = batch_mask
            progress.add(len(batch_features))
        return features, masks

    def _from_dataset(self, model, dataset, verbose):
        extractor = None
        features, masks, labels, weights = [], [], [], []
        batch_size = None
        progress = keras.utils.Progbar(None, verbose=0 if verbose == 0 else 1,
                                       unit_name="batch")
        for element in batches(dataset):
            clips, batch_labels = element[0], element[1]
            if not is_tensorflow():
                clips = np.asarray(clips)  # a tf.data batch, fed to JAX

            if extractor is None:
                extractor = model.feature_extractor(
                    clips.shape[1:], clips.dtype, self.dtype_policy)
                batch_size = int(clips.shape[0])
            batch_features, batch_mask = extractor.predict_on_batch(clips)
            features.append(batch_features)
            masks.append(batch_mask)
            labels.append(np.asarray(batch_labels))
            if len(element) > 2 and element[2] is not None:
                weights.append(np.asarray(element[2]))
            progress.add(1)
        if extractor is None:
            raise ValueError("The dataset given to the search yielded no batches.")
        return CachedFeatures(
            np.concatenate(features),
            np.concatenate(masks),
            np.concatenate(labels),
            batch_size,
            # `(clips, labels, sample_weight)` batches keep their weights.
            np.concatenate(weights) if weights else None,
        )


class OnWholeModel(keras.callbacks.Callback):
    """Runs `callback` on the whole classifier while its head model trains.

    When a search trains only the head on cached features, callbacks must
    still see the whole classifier, so that what they save and restore is a
    whole model. The head model shares the classifier's head layers, and the
    classifier is given the head model's optimizer, so a callback that
    changes the learning rate changes the one that trains; and a callback
    that stops training (`EarlyStopping`, `TerminateOnNaN`, ...) stops it;
    one that resumes (`BackupAndRestore`) resumes it at its epoch.

    Args:
        callback: A `keras.callbacks.Callback`.
        model: The whole classifier the callback should see.
    """

    def __init__(self, callback, model):
        super().__init__()
        self.callback = callback
        self.whole_model = model

    def set_model(self, model):
        super().set_model(model)
        self.whole_model.optimizer = model.optimizer
        self.whole_model.stop_training = False
        self.callback.set_model(self.whole_model)

    def set_params(self, params):
        super().set_params(params)
        self.callback.set_params(params)

    def _forward(self, hook, *args):
        getattr(self.callback, hook)(*args)
        if self.whole_model.stop_training:
            self.model.stop_training = True

    def on_train_begin(self, logs=None):
        self._forward("on_train_begin", logs)
        # A callback that resumes training (`BackupAndRestore`) sets the
        # epoch to start from on the model it sees; the head model's loop
        # reads it from the head model, after `on_train_begin`.
        if getattr(self.whole_model, "_initial_epoch", None):
            self.model._initial_epoch = self.whole_model._initial_epoch

    def on_train_end(self, logs=None):
        self._forward("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._forward("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._forward("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._forward("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._forward("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._forward("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._forward("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._forward("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._forward("on_test_batch_end", batch, logs)
