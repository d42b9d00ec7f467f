"""`VGG4DHyperModel`: Keras Tuner searches across the three temporal heads."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import warnings

import keras
import keras_tuner
import numpy as np

from keras_vgg4d.backbone import check_trainable_blocks
from keras_vgg4d.backend import is_tensorflow
from keras_vgg4d.backend import require_tensorflow
from keras_vgg4d.class_weight import resolve_class_weight
from keras_vgg4d.compiled_steps import SharedHeadSteps
from keras_vgg4d.feature_cache import FeatureCache
from keras_vgg4d.feature_cache import OnWholeModel
from keras_vgg4d.feature_cache import batches
from keras_vgg4d.feature_cache import is_dataset
from keras_vgg4d.feature_cache import training_count
from keras_vgg4d.frame_features import SampledFeatures
from keras_vgg4d.frame_features import is_clip_dataset
from keras_vgg4d.heads import HEADS
from keras_vgg4d.layout import validate_time_axis
from keras_vgg4d.metrics import OBJECTIVES
from keras_vgg4d.metrics import SparseAUC
from keras_vgg4d.metrics import SparseMacroF1
from keras_vgg4d.model import VGG4DClassifier
from keras_vgg4d.optimizers import default_optimizer
from keras_vgg4d.precision import resolve_precision
from keras_vgg4d.shared_backbone import SharedBackbone
from keras_vgg4d.validation import check_arrays
from keras_vgg4d.validation import check_bool
from keras_vgg4d.validation import check_choice
from keras_vgg4d.validation import check_clip_shape
from keras_vgg4d.validation import check_integer
from keras_vgg4d.validation import check_num_classes


class VGG4DHyperModel(keras_tuner.HyperModel):
    """A search space over `VGG4DClassifier`'s temporal heads and settings.

    `build(hp)` declares `temporal_head` (a `Choice` over `heads`) first, then
    each head's own hyperparameters under
    `hp.conditional_scope("temporal_head", [name])` (so the inactive ones are
    absent from `hp.values`), then the learning rate (log scale) and the
    dropout rate, and returns a compiled `VGG4DClassifier`.

    With a frozen backbone (`trainable_blocks=0`) and no augmentation, and
    `cache_features=True`, the backbone's features of the training and
    validation data are computed once per search and every trial trains only
    its head on them. The models the tuner checkpoints and returns are still
    whole (backbone and head): every trial's backbone holds the same weights,
    those the features were computed with, so they predict on raw clips as
    the head did on the cached features. Where the cache cannot apply, trials
    train the whole model as usual.

    Args:
        num_classes: Number of classes, >= 2.
        input_shape: Shape of one clip without the batch axis, e.g.
            `(8, 64, 64, 3)` (or `(64, 64, 3, 8)` with `time_axis=-1`). The
            time size may be `None`.
        heads: The temporal heads to search over, names from
            `"framewise"`, `"conv3d"`, `"lstm"`.
        weights: Backbone weights: `None`, `"imagenet"` or a file path.
        trainable_blocks: Backbone blocks to train, 0..5.
        augment: Optional augmentation layer (e.g. `ScipyAugment`); its
            config is copied into each trial's model.
        cache_features: Whether to train heads on cached backbone features
            when the backbone is frozen and there is no augmentation.
        time_axis: `1` (time-major clips) or `-1` (time last).
        feature_cache_dir: Directory where features larger than
            `memory_limit_bytes` are kept as memory-mapped `.npy` files
            (`vgg4d-tune` passes the tuner's directory). `None` keeps them
            in memory.
        memory_limit_bytes: Features above this size go to
            `feature_cache_dir`.
        mask_padded_frames: Whether all-zero (padded) frames are masked out
            of the heads; see `VGG4DClassifier`.
        objective: What the search optimizes: `"val_accuracy"` (default),
            `"val_loss"`, `"val_auc"` (one-vs-rest ROC AUC, averaged over
            classes) or `"val_macro_f1"` (the mean of per-class F1 scores,
            for imbalanced classes). `hypermodel.objective` is the
            `keras_tuner.Objective` to give the tuner; models are compiled
            with the metric it reads.
        class_weight: `None`, `"balanced"` (each class weighted by the
            inverse of its share of the training labels) or a dict from
            class index to weight; a `class_weight` given to `search` wins.
        precision: The precision of the cached backbone features:
            `"float32"` (default; the cached path then trains exactly what
            the plain path trains), `"bfloat16"` (`mixed_bfloat16`, about
            1% from float32, several times faster on CPUs with AVX-512 BF16
            or AMX), or `"auto"` (bfloat16 where the CPU has those
            instructions). Heads always train in float32.
        seed: An integer makes a search repeat: each trial's model is built
            and trained after `keras.utils.set_random_seed` with a seed
            drawn from `seed` and the trial's hyperparameter values (see
            `trial_seed`), so its weights, dropout masks and data order
            depend on those alone, not on the trials run before it; a
            random backbone (`weights=None`) is drawn from `seed` alone.
            `None` (default) leaves the global random state alone.
        compile_once: Whether trials on cached features share compiled
            steps: one train and one test step per head architecture (the
            values that change a shape or a layer), with the learning and
            dropout rates as data, so a trial whose architecture an earlier
            trial compiled does not trace or compile again; and one backbone
            layer a search, so a trial builds only its head. Each trial still
            trains from its own initial weights and optimizer state, as it
            would alone (its dropout masks come from another random stream).
            The models the tuner returns then share that frozen backbone
            layer. See `keras_vgg4d.compiled_steps` and docs/search.md.
        **kwargs: `name` and `tunable`, passed to `keras_tuner.HyperModel`.

    Example:

    >>> import keras_tuner
    >>> from keras_vgg4d import VGG4DHyperModel
    >>> hypermodel = VGG4DHyperModel(num_classes=2, input_shape=(4, 32, 32, 3))
    >>> hp = keras_tuner.HyperParameters()
    >>> model = hypermodel.build(hp)
    >>> hp.values["temporal_head"], sorted(hp.values)
    ('framewise', ['dropout', 'framewise_pooling', 'framewise_units', \
'learning_rate', 'temporal_head'])
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple,
        heads: tuple[str, ...] = ("framewise", "conv3d", "lstm"),
        weights: str | None = None,
        trainable_blocks: int = 0,
        augment: keras.layers.Layer | None = None,
        cache_features: bool = True,
        time_axis: int = 1,
        feature_cache_dir: str | None = None,
        memory_limit_bytes: int = 2**30,
        mask_padded_frames: bool = True,
        objective: str = "val_accuracy",
        class_weight: str | dict | None = None,
        precision: str = "float32",
        seed: int | None = None,
        compile_once: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "VGG4DHyperModel"
        self.num_classes = check_num_classes(owner, num_classes)
        check_choice(owner, "objective", objective, sorted(OBJECTIVES))
        self.objective = keras_tuner.Objective(objective, OBJECTIVES[objective])
        if class_weight != "balanced":  # checked against the labels in `fit`
            resolve_class_weight(class_weight, None, self.num_classes)
        self.class_weight = class_weight
        self.time_axis = validate_time_axis(time_axis)
        self.input_shape = tuple(input_shape)
        self.input_channels = self._check_input_shape(self.input_shape)
        self.heads = self._check_heads(heads)
        self.weights = weights
        self.trainable_blocks = check_trainable_blocks(owner, trainable_blocks)
        self.augment = augment
        self.cache_features = check_bool(owner, "cache_features", cache_features)
        self.mask_padded_frames = check_bool(
            owner, "mask_padded_frames", mask_padded_frames
        )
        self.precision = precision
        self.seed = check_integer(owner, "seed", seed, minimum=0,
                                  allow_none=True)
        self.compile_once = check_bool(owner, "compile_once", compile_once)
        # The compiled head steps trials share, one per head architecture.
        self.compiled_steps = SharedHeadSteps()
        # The backbone layer every trial's classifier shares (compile_once).
        self._backbone_layer = None
        # Fits run so far with each set of values: a tuner's
        # `executions_per_trial` trains each execution from its own seed.
        self._executions = collections.Counter()
        self.feature_cache = FeatureCache(
            feature_cache_dir, memory_limit_bytes, resolve_precision(precision)
        )
        # Every trial gets the backbone the cached features come from (and
        # a file or download is read once).
        self._backbone = SharedBackbone(
            random=weights is None,
            directory=self.feature_cache.directory
            if self.uses_feature_cache else None,
        )

    def _check_input_shape(self, input_shape) -> int:
        """Validates the shape of one clip; returns its channel count."""
        if len(input_shape) != 4:
            raise ValueError(
                "VGG4DHyperModel expects `input_shape` of one clip without the "
                "batch axis, (time, height, width, channels), received: "
                f"input_shape={input_shape}"
            )
        time_major = check_clip_shape(
            f"VGG4DHyperModel's input_shape={input_shape}",
            (1, *input_shape),
            self.time_axis,
        )
        return time_major[-1]

    @staticmethod
    def _check_heads(heads) -> tuple[str, ...]:
        heads = (heads,) if isinstance(heads, str) else tuple(heads)
        unknown = [h for h in heads if h not in HEADS]
        if not heads or unknown or len(set(heads)) != len(heads):
            raise ValueError(
                "VGG4DHyperModel expects `heads` to be distinct names from "
                f"{sorted(HEADS)}, received: heads={heads!r}"
            )
        return heads

    @property
    def uses_feature_cache(self) -> bool:
        """Whether trials train heads on cached backbone features."""
        return (
            self.cache_features
            and self.trainable_blocks == 0
            and self.augment is None
        )

    def declare_head_hyperparameters(self, hp, name: str) -> dict:
        """Declares the hyperparameters of head `name`; returns its options.

        Override it to change a head's search space. Called once per head
        in `heads`, inside `hp.conditional_scope("temporal_head", [name])`.
        The keys of the returned dict are the head's arguments (see
        `FramewiseHead`, `Conv3DHead`, `LSTMHead`).
        """
        if name not in HEAD_SEARCH_SPACES:
            raise ValueError(
                f"VGG4DHyperModel has no search space for the head {name!r}; "
                f"it has spaces for {sorted(HEAD_SEARCH_SPACES)}. Override "
                "`declare_head_hyperparameters` to add one."
            )
        return HEAD_SEARCH_SPACES[name](hp)

    def trial_seed(self, hp, stage: str = "build") -> int | None:
        """The seed of the trial whose hyperparameters `hp` holds.

        A digest of the hypermodel's `seed`, `hp.values` (all of them, as
        `build` leaves them, defaults included), how many times these values
        were trained before (0 for a trial's first execution) and `stage`
        (`"build"` or `"fit"`): the same for the same trial in any search,
        whatever ran before it. `None` without a `seed`.
        """
        if self.seed is None:
            return None
        values = _values_key(hp)
        key = f"{self.seed}|{values}|{self._executions[values]}|{stage}"
        digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
        return int.from_bytes(digest, "little") & 0x7FFFFFFF

    def _seed_trial(self, hp, stage: str) -> None:
        seed = self.trial_seed(hp, stage)
        if seed is None:
            return
        keras.utils.set_random_seed(seed)
        if stage == "fit":
            self._executions[_values_key(hp)] += 1

    def build(self, hp):
        head = hp.Choice("temporal_head", list(self.heads), default=self.heads[0])
        head_options = {}
        for name in self.heads:
            with hp.conditional_scope("temporal_head", [name]):
                options = self.declare_head_hyperparameters(hp, name)
            if name == head:
                head_options = options
        # The learning rate is read back in `compile_model`, where it is used.
        # Centred, on a log scale, on the heads' default rates (1e-2 for
        # the frame-wise head, 3e-3 for the others; see
        # `keras_vgg4d.optimizers.DEFAULT_LEARNING_RATES`).
        hp.Float("learning_rate", 3e-4, 3e-2, sampling="log", default=3e-3)
        dropout = hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.0)

        # Seeded from every value the trial uses, defaults included.
        self._seed_trial(hp, "build")
        augment = None
        if self.augment is not None:
            augment = self.augment.__class__.from_config(self.augment.get_config())
        model = VGG4DClassifier(
            self.num_classes,
            temporal_head=head,
            weights=None if self._backbone.holds_weights else self.weights,
            trainable_blocks=self.trainable_blocks,
            augment=augment,
            dropout=dropout,
            time_axis=self.time_axis,
            head_options=head_options,
            mask_padded_frames=self.mask_padded_frames,
            backbone=self._backbone_layer,
        )
        model.build((None, *self.input_shape))
        if self._backbone_layer is None:
            if self.seed is not None and not self._backbone.holds_weights:
                # A random backbone is drawn with NumPy: from `seed` alone,
                # not from the values of whichever trial is built first.
                np.random.seed(self.seed)
            self._backbone.share(model)
            if self.compile_once and self.uses_feature_cache:
                # Frozen, and the one the cached features come from.
                self._backbone_layer = model.backbone
        self._compile_trial(model, hp)
        return model

    def compile_model(self, model: keras.Model, hp) -> None:
        """Compiles `model` (a classifier or its head model) for `hp`.

        Override it to change the optimizer, loss or metrics of every
        trial; it is called on each trial's classifier, and on its head
        model when the trial trains on cached features.
        """
        model.compile(
            optimizer=default_optimizer(
                hp.get("learning_rate"), self.trainable_blocks
            ),
            loss="sparse_categorical_crossentropy",
            metrics=self.metrics(),
        )

    def metrics(self) -> list:
        """Accuracy, and the metric the objective reads if it is another."""
        metrics = ["accuracy"]
        if self.objective.name == "val_auc":
            metrics.append(SparseAUC(self.num_classes, name="auc"))
        elif self.objective.name == "val_macro_f1":
            metrics.append(SparseMacroF1(self.num_classes, name="macro_f1"))
        return metrics

    def _compile(self, model: keras.Model, hp) -> None:
        """Deprecated: override `compile_model` instead."""
        self.compile_model(model, hp)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Subclasses written for 0.1 overrode the private `_compile`: they
        # still work, and are told so where the subclass is written.
        if cls._compile is not VGG4DHyperModel._compile:
            warnings.warn(
                "Overriding `VGG4DHyperModel._compile` is deprecated; "
                "override `compile_model(model, hp)` instead.",
                DeprecationWarning,
                stacklevel=2,
            )

    def _compile_trial(self, model: keras.Model, hp) -> None:
        if type(self)._compile is not VGG4DHyperModel._compile:
            self._compile(model, hp)
        else:
            self.compile_model(model, hp)

    def fit(self, hp, model, x=None, y=None, validation_data=None, **kwargs):
        """Trains `model`; on cached features when the cache applies.

        With the cache, the head trains on the backbone's features of the
        same clips, in the same batches, validated on the same clips, as
        `model.fit(x, y, validation_data=..., **kwargs)` would train it;
        callbacks see the whole classifier. A dataset from
        `clip_dataset_from_directory` has every frame's features cached
        once, and its frames drawn anew from them every epoch.
        """
        class_weight = kwargs.pop("class_weight", self.class_weight)
        if not self.uses_feature_cache:
            kwargs["class_weight"] = resolve_class_weight(
                class_weight,
                lambda: _training_labels(x, y, kwargs.get("validation_split")),
                self.num_classes,
            )
            # The classifier checks NumPy data itself.
            self._seed_trial(hp, "fit")
            return model.fit(x, y, validation_data=validation_data, **kwargs)
        if is_clip_dataset(x):
            train, validation = self._sampled_features(
                model, x, validation_data, kwargs
            )
            labels = train.frame_features.labels
            arguments = (train,)
        else:
            check_arrays(
                "VGG4DHyperModel.fit", x, y, time_axis=self.time_axis,
                channels=self.input_channels, num_classes=self.num_classes,
                validation_data=validation_data,
            )
            train, validation = self._cached_features(
                model, x, y, validation_data, kwargs
            )
            labels = train.labels
        # Seeded after the features: whether this trial computed them
        # (the first of a search does) changes nothing in its training.
        self._seed_trial(hp, "fit")
        if not is_clip_dataset(x):
            arguments, validation = _head_data(train, validation, kwargs)
        kwargs["class_weight"] = resolve_class_weight(
            class_weight, labels, self.num_classes
        )
        head_model = model.head_model()
        self._compile_trial(head_model, hp)
        callbacks = [
            _HeadCheckpoint(callback, model.head_model())
            if _is_tuner_checkpoint(callback)
            else OnWholeModel(callback, model)
            for callback in kwargs.pop("callbacks", None) or []
        ]
        step = (self.compiled_steps.get(model.head, head_model)
                if self.compile_once else None)
        if step is None:
            return head_model.fit(*arguments, validation_data=validation,
                                  callbacks=callbacks, **kwargs)
        step.start(model.head, head_model.optimizer)
        history = step.fit(
            *arguments, validation_data=validation,
            callbacks=step.callbacks(model.head, callbacks), **kwargs
        )
        step.finish(model)
        return history

    def _sampled_features(self, model, x, validation_data, kwargs):
        """Per-epoch samples of cached frame features of clip datasets."""
        for name in ("validation_split", "batch_size", "shuffle"):
            if name == "validation_split" and kwargs.get(name):
                raise ValueError(
                    "`validation_split` is only supported for NumPy arrays; "
                    "make the split with clip_dataset_from_directory("
                    "validation_split=..., subset='both')."
                )
            kwargs.pop(name, None)
        if validation_data is not None and not is_clip_dataset(validation_data):
            raise ValueError(
                "With a dataset from clip_dataset_from_directory, "
                "`validation_data` must come from it too (subset='both')."
            )
        verbose = kwargs.get("verbose", "auto")
        sampled = []
        for data in (x, validation_data):
            if data is None:
                sampled.append(None)
                continue
            sampled.append(SampledFeatures(
                self.feature_cache.get(model, data, verbose=verbose),
                data.clip_spec,
                data.clip_batch_size or 32,
                training=data.redraws_each_epoch,
                seed=data.clip_seed,
            ))
        return tuple(sampled)

    def _cached_features(self, model, x, y, validation_data, kwargs):
        """The cached training and validation features of a `fit` call.

        Takes `validation_split` out of `kwargs` and applies it as Keras'
        `fit` does: the last fraction of the clips, arrays only.
        """
        verbose = kwargs.get("verbose", "auto")
        batch_size = kwargs.get("batch_size")
        validation_split = kwargs.pop("validation_split", 0.0)
        if validation_split and is_dataset(x):
            raise ValueError(
                "`validation_split` is only supported for NumPy arrays, as in "
                "Keras' `fit`; with a dataset, pass `validation_data`."
            )
        train = self.feature_cache.get(model, x, y, batch_size, verbose)
        kwargs["batch_size"] = batch_size or train.batch_size or 32
        validation = None
        if validation_data is not None:
            val_x, val_y, val_weight = _unpack_validation_data(validation_data)
            validation = self.feature_cache.get(
                model, val_x, val_y, batch_size, verbose
            )
            if val_weight is not None:
                # Validation weighs its clips as the plain `fit` would.
                validation = dataclasses.replace(
                    validation, sample_weight=np.asarray(val_weight)
                )
            if validation.batch_size is not None:
                # A validation dataset is validated in its own batches.
                kwargs.setdefault("validation_batch_size", validation.batch_size)
        elif validation_split:
            train, validation = train.split(validation_split)
        return train, validation


