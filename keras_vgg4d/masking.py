"""Frame masks and masked reductions over time and space."""

from __future__ import annotations

import keras
from keras import ops


def nonzero_frames(clips):
    """`(batch, time)` mask, true for frames that are not entirely zero.

    The loaders pad short clips with all-zero frames, so on raw clips this
    marks the real frames, the way `keras.layers.Masking(0.0)` marks
    timesteps.
    """
    rank = len(clips.shape)
    return ops.any(ops.not_equal(clips, 0), axis=tuple(range(2, rank)))


def spatial_pool(maps, pooling: str):
    """Pools `(batch, time, h, w, c)` maps over h and w to `(batch, time, c)`."""
    if pooling == "avg":
        return ops.mean(maps, axis=(2, 3))
    return ops.max(maps, axis=(2, 3))


def masked_mean_over_time(values, mask=None):
    """Mean of `(batch, time, ...)` over time, leaving out masked frames.

    A clip whose frames are all masked gets zeros rather than NaN.
    """
    values = ops.convert_to_tensor(values)
    if mask is None:
        return ops.mean(values, axis=1)
    weights = ops.cast(mask, values.dtype)
    weights = ops.reshape(
        weights, (*ops.shape(weights), *([1] * (len(values.shape) - 2)))
    )
    total = ops.sum(values * weights, axis=1)
    count = ops.maximum(ops.sum(weights, axis=1), ops.cast(1, values.dtype))
    return total / count



def masked_lstm(
    inputs,
    mask,
    kernel,
    recurrent_kernel,
    bias=None,
    go_backwards: bool = False,
    return_sequences: bool = False,
):
    """A Keras LSTM's masked computation, in ops every exporter converts.

    Computes what `keras.layers.LSTM` (default `tanh` and `sigmoid`
    activations, gates in Keras' order i, f, c, o) computes from the same
    weights: at a masked step the state is carried over unchanged, as
    Keras' `where(mask, new_state, old_state)` does.

    On TensorFlow the recurrence is one `while` loop over time that carries
    only the step, the state and, with `return_sequences`, a fixed-shape
    output tensor written with `where`: no `TensorList`, so tf2onnx,
    OpenVINO and the LiteRT converter (built-in ops only) all convert it,
    with batch and time unknown. On JAX and PyTorch, where the number of
    steps is always known, it is `keras.ops.scan` over time (`lax.scan` on
    JAX), which reverse-mode differentiation goes through.

    Args:
        inputs: `(batch, time, features)`, at least one time step.
        mask: `None`, or boolean `(batch, time)`, true for real steps.
        kernel: `(features, 4 * units)` input kernel.
        recurrent_kernel: `(units, 4 * units)` recurrent kernel.
        bias: `(4 * units,)` bias, or `None`.
        go_backwards: Whether to read the steps last to first (the
            backward half of `keras.layers.Bidirectional`).
        return_sequences: Whether to return the output of every step
            `(batch, time, units)`, each at the step's own position (also
            when `go_backwards`), instead of the last state `(batch, units)`.
            At a masked step the output is the carried state.

    Returns:
        `(batch, units)`, or `(batch, time, units)` with `return_sequences`.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d.masking import masked_lstm
    >>> x = np.ones((2, 5, 3), "float32")
    >>> kernel, recurrent = np.ones((3, 8), "float32"), np.eye(2, 8)
    >>> mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    >>> tuple(masked_lstm(x, mask, kernel, recurrent).shape)
    (2, 2)
    """
    lstm = (kernel, recurrent_kernel, bias, go_backwards)
    return masked_lstms(inputs, mask, [lstm], return_sequences)[0]


def _lstm_step(projected, h, c, recurrent_kernel):
    """One LSTM step from the step's projected input; the new `h`, `c`."""
    z = projected + ops.matmul(h, recurrent_kernel)
    z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
    c = ops.sigmoid(z_f) * c + ops.sigmoid(z_i) * ops.tanh(z_c)
    return ops.sigmoid(z_o) * ops.tanh(c), c


def _projected(inputs, kernel, bias):
    """The input part of every step at once: one large matmul."""
    projected = ops.matmul(inputs, ops.cast(kernel, inputs.dtype))
    if bias is not None:
        projected = projected + ops.cast(bias, inputs.dtype)
    return projected


