"""`ScipyAugment`: scipy.ndimage transforms of clips as a Keras layer."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import random
import sys
import threading
from typing import Callable
from typing import NamedTuple

import keras
import numpy as np

from keras_vgg4d.backend import backend_name
from keras_vgg4d.backend import require_tensorflow
from keras_vgg4d.layout import LAYOUTS
from keras_vgg4d.layout import time_major_permutation
from keras_vgg4d.layout import validate_time_axis
from keras_vgg4d.ndimage_ops import DRAW_FIELDS
from keras_vgg4d.ndimage_ops import FLIP_MODES
from keras_vgg4d.ndimage_ops import MODES
from keras_vgg4d.ndimage_ops import TRANSFORMS
from keras_vgg4d.ndimage_ops import TransformSettings
from keras_vgg4d.ndimage_ops import augment_clips
from keras_vgg4d.validation import check_choice
from keras_vgg4d.validation import check_integer
from keras_vgg4d.validation import is_number

_OWNER = "ScipyAugment"


def _invalid(name, value, expects: str) -> ValueError:
    return ValueError(
        f"{_OWNER} expects `{name}` to be {expects}, received: "
        f"{name}={value!r}"
    )


def _symmetric(bound):
    """`v -> (-v, v)` for `0 <= v <= bound`, else `None` (not allowed)."""

    def scalar(v):
        if v < 0 or v > bound:
            return None
        return (-v, v)

    return scalar


def _pair_only(v):
    """A single number is not allowed: the argument takes a pair."""
    return None


class _Range(NamedTuple):
    """How a number-or-pair argument is read and bounded."""

    scalar: Callable  # a single number -> its `(low, high)`, or None
    expects: str  # for the message
    lower: float = -np.inf
    upper: float = np.inf
    strict: bool = False  # low < high, not low <= high
    optional: bool = True  # None turns the transform off


_FRACTION = "a fraction in [0, 1] or a pair (low, high) in [-1, 1]"
_RANGES = {
    "rotation": _Range(
        _symmetric(np.inf), "a number of degrees >= 0 or a pair (low, high)"
    ),
    "zoom": _Range(
        _pair_only, "a pair of zoom factors (low, high) with 0 < low <= high",
        lower=1e-6,
    ),
    "shift": _Range(_symmetric(1.0), _FRACTION, -1.0, 1.0),
    "shear": _Range(
        _symmetric(89.0),
        "degrees in [0, 89] or a pair (low, high) in [-89, 89]", -89.0, 89.0,
    ),
    "gaussian_sigma": _Range(
        lambda v: (v, v),
        "a number >= 0 or a pair (low, high) of numbers >= 0", lower=0.0,
    ),
    "brightness": _Range(_symmetric(1.0), _FRACTION, -1.0, 1.0),
    "contrast": _Range(
        lambda v: (1.0 - v, 1.0 + v) if 0 <= v <= 1 else None,
        "a number in [0, 1] or a pair of factors (low, high) >= 0", lower=0.0,
    ),
    "value_range": _Range(
        _pair_only, "a pair (low, high) with low < high", strict=True,
        optional=False,
    ),
}


def _range_argument(name, value):
    """Validates the number-or-pair argument `name` as `_RANGES` says and
    returns its `(low, high)` pair, or `None` for `None` if allowed."""
    spec = _RANGES[name]
    if value is None and spec.optional:
        return None
    if is_number(value):
        pair = spec.scalar(float(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(is_number(v) for v in value)
    ):
        pair = (float(value[0]), float(value[1]))
    else:
        pair = None
    if (
        pair is None
        or not np.all(np.isfinite(pair))
        or pair[0] > pair[1]
        or (spec.strict and pair[0] == pair[1])
        or pair[0] < spec.lower
        or pair[1] > spec.upper
    ):
        raise _invalid(name, value, spec.expects)
    return pair


def _number_argument(name, value, expects, valid=lambda v: True) -> float:
    """`value` as a float if it is a number that `valid` accepts."""
    if not is_number(value) or not valid(float(value)):
        raise _invalid(name, value, expects)
    return float(value)


def _probabilities(probability) -> dict:
    """A probability for every transform, from one number or a dict."""
    expects = (
        "a number in [0, 1], or a dict mapping transform names "
        f"{list(TRANSFORMS)} to numbers in [0, 1]"
    )
    if is_number(probability):
        values = dict.fromkeys(TRANSFORMS, float(probability))
    elif isinstance(probability, dict):
        unknown = sorted(set(probability) - set(TRANSFORMS))
        if unknown:
            raise ValueError(
                f"{_OWNER} expects `probability` to be {expects}, received: "
                f"unknown transform names {unknown} in probability="
                f"{probability!r}"
            )
        values = dict.fromkeys(TRANSFORMS, 1.0)
        for key, value in probability.items():
            if not is_number(value):
                values = None
                break
            values[key] = float(value)
    else:
        values = None
    if values is None or not all(0.0 <= p <= 1.0 for p in values.values()):
        raise _invalid("probability", probability, expects)
    return values


def _noise_argument(noise):
    if noise is None:
        return None
    return _number_argument(
        "noise", noise,
        "a number >= 0 (a standard deviation as a fraction of value_range)",
        lambda v: np.isfinite(v) and v >= 0,
    )


# The check of each transform argument: its value -> the validated setting.
_CHECKS = {
    **{name: functools.partial(_range_argument, name) for name in _RANGES},
    "flip": lambda v: check_choice(_OWNER, "flip", v, (*FLIP_MODES, None)),
    "median_size": lambda v: check_integer(
        _OWNER, "median_size", v, minimum=1, allow_none=True
    ),
    "noise": _noise_argument,
    "probability": _probabilities,
    "order": lambda v: check_integer(_OWNER, "order", v, minimum=0, maximum=5),
    "mode": lambda v: check_choice(_OWNER, "mode", v, MODES),
    "cval": lambda v: _number_argument("cval", v, "a number"),
}
# ScipyAugment's transform arguments, in its order: TransformSettings' fields.
_SETTINGS = tuple(f.name for f in dataclasses.fields(TransformSettings))


def _validated_settings(*arguments) -> TransformSettings:
    """`ScipyAugment`'s transform arguments, given in the order of
    `_SETTINGS`, checked, as the settings that drive the transforms.

    Raises:
        ValueError: naming the first bad argument and the value received.
    """
    named = zip(_SETTINGS, arguments, strict=True)
    return TransformSettings(
        **{name: _CHECKS[name](value) for name, value in named}
    )


def _setting(name: str) -> property:
    """A read-only attribute of the layer: its validated `name` argument,
    read from the one copy, in `TransformSettings`."""
    return property(
        lambda self: getattr(self._settings, name),
        doc=f"The `{name}` argument, validated (read-only).",
    )


def _seed_key(seed: int) -> int:
    """A well-mixed unsigned 64-bit key from `seed` (splitmix64's
    finalizer)."""
    z = (seed + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


# --- Random draws, on the host -----------------------------------------------
#
# The draws are made in NumPy, whatever the backend, so that one seed gives
# the same augmented clips on TensorFlow, JAX and PyTorch.


def _fingerprint(clip: np.ndarray) -> int:
    """A 64-bit fingerprint of a clip's content, shape and dtype."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{clip.shape} {clip.dtype.str}".encode())
    digest.update(clip.tobytes())
    return int.from_bytes(digest.digest(), "little")