def _values_key(hp) -> str:
    """`hp.values` as canonical JSON: the identity of a trial."""
    return json.dumps(dict(hp.values), sort_keys=True, default=str)


def _head_data(train, validation, kwargs):
    """The head model's training data and `validation_data`, from `fit`'s
    cached features; takes the arguments a dataset answers out of `kwargs`.

    Features held in memory go in as a shuffled, batched `tf.data.Dataset`:
    Keras' `fit` spends a third of a tiny head's epoch making an iterator
    over NumPy arrays (shuffling and gathering indices), and the dataset
    trains on the same clips in the same batches 1.3-1.9x faster (measured
    in benchmarks/bench_search_speed.py). Features on disk, `fit` calls
    that shuffle in batches, weigh samples or count steps, and backends other
    than TensorFlow keep the arrays.
    """
    parts = [train] if validation is None else [train, validation]
    as_arrays = (
        not is_tensorflow()
        or kwargs.get("shuffle", True) not in (True, False)
        or any(kwargs.get(name) is not None
               for name in ("sample_weight", "steps_per_epoch"))
        or any(part.labels is None or isinstance(part.features, np.memmap)
               for part in parts)
    )
    if as_arrays:
        if train.sample_weight is not None:
            # The weights a `(clips, labels, sample_weight)` dataset gave.
            kwargs["sample_weight"] = train.sample_weight
        return (train.inputs, train.labels), (
            None if validation is None else validation.data
        )
    batch_size = kwargs.pop("batch_size")
    validation_batch_size = kwargs.pop("validation_batch_size", None)
    dataset = _dataset(train, batch_size, kwargs.get("shuffle", True))
    kwargs["shuffle"] = False  # The dataset shuffles itself.
    if validation is not None:
        validation = _dataset(validation, validation_batch_size or batch_size)
    return (dataset,), validation