def masked_lstms(inputs, mask, lstms, return_sequences: bool = False):
    """`masked_lstm` for several LSTMs over the same steps, in one loop.

    Both halves of a `Bidirectional` LSTM run in the same `while` loop (the
    backward one reading step `time - 1 - i` at iteration `i`): half the
    loops to convert and to run.

    Args:
        inputs: `(batch, time, features)`, at least one time step.
        mask: `None`, or boolean `(batch, time)`, true for real steps.
        lstms: `(kernel, recurrent_kernel, bias, go_backwards)` of each
            LSTM, as `masked_lstm` takes them.
        return_sequences: As for `masked_lstm`.

    Returns:
        A list of each LSTM's output, as `masked_lstm` returns it.
    """
    if mask is not None:
        mask = ops.cast(mask, "bool")
    if keras.backend.backend() != "tensorflow":
        return _scanned_lstms(inputs, mask, lstms, return_sequences)
    dtype = inputs.dtype
    time = ops.shape(inputs)[1]
    positions = ops.arange(time, dtype="int32")[None, :, None]
    prepared, carried = [], []
    for kernel, recurrent_kernel, bias, go_backwards in lstms:
        projected = _projected(inputs, kernel, bias)
        units = recurrent_kernel.shape[0]
        prepared.append((projected, ops.cast(recurrent_kernel, dtype),
                         go_backwards))
        state = ops.zeros_like(projected[:, 0, :units])
        carried += [state, state]
        if return_sequences:
            carried.append(ops.zeros_like(projected[:, :, :units]))
    width = 3 if return_sequences else 2  # carried tensors per LSTM

    def step(i, *carried):
        new = []
        for n, (projected, recurrent_kernel, backwards) in enumerate(prepared):
            h, c, *outputs = carried[n * width:(n + 1) * width]
            t = time - 1 - i if backwards else i
            new_h, new_c = _lstm_step(
                ops.take(projected, t, axis=1), h, c, recurrent_kernel
            )
            if mask is not None:
                real = ops.expand_dims(ops.take(mask, t, axis=1), -1)
                new_h = ops.where(real, new_h, h)
                new_c = ops.where(real, new_c, c)
            if outputs:
                here = ops.equal(positions, t)
                outputs = [ops.where(here, new_h[:, None, :], outputs[0])]
            new += [new_h, new_c, *outputs]
        return (i + 1, *new)

    start = ops.convert_to_tensor(0, "int32")
    final = ops.while_loop(lambda i, *_: i < time, step, (start, *carried))
    result = 3 if return_sequences else 1  # offset of each LSTM's output
    return [final[result + n * width] for n in range(len(prepared))]


def _scanned_lstms(inputs, mask, lstms, return_sequences):
    """`masked_lstms` as one `keras.ops.scan` over time-major steps.

    Every step reads each LSTM's projected input at that step (a backward
    LSTM's inputs are flipped in time first) and the step's mask; the
    carry is each LSTM's `(h, c)`. The number of steps is static, so
    `lax.scan` differentiates it, unlike a `while` loop.
    """
    steps, states = [], []
    real = None
    if mask is not None:
        real = ops.expand_dims(ops.transpose(mask, (1, 0)), -1)
    for kernel, recurrent_kernel, bias, go_backwards in lstms:
        projected = _projected(inputs, kernel, bias)
        if go_backwards:
            projected = ops.flip(projected, axis=1)
        steps.append(ops.transpose(projected, (1, 0, 2)))
        units = recurrent_kernel.shape[0]
        state = ops.zeros_like(projected[:, 0, :units])
        states.append((state, state))
    recurrent = [ops.cast(r, inputs.dtype) for _, r, _, _ in lstms]
    backwards = [go_backwards for *_, go_backwards in lstms]
    step_masks = [
        None if real is None else (ops.flip(real, axis=0) if back else real)
        for back in backwards
    ]

    def step(carried, xs):
        new_states, outputs = [], []
        for n, (h, c) in enumerate(carried):
            new_h, new_c = _lstm_step(xs[n], h, c, recurrent[n])
            if step_masks[n] is not None:
                new_h = ops.where(xs[len(carried) + n], new_h, h)
                new_c = ops.where(xs[len(carried) + n], new_c, c)
            new_states.append((new_h, new_c))
            outputs.append(new_h)
        return new_states, outputs

    # Each LSTM's steps, then (with a mask) each LSTM's mask, as `step`
    # reads them.
    xs = steps if real is None else steps + step_masks
    final, sequences = ops.scan(step, states, xs)
    if not return_sequences:
        return [h for h, _ in final]
    results = []
    for sequence, back in zip(sequences, backwards):
        sequence = ops.transpose(sequence, (1, 0, 2))
        results.append(ops.flip(sequence, axis=1) if back else sequence)
    return results
