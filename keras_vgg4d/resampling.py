"""Affine resampling of many 2-D planes that share one transform.

`scipy.ndimage.affine_transform` resamples one array at a time, and for
each output pixel it maps the coordinate, finds the taps and weighs them
again. The planes of a clip (every frame and channel) share one transform,
so for orders 0 and 1 this module computes each output pixel's taps and
weights once and gathers all planes with them: numpy's `take` on rows of a
`(pixels, planes)` array. It follows SciPy's algorithm step for step (map
the coordinate into the input with the boundary mode, take
`floor(coordinate)` and its neighbour, or `floor(coordinate + 0.5)` for
order 0, extend taps past the edge with the mode's rule), so it gives
SciPy's output for every mode SciPy has: the tests compare it with
`scipy.ndimage.affine_transform` for each mode, order and dtype. Higher
orders need SciPy's spline prefilter: `affine_resample` calls SciPy for
them, plane by plane.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

# The orders for which the taps are computed here; above, SciPy interpolates.
SHARED_TAP_ORDERS = (0, 1)


def _map_into_input(coordinates: np.ndarray, size: int, mode: str):
    """SciPy's `map_coordinate`: folds coordinates outside `[0, size - 1]`
    back in by the boundary `mode`.

    Returns the mapped coordinates and a mask of those that take `cval`
    (`constant` past the edge, `grid-constant` a whole pixel past it).
    """
    c = np.array(coordinates, dtype=np.float64, copy=True)
    if mode == "constant":
        return c, (c < 0) | (c > size - 1)
    if mode == "grid-constant":
        return c, (c <= -1) | (c >= size)
    no_cval = np.zeros(c.shape, bool)
    below, above = c < 0, c > size - 1
    if size <= 1 or mode == "nearest":
        c[below] = 0
        c[above] = size - 1
        return c, no_cval
    x, y = c[below], c[above]
    if mode == "mirror":
        period = 2 * size - 2
        x = period * np.trunc(-x / period) + x
        x = np.where(x <= 1 - size, x + period, -x)
        y = y - period * np.trunc(y / period)
        y = np.where(y >= size, period - y, y)
    elif mode in ("reflect", "grid-mirror"):
        period = 2 * size
        x = np.where(x < -period, period * np.trunc(-x / period) + x, x)
        x = np.where(x < -size, x + period, -x - 1)
        y = y - period * np.trunc(y / period)
        y = np.where(y >= size, period - y - 1, y)
    elif mode == "wrap":
        period = size - 1
        x = x + period * (np.trunc(-x / period) + 1)
        y = y - period * np.trunc(y / period)
    elif mode == "grid-wrap":
        x = x + size * (np.trunc((-1 - x) / size) + 1)
        y = y - size * np.trunc(y / size)
    else:
        raise ValueError(f"Unknown boundary mode {mode!r}.")
    c[below], c[above] = x, y
    return c, no_cval


def _extend_taps(taps: np.ndarray, size: int, mode: str):
    """Input indices for taps past the edge, by SciPy's rule for `mode`.

    Returns the indices and a mask of taps that read `cval` instead
    (`grid-constant` only).
    """
    outside = (taps < 0) | (taps >= size)
    if not outside.any():
        return taps, None
    if mode == "grid-constant":
        return np.clip(taps, 0, size - 1), outside
    if size <= 1 or mode == "nearest":
        return np.clip(taps, 0, size - 1), None
    if mode == "grid-wrap":
        return np.mod(taps, size), None
    if mode in ("reflect", "grid-mirror"):
        folded = np.mod(taps, 2 * size)
        return np.where(folded >= size, 2 * size - 1 - folded, folded), None
    # mirror, and the taps of wrap and constant that fall on the edge with
    # weight 0: whole-sample mirror.
    folded = np.mod(taps, 2 * size - 2)
    return np.where(folded >= size, 2 * size - 2 - folded, folded), None


class _AxisTaps(NamedTuple):
    """The taps of every output pixel along one axis."""

    indices: list  # `order + 1` arrays of input indices
    weights: tuple  # their weights
    reads_cval: list  # per tap: mask of pixels it reads `cval` for, or None
    is_cval: np.ndarray  # pixels that are `cval` altogether

    def taps(self):
        """`(indices, weights, reads_cval)` of each tap."""
        return zip(self.indices, self.weights, self.reads_cval)


def _axis_taps(coordinates, size, order, mode) -> _AxisTaps:
    mapped, is_cval = _map_into_input(coordinates, size, mode)
    if order == 0:
        first = np.floor(mapped + 0.5).astype(np.intp)
        offsets, weights = (0,), (np.ones_like(mapped),)
    else:
        first = np.floor(mapped).astype(np.intp)
        fraction = mapped - first
        offsets, weights = (0, 1), (1.0 - fraction, fraction)
    extended = [_extend_taps(first + offset, size, mode) for offset in offsets]
    return _AxisTaps(
        indices=[index for index, _ in extended],
        weights=weights,
        reads_cval=[reads_cval for _, reads_cval in extended],
        is_cval=is_cval,
    )


def _scipy_per_plane(planes, matrix, order, mode, cval, output_dtype):
    """`scipy.ndimage.affine_transform` on each plane, made contiguous
    first: strided `(height, width)` views resample ~1.7x slower."""
    contiguous = np.ascontiguousarray(np.moveaxis(planes, -1, 0))
    out = np.empty(contiguous.shape, output_dtype)
    for k, plane in enumerate(contiguous):
        ndimage.affine_transform(
            plane,
            matrix[:2, :2],
            offset=matrix[:2, 2],
            output=out[k],
            order=order,
            mode=mode,
            cval=cval,
        )
    return np.moveaxis(out, 0, -1)


def working_dtype(dtype) -> np.dtype:
    """The float dtype to compute on values of `dtype` in: float32 if it
    holds them exactly (uint8/16, int8/16, float16/32), else float64 (int32,
    float64 and wider), the dtype SciPy computes everything in."""
    return np.dtype(
        np.float32 if np.can_cast(dtype, np.float32) else np.float64
    )


def cast_like_scipy(values: np.ndarray, dtype) -> np.ndarray:
    """`values` cast to `dtype` the way scipy.ndimage's interpolation writes
    its float results into an integer output.

    SciPy's rule (`CASE_INTERP_OUT_INT` and `CASE_INTERP_OUT_UINT` in
    `scipy/ndimage/src/ni_interpolation.c`, used by `affine_transform`,
    `map_coordinates`, `shift`, `zoom` and `rotate`): add 0.5 with the sign
    of the value, saturate at the dtype's range, then truncate. That rounds
    half away from zero (0.5 -> 1, 2.5 -> 3, -2.5 -> -3), unlike `np.rint`'s
    half to even, and saturates (300 -> 255 and -0.7 -> 0 in uint8). Float
    dtypes are a plain cast. Every ScipyAugment path that turns floats into
    integers calls this. May overwrite `values`.

    Example:

    >>> import numpy as np
    >>> cast_like_scipy(np.array([-2.5, 0.5, 2.5, 300.0]), "int16").tolist()
    [-3, 1, 3, 300]
    >>> cast_like_scipy(np.array([-0.7, 2.5, 300.0]), "uint8").tolist()
    [0, 3, 255]
    """
    dtype = np.dtype(dtype)
    if values.dtype == dtype or dtype.kind not in "iu":
        return values.astype(dtype, copy=False)
    # float32 only if it holds the dtype's range (saturation bounds) exactly.
    floats = (
        np.float32
        if values.dtype == np.float32 and np.can_cast(dtype, np.float32)
        else np.float64
    )
    values = values.astype(floats, copy=False)
    info = np.iinfo(dtype)
    low, high = floats(info.min), floats(info.max)
    if int(high) > info.max:  # (u)int64: float64(2**63 - 1) is 2**63
        high = np.nextafter(high, floats(0))
    # SciPy adds 0.5 in float64, which is exact for a float32 value; a
    # float32 addition can round up (0.49999997 + 0.5 == 1.0), the float32
    # just below 0.5 cannot, and gives SciPy's result for every float32.
    half = floats(0.5)
    if floats is np.float32:
        half = np.nextafter(half, floats(0))
    if dtype.kind == "u":  # below 0.5 saturates to 0 whichever way it goes
        np.add(values, half, out=values)
    else:  # np.copysign is ~6x slower than this
        np.add(values, np.sign(values) * half, out=values)
    np.clip(values, low, high, out=values)
    return values.astype(dtype)  # truncates toward zero, as C does


def affine_resample(
    planes: np.ndarray,
    matrix: np.ndarray,
    *,
    order: int = 1,
    mode: str = "reflect",
    cval: float = 0.0,
    output_dtype=None,
) -> np.ndarray:
    """Resamples a stack of 2-D planes with one affine map, as SciPy does.

    Equal, up to float32 rounding, to calling
    `scipy.ndimage.affine_transform(planes[..., k], matrix[:2, :2],
    offset=matrix[:2, 2], order=order, mode=mode, cval=cval)` for each `k`.

    Args:
        planes: `(height, width, planes)` array of a real dtype.
        matrix: `(3, 3)` (or `(2, 3)`) homogeneous matrix mapping an output
            `(row, col, 1)` to the input position it samples.
        order: Spline order, 0 to 5. 0 and 1 share taps across planes;
            2 to 5 call `scipy.ndimage.affine_transform` per plane.
        mode: A `scipy.ndimage` boundary mode.
        cval: The value past the edge in `constant` and `grid-constant`.
        output_dtype: The dtype of the result; defaults to `planes.dtype`.
            Integer outputs are rounded and saturated as SciPy does
            (`cast_like_scipy`).

    Returns:
        A `(height, width, planes)` array of `output_dtype`.

    Example:

    >>> import numpy as np
    >>> from scipy import ndimage
    >>> planes = np.random.default_rng(0).random((16, 16, 3))
    >>> turn = np.array([[0.8, -0.6, 6.0], [0.6, 0.8, -3.0], [0, 0, 1]])
    >>> ours = affine_resample(planes, turn, mode="reflect")
    >>> scipys = ndimage.affine_transform(
    ...     planes[..., 1], turn[:2, :2], offset=turn[:2, 2], order=1,
    ...     mode="reflect")
    >>> bool(np.allclose(ours[..., 1], scipys))
    True
    """
    planes = np.asarray(planes)
    matrix = np.asarray(matrix, dtype=np.float64)
    output_dtype = np.dtype(output_dtype or planes.dtype)
    if order not in SHARED_TAP_ORDERS:
        return _scipy_per_plane(planes, matrix, order, mode, cval,
                                output_dtype)
    height, width, count = planes.shape
    rows, cols = np.meshgrid(
        np.arange(height, dtype=np.float64),
        np.arange(width, dtype=np.float64),
        indexing="ij",
    )
    # As SciPy sums it: row * m[0] + col * m[1] + offset.
    in_rows = (rows * matrix[0, 0] + cols * matrix[0, 1]) + matrix[0, 2]
    in_cols = (rows * matrix[1, 0] + cols * matrix[1, 1]) + matrix[1, 2]
    row_taps = _axis_taps(in_rows.ravel(), height, order, mode)
    col_taps = _axis_taps(in_cols.ravel(), width, order, mode)

    work_dtype = working_dtype(planes.dtype)
    # One cast up front: products of matching dtypes run without buffering.
    flat = planes.reshape(height * width, count).astype(work_dtype)
    total = np.zeros((height * width, count), work_dtype)
    term = np.empty((height * width, count), work_dtype)
    cval_weight = np.zeros(height * width, np.float64)
    for r_index, r_weight, r_cval in row_taps.taps():
        for c_index, c_weight, c_cval in col_taps.taps():
            weight = r_weight * c_weight
            masks = [mask for mask in (r_cval, c_cval) if mask is not None]
            if masks:
                reads_cval = np.logical_or.reduce(masks)
                cval_weight += np.where(reads_cval, weight, 0.0)
                weight = np.where(reads_cval, 0.0, weight)
            np.take(flat, r_index * width + c_index, axis=0, out=term,
                    mode="clip")
            term *= weight.astype(work_dtype)[:, None]
            total += term
    if cval and cval_weight.any():
        total += (cval_weight * cval).astype(work_dtype)[:, None]
    is_cval = row_taps.is_cval | col_taps.is_cval
    if is_cval.any():
        total[is_cval] = cval
    return cast_like_scipy(total, output_dtype).reshape(height, width, count)