def _dataset(features, batch_size: int, shuffle: bool = False):
    tf = require_tensorflow("Training heads on a tf.data.Dataset")
    inputs, *rest = features.data
    dataset = tf.data.Dataset.from_tensor_slices((tuple(inputs), *rest))
    if shuffle:
        dataset = dataset.shuffle(len(features.labels))
    return dataset.batch(batch_size)


class _HeadCheckpoint(keras.callbacks.Callback):
    """Keras Tuner's best-epoch checkpoint, saving the trial's head alone.

    The tuner's callback saves `head`, an uncompiled `head_model()` that
    shares the trained layers: the file holds what the trial trains, without
    the optimizer's state (two thirds of it with Adam), and
    `VGG4DClassifier.load_weights` reads it back into a whole classifier.
    """

    def __init__(self, checkpoint, head):
        super().__init__()
        self.checkpoint = checkpoint
        self.head = head

    def set_model(self, model):
        super().set_model(model)
        self.checkpoint.set_model(self.head)

    def on_epoch_end(self, epoch, logs=None):
        self.checkpoint.on_epoch_end(epoch, logs)


def _is_tuner_checkpoint(callback) -> bool:
    """Whether `callback` is Keras Tuner's per-trial best-epoch checkpoint."""
    return type(callback).__name__ == "SaveBestEpoch" and type(
        callback
    ).__module__.startswith("keras_tuner")


