"""`affine_resample` gives what `scipy.ndimage.affine_transform` gives."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from scipy import ndimage

from keras_vgg4d import resampling
from keras_vgg4d.ndimage_ops import MODES
from keras_vgg4d.ndimage_ops import FrameParameters
from keras_vgg4d.ndimage_ops import sampling_matrix
from keras_vgg4d.resampling import affine_resample


def scipy_per_plane(planes, matrix, order, mode, cval):
    out = np.empty(planes.shape, planes.dtype)
    for k in range(planes.shape[-1]):
        ndimage.affine_transform(
            planes[..., k], matrix[:2, :2], offset=matrix[:2, 2],
            output=out[..., k], order=order, mode=mode, cval=cval,
        )
    return out


def random_planes(shape, dtype, seed=0):
    values = np.random.default_rng(seed).random(shape) * 255
    if np.dtype(dtype).kind == "i":
        values -= 100
    return values.astype(dtype)


def transforms(height, width, seed=0):
    """Random affine maps, and exact half- and whole-pixel shifts, zooms
    and flips, whose coordinates land on the ties of order 0 and on the
    edges."""
    rng = np.random.default_rng(seed)
    for k in range(6):
        yield sampling_matrix(
            FrameParameters(
                rotation=rng.uniform(-180, 180),
                zoom=rng.uniform(0.3, 2.0),
                shift_y=rng.uniform(-1.5, 1.5),
                shift_x=rng.uniform(-1.5, 1.5),
                shear=rng.uniform(-30, 30),
                flip_horizontal=bool(k % 2),
            ),
            height, width,
        )
    for k in range(6):
        yield sampling_matrix(
            FrameParameters(
                shift_y=rng.integers(-8, 9) / (2 * height),
                shift_x=rng.integers(-8, 9) / (2 * width),
                zoom=(1.0, 2.0, 0.5)[k % 3],
                flip_vertical=bool(k % 2),
            ),
            height, width,
        )


def assert_matches_scipy(got, expected, context=""):
    if expected.dtype.kind in "iu":
        # SciPy sums in float64, we in float32: a value a hair from .5 may
        # round the other way.
        difference = np.abs(got.astype(np.int64) - expected.astype(np.int64))
        assert difference.max() <= 1, context
        assert np.mean(difference > 0) < 0.01, context
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3,
                                   err_msg=context)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [0, 1])
def test_equals_scipy_for_every_mode_order_and_dtype(mode, order):
    for dtype, shape in itertools.product(
        ["uint8", "int16", "float32", "float64"],
        [(17, 23, 4), (32, 32, 2), (1, 5, 2), (2, 2, 3)],
    ):
        planes = random_planes(shape, dtype)
        for matrix in transforms(*shape[:2]):
            # Not 7.5: SciPy sums cval once per tap, we once per pixel, and
            # a tie would round either way.
            got = affine_resample(planes, matrix, order=order, mode=mode,
                                  cval=7.3)
            context = f"{dtype} planes of shape {shape}, matrix {matrix}"
            assert got.dtype == planes.dtype, context
            assert got.shape == planes.shape, context
            assert_matches_scipy(
                got, scipy_per_plane(planes, matrix, order, mode, 7.3),
                context,
            )


@pytest.mark.parametrize("order", [0, 1])
def test_shares_the_taps_across_planes_without_calling_scipy(
    monkeypatch, order
):
    calls = []
    monkeypatch.setattr(resampling.ndimage, "affine_transform",
                        lambda *a, **k: calls.append(1))
    matrix = next(transforms(16, 16))
    planes = random_planes((16, 16, 6), "float32")
    out = affine_resample(planes, matrix, order=order)
    assert calls == []
    assert np.abs(out - planes).max() > 1  # it resampled


@pytest.mark.parametrize("order", [2, 3, 5])
def test_spline_orders_call_scipy_per_plane(order):
    planes = random_planes((12, 20, 3), "float32")
    matrix = next(transforms(12, 20))
    np.testing.assert_array_equal(
        affine_resample(planes, matrix, order=order, mode="nearest"),
        scipy_per_plane(planes, matrix, order, "nearest", 0.0),
    )


def test_output_dtype_rounds_and_saturates_like_scipy():
    planes = np.array([[[0.0], [200.0]], [[255.4], [-3.0]]], np.float32)
    shift = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    got = affine_resample(planes, shift, mode="nearest", output_dtype="uint8")
    expected = ndimage.affine_transform(
        planes[..., 0], shift[:2, :2], offset=shift[:2, 2], order=1,
        mode="nearest", output=np.uint8,
    )
    np.testing.assert_array_equal(got[..., 0], expected)
    assert got.dtype == np.uint8


def test_integer_cast_is_scipys_half_away_from_zero_and_saturating():
    # Every tie k + 0.5, the floats either side of each, zero, the float32
    # just below 0.5, and values past each dtype's range.
    halves = np.arange(-300, 300) + 0.5
    values = np.concatenate(
        [halves, [0.0, 0.49999997, -0.49999997, 1e6, -1e6, 3e9, -3e9]]
    )
    for floats, dtype in itertools.product(
        ["float32", "float64"],
        ["uint8", "int8", "uint16", "int16", "int32", "uint32"],
    ):
        v = values.astype(floats)
        v = np.concatenate(
            [v, np.nextafter(v, np.inf), np.nextafter(v, -np.inf)]
        )
        expected = ndimage.affine_transform(
            v.astype(np.float64), np.eye(1), order=0, output=dtype
        )
        got = resampling.cast_like_scipy(v.copy(), dtype)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected, f"{floats} -> {dtype}")
    # Not np.rint's half to even, which gives [-2, -0, 0, 2, 2].
    ties = np.array([-2.5, -0.5, 0.5, 1.5, 2.5])
    np.testing.assert_array_equal(
        resampling.cast_like_scipy(ties, "int8"), [-3, -1, 1, 2, 3]
    )


def test_wide_integers_are_summed_in_float64():
    # 2**30 + 1 is not a float32; a float32 sum would lose the 1.
    planes = np.full((4, 4, 2), 2**30 + 1, np.int32)
    planes[0, 0] = 2**30 + 3
    half_pixel = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0, 0, 1]])
    got = affine_resample(planes, half_pixel, mode="nearest")
    np.testing.assert_array_equal(
        got[..., 0],
        scipy_per_plane(planes, half_pixel, 1, "nearest", 0.0)[..., 0],
    )
    assert got[0, 0, 0] == 2**30 + 2


def test_identity_returns_the_planes():
    planes = random_planes((9, 7, 3), "uint8")
    for order in (0, 1):
        np.testing.assert_array_equal(
            affine_resample(planes, np.eye(3), order=order), planes
        )


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match="Unknown boundary mode 'edge'"):
        affine_resample(random_planes((4, 4, 1), "float32"),
                        np.eye(3) * 2, mode="edge")


@settings(max_examples=40, deadline=None)
@given(
    matrix=st.lists(st.floats(-3, 3), min_size=6, max_size=6),
    offset_scale=st.floats(0, 20),
    mode=st.sampled_from(MODES),
    order=st.sampled_from([0, 1]),
    height=st.integers(1, 9),
    width=st.integers(1, 9),
)
def test_property_equals_scipy(matrix, offset_scale, mode, order, height,
                               width):
    affine = np.eye(3)
    affine[:2, :2] = np.reshape(matrix[:4], (2, 2))
    affine[:2, 2] = np.array(matrix[4:]) * offset_scale
    planes = random_planes((height, width, 2), "float64")
    np.testing.assert_allclose(
        affine_resample(planes, affine, order=order, mode=mode, cval=-1.0),
        scipy_per_plane(planes, affine, order, mode, -1.0),
        atol=1e-9,
    )