def _uniforms(seed_key: int, fingerprint: int, count: int, shape):
    """Stateless float64 uniforms in [0, 1), a function of the three keys.

    Philox is a counter-based generator: keyed on `(seed_key, fingerprint)`,
    with `count` in the top 64 bits of its 256-bit counter, so the streams
    of successive counts never overlap.
    """
    bit_generator = np.random.Philox(
        key=(seed_key << 64) | fingerprint, counter=count << 192
    )
    return np.random.Generator(bit_generator).random(shape)


class _DrawCounter:
    """How many times each clip content (by fingerprint) has been drawn for.

    A `tf.data.Dataset.map` with `num_parallel_calls > 1` calls the layer
    from several threads, so the counts of a batch are taken under a lock.
    (Keras pickles and copies a layer through its config: a copy starts
    with no counts.)
    """

    def __init__(self):
        self._counts = {}
        self._lock = threading.Lock()

    def take(self, fingerprints) -> list[int]:
        """The count of each fingerprint before this call, counting earlier
        copies in `fingerprints`; adds them to the counts."""
        with self._lock:
            counts = []
            for fingerprint in fingerprints:
                count = self._counts.get(fingerprint, 0)
                counts.append(count)
                self._counts[fingerprint] = count + 1
            return counts


# --- Running the host function on each backend's tensors -------------------