def _labels_of(x, y):
    """The labels of `fit`'s data: `y`, or read from a dataset `x`."""
    if y is not None or not is_dataset(x):
        return y
    return np.concatenate([np.asarray(e[1]).reshape(-1) for e in batches(x)])


def _training_labels(x, y, validation_split=None):
    """The labels of the clips `fit` trains on: `validation_split`'s share
    of arrays validates, so it is left out, as Keras' `fit` leaves it."""
    labels = _labels_of(x, y)
    if not validation_split or labels is None or is_dataset(x):
        return labels
    labels = np.asarray(labels)
    return labels[: training_count(len(labels), validation_split)]


def _unpack_validation_data(validation_data):
    """`(clips, labels, sample_weight)` of `validation_data`; labels `None`
    for a dataset, weights `None` unless a third array gives them."""
    if is_dataset(validation_data):
        return validation_data, None, None
    if isinstance(validation_data, (tuple, list)) and len(validation_data) in (
        2, 3
    ):
        weights = validation_data[2] if len(validation_data) == 3 else None
        return validation_data[0], validation_data[1], weights
    raise ValueError(
        "VGG4DHyperModel.fit expects `validation_data` to be a dataset or a "
        "tuple `(x_val, y_val)`, received: "
        f"{type(validation_data).__name__} of length "
        f"{len(validation_data) if hasattr(validation_data, '__len__') else '?'}"
    )


def _framewise_space(hp) -> dict:
    return {
        "units": hp.Choice("framewise_units", [0, 64, 256], default=0),
        "pooling": hp.Choice("framewise_pooling", ["avg", "max"], default="avg"),
    }


def _conv3d_space(hp) -> dict:
    return {
        "filters": hp.Choice("conv3d_filters", [32, 64, 128], default=64),
        "temporal_kernel": hp.Choice("conv3d_temporal_kernel", [2, 3], default=3),
        "num_layers": hp.Int("conv3d_num_layers", 1, 2, default=1),
    }


def _lstm_space(hp) -> dict:
    return {
        "units": hp.Choice("lstm_units", [32, 64, 128], default=64),
        "bidirectional": hp.Boolean("lstm_bidirectional", default=False),
    }


# Each head's hyperparameters: a function of `hp` returning the head's options.
HEAD_SEARCH_SPACES = {
    "framewise": _framewise_space,
    "conv3d": _conv3d_space,
    "lstm": _lstm_space,
}
