"""`ScipyAugment`: scipy.ndimage transforms of clips as a Keras layer."""

from __future__ import annotations

import numbers
import random

import keras
import numpy as np
import tensorflow as tf

from keras_vgg4d.layout import time_major_permutation
from keras_vgg4d.layout import to_time_major
from keras_vgg4d.layout import validate_time_axis
from keras_vgg4d.ndimage_ops import DRAW_FIELDS
from keras_vgg4d.ndimage_ops import MODES
from keras_vgg4d.ndimage_ops import TRANSFORMS
from keras_vgg4d.ndimage_ops import TransformSettings
from keras_vgg4d.ndimage_ops import augment_clips

FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _range_argument(
    name,
    value,
    *,
    scalar,
    lower=-np.inf,
    upper=np.inf,
    expects,
):
    """Validates a number-or-pair argument and returns a `(low, high)` pair.

    `scalar(v)` turns a single number into its pair; `lower` and `upper`
    bound the pair. The error quotes `expects`, the argument and the value.
    """
    if value is None:
        return None
    if _is_number(value):
        pair = scalar(float(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(_is_number(v) for v in value)
    ):
        pair = (float(value[0]), float(value[1]))
    else:
        pair = None
    if (
        pair is None
        or not np.all(np.isfinite(pair))
        or pair[0] > pair[1]
        or pair[0] < lower
        or pair[1] > upper
    ):
        raise ValueError(
            f"ScipyAugment expects `{name}` to be {expects}; received "
            f"{name}={value!r}"
        )
    return pair


def _symmetric(bound):
    def scalar(v):
        if v < 0 or v > bound:
            return None
        return (-v, v)

    return scalar


def _probabilities(probability) -> dict:
    """A probability for every transform, from one number or a dict."""
    expects = (
        "a number in [0, 1], or a dict mapping transform names "
        f"{list(TRANSFORMS)} to numbers in [0, 1]"
    )
    if _is_number(probability):
        values = dict.fromkeys(TRANSFORMS, float(probability))
    elif isinstance(probability, dict):
        unknown = sorted(set(probability) - set(TRANSFORMS))
        if unknown:
            raise ValueError(
                f"ScipyAugment expects `probability` to be {expects}; received "
                f"unknown transform names {unknown} in probability="
                f"{probability!r}"
            )
        values = dict.fromkeys(TRANSFORMS, 1.0)
        for key, value in probability.items():
            if not _is_number(value):
                values = None
                break
            values[key] = float(value)
    else:
        values = None
    if values is None or not all(0.0 <= p <= 1.0 for p in values.values()):
        raise ValueError(
            f"ScipyAugment expects `probability` to be {expects}; received "
            f"probability={probability!r}"
        )
    return values


def _seed_key(seed: int) -> int:
    """A well-mixed signed 64-bit key from `seed` (splitmix64's finalizer)."""
    z = (seed + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z ^= z >> 31
    return z - (1 << 64) if z >= 1 << 63 else z


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
    unchanged and adds no `tf.py_function` to the graph, so a model holding it
    exports as a SavedModel.

    Randomness: the draws are made with stateless TensorFlow ops keyed on
    `seed`, a fingerprint of each clip's content, and how many times this
    layer has seen that content before (counted in a lookup table). A seeded
    layer therefore gives the same outputs for the same inputs in the same
    order, new draws each time a clip comes back (each epoch), different draws
    for different clips of a batch, and the same augmentation per clip in a
    `tf.data.Dataset.map` with `num_parallel_calls > 1`, whatever order the
    parallel calls run in. The transforms themselves run in numpy and SciPy
    through `tf.py_function`, so the layer cannot be XLA-compiled.

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
        The input's shape and dtype. Integer clips are rounded and clipped.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d import ScipyAugment
    >>> augment = ScipyAugment(rotation=15, zoom=(0.9, 1.1), shift=0.1,
    ...                        flip="horizontal", seed=0)
    >>> clips = np.random.default_rng(0).integers(
    ...     0, 256, (2, 4, 32, 32, 3), dtype="uint8")
    >>> out = augment(clips, training=True)
    >>> out.shape, out.dtype.name
    (TensorShape([2, 4, 32, 32, 3]), 'uint8')
    >>> bool(np.array_equal(augment(clips), clips))  # inference: identity
    True

    In a `tf.data` pipeline, pass `training=True`:

    >>> import tensorflow as tf
    >>> dataset = tf.data.Dataset.from_tensor_slices(clips).map(
    ...     lambda clip: augment(clip, training=True), num_parallel_calls=2)
    >>> [tuple(c.shape) for c in dataset]
    [(4, 32, 32, 3), (4, 32, 32, 3)]
    """

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
        self.rotation = _range_argument(
            "rotation", rotation, scalar=_symmetric(np.inf),
            expects="a number of degrees >= 0 or a pair (low, high)",
        )
        self.zoom = _range_argument(
            "zoom", zoom, scalar=lambda v: None, lower=1e-6,
            expects="a pair of zoom factors (low, high) with 0 < low <= high",
        )
        self.shift = _range_argument(
            "shift", shift, scalar=_symmetric(1.0), lower=-1.0, upper=1.0,
            expects="a fraction in [0, 1] or a pair (low, high) in [-1, 1]",
        )
        self.shear = _range_argument(
            "shear", shear, scalar=_symmetric(89.0), lower=-89.0, upper=89.0,
            expects="degrees in [0, 89] or a pair (low, high) in [-89, 89]",
        )
        if flip is not None and flip not in FLIP_MODES:
            raise ValueError(
                f"ScipyAugment expects `flip` to be one of {FLIP_MODES} or "
                f"None; received flip={flip!r}"
            )
        self.flip = flip
        if median_size is not None and (
            not _is_integer(median_size) or median_size < 1
        ):
            raise ValueError(
                "ScipyAugment expects `median_size` to be an integer >= 1 or "
                f"None; received median_size={median_size!r}"
            )
        self.median_size = None if median_size is None else int(median_size)
        self.gaussian_sigma = _range_argument(
            "gaussian_sigma", gaussian_sigma, scalar=lambda v: (v, v),
            lower=0.0,
            expects="a number >= 0 or a pair (low, high) of numbers >= 0",
        )
        self.brightness = _range_argument(
            "brightness", brightness, scalar=_symmetric(1.0), lower=-1.0,
            upper=1.0,
            expects="a fraction in [0, 1] or a pair (low, high) in [-1, 1]",
        )
        self.contrast = _range_argument(
            "contrast", contrast,
            scalar=lambda v: (1.0 - v, 1.0 + v) if 0 <= v <= 1 else None,
            lower=0.0,
            expects="a number in [0, 1] or a pair of factors (low, high) >= 0",
        )
        if noise is not None and (
            not _is_number(noise) or not np.isfinite(noise) or noise < 0
        ):
            raise ValueError(
                "ScipyAugment expects `noise` to be a number >= 0 (a standard "
                f"deviation as a fraction of value_range); received "
                f"noise={noise!r}"
            )
        self.noise = None if noise is None else float(noise)
        self.probability = _probabilities(probability)
        if not _is_integer(order) or not 0 <= order <= 5:
            raise ValueError(
                "ScipyAugment expects `order` (the spline interpolation "
                f"order) to be an integer from 0 to 5; received order={order!r}"
            )
        self.order = int(order)
        if mode not in MODES:
            raise ValueError(
                f"ScipyAugment expects `mode` to be one of {MODES}; received "
                f"mode={mode!r}"
            )
        self.mode = mode
        if not _is_number(cval):
            raise ValueError(
                f"ScipyAugment expects `cval` to be a number; received "
                f"cval={cval!r}"
            )
        self.cval = float(cval)
        self.value_range = _range_argument(
            "value_range", value_range, scalar=lambda v: None,
            expects="a pair (low, high) with low < high",
        )
        if self.value_range[0] == self.value_range[1]:
            raise ValueError(
                "ScipyAugment expects `value_range` to be a pair (low, high) "
                f"with low < high; received value_range={value_range!r}"
            )
        self.per_frame = bool(per_frame)
        if seed is not None and (not _is_integer(seed) or seed < 0):
            raise ValueError(
                "ScipyAugment expects `seed` to be an integer >= 0 or None; "
                f"received seed={seed!r}"
            )
        self.seed = seed
        self.time_axis = validate_time_axis(time_axis)
        self.supports_jit = False

        self._settings = TransformSettings(
            rotation=self.rotation,
            zoom=self.zoom,
            shift=self.shift,
            shear=self.shear,
            flip_horizontal=flip in ("horizontal", "horizontal_and_vertical"),
            flip_vertical=flip in ("vertical", "horizontal_and_vertical"),
            median_size=self.median_size,
            gaussian_sigma=self.gaussian_sigma,
            brightness=self.brightness,
            contrast=self.contrast,
            noise=self.noise,
            probability=self.probability,
            value_range=self.value_range,
            order=self.order,
            mode=self.mode,
            cval=self.cval,
        )
        self._active = any(self._settings.enabled(t) for t in TRANSFORMS)
        self._seed_key = _seed_key(
            random.randint(0, 2**62) if seed is None else int(seed)
        )
        # How many times each clip content (by fingerprint) has been drawn
        # for: the per-clip "epoch" in the draw's key.
        with tf.init_scope():
            self._draw_counts = tf.lookup.experimental.MutableHashTable(
                key_dtype=tf.int64, value_dtype=tf.int64, default_value=0
            )

    def _check_input_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) not in (4, 5):
            layout = (
                "(batch, time, height, width, channels)"
                if self.time_axis == 1
                else "(batch, height, width, channels, time)"
            )
            raise ValueError(
                f"ScipyAugment expects clips {layout}, or one clip without "
                f"the batch axis (rank 4), with time_axis={self.time_axis}; "
                f"received input shape {input_shape} (rank "
                f"{len(input_shape)})."
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

    def call(self, inputs, training=None):
        if not training or not self._active:
            return inputs
        x = tf.convert_to_tensor(inputs)
        if not (x.dtype.is_integer or x.dtype.is_floating):
            raise ValueError(
                "ScipyAugment expects clips of an integer or float dtype; "
                f"received dtype {x.dtype.name}."
            )
        rank = len(self._check_input_shape(x.shape))
        if rank == 4:
            x = x[None]
        x = to_time_major(x, self.time_axis)
        draws = self._draw(x)
        y = self._transform(x, draws)
        if self.time_axis != 1:
            y = tf.transpose(y, np.argsort(time_major_permutation(5, -1)))
        if rank == 4:
            y = y[0]
        return y

    def _draw(self, clips):
        """Stateless uniform draws, `(batch, rows, len(DRAW_FIELDS))`.

        Each clip's key is (seed, fingerprint of its content, how many times
        that content was drawn for before, including earlier copies in this
        batch). The key depends on the clip, not on the order in which
        parallel calls run.
        """
        batch = tf.shape(clips)[0]
        fingerprints = tf.bitcast(
            tf.fingerprint(tf.reshape(clips, (batch, -1))), tf.int64
        )
        same = tf.equal(fingerprints[:, None], fingerprints[None, :])
        positions = tf.range(batch)
        earlier = positions[None, :] < positions[:, None]
        copies_before = tf.reduce_sum(
            tf.cast(same & earlier, tf.int64), axis=1
        )
        copies = tf.reduce_sum(tf.cast(same, tf.int64), axis=1)
        seen = self._draw_counts.lookup(fingerprints)
        update = self._draw_counts.insert(fingerprints, seen + copies)
        with tf.control_dependencies([update]):
            counters = seen + copies_before
        seeds = tf.stack(
            [tf.bitwise.bitwise_xor(fingerprints, self._seed_key), counters],
            axis=1,
        )
        rows = tf.shape(clips)[1] if self.per_frame else 1
        num_fields = len(DRAW_FIELDS)

        def draw(seed):
            return tf.random.stateless_uniform(
                (rows, num_fields), seed=seed, dtype=tf.float64
            )

        if clips.shape[0] == 1:  # one clip, e.g. a per-clip tf.data map
            return draw(seeds[0])[None]
        return tf.map_fn(
            draw,
            seeds,
            fn_output_signature=tf.TensorSpec((None, num_fields), tf.float64),
        )

    def _transform(self, clips, draws):
        settings = self._settings
        if tf.executing_eagerly():
            # Eager: call numpy directly, so errors keep their Python type.
            return tf.convert_to_tensor(
                augment_clips(clips.numpy(), draws.numpy(), settings)
            )

        def transform(clips, draws):
            return augment_clips(clips.numpy(), draws.numpy(), settings)

        outputs = tf.py_function(transform, [clips, draws], Tout=clips.dtype)
        outputs.set_shape(clips.shape)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rotation": self.rotation,
                "zoom": self.zoom,
                "shift": self.shift,
                "shear": self.shear,
                "flip": self.flip,
                "median_size": self.median_size,
                "gaussian_sigma": self.gaussian_sigma,
                "brightness": self.brightness,
                "contrast": self.contrast,
                "noise": self.noise,
                "probability": dict(self.probability),
                "order": self.order,
                "mode": self.mode,
                "cval": self.cval,
                "value_range": self.value_range,
                "per_frame": self.per_frame,
                "seed": self.seed,
                "time_axis": self.time_axis,
            }
        )
        return config
