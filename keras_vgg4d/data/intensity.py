"""Intensities of medical images mapped to the 0..255 the backbone expects.

Scanners store numbers in their own units (Hounsfield units, arbitrary MR
signal, counts) over any range. The backbone was trained on 8-bit photos,
so every loader of medical images maps a clip's (or a volume's) values to
0..255 through a window `(center, width)`, chosen by one option,
`intensity`, that DICOM and NIfTI loaders share:

- `"window"`: the file's own window, DICOM WindowCenter/WindowWidth (the
  first pair; VOILUTFunction LINEAR, LINEAR_EXACT or SIGMOID) or NIfTI
  `cal_min`/`cal_max`; `"percentiles"` where the file has none.
- `"percentiles"`: the 0.5th to the 99.5th percentile of the values.
- `"minmax"`: the lowest to the highest value.
- `(low, high)`: the `low`-th to the `high`-th percentile,
  `0 <= low < high <= 100`.
- `{"center": c, "width": w}`: a fixed window in the stored units after
  rescaling (e.g. Hounsfield units for CT), the same for every file.

Values below the window become 0, above it 255, linearly in between; a
window of zero width (a constant image) gives zeros.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

import numpy as np

from keras_vgg4d.validation import is_number

INTENSITY_MODES = ("window", "percentiles", "minmax")
# The percentiles of intensity="percentiles", and of "window" without one.
DEFAULT_PERCENTILES = (0.5, 99.5)
# DICOM's VOI LUT functions (PS3.3 C.11.2.1.2); NIfTI's windows are exact.
WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")

Window = collections.namedtuple(
    "Window", ["center", "width", "function"], defaults=["LINEAR_EXACT"]
)
Window.__doc__ = """A window of values mapped to 0..255.

