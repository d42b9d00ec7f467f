"""`FrameFold`: run a 2D layer on every frame by folding time into the batch."""

from __future__ import annotations

import keras
from keras import ops

from keras_vgg4d.backend import tensorflow_if_loaded
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


def _fold(x):
    """`(batch, time, *rest)` -> `(batch * time, *rest)`; `rest` may be
    unknown."""
    return ops.reshape(x, (-1, *ops.shape(x)[2:]))


def _unfold(y, batch, time):
    """`(batch * time, *rest)` -> `(batch, time, *rest)`."""
    return ops.reshape(y, (batch, time, *ops.shape(y)[1:]))


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class _FoldTime(keras.Operation):
    """`_fold` as an operation: in a functional model, masks are computed by
    the operations that made them, so the sizes must be read at run time."""

    def call(self, x):
        return _fold(x)

    def compute_output_spec(self, x):
        batch, time, *rest = x.shape
        folded = None if batch is None or time is None else batch * time
        return keras.KerasTensor((folded, *rest), dtype=x.dtype)


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class _UnfoldTime(keras.Operation):
    """`(batch * time, *rest)` -> `(batch, time, *rest)` with the batch and
    time of `like`, read at run time."""

    def call(self, y, like):
        batch, time = ops.shape(like)[:2]
        return _unfold(y, batch, time)

    def compute_output_spec(self, y, like):
        shape = (*like.shape[:2], *y.shape[1:])
        return keras.KerasTensor(shape, dtype=y.dtype)


def _to_chunks(x, batch, num_chunks, chunk):
    """`(batch, time, *rest)` -> `(num_chunks, batch * chunk, *rest)`, time
    zero-padded to `num_chunks * chunk` steps."""
    rank = len(x.shape)
    rest = ops.shape(x)[2:]
    pad = num_chunks * chunk - ops.shape(x)[1]
    x = ops.pad(x, [[0, 0], [0, pad]] + [[0, 0]] * (rank - 2))
    x = ops.reshape(x, (batch, num_chunks, chunk, *rest))
    x = ops.transpose(x, (1, 0, 2, *range(3, rank + 1)))
    return ops.reshape(x, (num_chunks, -1, *rest))


def _from_chunks(y, batch, num_chunks, chunk, time):
    """`(num_chunks, batch * chunk, *rest)` -> `(batch, time, *rest)`."""
    rank = len(y.shape)
    rest = ops.shape(y)[2:]
    y = ops.reshape(y, (num_chunks, batch, chunk, *rest))
    y = ops.transpose(y, (1, 0, 2, *range(3, rank + 1)))
    return ops.reshape(y, (batch, num_chunks * chunk, *rest))[:, :time]


def _frame_spec(layer):
    """The one `InputSpec` that `layer` declares (for a `Sequential`, its
    first layer's), or None."""
    spec = layer.input_spec
    if spec is None and isinstance(layer, keras.Sequential) and layer.layers:
        return _frame_spec(layer.layers[0])
    if isinstance(spec, (list, tuple)):
        return spec[0] if len(spec) == 1 else None
    return spec


def _rank_text(spec):
    """What an `InputSpec` asks of the rank, e.g. `"rank >= 4"`."""
    if spec.ndim is not None:
        return f"rank {spec.ndim}"
    if spec.min_ndim is not None and spec.max_ndim is not None:
        return f"rank {spec.min_ndim} to {spec.max_ndim}"
    if spec.min_ndim is not None:
        return f"rank >= {spec.min_ndim}"
    return f"rank <= {spec.max_ndim}"


def _squeeze(shape):
    """`shape` without a last axis of size 1."""
    shape = tuple(shape)
    return shape[:-1] if shape and shape[-1] == 1 else shape


