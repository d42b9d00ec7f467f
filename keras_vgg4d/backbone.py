"""`TemporalVGG19`: VGG19's five conv blocks on every frame of a clip."""

from __future__ import annotations

import contextlib

import keras
from keras import ops

from keras_vgg4d.backend import tensorflow_if_loaded

from keras_vgg4d.frame_fold import FrameFold
from keras_vgg4d.frame_fold import validate_frame_chunk
from keras_vgg4d.layout import validate_time_axis
from keras_vgg4d.validation import MIN_FRAME_SIZE  # noqa: F401 (public name)
from keras_vgg4d.validation import check_bool
from keras_vgg4d.validation import check_choice
from keras_vgg4d.validation import check_clip_shape
from keras_vgg4d.validation import check_integer
from keras_vgg4d.preprocessing import VGGPreprocessing
from keras_vgg4d.weights import load_vgg19_notop_weights
from keras_vgg4d.weights import resolve_weights

# (filters, convolutions) of each block, as in keras.applications.VGG19.
VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
POOLINGS = (None, "avg", "max")


def vgg_block(
    x,
    block,
    filters,
    num_convs,
    dtype=None,
    kernel_initializer="glorot_uniform",
):
    """Appends VGG block number `block` (1-based) to the tensor `x`.

    `num_convs` 3x3 ReLU convolutions with `filters` filters, then a 2x2 max
    pooling, named `block{block}_conv{j}` and `block{block}_pool` as in
    `keras.applications`, so that its weight files load by name.
    """
    for j in range(1, num_convs + 1):
        x = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            activation="relu",
            data_format="channels_last",
            kernel_initializer=kernel_initializer,
            dtype=dtype,
            name=f"block{block}_conv{j}",
        )(x)
    return keras.layers.MaxPooling2D(
        2, strides=2, data_format="channels_last", dtype=dtype,
        name=f"block{block}_pool",
    )(x)


