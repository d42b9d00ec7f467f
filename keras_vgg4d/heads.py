"""Temporal heads: turn per-frame VGG19 feature maps into class probabilities.

Every head takes the backbone's feature maps `(batch, time, h, w, channels)`
and an optional `(batch, time)` mask of real (not padded) frames, and returns
float32 softmax probabilities `(batch, num_classes)` under any dtype policy.
Clips may be of any length, also one other than the length trained on.

Heads are picked by name through `HEADS` and `get_head`.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_vgg4d.masking import masked_lstms
from keras_vgg4d.masking import masked_mean_over_time
from keras_vgg4d.masking import spatial_pool
from keras_vgg4d.validation import check_bool
from keras_vgg4d.validation import check_choice
from keras_vgg4d.validation import check_integer
from keras_vgg4d.validation import check_rate


class TemporalHead(keras.layers.Layer):
    """Base class of the temporal heads: arguments, mask and output dtype.

    Subclasses set `name_in_registry`, build their own layers and call
    `normalize_features` on the features they read.

    Args:
        num_classes: Number of classes, >= 2.
        dropout: Dropout rate before the classifier.
        normalize: Whether to standardize the backbone's features per channel
            (batch normalization over the real frames) before the head reads
            them. VGG19's features are on very different scales with random,
            ImageNet or fine-tuned weights; this makes the head's default
            learning rate fit all of them.
        **kwargs: Base layer keyword arguments.
    """

    name_in_registry = None

    def __init__(
        self,
        num_classes: int,
        dropout: float = 0.0,
        normalize: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.num_classes = check_integer(owner, "num_classes", num_classes, 2)
        self.dropout = check_rate(owner, "dropout", dropout)
        self.normalize = check_bool(owner, "normalize", normalize)
        self.supports_masking = True
        self.normalization = (
            keras.layers.BatchNormalization(momentum=0.9, name="feature_norm")
            if self.normalize
            else None
        )
        self.dropout_layer = self.make_dropout()
        self.classifier = keras.layers.Dense(num_classes, name="classifier")
        # Softmax in float32 under mixed precision, as Keras recommends.
        self.softmax = keras.layers.Activation(
            "softmax", dtype="float32", name="probabilities"
        )

    def make_dropout(self) -> keras.layers.Layer:
        """The dropout layer run before the classifier.

        `keras.layers.Dropout(self.dropout)`. A search's shared compiled
        steps (`keras_vgg4d.compiled_steps`) override it with a dropout
        whose rate is a variable, so that trials with other rates reuse one
        compiled step.
        """
        return keras.layers.Dropout(self.dropout)

    def _check_input_shape(self, input_shape):
        if len(input_shape) != 5 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects feature maps "
                "(batch, time, h, w, channels) with known channels, received "
                f"input shape {tuple(input_shape)}"
            )

    def build_normalization(self, feature_shape):
        """Builds the feature normalization for features of `feature_shape`."""
        if self.normalization is not None:
            self.normalization.build(feature_shape)

    def normalize_features(self, features, mask=None, training=None):
        """Standardizes `(batch, time, ..., channels)` features per channel.

        The statistics of training batches leave out the masked frames.
        """
        if self.normalization is None:
            return features
        if mask is not None:
            mask = ops.cast(mask, "bool")
            # BatchNormalization wants a mask of all axes but channels.
            extra = len(features.shape) - 3
            mask = ops.reshape(mask, (*ops.shape(mask), *([1] * extra)))
            mask = ops.broadcast_to(mask, ops.shape(features)[:-1])
        return self.normalization(features, training=training, mask=mask)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def compute_output_spec(self, inputs, mask=None, training=None):
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype="float32"
        )

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "dropout": self.dropout,
                "normalize": self.normalize,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class FramewiseHead(TemporalHead):
    """Classifies each frame, then averages the predictions over the clip.

    Each frame's feature map is pooled to a vector and classified on its own;
    the clip's probabilities are the mean of its real frames' probabilities
    (padded frames, where `mask` is false, are left out). Blind to frame
    order by design: the frame-wise strategy, done right.

    Args:
        num_classes: Number of classes, >= 2.
        units: Width of a hidden ReLU layer per frame; `0` for none (a linear
            classifier on the pooled features).
        pooling: Spatial pooling of each frame's map, `"avg"` or `"max"`.
        dropout: Dropout rate before the classifier.
        normalize: Whether to standardize the pooled features per channel.
        **kwargs: Base layer keyword arguments.

    Call arguments:
        inputs: Feature maps `(batch, time, h, w, channels)`.
        mask: Optional boolean `(batch, time)`, true for real frames.
        training: Python boolean, for dropout and normalization.

    Input shape:
        `(batch, time, h, w, channels)`.

    Output shape:
        `(batch, num_classes)`, float32 probabilities.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d import FramewiseHead
    >>> head = FramewiseHead(num_classes=3)
    >>> tuple(head(np.ones((2, 4, 1, 1, 512), "float32")).shape)
    (2, 3)
    """

    name_in_registry = "framewise"

    def __init__(
        self,
        num_classes: int,
        units: int = 0,
        pooling: str = "avg",
        dropout: float = 0.0,
        normalize: bool = True,
        **kwargs,
    ):
        super().__init__(
            num_classes, dropout=dropout, normalize=normalize, **kwargs
        )
        units = check_integer("FramewiseHead", "units", units, 0)
        check_choice("FramewiseHead", "pooling", pooling, ("avg", "max"))
        self.units = units
        self.pooling = pooling
        self.hidden = (
            keras.layers.Dense(units, activation="relu", name="hidden")
            if units
            else None
        )

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        shape = (input_shape[0], input_shape[1], input_shape[-1])
        self.build_normalization(shape)
        if self.hidden is not None:
            self.hidden.build(shape)
            shape = (*shape[:2], self.units)
        self.classifier.build(shape)

    def call(self, inputs, mask=None, training=None):
        x = spatial_pool(inputs, self.pooling)
        x = self.normalize_features(x, mask, training)
        if self.hidden is not None:
            x = self.hidden(x)
        x = self.dropout_layer(x, training=training)
        frame_probabilities = self.softmax(self.classifier(x))
        return masked_mean_over_time(frame_probabilities, mask)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "pooling": self.pooling})
        return config


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class Conv3DHead(TemporalHead):
    """`Conv3D` over the stacked feature maps: spatiotemporal features.

    Convolves `(time, h, w, channels)` with kernels of `temporal_kernel`
    frames (padding "same", so any clip length works), which lets it learn
    the order of frames, then pools over time and space (masked) and
    classifies. Channels stay channels: the convolution runs over time, height
    and width.

    Small frames give small maps: VGG19's block 5 is 1x1 for 32x32 frames
    and 3x3 for 112x112 ones, where most of a 3x3 spatial kernel reads
    padding. `spatial_kernel="auto"` therefore uses temporal-only kernels
    (`temporal_kernel x 1 x 1`) on 1x1 maps and 3x3 ones on larger maps.
    `factorized=True` splits each layer in two, as (2+1)D networks do (Tran
    et al., 2018, "A Closer Look at Spatiotemporal Convolutions"): a
    spatial `1 x k x k` convolution to `filters` channels, then a temporal
    `temporal_kernel x 1 x 1` one.

    Args:
        num_classes: Number of classes, >= 2.
        filters: Filters of each `Conv3D` layer.
        temporal_kernel: Kernel size along time, >= 1.
        spatial_kernel: Kernel size along height and width, >= 1, or
            `"auto"`: 1 on 1x1 feature maps, else 3.
        num_layers: Number of (factorized) `Conv3D` + ReLU layers, >= 1.
        factorized: Whether each layer is a spatial then a temporal
            convolution ((2+1)D, the default: it generalized better on the
            order task at 32 and at 112 pixels; benchmarks/RESULTS.md)
            instead of one spatiotemporal convolution.
        pooling: Pooling over time and space after the convolutions,
            `"avg"` or `"max"`.
        dropout: Dropout rate before the classifier.
        normalize: Whether to standardize the feature maps per channel.
        **kwargs: Base layer keyword arguments.

    Call arguments:
        inputs: Feature maps `(batch, time, h, w, channels)`.
        mask: Optional boolean `(batch, time)`, true for real frames. Padded
            frames are zeroed before the convolutions and left out of the
            pooling.
        training: Python boolean, for dropout and normalization.

    Input shape:
        `(batch, time, h, w, channels)`.

    Output shape:
        `(batch, num_classes)`, float32 probabilities.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d import Conv3DHead
    >>> head = Conv3DHead(num_classes=2, filters=8)
    >>> tuple(head(np.ones((2, 5, 2, 2, 512), "float32")).shape)
    (2, 2)
    """

    name_in_registry = "conv3d"

    def __init__(
        self,
        num_classes: int,
        filters: int = 64,
        temporal_kernel: int = 3,
        spatial_kernel: int | str = "auto",
        num_layers: int = 1,
        pooling: str = "avg",
        dropout: float = 0.0,
        normalize: bool = True,
        factorized: bool = True,
        **kwargs,
    ):
        super().__init__(
            num_classes, dropout=dropout, normalize=normalize, **kwargs
        )
        owner = "Conv3DHead"
        filters = check_integer(owner, "filters", filters, 1)
        temporal_kernel = check_integer(owner, "temporal_kernel", temporal_kernel, 1)
        if spatial_kernel != "auto":
            spatial_kernel = check_integer(
                owner, "spatial_kernel", spatial_kernel, 1
            )
        num_layers = check_integer(owner, "num_layers", num_layers, 1)
        check_choice(owner, "pooling", pooling, ("avg", "max"))
        self.filters = filters
        self.temporal_kernel = temporal_kernel
        self.spatial_kernel = spatial_kernel
        self.num_layers = num_layers
        self.pooling = pooling
        self.factorized = check_bool(owner, "factorized", factorized)
        # Made in `build`, where the feature map's size picks the kernel.
        self.convs = []

    def kernel_sizes(self, map_size) -> list[tuple[int, int, int]]:
        """The `(time, h, w)` kernel of each convolution, for `(h, w)` maps."""
        spatial = self.spatial_kernel
        if spatial == "auto":
            spatial = 1 if tuple(map_size) == (1, 1) else 3
        if not self.factorized:
            return [(self.temporal_kernel, spatial, spatial)] * self.num_layers
        return [(1, spatial, spatial), (self.temporal_kernel, 1, 1)] * (
            self.num_layers
        )

    def _make_convs(self, map_size):
        kernels = self.kernel_sizes(map_size)
        if self.factorized:
            names = [
                f"conv3d_{i // 2 + 1}_{'spatial' if i % 2 == 0 else 'temporal'}"
                for i in range(len(kernels))
            ]
        else:
            names = [f"conv3d_{i + 1}" for i in range(len(kernels))]
        return [
            keras.layers.Conv3D(
                self.filters,
                kernel,
                padding="same",
                activation="relu",
                name=name,
            )
            for kernel, name in zip(kernels, names)
        ]

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        shape = tuple(input_shape)
        self.build_normalization(shape)
        if not self.convs:
            self.convs = self._make_convs(shape[2:4])
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.classifier.build((shape[0], self.filters))

    def call(self, inputs, mask=None, training=None):
        x = self.normalize_features(inputs, mask, training)
        frame_mask = None
        if mask is not None:
            # A reshape, not `[:, :, None, None, None]`: LiteRT's built-in
            # ops cannot add three axes in one strided slice.
            frame_mask = ops.reshape(
                ops.cast(mask, x.dtype), (*ops.shape(mask), 1, 1, 1)
            )
            x = x * frame_mask
        for conv in self.convs:
            x = conv(x)
            if frame_mask is not None:
                x = x * ops.cast(frame_mask, x.dtype)
        x = spatial_pool(x, self.pooling)
        if self.pooling == "avg":
            x = masked_mean_over_time(x, mask)
        else:
            # ReLU outputs are >= 0 and padded frames are zeroed: a plain max
            # over time ignores them.
            x = ops.max(x, axis=1)
        x = self.dropout_layer(x, training=training)
        return self.softmax(self.classifier(x))

    @classmethod
    def from_config(cls, config):
        # Heads saved before `factorized` existed ran one spatiotemporal
        # convolution a layer.
        return cls(**{"factorized": False, **config})

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "temporal_kernel": self.temporal_kernel,
                "spatial_kernel": self.spatial_kernel,
                "num_layers": self.num_layers,
                "pooling": self.pooling,
                "factorized": self.factorized,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class LSTMHead(TemporalHead):
    """An LSTM over the pooled per-frame feature vectors, masked.

    Each frame's map is pooled to a vector; an LSTM (optionally
    bidirectional, optionally stacked) reads them in order, skipping padded
    frames, and its last state is classified.

    Args:
        num_classes: Number of classes, >= 2.
        units: LSTM units.
        num_layers: Number of stacked LSTM layers, >= 1.
        bidirectional: Whether each LSTM reads both directions.
        pooling: Spatial pooling of each frame's map, `"avg"` or `"max"`.
        dropout: Dropout rate before the classifier.
        normalize: Whether to standardize the pooled features per channel.
        **kwargs: Base layer keyword arguments.

    Call arguments:
        inputs: Feature maps `(batch, time, h, w, channels)`.
        mask: Optional boolean `(batch, time)`, true for real frames.
        training: Python boolean, for dropout and normalization.

    Input shape:
        `(batch, time, h, w, channels)`.

    Output shape:
        `(batch, num_classes)`, float32 probabilities.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d import LSTMHead
    >>> head = LSTMHead(num_classes=2, units=16, bidirectional=True)
    >>> tuple(head(np.ones((2, 5, 1, 1, 512), "float32")).shape)
    (2, 2)
    """

    name_in_registry = "lstm"

    def __init__(
        self,
        num_classes: int,
        units: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        pooling: str = "avg",
        dropout: float = 0.0,
        normalize: bool = True,
        **kwargs,
    ):
        super().__init__(
            num_classes, dropout=dropout, normalize=normalize, **kwargs
        )
        owner = "LSTMHead"
        units = check_integer(owner, "units", units, 1)
        num_layers = check_integer(owner, "num_layers", num_layers, 1)
        check_choice(owner, "pooling", pooling, ("avg", "max"))
        bidirectional = check_bool(owner, "bidirectional", bidirectional)
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.pooling = pooling
        self.recurrent = []
        for i in range(num_layers):
            lstm = keras.layers.LSTM(
                units,
                return_sequences=i < num_layers - 1,
                name=f"lstm_{i + 1}",
            )
            if self.bidirectional:
                lstm = keras.layers.Bidirectional(
                    lstm, name=f"bidirectional_{i + 1}"
                )
            self.recurrent.append(lstm)

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        shape = (input_shape[0], input_shape[1], input_shape[-1])
        self.build_normalization(shape)
        for layer in self.recurrent:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.classifier.build(shape)

    def call(self, inputs, mask=None, training=None):
        x = spatial_pool(inputs, self.pooling)
        x = self.normalize_features(x, mask, training)
        if mask is not None:
            mask = ops.cast(mask, "bool")
        for layer in self.recurrent:
            x = run_recurrent(layer, x, mask)
        x = self.dropout_layer(x, training=training)
        return self.softmax(self.classifier(x))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "num_layers": self.num_layers,
                "bidirectional": self.bidirectional,
                "pooling": self.pooling,
            }
        )
        return config


def run_recurrent(layer, sequences, mask=None):
    """Runs an `LSTM` or `Bidirectional(LSTM)` layer's computation.

    The same numbers as `layer(sequences, mask=mask)` (Keras' masked
    recurrence, `merge_mode="concat"`), computed by `masked_lstms` from the
    layer's own weights, so that every export format converts it with
    standard ops and unknown batch and time. The layer keeps its weights
    and its place in saved models; only the computation is `masked_lstms`'.

    Args:
        layer: A built `keras.layers.LSTM` with default activations and no
            dropout, or a `keras.layers.Bidirectional` of one.
        sequences: `(batch, time, features)`.
        mask: `None`, or boolean `(batch, time)`, true for real steps.

    Returns:
        The layer's output: `(batch, units)`, `(batch, time, units)` with
        `return_sequences`; twice the units for `Bidirectional`.
    """
    if isinstance(layer, keras.layers.Bidirectional):
        halves = [layer.forward_layer, layer.backward_layer]
    else:
        halves = [layer]
    outputs = masked_lstms(
        sequences,
        mask,
        [
            (
                half.cell.kernel,
                half.cell.recurrent_kernel,
                half.cell.bias if half.cell.use_bias else None,
                half.go_backwards,
            )
            for half in halves
        ],
        return_sequences=layer.return_sequences,
    )
    if len(outputs) == 1:
        return outputs[0]
    return ops.concatenate(outputs, axis=-1)


HEADS = {
    head.name_in_registry: head for head in (FramewiseHead, Conv3DHead, LSTMHead)
}


def get_head(head_name: str, num_classes: int, **options) -> TemporalHead:
    """Builds the temporal head registered under `head_name`.

    Args:
        head_name: One of `"framewise"`, `"conv3d"`, `"lstm"`.
        num_classes: Number of classes.
        **options: The head's own arguments (e.g. `units`, `filters`), and
            base layer arguments (`name`, `dtype`).

    Returns:
        A new, unbuilt head layer.

    Example:

    >>> from keras_vgg4d.heads import get_head
    >>> get_head("lstm", 3, units=32).units
    32
    """
    if head_name not in HEADS:
        raise ValueError(
            f"Unknown temporal head {head_name!r}; valid names: {sorted(HEADS)}"
        )
    head_class = HEADS[head_name]
    valid = set(head_options(head_name))
    unknown = sorted(set(options) - valid - {"name", "dtype"})
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for the {head_name!r} head; valid "
            f"options: {sorted(valid)}"
        )
    return head_class(num_classes, **options)


def head_options(name: str) -> tuple[str, ...]:
    """The options the head registered under `name` takes."""
    import inspect

    parameters = inspect.signature(HEADS[name].__init__).parameters
    return tuple(
        p
        for p, spec in parameters.items()
        if p not in ("self", "num_classes")
        and spec.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    )
