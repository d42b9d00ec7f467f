"""Pure numpy/scipy.ndimage transforms of clips, driven by uniform draws.

`ScipyAugment` (keras_vgg4d/augment.py) draws uniform numbers on the host with
NumPy's Philox generator and hands them, with the clips, to `augment_clips`,
on every Keras backend. Everything
here is a pure function of its arguments: the same clips and draws give the
same output, whatever thread or process runs it.

A clip is `(time, height, width, channels)`. Its draws are a `(rows, K)` array
of uniforms in `[0, 1)`, `K = len(DRAW_FIELDS)`: one row shared by every frame
(`rows == 1`), or one row per frame (`rows == time`).

The geometric transforms (rotation, zoom, shift, shear, flips) compose into one
affine matrix about the frame centre, and every 2-D plane (frame x channel)
that shares it is resampled once, in one `affine_resample` call
(keras_vgg4d/resampling.py): SciPy's interpolation with the taps computed once
for all planes. The filters run on the whole clip with a size of 1 (or sigma
0) along time and channels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from typing import Callable
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from keras_vgg4d.resampling import affine_resample
from keras_vgg4d.resampling import cast_like_scipy
from keras_vgg4d.resampling import working_dtype

# The columns of a row of draws. A `*_gate` draw turns its transform on when it
# is below the transform's probability; the other draws pick the value.
DRAW_FIELDS = (
    "rotation_gate",
    "rotation",
    "zoom_gate",
    "zoom",
    "shift_gate",
    "shift_y",
    "shift_x",
    "shear_gate",
    "shear",
    "flip_gate",
    "flip_horizontal",
    "flip_vertical",
    "median_gate",
    "gaussian_gate",
    "gaussian_sigma",
    "brightness_gate",
    "brightness",
    "contrast_gate",
    "contrast",
    "noise_gate",
    "noise_seed",
)
_COLUMN = {name: i for i, name in enumerate(DRAW_FIELDS)}

TRANSFORMS = (
    "rotation",
    "zoom",
    "shift",
    "shear",
    "flip",
    "median",
    "gaussian",
    "brightness",
    "contrast",
    "noise",
)
GEOMETRIC_TRANSFORMS = ("rotation", "zoom", "shift", "shear", "flip")
MODES = (
    "reflect",
    "nearest",
    "constant",
    "mirror",
    "wrap",
    "grid-constant",
    "grid-mirror",
    "grid-wrap",
)


class TransformError(RuntimeError):
    """A transform failed on a clip; the message names the transform."""


FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


@dataclasses.dataclass(frozen=True)
class TransformSettings:
    """What to draw and how to resample: plain values, validated by the layer.

    The fields are `ScipyAugment`'s arguments of the same names, in its
    order, validated; the layer keeps this one copy of them (its `get_config`
    is these fields and three more). Ranges are `(low, high)` pairs, or
    `None` when the transform is off. `rotation` and `shear` are in degrees;
    `shift` is a fraction of the frame size; `zoom` and `contrast` are
    factors; `brightness` and `noise` are fractions of `value_range`; `flip`
    is one of `FLIP_MODES` or `None`.
    """

    rotation: tuple[float, float] | None = None
    zoom: tuple[float, float] | None = None
    shift: tuple[float, float] | None = None
    shear: tuple[float, float] | None = None
    flip: str | None = None
    median_size: int | None = None
    gaussian_sigma: tuple[float, float] | None = None
    brightness: tuple[float, float] | None = None
    contrast: tuple[float, float] | None = None
    noise: float | None = None
    probability: dict = dataclasses.field(default_factory=dict)
    order: int = 1
    mode: str = "reflect"
    cval: float = 0.0
    value_range: tuple[float, float] = (0.0, 255.0)

    @property
    def flip_horizontal(self) -> bool:
        return self.flip in ("horizontal", "horizontal_and_vertical")

    @property
    def flip_vertical(self) -> bool:
        return self.flip in ("vertical", "horizontal_and_vertical")

    def enabled(self, transform: str) -> bool:
        """Whether `transform` can ever be applied (configured and p > 0)."""
        configured = {
            "rotation": self.rotation is not None,
            "zoom": self.zoom is not None,
            "shift": self.shift is not None,
            "shear": self.shear is not None,
            "flip": self.flip is not None,
            "median": self.median_size is not None and self.median_size > 1,
            "gaussian": self.gaussian_sigma is not None,
            "brightness": self.brightness is not None,
            "contrast": self.contrast is not None,
            "noise": self.noise is not None and self.noise > 0,
        }[transform]
        return configured and self.probability.get(transform, 1.0) > 0


@dataclasses.dataclass(frozen=True)
class FrameParameters:
    """The transform drawn for one row of draws; neutral values mean "off"."""

    rotation: float = 0.0
    zoom: float = 1.0
    shift_y: float = 0.0
    shift_x: float = 0.0
    shear: float = 0.0
    flip_horizontal: bool = False
    flip_vertical: bool = False
    median: bool = False
    gaussian_sigma: float = 0.0
    brightness: float = 0.0
    contrast: float = 1.0
    noise_seed: int | None = None

    @property
    def geometric(self) -> bool:
        return (
            self.rotation != 0.0
            or self.zoom != 1.0
            or self.shift_y != 0.0
            or self.shift_x != 0.0
            or self.shear != 0.0
            or self.flip_horizontal
            or self.flip_vertical
        )

    @property
    def intensity(self) -> bool:
        return (
            self.contrast != 1.0
            or self.brightness != 0.0
            or self.noise_seed is not None
        )


# The transforms whose values are drawn uniformly from a range: the range's
# field in TransformSettings, and the FrameParameters fields drawn from it
# (each from its own column of draws).
_DRAWN_FROM_RANGE = {
    "rotation": ("rotation", ("rotation",)),
    "zoom": ("zoom", ("zoom",)),
    "shift": ("shift", ("shift_y", "shift_x")),
    "shear": ("shear", ("shear",)),
    "gaussian": ("gaussian_sigma", ("gaussian_sigma",)),
    "brightness": ("brightness", ("brightness",)),
    "contrast": ("contrast", ("contrast",)),
}


def _between(draw: float, value_range: tuple[float, float]) -> float:
    low, high = value_range
    return float(low + draw * (high - low))


def frame_parameters(
    draws: np.ndarray, settings: TransformSettings
) -> FrameParameters:
    """Maps one row of uniform draws to the transform it selects."""
    draws = np.asarray(draws, dtype=np.float64)

    def on(transform):
        gate = draws[_COLUMN[f"{transform}_gate"]]
        p = settings.probability.get(transform, 1.0)
        return settings.enabled(transform) and gate < p

    values = {}
    for transform, (setting, fields) in _DRAWN_FROM_RANGE.items():
        if on(transform):
            for field in fields:
                values[field] = _between(
                    draws[_COLUMN[field]], getattr(settings, setting)
                )
    if on("flip"):
        # Like `keras.layers.RandomFlip`: each enabled direction half the time.
        values["flip_horizontal"] = bool(
            settings.flip_horizontal and draws[_COLUMN["flip_horizontal"]] < 0.5
        )
        values["flip_vertical"] = bool(
            settings.flip_vertical and draws[_COLUMN["flip_vertical"]] < 0.5
        )
    if on("median"):
        values["median"] = True
    if on("noise"):
        values["noise_seed"] = int(draws[_COLUMN["noise_seed"]] * 2**53)
    return FrameParameters(**values)


def sampling_matrix(
    params: FrameParameters, height: int, width: int
) -> np.ndarray:
    """The 3x3 homogeneous matrix mapping output to input `(row, col, 1)`.

    The forward transform, about the frame centre, flips, zooms, shears
    (columns along rows), rotates (same sense as `scipy.ndimage.rotate`),
    then shifts; sampling needs its inverse.
    """
    center = np.array([(height - 1) / 2.0, (width - 1) / 2.0])

    def translation(offset):
        matrix = np.eye(3)
        matrix[:2, 2] = offset
        return matrix

    def linear(block):
        matrix = np.eye(3)
        matrix[:2, :2] = block
        return matrix

    angle = math.radians(params.rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    flip = np.diag(
        [-1.0 if params.flip_vertical else 1.0,
         -1.0 if params.flip_horizontal else 1.0]
    )
    forward = (
        translation(
            center + [params.shift_y * height, params.shift_x * width]
        )
        @ linear([[cos, -sin], [sin, cos]])
        @ linear([[1.0, 0.0], [math.tan(math.radians(params.shear)), 1.0]])
        @ linear(np.eye(2) * params.zoom)
        @ linear(flip)
        @ translation(-center)
    )
    return np.linalg.inv(forward)


@contextlib.contextmanager
def _errors_named(transform: str, detail: str, clip_index: int, clip):
    """Re-raises any error of a transform as a `TransformError` naming it."""
    try:
        yield
    except TransformError:
        raise
    except Exception as error:
        raise TransformError(
            f"ScipyAugment's {transform!r} transform ({detail}) failed on "
            f"clip {clip_index} of shape {clip.shape} and dtype {clip.dtype}: "
            f"{type(error).__name__}: {error}"
        ) from error


def _ndimage_readable(clip: np.ndarray) -> np.ndarray:
    """`clip`, or a float32 copy when scipy.ndimage cannot read its dtype
    (float16, and bfloat16 from TensorFlow)."""
    if clip.dtype.kind in "iu" or clip.dtype in (np.float32, np.float64):
        return clip
    return clip.astype(np.float32)


def _resample(clip, params, settings):
    """One affine resampling of all the planes (frames x channels) that
    share a transform; frames without one are copied.

    Integer clips stay integer unless a later stage needs floats, so that
    they are rounded once, at the end."""
    time, height, width, channels = clip.shape
    needs_floats = any(p.gaussian_sigma > 0 or p.intensity for p in params)
    output_dtype = (
        clip.dtype
        if clip.dtype.kind in "iu" and not needs_floats
        else working_dtype(clip.dtype)
    )
    resample = functools.partial(
        affine_resample,
        order=settings.order,
        mode=settings.mode,
        cval=settings.cval,
        output_dtype=output_dtype,
    )
    if len(params) == 1:  # one transform for the whole clip
        planes = np.ascontiguousarray(clip.transpose(1, 2, 0, 3))
        out = resample(
            planes.reshape(height, width, time * channels),
            sampling_matrix(params[0], height, width),
        )
        return out.reshape(height, width, time, channels).transpose(2, 0, 1, 3)
    out = np.empty(clip.shape, output_dtype)
    for t, frame_params in enumerate(params):
        if frame_params.geometric:
            out[t] = resample(
                clip[t], sampling_matrix(frame_params, height, width)
            )
        else:
            out[t] = clip[t]
    return out


def _median(x, params, settings):
    """The median filter over space, on the frames whose draws select it."""
    rows = np.array([p.median for p in params])
    size = settings.median_size
    kwargs = {"size": (1, size, size, 1), "mode": settings.mode,
              "cval": settings.cval}
    if len(params) == 1 or rows.all():
        return ndimage.median_filter(x, **kwargs)
    x = np.array(x, copy=True)
    x[rows] = ndimage.median_filter(x[rows], **kwargs)
    return x


def _gaussian(x, params, settings):
    """The Gaussian filter over space, each frame with its drawn sigma."""
    sigmas = [p.gaussian_sigma for p in params]
    work_dtype = working_dtype(x.dtype)
    kwargs = {"mode": settings.mode, "cval": settings.cval,
              "output": work_dtype}
    if len(params) == 1:
        return ndimage.gaussian_filter(
            x, sigma=(0, sigmas[0], sigmas[0], 0), **kwargs
        )
    x = np.array(x, dtype=work_dtype, copy=True)
    for t, sigma in enumerate(sigmas):
        if sigma > 0:
            x[t] = ndimage.gaussian_filter(
                x[t], sigma=(sigma, sigma, 0), **kwargs
            )
    return x


def _per_frame(values, time):
    """`(time, 1, 1, 1)` array of per-row values, broadcast from one row."""
    values = np.asarray(values, dtype=np.float64).reshape(-1, 1, 1, 1)
    if len(values) == 1:
        return np.broadcast_to(values, (time, 1, 1, 1))
    return values


def _adjust_intensity(x, params, settings):
    """Contrast about each frame's per-channel mean, brightness, then noise."""
    low, high = settings.value_range
    span = high - low
    time = x.shape[0]
    work_dtype = working_dtype(x.dtype)
    x = np.asarray(x, dtype=work_dtype)
    contrast = _per_frame([p.contrast for p in params], time)
    if np.any(contrast != 1.0):
        mean = x.mean(axis=(1, 2), keepdims=True)
        x = (x - mean) * contrast.astype(work_dtype) + mean
    brightness = _per_frame([p.brightness for p in params], time)
    if np.any(brightness != 0.0):
        x = x + (brightness * span).astype(work_dtype)
    seeds = [p.noise_seed for p in params]
    if any(s is not None for s in seeds):
        x = np.array(x, copy=True)
        std = settings.noise * span
        if len(seeds) == 1:
            noise = np.random.default_rng(seeds[0]).normal(0.0, std, x.shape)
            x += noise.astype(work_dtype)
        else:
            for t, seed in enumerate(seeds):
                if seed is not None:
                    x[t] += np.random.default_rng(seed).normal(
                        0.0, std, x[t].shape
                    ).astype(work_dtype)
    return np.clip(x, low, high)


