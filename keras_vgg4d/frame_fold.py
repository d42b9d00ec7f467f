"""`FrameFold`: run a 2D layer on every frame by folding time into the batch."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_vgg4d.layout import to_time_major
from keras_vgg4d.layout import to_time_major_shape
from keras_vgg4d.layout import validate_time_axis


def validate_frame_chunk(frame_chunk, owner: str) -> int | None:
    """Returns `frame_chunk` if it is None or a positive integer.

    Raises:
        ValueError: naming `owner` and the value received otherwise.
    """
    if frame_chunk is not None and (
        isinstance(frame_chunk, bool)
        or not isinstance(frame_chunk, int)
        or frame_chunk < 1
    ):
        raise ValueError(
            f"{owner} expects `frame_chunk` to be None or a positive "
            f"integer, received: frame_chunk={frame_chunk!r}"
        )
    return frame_chunk


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class FrameFold(keras.layers.Wrapper):
    """Runs a 2D layer or model on every frame of a clip in one batched call.

    A drop-in for `keras.layers.TimeDistributed`. Where `TimeDistributed`
    unrolls one call of the wrapped layer per frame (or vectorizes over an
    unknown time axis), `FrameFold` reshapes `(batch, time, ...)` to
    `(batch * time, ...)`, calls the wrapped layer once, and reshapes back.
    Both the batch and the time size may be unknown.

    With `frame_chunk=N` the frames are processed `N` clip-steps at a time
    (that is, `batch * N` frames per call of the wrapped layer) in a
    sequential loop, which bounds peak memory on long clips and gives the
    same result.

    A `(batch, time)` mask passes through to the output unchanged, and is
    given folded to `(batch * time,)` to a wrapped layer that takes a `mask`.

    Args:
        layer: A `keras.layers.Layer` or `keras.Model` that takes one frame
            `(batch, ...)`, e.g. `(batch, height, width, channels)`.
        time_axis: Where time is in the input: `1` for
            `(batch, time, ...)` (the default, like `TimeDistributed`), or
            `-1` for `(batch, ..., time)`, e.g.
            `(batch, height, width, channels, time)`. The output is always
            time-major, `(batch, time, ...)`.
        frame_chunk: `None` (all frames in one call) or a positive integer:
            the number of time steps per call of the wrapped layer.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A tensor of rank >= 3 laid out as `time_axis` says.
        training: Python boolean, passed to the wrapped layer.
        mask: Optional boolean tensor of shape `(batch, time)`.

    Input shape:
        `(batch, time, *frame_shape)`, or `(batch, *frame_shape, time)` with
        `time_axis=-1`.

    Output shape:
        `(batch, time, *layer_output_shape)`.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from keras_vgg4d import FrameFold
    >>> layer = FrameFold(keras.layers.Conv2D(4, 3, padding="same"))
    >>> clips = np.zeros((2, 5, 32, 32, 3), "float32")
    >>> tuple(layer(clips).shape)
    (2, 5, 32, 32, 4)
    >>> time_last = np.zeros((2, 32, 32, 3, 5), "float32")
    >>> tuple(FrameFold(keras.layers.GlobalAveragePooling2D(),
    ...                 time_axis=-1)(time_last).shape)
    (2, 5, 3)
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        time_axis: int = 1,
        frame_chunk: int | None = None,
        **kwargs,
    ):
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                "FrameFold expects a `keras.layers.Layer` or `keras.Model` to "
                f"wrap, received: layer={layer!r}"
            )
        super().__init__(layer, **kwargs)
        self.time_axis = validate_time_axis(time_axis)
        self.frame_chunk = validate_frame_chunk(frame_chunk, "FrameFold")
        self.supports_masking = True

    def _frame_shape(self, input_shape):
        """Returns `(time_major_shape, folded_frame_shape)`."""
        input_shape = tuple(input_shape)
        if len(input_shape) < 3:
            raise ValueError(
                "FrameFold expects input of rank >= 3, (batch, time, ...) "
                f"with time_axis={self.time_axis}; received input shape "
                f"{input_shape} (rank {len(input_shape)}). Add a time axis, "
                "e.g. `x[:, None]` for single frames."
            )
        shape = to_time_major_shape(input_shape, self.time_axis)
        batch, time = shape[0], shape[1]
        steps = time if self.frame_chunk is None else self.frame_chunk
        if time is not None and self.frame_chunk is not None:
            steps = min(time, self.frame_chunk)
        folded = None if batch is None or steps is None else batch * steps
        return shape, (folded, *shape[2:])

    def build(self, input_shape):
        _, frame_shape = self._frame_shape(input_shape)
        if not self.layer.built:
            self.layer.build(frame_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        shape, frame_shape = self._frame_shape(input_shape)
        frame_output = self.layer.compute_output_shape(frame_shape)
        return (shape[0], shape[1], *tuple(frame_output)[1:])

    def compute_output_spec(self, inputs, training=None, mask=None):
        # The wrapped layer decides the output dtype (it may run under another
        # dtype policy than this wrapper), so ask it rather than assuming ours.
        _, frame_shape = self._frame_shape(inputs.shape)
        frame_spec = self.layer.compute_output_spec(
            keras.KerasTensor(frame_shape, dtype=inputs.dtype)
        )
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=frame_spec.dtype
        )

    def compute_mask(self, inputs, mask=None):
        return mask

    def _call_frames(self, frames, training, frame_mask):
        kwargs = {}
        if training is not None and self.layer._call_has_training_arg:
            kwargs["training"] = training
        if frame_mask is not None and self.layer._call_has_mask_arg:
            kwargs["mask"] = frame_mask
        return self.layer(frames, **kwargs)

    def call(self, inputs, training=None, mask=None):
        x = to_time_major(inputs, self.time_axis)
        frame_dims = tuple(x.shape[2:])
        if any(d is None for d in frame_dims):
            raise ValueError(
                "FrameFold expects every axis but batch and time to be known, "
                f"received input shape {tuple(inputs.shape)}."
            )
        dynamic = ops.shape(x)
        batch, time = dynamic[0], dynamic[1]
        if self.frame_chunk is None:
            frames = ops.reshape(x, (-1, *frame_dims))
            frame_mask = None if mask is None else ops.reshape(mask, (-1,))
            y = self._call_frames(frames, training, frame_mask)
            return ops.reshape(y, (batch, time, *tuple(y.shape[1:])))
        return self._call_chunked(x, batch, time, training, mask)

    def _call_chunked(self, x, batch, time, training, mask):
        """Runs `frame_chunk` time steps per call in a sequential loop."""
        chunk = self.frame_chunk
        frame_dims = tuple(x.shape[2:])
        num_chunks = (time + chunk - 1) // chunk
        pad = num_chunks * chunk - time
        paddings = [[0, 0], [0, pad]] + [[0, 0]] * len(frame_dims)
        x = tf.pad(x, paddings)
        # (batch, chunks, chunk, ...) -> (chunks, batch * chunk, ...)
        x = tf.reshape(x, (batch, num_chunks, chunk, *frame_dims))
        perm = (1, 0, 2, *range(3, 3 + len(frame_dims)))
        x = tf.reshape(tf.transpose(x, perm), (num_chunks, -1, *frame_dims))
        if mask is not None:
            mask = tf.pad(tf.cast(mask, "bool"), [[0, 0], [0, pad]])
            mask = tf.reshape(mask, (batch, num_chunks, chunk))
            mask = tf.reshape(tf.transpose(mask, (1, 0, 2)), (num_chunks, -1))

        def step(i):
            frame_mask = None if mask is None else mask[i]
            return self._call_frames(x[i], training, frame_mask)

        # The first chunk runs outside the loop and tells the loop the
        # output's dtype and shape; the rest run one after another.
        first = step(0)
        out_dims = tuple(first.shape[1:])
        outputs = tf.TensorArray(
            first.dtype, size=num_chunks, element_shape=(None, *out_dims)
        ).write(0, first)
        _, outputs = tf.while_loop(
            lambda i, _: i < num_chunks,
            lambda i, acc: (i + 1, acc.write(i, step(i))),
            (tf.constant(1), outputs),
            parallel_iterations=1,
        )
        y = outputs.stack()
        # (chunks, batch * chunk, ...) -> (batch, chunks * chunk, ...)
        y = tf.reshape(y, (num_chunks, batch, chunk, *out_dims))
        out_perm = (1, 0, 2, *range(3, 3 + len(out_dims)))
        y = tf.reshape(tf.transpose(y, out_perm), (batch, -1, *out_dims))
        return y[:, :time]

    def get_config(self):
        config = super().get_config()
        config.update(
            {"time_axis": self.time_axis, "frame_chunk": self.frame_chunk}
        )
        return config