def _rank_fits(spec, shape) -> bool:
    """Whether `shape` has a rank `spec` accepts, the way Keras checks it
    (with `allow_last_axis_squeeze`, the ranks are compared without a last
    axis of size 1, and not at all without `spec.shape`)."""
    rank = len(shape)
    if spec.ndim is not None and rank != spec.ndim:
        if not spec.allow_last_axis_squeeze:
            return False
        if spec.shape is not None and len(_squeeze(shape)) != len(
            _squeeze(spec.shape)
        ):
            return False
    if spec.min_ndim is not None and rank < spec.min_ndim:
        return False
    return spec.max_ndim is None or rank <= spec.max_ndim


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class FrameFold(keras.layers.Wrapper):
    """Runs a 2D layer or model on every frame of a clip in one batched call.

    A drop-in for `keras.layers.TimeDistributed`. Where `TimeDistributed`
    unrolls one call of the wrapped layer per frame (or vectorizes over an
    unknown time axis), `FrameFold` reshapes `(batch, time, ...)` to
    `(batch * time, ...)`, calls the wrapped layer once, and reshapes back.
    The batch, the time and the frame sizes may be unknown (only the rank
    must be known); `compute_output_shape` leaves them unknown, as
    `TimeDistributed` does.

    With `frame_chunk=N` the frames are processed `N` clip-steps at a time
    (that is, `batch * N` frames per call of the wrapped layer) in a
    sequential loop, which bounds peak memory on long clips and gives the
    same result. The loop is a `tf.while_loop` on TensorFlow (time may be
    unknown) and a Python loop over the chunks on JAX and PyTorch, where
    every size is known when the layer runs.

    A mask of shape `(batch, time)`, or `(batch, time, ...)` like the masks
    of `keras.layers.Masking`, must match the input's batch and time sizes
    (of the time-major input, so with `time_axis=-1` the mask is still
    `(batch, time)`). Otherwise `FrameFold` raises a `ValueError` naming
    both shapes, as `TimeDistributed` does; sizes unknown while tracing are
    checked when the graph runs (`tf.errors.InvalidArgumentError`; XLA,
    e.g. `jit_compile=True`, drops that run-time check). On JAX and
    PyTorch every size is known when the layer runs, so the check is the
    `ValueError`. The mask is given
    folded to `(batch * time, ...)` to a wrapped layer that takes a `mask`.

    How `FrameFold` differs from `TimeDistributed` (Keras 3.15):

    - Output mask: `TimeDistributed` returns the input mask unchanged.
      `FrameFold` asks the wrapped layer's `compute_mask`: a mask the
      wrapped layer makes (e.g. `Embedding(mask_zero=True)`, or a `LSTM`
      with `return_sequences=True` given a `(batch, time, steps)` mask)
      comes back unfolded as `(batch, time, ...)`, and-ed with the time
      mask; when the wrapped layer returns no mask (e.g. a `LSTM` without
      `return_sequences`), the input mask is reduced to `(batch, time)`.
      Wrapped layers that keep the default `compute_mask` (`Dense`,
      `Conv2D`, models) get the input mask back unchanged, as with
      `TimeDistributed`.
    - Statistics over the batch see all frames of all clips (or of one
      chunk) at once: `BatchNormalization` in training normalizes over
      `batch * time` frames, where `TimeDistributed` normalizes each time
      step over the batch. Random layers (`Dropout`) draw differently.
    - Before building, the folded frame rank is checked against the wrapped
      layer's `input_spec`, and a mismatch raises a `ValueError` that says
      which axis was read as time (`TimeDistributed` fails inside the
      wrapped layer).
    - Nesting: `FrameFold(FrameFold(layer))` runs `layer` on the frames of
      `(batch, time, inner_time, ...)` input; give it a mask of shape
      `(batch, time, inner_time)`, since the inner `FrameFold` receives the
      mask folded to `(batch * time, inner_time)` (a `(batch, time)` mask
      reaches it as `(batch * time,)`, and it raises a `ValueError`, as
      nested `TimeDistributed` layers do).
    - As with `TimeDistributed`: an explicit `training` is passed to the
      wrapped layer, otherwise the wrapped layer inherits it from the
      enclosing call (in a functional model, the model's `training` wins,
      as for any Keras layer). Under a mixed dtype policy the inputs are
      cast to the compute dtype, and the wrapped layer's own policy decides
      the output dtype.

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
        mask: Optional tensor of shape `(batch, time)` or
            `(batch, time, ...)`, whatever `time_axis` is.

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
        frame_shape = (folded, *shape[2:])
        self._check_frame_rank(input_shape, frame_shape)
        return shape, frame_shape

    def _check_frame_rank(self, input_shape, frame_shape):
        """Raises `ValueError` if the wrapped layer's `input_spec` rules out
        frames of `frame_shape`, saying which axis was read as time."""
        spec = _frame_spec(self.layer)
        if spec is None or _rank_fits(spec, frame_shape):
            return
        layout = "(batch, time, ...)"
        if self.time_axis == -1:
            layout = "(batch, ..., time)"
        expected = _rank_text(spec)
        clip_rank = (spec.ndim or spec.min_ndim or spec.max_ndim) + 1
        raise ValueError(
            f"FrameFold read axis {self.time_axis} (size "
            f"{input_shape[self.time_axis]}) of its input of shape "
            f"{input_shape} as time, leaving frames of shape "
            f"{frame_shape[1:]} (rank {len(frame_shape) - 1} + batch); "
            f"{type(self.layer).__name__} '{self.layer.name}' expects inputs "
            f"of {expected}, batch included. Pass clips of rank {clip_rank}, "
            f"{layout} with time_axis={self.time_axis}; for single frames, "
            "add a time axis."
        )

    def _check_mask(self, input_shape, mask):
        """Raises `ValueError` unless the static shape of `mask` starts with
        the (time-major) input's `(batch, time)`."""
        shape = to_time_major_shape(input_shape, self.time_axis)
        mask_shape = tuple(mask.shape)
        fits = len(mask_shape) >= 2 and all(
            m is None or s is None or m == s
            for m, s in zip(mask_shape, shape[:2])
        )
        if fits:
            return
        nested = ""
        if len(mask_shape) < 2:
            nested = (
                " Inside another FrameFold or TimeDistributed, this layer "
                "receives the outer mask folded: give the outer layer a "
                "mask of shape (batch, time, inner_time)."
            )
        raise ValueError(
            f"FrameFold received a mask of shape {mask_shape} that does not "
            f"fit its input of shape {tuple(input_shape)}: with "
            f"time_axis={self.time_axis} the mask must be (batch, time) = "
            f"{shape[:2]}, or (batch, time, ...).{nested}"
        )

    def _assert_mask(self, x, mask):
        """In a TensorFlow graph, returns `x` behind a run-time check that
        `mask` starts with `x`'s `(batch, time)`; otherwise `x` unchanged
        (other backends know every size, which `_check_mask` checked)."""
        tf = tensorflow_if_loaded()
        static = (*tuple(x.shape)[:2], *tuple(mask.shape)[:2])
        if tf is None or tf.executing_eagerly() or None not in static:
            return x
        check = tf.debugging.assert_equal(
            tf.shape(mask)[:2],
            tf.shape(x)[:2],
            message=(
                "FrameFold received a mask whose (batch, time) differs from "
                "that of its time-major input; mask shape, then input shape:"
            ),
            name="frame_fold_mask_check",
        )
        with tf.control_dependencies([check]):
            return tf.identity(x)

    def build(self, input_shape):
        _, frame_shape = self._frame_shape(input_shape)
        if not self.layer.built:
            self.layer.build(frame_shape)

    def compute_output_shape(self, input_shape):
        shape, frame_shape = self._frame_shape(input_shape)
        frame_output = self.layer.compute_output_shape(frame_shape)
        return (shape[0], shape[1], *tuple(frame_output)[1:])

    def compute_output_spec(self, inputs, training=None, mask=None):
        # The wrapped layer decides the output dtype (it may run under another
        # dtype policy than this wrapper), so ask it rather than assuming ours.
        _, frame_shape = self._frame_shape(inputs.shape)
        if mask is not None:
            self._check_mask(inputs.shape, mask)
        frame_spec = self.layer.compute_output_spec(
            keras.KerasTensor(frame_shape, dtype=inputs.dtype)
        )
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=frame_spec.dtype
        )

    def compute_mask(self, inputs, mask=None):
        if getattr(self.layer.compute_mask, "_is_default", False):
            return mask
        x = to_time_major(inputs, self.time_axis)
        frame_mask = None if mask is None else _FoldTime()(mask)
        inner = self.layer.compute_mask(_FoldTime()(x), frame_mask)
        if mask is not None and len(mask.shape) > 2:
            mask = ops.any(mask, axis=tuple(range(2, len(mask.shape))))
        if inner is None:
            return mask
        inner = _UnfoldTime()(inner, x)
        if mask is None:
            return inner
        for _ in range(len(inner.shape) - 2):
            mask = ops.expand_dims(mask, -1)
        return ops.logical_and(inner, mask)

    def _call_frames(self, frames, training, frame_mask):
        kwargs = {}
        if training is not None and self.layer._call_has_training_arg:
            kwargs["training"] = training
        if frame_mask is not None and self.layer._call_has_mask_arg:
            kwargs["mask"] = frame_mask
        return self.layer(frames, **kwargs)

    def call(self, inputs, training=None, mask=None):
        # The rank checks, also when the layers were built on other shapes.
        self._frame_shape(inputs.shape)
        x = to_time_major(inputs, self.time_axis)
        if mask is not None:
            mask = ops.convert_to_tensor(mask)
            self._check_mask(inputs.shape, mask)
            x = self._assert_mask(x, mask)
        batch, time = ops.shape(x)[:2]
        if self.frame_chunk is None:
            frame_mask = None if mask is None else _fold(mask)
            y = self._call_frames(_fold(x), training, frame_mask)
            return _unfold(y, batch, time)
        return self._call_chunked(x, batch, time, training, mask)

    def _call_chunked(self, x, batch, time, training, mask):
        """Runs `frame_chunk` time steps per call in a sequential loop."""
        chunk = self.frame_chunk
        num_chunks = (time + chunk - 1) // chunk
        # (batch, time, ...) -> (chunks, batch * chunk, ...)
        x = _to_chunks(x, batch, num_chunks, chunk)
        if mask is not None:
            mask = _to_chunks(mask, batch, num_chunks, chunk)

        tf = tensorflow_if_loaded()
        if tf is None:
            return self._loop_chunks(x, mask, batch, num_chunks, time, training)

        def step(i):
            frame_mask = None if mask is None else mask[i]
            return self._call_frames(x[i], training, frame_mask)

        # The first chunk runs outside the loop and tells the loop the
        # output's dtype and shape; the rest run one after another.
        first = step(0)
        outputs = tf.TensorArray(first.dtype, size=num_chunks).write(0, first)
        _, outputs = tf.while_loop(
            lambda i, _: i < num_chunks,
            lambda i, acc: (i + 1, acc.write(i, step(i))),
            (tf.constant(1), outputs),
            parallel_iterations=1,
        )
        return _from_chunks(outputs.stack(), batch, num_chunks, chunk, time)

    def _loop_chunks(self, x, mask, batch, num_chunks, time, training):
        """The chunks one after another, in a Python loop: on JAX and
        PyTorch every size is known, so `num_chunks` is a number. (A
        `lax.scan` would break wrapped layers that update state, such as
        `Dropout`'s seed or `BatchNormalization`'s moving statistics.)"""
        outputs = [
            self._call_frames(
                x[i], training, None if mask is None else mask[i]
            )
            for i in range(num_chunks)
        ]
        return _from_chunks(
            ops.stack(outputs), batch, num_chunks, self.frame_chunk, time
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"time_axis": self.time_axis, "frame_chunk": self.frame_chunk}
        )
        return config