def _is_tf_tensor(x) -> bool:
    """Whether `x` is a TensorFlow tensor, without importing TensorFlow."""
    tensor = getattr(sys.modules.get("tensorflow"), "Tensor", None)
    return isinstance(tensor, type) and isinstance(x, tensor)


def _on_host_tensorflow(fn, x):
    tf = require_tensorflow("ScipyAugment on TensorFlow tensors")
    x = tf.convert_to_tensor(x)
    if tf.executing_eagerly():
        # Eager: call numpy directly, so errors keep their Python type.
        return tf.convert_to_tensor(fn(x.numpy()))
    # In a graph (tf.function, tf.data.Dataset.map): numpy runs when the
    # graph does. Not XLA-compilable, hence `supports_jit = False`.
    y = tf.py_function(lambda t: fn(t.numpy()), [x], Tout=x.dtype)
    y.set_shape(x.shape)
    return y


def _on_host_jax(fn, x):
    import jax

    if not isinstance(x, jax.core.Tracer):
        # Concrete arrays: call numpy directly, so errors keep their type.
        return jax.numpy.asarray(fn(np.asarray(x)))
    # Traced (`jax.jit`, as in Keras' `fit`): the host runs `fn` each time
    # the compiled step runs. Augmentation is not differentiated, as on the
    # other backends (a callback has no derivative).
    return jax.pure_callback(
        fn,
        jax.ShapeDtypeStruct(x.shape, x.dtype),
        jax.lax.stop_gradient(x),
        vmap_method="sequential",
    )


def _on_host_torch(fn, x):
    import torch

    # Keras' conversion also takes bfloat16, which `Tensor.numpy()` refuses.
    y = fn(keras.ops.convert_to_numpy(x))
    if x.dtype == torch.bfloat16:  # exact through float32
        return torch.as_tensor(y.astype(np.float32), device=x.device).to(
            torch.bfloat16
        )
    return torch.as_tensor(y, device=x.device)


_ON_HOST = {
    "tensorflow": _on_host_tensorflow,
    "jax": _on_host_jax,
    "torch": _on_host_torch,
}