class _Stage(NamedTuple):
    """A step of `augment_clip`.

    `name` and `detail` describe it in error messages, formatted with the
    settings `s`, the enabled `geometric` transforms and the largest `sigma`
    drawn; `drawn(p)` says whether a row's parameters select it; `run(x,
    params, settings)` applies it to the clip.
    """

    name: str
    detail: str
    drawn: Callable[[FrameParameters], bool]
    run: Callable[[np.ndarray, list, TransformSettings], np.ndarray]


# The steps of `augment_clip`, in order.
_STAGES = (
    _Stage("{geometric}", "affine resampling as scipy.ndimage, "
           "order={s.order}, mode={s.mode!r}", lambda p: p.geometric,
           _resample),
    _Stage("median", "scipy.ndimage.median_filter, size={s.median_size}",
           lambda p: p.median, _median),
    _Stage("gaussian", "scipy.ndimage.gaussian_filter, sigma={sigma:.3g}",
           lambda p: p.gaussian_sigma > 0, _gaussian),
    _Stage("contrast+brightness+noise", "numpy", lambda p: p.intensity,
           _adjust_intensity),
)


def _describe(text: str, settings: TransformSettings, params) -> str:
    """`text` of a `_Stage`, formatted."""
    geometric = [t for t in GEOMETRIC_TRANSFORMS if settings.enabled(t)]
    return text.format(
        s=settings,
        geometric="+".join(geometric),
        sigma=max(p.gaussian_sigma for p in params),
    )


