"""The tensor layout contract: where time is, and converting it once.

Canonical layout is channels-last and time-major,
`(batch, time, height, width, channels)`. Many users hold
`(batch, height, width, channels, time)` instead; every public layer, the
model and the loaders take `time_axis` (`1` or `-1`) and call these helpers
at their entrance.
"""

from __future__ import annotations

from keras import ops

TIME_AXES = (1, -1)
# How messages name the layout each `time_axis` stands for.
LAYOUTS = {
    1: "(batch, time, height, width, channels)",
    -1: "(batch, height, width, channels, time)",
}


def validate_time_axis(time_axis: int) -> int:
    """Returns `time_axis` if it is `1` or `-1`, else raises `ValueError`."""
    if isinstance(time_axis, bool) or time_axis not in TIME_AXES:
        raise ValueError(
            f"`time_axis` must be 1 for {LAYOUTS[1]} or -1 for {LAYOUTS[-1]}; "
            f"received time_axis={time_axis!r}"
        )
    return int(time_axis)


def time_major_permutation(rank: int, time_axis: int) -> tuple[int, ...]:
    """The axis order that moves time from `time_axis` to axis 1."""
    if time_axis == 1:
        return tuple(range(rank))
    return (0, rank - 1, *range(1, rank - 1))


def to_time_major_shape(shape, time_axis: int) -> tuple:
    """`shape` reordered to `(batch, time, ...)`."""
    shape = tuple(shape)
    return tuple(shape[i] for i in time_major_permutation(len(shape), time_axis))


def to_time_major(x, time_axis: int):
    """`x` transposed to `(batch, time, ...)`; a no-op for `time_axis=1`."""
    if time_axis == 1:
        return x
    return ops.transpose(x, time_major_permutation(len(x.shape), time_axis))
