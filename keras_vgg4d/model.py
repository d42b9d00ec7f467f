"""`VGG4DClassifier`: augmentation, TemporalVGG19 and a temporal head."""

from __future__ import annotations

import inspect
import os

import keras

from keras_vgg4d import validation
from keras_vgg4d.backbone import TemporalVGG19
from keras_vgg4d.export import prepare_export
from keras_vgg4d.heads import HEADS
from keras_vgg4d.heads import get_head
from keras_vgg4d.layout import to_time_major
from keras_vgg4d.layout import validate_time_axis
from keras_vgg4d.masking import nonzero_frames
from keras_vgg4d.optimizers import DEFAULT_LEARNING_RATES
from keras_vgg4d.optimizers import default_optimizer
from keras_vgg4d.version import __version__


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class VGG4DClassifier(keras.Model):
    """Classifies clips of 2D frames with VGG19 and a temporal head.

    The model runs, in order: an optional augmentation layer (such as
    `ScipyAugment`, active in training only), `TemporalVGG19` on every frame,
    and the temporal head named by `temporal_head`:

    - `"framewise"`: classifies each frame, averages the predictions;
    - `"conv3d"`: `Conv3D` over the stacked feature maps;
    - `"lstm"`: an LSTM over the pooled per-frame features.

    It returns float32 softmax probabilities under any dtype policy, so
    compile it with `"sparse_categorical_crossentropy"` (integer labels).

    Frames that are entirely zero (the padding the loaders add to short
    clips) are masked out of the head when `mask_padded_frames=True`.

    Args:
        num_classes: Number of classes, >= 2.
        temporal_head: `"framewise"`, `"conv3d"` or `"lstm"`.
        weights: Backbone weights: `None` (random), `"imagenet"`, or a path
            to a VGG19 no-top weights file. See `TemporalVGG19`.
        trainable_blocks: How many of VGG19's 5 blocks to train, counted
            from the last one; `0` freezes the backbone.
        augment: Optional augmentation layer run first, in training only. It
            sees time-major clips, so build it with `time_axis=1`.
        dropout: Dropout rate before the head's classifier.
        time_axis: `1` for `(batch, time, height, width, channels)` input,
            `-1` for `(batch, height, width, channels, time)`.
        head_options: Dict of the head's own arguments, e.g.
            `{"units": 128, "bidirectional": True}` for `"lstm"`. See
            `FramewiseHead`, `Conv3DHead`, `LSTMHead`.
        frame_chunk: Passed to `TemporalVGG19`: frames per backbone call, to
            bound memory on long clips.
        mask_padded_frames: Whether all-zero frames are masked out.
        temperature: Temperature scaling of the answers, > 0: the model
            returns `softmax(log(p) / temperature)` of the head's
            probabilities `p` (the same class wins; above 1 the answers are
            less confident, below 1 more). `1.0` leaves them as they are.
            `keras_vgg4d.calibration.calibrate` fits and sets it; to change
            it on a model in use, call `calibration.set_temperature`.
        backbone: Optional `TemporalVGG19` (`pooling=None`, time-major) to
            use instead of a new one, e.g. one frozen backbone shared by
            several classifiers, as a search's trials share one. Its
            `trainable_blocks` and `frame_chunk` must be the ones given
            here, and it keeps its weights (`weights` only names them in the
            config). Not saved in the config: a loaded model has its own.
        **kwargs: Base model keyword arguments, such as `name`.

    Call arguments:
        inputs: Clips of raw frames (0..255), float or uint8.
        training: Python boolean.

    Input shape:
        `(batch, time, height, width, channels)`, or
        `(batch, height, width, channels, time)` with `time_axis=-1`.
        Frames of at least 32x32.

    Output shape:
        `(batch, num_classes)`.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d import VGG4DClassifier
    >>> model = VGG4DClassifier(num_classes=2, temporal_head="lstm")
    >>> clips = np.random.uniform(0, 255, (2, 3, 32, 32, 3))
    >>> tuple(model.predict(clips, verbose=0).shape)
    (2, 2)
    """

    def __init__(
        self,
        num_classes: int,
        temporal_head: str = "framewise",
        weights: str | None = None,
        trainable_blocks: int = 0,
        augment: keras.layers.Layer | None = None,
        dropout: float = 0.0,
        time_axis: int = 1,
        head_options: dict | None = None,
        frame_chunk: int | None = None,
        mask_padded_frames: bool = True,
        temperature: float = 1.0,
        backbone: TemporalVGG19 | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_classes = validation.check_num_classes(
            "VGG4DClassifier", num_classes
        )
        validation.check_choice(
            "VGG4DClassifier", "temporal_head", temporal_head, sorted(HEADS)
        )
        mask_padded_frames = validation.check_bool(
            "VGG4DClassifier", "mask_padded_frames", mask_padded_frames
        )
        temperature = validation.check_positive(
            "VGG4DClassifier", "temperature", temperature,
            " (1.0 leaves the head's probabilities unchanged; "
            "`keras_vgg4d.calibration.calibrate` fits one)",
        )
        head_options = dict(head_options or {})
        if "dropout" in head_options:
            raise ValueError(
                "Pass the dropout rate as `dropout=`, not inside "
                f"`head_options`; received head_options={head_options}"
            )
        if augment is not None:
            if not isinstance(augment, keras.layers.Layer):
                raise ValueError(
                    "VGG4DClassifier expects `augment` to be a Keras layer "
                    f"(e.g. ScipyAugment) or None, received: {augment!r}"
                )
            if getattr(augment, "time_axis", 1) != 1:
                raise ValueError(
                    "The model converts clips to time-major at its entrance, "
                    "so its `augment` layer must use time_axis=1; received an "
                    f"augment layer with time_axis={augment.time_axis}. Build "
                    "it with time_axis=1 and pass time_axis=-1 to the model."
                )
        self.num_classes = num_classes
        self.temporal_head = temporal_head
        self.weights_source = weights
        self.trainable_blocks = trainable_blocks
        self.augment = augment
        self.dropout = dropout
        self.time_axis = validate_time_axis(time_axis)
        self.head_options = head_options
        self.frame_chunk = frame_chunk
        self.mask_padded_frames = mask_padded_frames
        self.temperature = temperature
        if backbone is None:
            backbone = TemporalVGG19(
                weights=weights,
                trainable_blocks=trainable_blocks,
                pooling=None,
                preprocess=True,
                frame_chunk=frame_chunk,
                name="backbone",
            )
        else:
            _check_backbone(backbone, trainable_blocks, frame_chunk)
        self.backbone = backbone
        self.head = get_head(
            temporal_head,
            num_classes,
            dropout=dropout,
            name=f"{temporal_head}_head",
            **head_options,
        )

    def _time_major_shape(self, input_shape):
        return validation.check_clip_shape(
            "The input of VGG4DClassifier",
            input_shape,
            self.time_axis,
            allow_empty=True,
        )

    def build(self, input_shape):
        shape = self._time_major_shape(input_shape)
        if self.augment is not None and not self.augment.built:
            self.augment.build(shape)
        if not self.backbone.built:
            self.backbone.build(shape)
        feature_shape = self.backbone.compute_output_shape(shape)
        self.head.build(feature_shape)
        # The channel count inputs to `fit`/`predict` are checked against.
        self.input_channels = shape[-1]
        # Per-frame feature map shape (h, w, 512), for `head_model`.
        self.frame_feature_shape = tuple(feature_shape)[2:]
        self.built = True

    def frame_mask(self, clips):
        """`(batch, time)` mask of real frames of time-major raw clips.

        `None` when `mask_padded_frames=False`.
        """
        return nonzero_frames(clips) if self.mask_padded_frames else None

    def feature_extractor(
        self, clip_shape, dtype="float32", dtype_policy=None
    ) -> keras.Model:
        """A functional model from raw clips to backbone features and mask.

        It shares this model's backbone. Its input is clips of `clip_shape`
        (one clip, laid out as `time_axis` says); its outputs are the
        features `(batch, time, h, w, 512)` and the `(batch, time)` boolean
        frame mask the head would get (all true when
        `mask_padded_frames=False`). `head_model()` takes the two.

        With `dtype_policy` (e.g. `"mixed_bfloat16"`), the features come from
        a copy of the backbone computing under that policy, cast to float32.
        """
        clips = keras.Input(tuple(clip_shape), dtype=dtype)
        time_major = to_time_major(clips, self.time_axis)
        backbone = self.backbone
        if dtype_policy is not None and dtype_policy != self.backbone.dtype_policy.name:
            backbone = TemporalVGG19.from_config(
                {**self.backbone.get_config(), "dtype": dtype_policy,
                 "weights": None, "name": "backbone_copy"}
            )
            backbone.build(time_major.shape)
            backbone.set_weights(self.backbone.get_weights())
        features = keras.ops.cast(backbone(time_major, training=False), "float32")
        mask = self.frame_mask(time_major)
        if mask is None:
            mask = keras.ops.ones_like(time_major[:, :, 0, 0, 0], dtype="bool")
        return keras.Model(clips, [features, mask], name="feature_extractor")

    def call(self, inputs, training=None):
        self._time_major_shape(inputs.shape)
        clips = to_time_major(inputs, self.time_axis)
        mask = self.frame_mask(clips)
        if self.augment is not None:
            clips = self.augment(clips, training=training)
        features = self.backbone(clips, training=training)
        probabilities = self.head(features, mask=mask, training=training)
        if self.temperature == 1.0:
            return probabilities
        # Temperature scaling: softmax(log(p) / T) = softmax(logits / T),
        # in float32, log(0) kept finite at float32's smallest normal.
        probabilities = keras.ops.cast(probabilities, "float32")
        log_p = keras.ops.log(keras.ops.maximum(probabilities, 1.1754944e-38))
        return keras.ops.softmax(log_p / self.temperature, axis=-1)

    def _check_arrays(self, caller, x, y=None, validation_data=None):
        validation.check_arrays(
            f"VGG4DClassifier.{caller}",
            x,
            y,
            time_axis=self.time_axis,
            channels=getattr(self, "input_channels", None),
            num_classes=self.num_classes,
            validation_data=validation_data,
        )

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        """`keras.Model.fit`, after checking NumPy clips and labels.

        NumPy `x`, `y` and `validation_data` are checked first (rank and
        layout, frames of at least 32x32, the channel count of a built
        model, no empty batch or clip, no NaN or infinity, integer labels
        in `[0, num_classes)`), so bad data fails before training, with a
        `ValueError` that says what is wrong. Datasets pass through.
        """
        self._check_arrays("fit", x, y, validation_data)
        return super().fit(
            x, y, *args, validation_data=validation_data, **kwargs
        )

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, after checking NumPy clips and labels."""
        self._check_arrays("evaluate", x, y)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`, after checking NumPy clips."""
        self._check_arrays("predict", x)
        return super().predict(x, *args, **kwargs)

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        *,
        metrics="auto",
        **kwargs,
    ):
        """`keras.Model.compile`, with defaults fit for a few hundred clips.

        As KerasHub's task models do, each argument left `"auto"` takes a
        default for this task:

        - `optimizer`: Adam at the head's rate in
          `keras_vgg4d.optimizers.DEFAULT_LEARNING_RATES` (1e-2 for
          `"framewise"`, 3e-3 for `"conv3d"` and `"lstm"`), under which
          the head learns in a dozen epochs on a few hundred clips; with
          `trainable_blocks > 0`, a `DiscriminativeAdam` that moves the
          backbone's blocks at `BACKBONE_RATE_SCALE` (0.03) of it;
        - `loss`: sparse categorical cross-entropy on the probabilities the
          model returns (integer labels);
        - `metrics`: accuracy.

        Any argument given explicitly wins; the others are passed to
        `keras.Model.compile` unchanged.
        """
        if optimizer == "auto":
            optimizer = default_optimizer(
                DEFAULT_LEARNING_RATES[self.temporal_head], self.trainable_blocks
            )
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy()
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        """Compiles as a saved model was compiled (`.keras` loading)."""
        # Keras' own skips models that override `compile`; this `compile`
        # takes everything `get_compile_config` wrote.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_output_shape(self, input_shape):
        return (tuple(input_shape)[0], self.num_classes)

    def export(
        self,
        filepath,
        format="tf_saved_model",
        verbose=None,
        input_signature=None,
        **kwargs,
    ):
        """`keras.Model.export` for every head and format, once built.

        Writes the inference graph (augmentation, which is training-only,
        never reaches it) as `"tf_saved_model"`, `"onnx"` (needs the `onnx`
        extra), `"openvino"` (`openvino` extra; `filepath` ends in `.xml`)
        or `"litert"` (`filepath` ends in `.tflite`; built-in ops only, so
        the `litert` extra's interpreter runs it without the Flex delegate).
        It works right after `build`, and gives `predict`'s answers.

        By default the artifact takes float32 clips laid out as `time_axis`
        says, with batch and time dynamic and the frame size and channels
        the model was built for. Pass `input_signature=[tf.TensorSpec(
        shape)]` for other fixed sizes; height, width and channels must be
        known. See `keras_vgg4d.export` and `docs/deploy.md`.
        """
        input_signature, kwargs = prepare_export(
            self, filepath, format, input_signature, kwargs
        )
        try:
            return super().export(
                filepath,
                format=format,
                verbose=verbose,
                input_signature=input_signature,
                **kwargs,
            )
        except (ValueError, TypeError):
            raise  # Keras' own argument checks: their messages say it all
        except Exception as error:  # a converter's failure
            raise RuntimeError(
                f"Exporting VGG4DClassifier with the {self.temporal_head!r} "
                f"head to {format!r} failed: {error}"
            ) from error

    def head_model(self) -> keras.Model:
        """A functional model from backbone features to probabilities.

        It shares the head's layers (and so its weights) with this model:
        training it on precomputed backbone features trains this model's
        head. Its inputs are the features `(batch, time, h, w, 512)` and
        the `(batch, time)` frame mask.
        """
        if not self.built:
            raise ValueError(
                "Build the model (call it on clips or call `build(shape)`) "
                "before asking for its head model."
            )
        features = keras.Input(
            (None, *self.frame_feature_shape), name="features"
        )
        mask = keras.Input((None,), dtype="bool", name="frame_mask")
        outputs = self.head(features, mask=mask)
        return keras.Model([features, mask], outputs, name="head_model")

    def save_head_weights(self, filepath: str) -> None:
        """Saves the head's weights alone (a `.weights.h5` file).

        A search with a frozen backbone checkpoints only what its trials
        train; `load_weights` reads such a file back into the head.
        """
        self.head_model().save_weights(filepath)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """`keras.Model.load_weights`; also reads a `save_head_weights` file.

        A head-only file loads into the head and leaves the backbone as it
        is.
        """
        if _is_head_weights_file(filepath):
            self.head_model().load_weights(
                filepath, skip_mismatch=skip_mismatch, **kwargs
            )
            return
        super().load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "num_classes": self.num_classes,
            "temporal_head": self.temporal_head,
            "weights": self.weights_source,
            "trainable_blocks": self.trainable_blocks,
            "augment": (
                None
                if self.augment is None
                else keras.saving.serialize_keras_object(self.augment)
            ),
            "dropout": self.dropout,
            "time_axis": self.time_axis,
            "head_options": dict(self.head_options),
            "frame_chunk": self.frame_chunk,
            "mask_padded_frames": self.mask_padded_frames,
            "temperature": self.temperature,
            "package_version": __version__,
        }
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        # Configs saved before the version was recorded lack it; arguments
        # added since then are absent from them and take their defaults.
        saved_version = config.pop("package_version", "< 0.1.0")
        known = set(inspect.signature(cls.__init__).parameters)
        known |= {"name", "trainable", "dtype"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"This VGG4DClassifier was saved by keras_vgg4d "
                f"{saved_version} with argument(s) {unknown} that keras_vgg4d "
                f"{__version__} does not know. Load it with keras_vgg4d "
                f"{saved_version}, or upgrade keras_vgg4d."
            )
        if config.get("augment") is not None:
            config["augment"] = keras.saving.deserialize_keras_object(
                config["augment"], custom_objects=custom_objects
            )
        if "dtype" in config and isinstance(config["dtype"], dict):
            config["dtype"] = keras.saving.deserialize_keras_object(
                config["dtype"]
            )
        # A saved model restores its own weights after `from_config`: never
        # read the original file or download ImageNet again.
        config["weights"] = None
        return cls(**config)


def _check_backbone(backbone, trainable_blocks, frame_chunk) -> None:
    """Raises `ValueError` unless `backbone` can serve as the model's."""
    expected = {"trainable_blocks": trainable_blocks, "frame_chunk": frame_chunk,
                "pooling": None, "time_axis": 1, "preprocess": True}
    if not isinstance(backbone, TemporalVGG19):
        raise ValueError(
            "VGG4DClassifier expects `backbone` to be a TemporalVGG19 or None, "
            f"received: {backbone!r}"
        )
    found = {name: getattr(backbone, name) for name in expected}
    if found != expected:
        raise ValueError(
            "VGG4DClassifier's `backbone` must be built as the model would "
            f"build its own: {expected}; received a TemporalVGG19 with {found}"
        )


def _is_head_weights_file(filepath) -> bool:
    """Whether `filepath` holds `head_model()`'s weights, not the model's."""
    if not str(filepath).endswith(".weights.h5") or not os.path.exists(filepath):
        return False
    import h5py

    with h5py.File(filepath, "r") as file:
        return "layers" in file and "backbone" not in file