def vgg19_frame_model(
    channels,
    preprocess=True,
    pooling=None,
    dtype=None,
    kernel_initializer="glorot_uniform",
):
    """VGG19 without its classifier for `(batch, height, width, channels)`.

    The layers of `keras.applications.VGG19(include_top=False)`, in its
    order and with its names, optionally preceded by `VGGPreprocessing` and
    followed by global pooling. Pass `kernel_initializer="zeros"` when the
    weights will be loaded anyway: random initialization of VGG19's 20M
    weights costs more than building the graph.
    """
    inputs = keras.Input((None, None, channels), name="frames")
    x = VGGPreprocessing(dtype=dtype, name="preprocess")(inputs) if (
        preprocess
    ) else inputs
    for block, (filters, num_convs) in enumerate(VGG19_BLOCKS, start=1):
        x = vgg_block(
            x, block, filters, num_convs, dtype, kernel_initializer
        )
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(
            data_format="channels_last", dtype=dtype, name="avg_pool"
        )(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(
            data_format="channels_last", dtype=dtype, name="max_pool"
        )(x)
    return keras.Model(inputs, x, name="vgg19", dtype=dtype)


def check_trainable_blocks(owner: str, trainable_blocks) -> int:
    """Returns `trainable_blocks` if it is an integer from 0 to 5."""
    return check_integer(
        owner, "trainable_blocks", trainable_blocks, 0, len(VGG19_BLOCKS)
    )


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class TemporalVGG19(keras.layers.Layer):
    """VGG19's five convolutional blocks run on every frame of a clip.

    The per-frame network is `keras.applications.VGG19(include_top=False)`
    (same layers, same names, so its weight files load), wrapped in
    `FrameFold` so all frames of all clips run in one batched call. VGG's own
    ImageNet preprocessing is part of the layer, so it takes raw frames.

    Pretrained weights work with any channel count: the first layer's kernels
    are adapted, not dropped (as timm's `adapt_input_conv`). A gray clip
    gives the same features as that clip repeated to RGB; `C` channels other
    than 1 and 3 repeat the RGB kernels and scale them by `3 / C`.

    Args:
        weights: `None` (random initialization), `"imagenet"` (Keras'
            ImageNet weights, downloaded once into the Keras cache like
            `keras.applications.VGG19`), or the path to a VGG19 no-top weights
            file: Keras' `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`,
            or a `.weights.h5` file saved from
            `keras.applications.VGG19(include_top=False)`. A missing file
            raises `FileNotFoundError`, a failed download
            `keras_vgg4d.weights.WeightsDownloadError`, both on construction;
            a file that does not fit raises `ValueError` on build. Weights
            are read when the layer is built; a layer restored from a config
            or a `.keras` file never reads or downloads them (the `.keras`
            file restores its own variables).
        trainable_blocks: Integer in `0..5`. The last `trainable_blocks` of
            the five blocks are trainable, the others frozen. With `0` the
            whole backbone is frozen and always runs in inference mode.
            (As for any Keras layer, setting `layer.trainable` afterwards
            applies to all blocks.)
        pooling: `None` for the feature maps of the last block, `"avg"` or
            `"max"` for one 512-vector a frame (global pooling per frame).
        preprocess: If `True`, frames are expected as raw values in `0..255`
            (RGB for 3 channels) and VGG's preprocessing (RGB -> BGR, minus
            the ImageNet channel means; see `VGGPreprocessing` for other
            channel counts) is applied inside the layer. If `False`, frames
            must already be preprocessed like
            `keras.applications.vgg19.preprocess_input` does.
        time_axis: `1` for `(batch, time, height, width, channels)`, `-1`
            for `(batch, height, width, channels, time)`.
        frame_chunk: `None`, or the number of time steps run per call of
            VGG19, which bounds peak memory on long clips (see `FrameFold`).
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`
            (e.g. `"mixed_bfloat16"`; the weights stay float32).

    Call arguments:
        inputs: A clip tensor, laid out as `time_axis` says, of any real or
            integer dtype.
        training: Python boolean; ignored (inference mode) when no weight is
            trainable.
        mask: Optional `(batch, time)` boolean mask; passed to the output.

    Input shape:
        `(batch, time, height, width, channels)`, or
        `(batch, height, width, channels, time)` with `time_axis=-1`;
        `height` and `width` at least 32, `channels` at least 1 and known.

    Output shape:
        `(batch, time, height // 32, width // 32, 512)` if `pooling` is
        `None`, else `(batch, time, 512)`.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d import TemporalVGG19
    >>> clips = np.random.uniform(0, 255, (2, 4, 64, 64, 3)).astype("float32")
    >>> tuple(TemporalVGG19()(clips).shape)
    (2, 4, 2, 2, 512)
    >>> gray = clips[..., :1].transpose(0, 2, 3, 4, 1)
    >>> tuple(TemporalVGG19(pooling="avg", time_axis=-1)(gray).shape)
    (2, 4, 512)
    """

    def __init__(
        self,
        weights: str | None = None,
        trainable_blocks: int = 0,
        pooling: str | None = None,
        preprocess: bool = True,
        time_axis: int = 1,
        frame_chunk: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        trainable_blocks = check_trainable_blocks("TemporalVGG19", trainable_blocks)
        check_choice("TemporalVGG19", "pooling", pooling, POOLINGS)
        preprocess = check_bool("TemporalVGG19", "preprocess", preprocess)
        validate_frame_chunk(frame_chunk, "TemporalVGG19")
        # Fails early: a missing file, or "imagenet" that cannot be fetched.
        self._weights_path = resolve_weights(weights)
        self.weights_source = None if weights is None else str(weights)
        self.trainable_blocks = trainable_blocks
        self.pooling = pooling
        self.preprocess = preprocess
        self.time_axis = validate_time_axis(time_axis)
        self.frame_chunk = frame_chunk
        self.supports_masking = True
        self.frame_fold = None

    def _clip_shape(self, input_shape, known_frame_size=True):
        """Validates `input_shape`; returns it time-major."""
        return check_clip_shape(
            "The input of TemporalVGG19",
            input_shape,
            self.time_axis,
            known_frame_size=known_frame_size,
            allow_empty=True,
        )

    def build(self, input_shape):
        channels = self._clip_shape(input_shape)[-1]
        pretrained = self._weights_path is not None
        frame_model = vgg19_frame_model(
            channels,
            preprocess=self.preprocess,
            pooling=self.pooling,
            dtype=self.dtype_policy,
            kernel_initializer="zeros" if pretrained else "glorot_uniform",
        )
        frozen_blocks = len(VGG19_BLOCKS) - self.trainable_blocks
        for block, (_, num_convs) in enumerate(
            VGG19_BLOCKS[:frozen_blocks], start=1
        ):
            for j in range(1, num_convs + 1):
                frame_model.get_layer(f"block{block}_conv{j}").trainable = False
        self.frame_fold = FrameFold(
            frame_model,
            time_axis=self.time_axis,
            frame_chunk=self.frame_chunk,
            dtype=self.dtype_policy,
            name="frame_fold",
        )
        self.frame_fold.build(input_shape)
        if pretrained:
            # Lifted out of any graph being traced: reads a file into numpy.
            tf = tensorflow_if_loaded()
            with tf.init_scope() if tf else contextlib.nullcontext():
                reference = vgg19_frame_model(
                    3, preprocess=False, kernel_initializer="zeros"
                )
                load_vgg19_notop_weights(
                    frame_model, self._weights_path, reference
                )
        self.built = True

    @property
    def frame_model(self) -> keras.Model:
        """The per-frame VGG19 (`None` until the layer is built)."""
        return None if self.frame_fold is None else self.frame_fold.layer

    def compute_output_shape(self, input_shape):
        batch, time, height, width, _ = self._clip_shape(input_shape)
        features = VGG19_BLOCKS[-1][0]
        if self.pooling is None:
            scale = 2 ** len(VGG19_BLOCKS)
            return (batch, time, height // scale, width // scale, features)
        return (batch, time, features)

    def compute_output_spec(self, inputs, training=None, mask=None):
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=self.compute_dtype
        )

    def compute_mask(self, inputs, mask=None):
        return mask

    def call(self, inputs, training=None, mask=None):
        # A graph traced for several frame sizes (Keras' `predict` relaxes
        # them to None after a second size) checks the sizes it knows.
        self._clip_shape(inputs.shape, known_frame_size=False)
        inputs = ops.cast(inputs, self.compute_dtype)
        if not self.trainable_weights:
            training = False
        return self.frame_fold(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "weights": self.weights_source,
                "trainable_blocks": self.trainable_blocks,
                "pooling": self.pooling,
                "preprocess": self.preprocess,
                "time_axis": self.time_axis,
                "frame_chunk": self.frame_chunk,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # A layer rebuilt from its config gets its variables from where the
        # config came from (a `.keras` file restores them after the build),
        # so the weights file is neither read nor downloaded again: it may
        # be gone, and there may be no network.
        config = dict(config)
        weights = config.pop("weights", None)
        layer = super().from_config(config)
        layer.weights_source = weights
        return layer
