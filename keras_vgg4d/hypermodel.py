"""`VGG4DHyperModel`: Keras Tuner searches across the three temporal heads."""

from __future__ import annotations

import keras
import keras_tuner

from keras_vgg4d.feature_cache import FeatureCache
from keras_vgg4d.feature_cache import OnWholeModel
from keras_vgg4d.heads import HEADS
from keras_vgg4d.layout import validate_time_axis
from keras_vgg4d.model import VGG4DClassifier
from keras_vgg4d.validation import check_arrays
from keras_vgg4d.validation import check_clip_shape


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
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
                or num_classes < 2:
            raise ValueError(
                "VGG4DHyperModel expects `num_classes` to be an integer >= 2, "
                f"received: num_classes={num_classes!r}"
            )
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(
                "VGG4DHyperModel expects `input_shape` of one clip without the "
                "batch axis, (time, height, width, channels), received: "
                f"input_shape={input_shape}"
            )
        time_axis = validate_time_axis(time_axis)
        # The shape of a batch of one clip: frames, channels, layout.
        time_major = check_clip_shape(
            f"VGG4DHyperModel's input_shape={input_shape}",
            (1, *input_shape),
            time_axis,
        )
        self.input_channels = time_major[-1]
        heads = (heads,) if isinstance(heads, str) else tuple(heads)
        unknown = [h for h in heads if h not in HEADS]
        if not heads or unknown or len(set(heads)) != len(heads):
            raise ValueError(
                "VGG4DHyperModel expects `heads` to be distinct names from "
                f"{sorted(HEADS)}, received: heads={heads!r}"
            )
        if trainable_blocks not in range(6):
            raise ValueError(
                "VGG4DHyperModel expects `trainable_blocks` in 0..5, "
                f"received: trainable_blocks={trainable_blocks!r}"
            )
        self.num_classes = num_classes
        self.input_shape = input_shape
        self.heads = heads
        self.weights = weights
        self.trainable_blocks = trainable_blocks
        self.augment = augment
        self.cache_features = bool(cache_features)
        self.time_axis = validate_time_axis(time_axis)
        self.feature_cache = FeatureCache(feature_cache_dir, memory_limit_bytes)
        # The backbone's weights, taken from the first model built and given
        # to every later one, so all trials share the backbone the cached
        # features come from (and the file or download is read once).
        self._backbone_weights = None

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
        """
        if name == "framewise":
            return {
                "units": hp.Choice("framewise_units", [0, 64, 256], default=0),
                "pooling": hp.Choice(
                    "framewise_pooling", ["avg", "max"], default="avg"
                ),
            }
        if name == "conv3d":
            return {
                "filters": hp.Choice("conv3d_filters", [32, 64, 128], default=64),
                "temporal_kernel": hp.Choice(
                    "conv3d_temporal_kernel", [2, 3], default=3
                ),
                "num_layers": hp.Int("conv3d_num_layers", 1, 2, default=1),
            }
        return {
            "units": hp.Choice("lstm_units", [32, 64, 128], default=64),
            "bidirectional": hp.Boolean("lstm_bidirectional", default=False),
        }

    def build(self, hp):
        head = hp.Choice("temporal_head", list(self.heads), default=self.heads[0])
        head_options = {}
        for name in self.heads:
            with hp.conditional_scope("temporal_head", [name]):
                options = self.declare_head_hyperparameters(hp, name)
            if name == head:
                head_options = options
        # The learning rate is read back in `_compile`, where it is used.
        hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
        dropout = hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.0)

        augment = None
        if self.augment is not None:
            augment = self.augment.__class__.from_config(self.augment.get_config())
        model = VGG4DClassifier(
            self.num_classes,
            temporal_head=head,
            weights=self.weights if self._backbone_weights is None else None,
            trainable_blocks=self.trainable_blocks,
            augment=augment,
            dropout=dropout,
            time_axis=self.time_axis,
            head_options=head_options,
        )
        model.build((None, *self.input_shape))
        if self._backbone_weights is None:
            self._backbone_weights = model.backbone.get_weights()
        else:
            model.backbone.set_weights(self._backbone_weights)
        self._compile(model, hp)
        return model

    def _compile(self, model: keras.Model, hp) -> None:
        """Compiles `model` (a classifier or its head model) for `hp`."""
        model.compile(
            optimizer=keras.optimizers.Adam(hp.get("learning_rate")),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    def fit(self, hp, model, x=None, y=None, validation_data=None, **kwargs):
        """Trains `model`; on cached features when the cache applies."""
        if not self.uses_feature_cache:
            # The classifier checks NumPy data itself.
            return model.fit(x, y, validation_data=validation_data, **kwargs)
        check_arrays(
            "VGG4DHyperModel.fit",
            x,
            y,
            time_axis=self.time_axis,
            channels=self.input_channels,
            num_classes=self.num_classes,
            validation_data=validation_data,
        )
        verbose = kwargs.get("verbose", "auto")
        batch_size = kwargs.pop("batch_size", None)
        validation_split = kwargs.pop("validation_split", 0.0)
        train = self.feature_cache.get(model, x, y, batch_size, verbose)
        batch_size = batch_size or train.batch_size or 32
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(
                validation_data
            ) == 1 or hasattr(validation_data, "element_spec"):
                val_x, val_y = validation_data, None
            else:
                val_x, val_y = validation_data[0], validation_data[1]
            validation = self.feature_cache.get(
                model, val_x, val_y, batch_size, verbose
            )
        elif validation_split:
            train, validation = train.split(validation_split)

        head_model = model.head_model()
        self._compile(head_model, hp)
        kwargs["callbacks"] = [
            OnWholeModel(callback, model) for callback in kwargs.get("callbacks") or []
        ]
        return head_model.fit(
            train.inputs,
            train.labels,
            batch_size=batch_size,
            validation_data=(
                None
                if validation is None
                else (validation.inputs, validation.labels)
            ),
            **kwargs,
        )