Attributes:
    center: The value mapped to the middle, 127.5.
    width: The width of the values mapped to 0..255.
    function: `"LINEAR_EXACT"` (`center +- width / 2` to 0 and 255),
        `"LINEAR"` (DICOM's default: `center - 0.5 +- (width - 1) / 2`) or
        `"SIGMOID"` (DICOM's logistic curve).
"""


def check_intensity(owner: str, intensity, allow_none: bool = False):
    """`intensity` if it is a valid option (see the module), else `ValueError`.

    Returns it normalized: a mode string, a `(low, high)` tuple of floats,
    or a `{"center": float, "width": float}` dict; `None` if allowed.
    """
    if intensity is None and allow_none:
        return None
    if isinstance(intensity, str):
        if intensity in INTENSITY_MODES:
            return intensity
    elif isinstance(intensity, Mapping):
        if set(intensity) == {"center", "width"} and all(
            is_number(v) and np.isfinite(v) for v in intensity.values()
        ) and intensity["width"] > 0:
            return {"center": float(intensity["center"]),
                    "width": float(intensity["width"])}
    elif isinstance(intensity, (tuple, list)) and len(intensity) == 2:
        low, high = intensity
        if is_number(low) and is_number(high) and 0 <= low < high <= 100:
            return float(low), float(high)
    raise ValueError(
        f"{owner} expects `intensity` to be one of {list(INTENSITY_MODES)}, "
        "percentiles (low, high) with 0 <= low < high <= 100, or a fixed "
        "window {'center': c, 'width': w} with w > 0"
        + (", or None" if allow_none else "")
        + f"; received: intensity={intensity!r}"
    )


def _usable(window: Window | None) -> bool:
    return window is not None and bool(np.isfinite(window[:2]).all()) and (
        window.width > 0
    )


def needs_values(intensity, stored: Window | None = None) -> bool:
    """Whether `intensity_window` needs the values for `intensity`, rather
    than a fixed window or the file's own (`stored`)."""
    if isinstance(intensity, Mapping):
        return False
    return not (intensity == "window" and _usable(stored))


def intensity_window(
    values: np.ndarray | None,
    intensity,
    stored: Window | None = None,
) -> Window:
    """The window that `intensity` picks for `values`.

    Args:
        values: The values (any shape), or `None` when `intensity` needs
            none of them (a fixed window, or `"window"` with `stored`).
        intensity: An option checked by `check_intensity`.
        stored: The file's own window, for `"window"`; `None`, or one of
            zero or negative width, falls back to `"percentiles"`.

    Returns:
        A `Window`.
    """
    if isinstance(intensity, Mapping):
        return Window(intensity["center"], intensity["width"])
    if intensity == "window":
        if _usable(stored):
            return stored
        intensity = "percentiles"
    if intensity == "minmax":
        low, high = float(np.min(values)), float(np.max(values))
    else:
        bounds = DEFAULT_PERCENTILES if intensity == "percentiles" else (
            intensity
        )
        low, high = (float(v) for v in np.percentile(values, bounds))
    return Window((low + high) / 2, high - low)


def apply_window(
    values: np.ndarray, window: Window, invert: bool = False
) -> np.ndarray:
    """float32 `values` mapped through `window` to 0..255.

    `invert=True` maps high values dark (DICOM's MONOCHROME1).
    """
    values = np.asarray(values, "float32")
    center, width, function = window
    if not width > 0:
        scaled = np.zeros_like(values)
    elif function == "SIGMOID":
        scaled = 255.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    else:
        if function == "LINEAR":  # PS3.3 C.11.2.1.2.1
            low, span = center - 0.5 - (width - 1) / 2, width - 1
        else:
            low, span = center - width / 2, width
        if span <= 0:  # LINEAR with width 1: a threshold
            scaled = np.where(values > low, 255.0, 0.0)
        else:
            scaled = (values - low) * (255.0 / span)
    scaled = np.clip(scaled, 0.0, 255.0).astype("float32")
    return 255.0 - scaled if invert else scaled


def scale_intensity(
    values: np.ndarray,
    intensity="percentiles",
    window: tuple[float, float] | None = None,
) -> np.ndarray:
    """Maps values to 0..255 as the DICOM and NIfTI loaders do.

    One window for all of `values` (a clip or a volume), chosen by
    `intensity`; see `keras_vgg4d.data.intensity` for the options.

    Args:
        values: An array of any shape, e.g. a clip `(time, height, width)`
            in the scanner's units.
        intensity: `"window"`, `"percentiles"`, `"minmax"`, percentiles
            `(low, high)`, or a fixed window `{"center": c, "width": w}`.
        window: The image's own `(center, width)`, used by
            `intensity="window"`; without it, `"window"` uses the
            percentiles.

    Returns:
        float32 array of the shape of `values`, in `[0, 255]`.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d.data import scale_intensity
    >>> hounsfield = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0])
    >>> scale_intensity(hounsfield, {"center": 40, "width": 400}).tolist()
    [0.0, 0.0, 127.5, 255.0, 255.0]
    >>> scale_intensity(np.array([[10, 60], [110, 35]]), "minmax").tolist()
    [[0.0, 127.5], [255.0, 63.75]]
    """
    intensity = check_intensity("scale_intensity", intensity)
    values = np.asarray(values)
    if values.size == 0 or not np.issubdtype(values.dtype, np.number):
        raise ValueError(
            "scale_intensity expects a non-empty array of numbers; received "
            f"shape {values.shape}, dtype {values.dtype}."
        )
    if not np.isfinite(values).all():
        raise ValueError(
            "scale_intensity received NaN or infinite values; replace them "
            "first (e.g. `np.nan_to_num`)."
        )
    stored = None
    if window is not None:
        if not (isinstance(window, (tuple, list)) and len(window) == 2
                and all(is_number(v) for v in window)):
            raise ValueError(
                "scale_intensity expects `window` to be (center, width) or "
                f"None; received: window={window!r}"
            )
        stored = Window(float(window[0]), float(window[1]))
    return apply_window(values, intensity_window(values, intensity, stored))