def augment_clip(
    clip: np.ndarray,
    draws: np.ndarray,
    settings: TransformSettings,
    clip_index: int = 0,
) -> np.ndarray:
    """Applies the transforms that `draws` select to one clip.

    Args:
        clip: `(time, height, width, channels)` array of any real dtype.
        draws: `(rows, len(DRAW_FIELDS))` uniforms in `[0, 1)`; `rows` is 1
            (one transform for every frame) or `time` (one per frame).
        settings: The ranges, probabilities and interpolation settings.
        clip_index: Position of the clip in its batch, for error messages.

    Returns:
        An array with the shape and dtype of `clip`. Integer clips are
        rounded and saturated as scipy.ndimage does (`cast_like_scipy`). If
        no transform is drawn, `clip` itself is returned.
    """
    draws = np.asarray(draws, dtype=np.float64).reshape(-1, len(DRAW_FIELDS))
    time = clip.shape[0]
    if len(draws) not in (1, time):
        raise ValueError(
            f"Expected 1 or {time} rows of draws for a clip of {time} frames, "
            f"received draws of shape {draws.shape}."
        )
    params = [frame_parameters(row, settings) for row in draws]
    x = _ndimage_readable(clip)
    changed = False
    for stage in _STAGES:
        if not any(stage.drawn(p) for p in params):
            continue
        with _errors_named(
            _describe(stage.name, settings, params),
            _describe(stage.detail, settings, params),
            clip_index,
            clip,
        ):
            x = stage.run(x, params, settings)
        changed = True
    if not changed:
        return clip
    return np.ascontiguousarray(cast_like_scipy(x, clip.dtype))


def augment_clips(
    clips: np.ndarray, draws: np.ndarray, settings: TransformSettings
) -> np.ndarray:
    """`augment_clip` on each clip of a `(batch, time, height, width, channels)`
    array with `(batch, rows, K)` draws; returns a new array of the same shape
    and dtype."""
    clips = np.asarray(clips)
    out = np.empty_like(clips)
    for b in range(clips.shape[0]):
        out[b] = augment_clip(clips[b], draws[b], settings, clip_index=b)
    return out