def _run_on_host(fn, x):
    """`fn` (NumPy arrays in and out, same shape and dtype) applied to the
    tensor `x` of the backend in use, in eager calls and in compiled ones.

    A TensorFlow tensor takes TensorFlow's path whatever the backend: that is
    a `tf.data` pipeline, which Keras feeds to every backend.
    """
    if _is_tf_tensor(x):
        return _on_host_tensorflow(fn, x)
    backend = backend_name()
    if backend not in _ON_HOST:
        raise NotImplementedError(
            f"{_OWNER} runs on the {', '.join(_ON_HOST)} Keras backends; "
            f"received KERAS_BACKEND={backend!r}."
        )
    return _ON_HOST[backend](fn, keras.ops.convert_to_tensor(x))


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class ScipyAugment(keras.layers.Layer):
    """Random scipy.ndimage transforms of clips, consistent across frames.

    Rotation, zoom, shift, shear and flips compose into one affine matrix
    about the frame centre, and all the 2-D planes (frames and channels) of a
    clip are resampled once, with SciPy's interpolation and boundary modes:
    for `order` 0 and 1 the taps and weights are computed once and shared by
    every plane (`keras_vgg4d.resampling`, equal to
    `scipy.ndimage.affine_transform`); for orders 2-5
    `scipy.ndimage.affine_transform` runs on each plane. Median and Gaussian
    filters run on the whole clip with a size of 1 along time and channels;
    brightness, contrast and Gaussian noise are optional. Each transform is
    applied with its own probability. One random draw per clip is applied to
    all its frames, so they move together; `per_frame=True` draws per frame.

    The layer is active only when called with `training=True` (as `fit` does,
    or explicitly in a `tf.data` pipeline). Otherwise it returns its input
    unchanged and adds nothing to the graph (no `tf.py_function`), so a model
    holding it exports as a SavedModel.

    Backends: the transforms run in NumPy and SciPy on the host, on every
    Keras 3 backend. On TensorFlow, and in `tf.data` pipelines whatever the
    backend, through `tf.py_function`, so TensorFlow cannot XLA-compile the
    layer (`supports_jit` is `False`); on JAX through `jax.pure_callback`,
    which `jax.jit` compiles, so JAX's `fit` keeps `jit_compile="auto"`; on
    PyTorch through NumPy, eagerly. Augmentation is not differentiated.

    Randomness: the draws are made in NumPy, on the host, with a
    counter-based generator (Philox) keyed on `seed`, a fingerprint of each
    clip's content, and how many times this layer has seen that content
    before. A seeded layer therefore gives the same outputs for the same
    inputs in the same order, on every backend; new draws each time a clip
    comes back (each epoch); different draws for different clips of a
    batch, also for identical ones; and the same augmentation per clip in a
    `tf.data.Dataset.map` with `num_parallel_calls > 1`, whatever order the
    parallel calls run in, and whether the map is per clip or per batch.

    Args:
        rotation: Degrees. A number `r` for a range `(-r, r)`, a pair
            `(low, high)`, or `None` (off).
        zoom: A pair of factors `(low, high)`, both > 0; `> 1` enlarges the
            content, like `scipy.ndimage.zoom`. `None` is off.
        shift: A fraction of the frame size, drawn separately for each axis:
            a number `s` in [0, 1] for `(-s, s)`, or a pair within [-1, 1].
            Positive values move the content down and right.
        shear: Degrees of shear of columns along rows: a number `s` for
            `(-s, s)` or a pair, within (-90, 90).
        flip: `"horizontal"`, `"vertical"`, `"horizontal_and_vertical"` or
            `None`. Each direction flips half of the time, like
            `keras.layers.RandomFlip`.
        median_size: Size (pixels) of the median filter's square window, an
            integer >= 1, or `None`.
        gaussian_sigma: Gaussian blur sigma in pixels: a number for a fixed
            sigma, or a pair `(low, high)` of numbers >= 0.
        brightness: A shift of intensities, as a fraction of the span of
            `value_range`: a number `b` in [0, 1] for `(-b, b)` or a pair.
        contrast: A factor applied about each frame's per-channel mean: a
            number `c` in [0, 1] for `(1 - c, 1 + c)`, or a pair of factors
            >= 0.
        noise: Standard deviation of additive Gaussian noise, as a fraction
            of the span of `value_range`; a number >= 0 or `None`.
        probability: The probability that a transform is applied: one number
            in [0, 1] for all of them, or a dict mapping some of
            `"rotation"`, `"zoom"`, `"shift"`, `"shear"`, `"flip"`,
            `"median"`, `"gaussian"`, `"brightness"`, `"contrast"`, `"noise"`
            to probabilities (the others stay 1).
        order: Spline interpolation order, 0 to 5 (1 is bilinear, like
            Keras' image layers).
        mode: How points outside the frame are filled: `"reflect"`,
            `"nearest"`, `"constant"`, `"mirror"`, `"wrap"` (or SciPy's
            `"grid-constant"`, `"grid-mirror"`, `"grid-wrap"`).
        cval: The fill value for `mode="constant"`.
        value_range: The `(low, high)` range of intensities; brightness and
            noise are fractions of its span, and the intensity transforms
            clip to it. Defaults to `(0, 255)`.
        per_frame: If `True`, draw a transform for every frame instead of
            one per clip.
        seed: An integer seed, or `None` for a random one drawn at
            construction (from Python's `random`, which
            `keras.utils.set_random_seed` seeds).
        time_axis: `1` for `(batch, time, height, width, channels)` (the
            default), or `-1` for `(batch, height, width, channels, time)`.
            The output keeps the input's layout.
        **kwargs: Base layer keyword arguments, such as `name`.

    Call arguments:
        inputs: A batch of clips, or one clip without the batch axis, of any
            integer or float dtype.
        training: Python boolean. Only `True` augments.

    Input shape:
        `(batch, time, height, width, channels)` or
        `(time, height, width, channels)`; with `time_axis=-1`,
        `(batch, height, width, channels, time)` or
        `(height, width, channels, time)`.

    Output shape:
        The input's shape and dtype. Integer clips are rounded and
        saturated as scipy.ndimage's interpolation writes integers: half
        away from zero, clipped to the dtype's range.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from keras_vgg4d import ScipyAugment
    >>> augment = ScipyAugment(rotation=15, zoom=(0.9, 1.1), shift=0.1,
    ...                        flip="horizontal", seed=0)
    >>> clips = np.random.default_rng(0).integers(
    ...     0, 256, (2, 4, 32, 32, 3), dtype="uint8")
    >>> out = keras.ops.convert_to_numpy(augment(clips, training=True))
    >>> out.shape, out.dtype.name
    ((2, 4, 32, 32, 3), 'uint8')
    >>> bool(np.array_equal(augment(clips), clips))  # inference: identity
    True

    In a `tf.data` pipeline, pass `training=True`:

    >>> import tensorflow as tf
    >>> dataset = tf.data.Dataset.from_tensor_slices(clips).map(
    ...     lambda clip: augment(clip, training=True), num_parallel_calls=2)
    >>> [tuple(c.shape) for c in dataset]
    [(4, 32, 32, 3), (4, 32, 32, 3)]
    """

    rotation = _setting("rotation")
    zoom = _setting("zoom")
    shift = _setting("shift")
    shear = _setting("shear")
    flip = _setting("flip")
    median_size = _setting("median_size")
    gaussian_sigma = _setting("gaussian_sigma")
    brightness = _setting("brightness")
    contrast = _setting("contrast")
    noise = _setting("noise")
    probability = _setting("probability")
    order = _setting("order")
    mode = _setting("mode")
    cval = _setting("cval")
    value_range = _setting("value_range")

    def __init__(
        self,
        rotation=None,
        zoom=None,
        shift=None,
        shear=None,
        flip=None,
        median_size=None,
        gaussian_sigma=None,
        brightness=None,
        contrast=None,
        noise=None,
        probability=1.0,
        order: int = 1,
        mode: str = "reflect",
        cval: float = 0.0,
        value_range=(0.0, 255.0),
        per_frame: bool = False,
        seed: int | None = None,
        time_axis: int = 1,
        **kwargs,
    ):
        # The layer returns its input's dtype; Keras must not cast floats to
        # the dtype policy's compute dtype (e.g. bfloat16) on the way in.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        # The one copy of the transform arguments; the attributes of the
        # same names read it.
        self._settings = _validated_settings(
            rotation, zoom, shift, shear, flip, median_size, gaussian_sigma,
            brightness, contrast, noise, probability, order, mode, cval,
            value_range,
        )
        self.per_frame = bool(per_frame)
        self.seed = check_integer(
            _OWNER, "seed", seed, minimum=0, allow_none=True
        )
        self.time_axis = validate_time_axis(time_axis)
        # TensorFlow runs the transforms through `tf.py_function`, which XLA
        # cannot compile; JAX through `jax.pure_callback`, which `jax.jit`
        # can, so Keras' JAX `fit` keeps `jit_compile="auto"`. PyTorch runs
        # eagerly (`torch.compile` would break its graph at NumPy).
        self.supports_jit = backend_name() == "jax"
        self._active = any(self._settings.enabled(t) for t in TRANSFORMS)
        self._seed_key = _seed_key(
            random.randint(0, 2**62) if self.seed is None else self.seed
        )
        # How many times each clip content (by fingerprint) has been drawn
        # for: the per-clip "epoch" in the draw's key.
        self._draw_counter = _DrawCounter()

    def _check_input_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) not in (4, 5):
            raise ValueError(
                f"ScipyAugment expects clips {LAYOUTS[self.time_axis]}, or "
                "one clip without the batch axis (rank 4), with "
                f"time_axis={self.time_axis}; received input shape "
                f"{input_shape} (rank {len(input_shape)})."
            )
        return input_shape

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self._check_input_shape(input_shape)

    def compute_output_spec(self, inputs, training=None):
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=inputs.dtype
        )

    def __call__(self, inputs, *args, **kwargs):
        if _is_tf_tensor(inputs) and backend_name() != "tensorflow":
            # A tf.data pipeline under another backend: Keras would convert
            # the graph's symbolic tensors to that backend's arrays, which
            # cannot be done; TensorFlow's path needs no conversion.
            return self.call(inputs, *args, **kwargs)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=None):
        if not training or not self._active:
            return inputs
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if not (
            keras.backend.is_int_dtype(dtype)
            or keras.backend.is_float_dtype(dtype)
        ):
            raise ValueError(
                "ScipyAugment expects clips of an integer or float dtype; "
                f"received dtype {dtype}."
            )
        self._check_input_shape(inputs.shape)
        return _run_on_host(self._augment_batch, inputs)

    def _augment_batch(self, clips: np.ndarray) -> np.ndarray:
        """The augmentation, in NumPy: clips in the layer's layout, batched
        or not, to augmented clips of the same shape and dtype. Every
        backend runs this one function, so one seed draws the same on all.
        """
        clips = np.asarray(clips)
        batched = clips.ndim == 5
        if not batched:
            clips = clips[None]
        permutation = time_major_permutation(5, self.time_axis)
        clips = np.ascontiguousarray(np.transpose(clips, permutation))
        outputs = augment_clips(clips, self._draws(clips), self._settings)
        outputs = np.ascontiguousarray(
            np.transpose(outputs, np.argsort(permutation))
        )
        return outputs if batched else outputs[0]

    def _draws(self, clips: np.ndarray) -> np.ndarray:
        """Stateless uniform draws, `(batch, rows, len(DRAW_FIELDS))`, for
        time-major `clips`.

        Each clip's key is (seed, fingerprint of its content, how many times
        that content was drawn for before, including earlier copies in this
        batch). The key depends on the clip, not on the order in which
        parallel calls run.
        """
        fingerprints = [_fingerprint(clip) for clip in clips]
        counts = self._draw_counter.take(fingerprints)
        shape = (clips.shape[1] if self.per_frame else 1, len(DRAW_FIELDS))
        draws = np.empty((len(clips), *shape), np.float64)
        for i, (fingerprint, count) in enumerate(zip(fingerprints, counts)):
            draws[i] = _uniforms(self._seed_key, fingerprint, count, shape)
        return draws

    def get_config(self):
        config = super().get_config()
        # The transform arguments are the settings' fields, one to one.
        config.update(dataclasses.asdict(self._settings))
        config.update(
            per_frame=self.per_frame, seed=self.seed, time_axis=self.time_axis
        )
        return config
