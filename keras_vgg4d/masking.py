"""Frame masks and masked reductions over time and space."""

from __future__ import annotations

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
    if mask is None:
        return ops.mean(values, axis=1)
    weights = ops.cast(mask, values.dtype)
    weights = ops.reshape(
        weights, (*ops.shape(weights), *([1] * (len(values.shape) - 2)))
    )
    total = ops.sum(values * weights, axis=1)
    count = ops.maximum(ops.sum(weights, axis=1), ops.cast(1, values.dtype))
    return total / count
