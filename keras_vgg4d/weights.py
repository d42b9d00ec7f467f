"""Pretrained VGG19 weights: find the file, read it, adapt it to the input.

`TemporalVGG19(weights=...)` accepts the same weight sources as
`keras.applications.VGG19(include_top=False, weights=...)`:

- `"imagenet"`: Keras' own no-top file, fetched with `keras.utils.get_file`
  from the URL and with the hash keras.applications uses, into the same cache
  (`~/.keras/models`, or `$KERAS_HOME/models`), so a file that
  keras.applications already downloaded is reused and nothing is fetched.
- a path: Keras' own `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`
  (the legacy HDF5 layout), or a `*.weights.h5` file written by `save_weights`
  of a `keras.applications.VGG19(include_top=False)` model.

Files are read by Keras' own `load_weights` into the layer stack of
`keras.applications.VGG19(include_top=False)`, as keras.applications does, so
every format it loads loads here, with its checks. The kernels are then
copied by layer name, and the first layer's kernel is adapted to the input's
channel count the way timm's `adapt_input_conv` does it.
"""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np

from keras_vgg4d.validation import check_integer

# From keras/src/applications/vgg19.py (Keras 3), so that the cache is shared.
IMAGENET_NOTOP_FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_NOTOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
    + IMAGENET_NOTOP_FILENAME
)
IMAGENET_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"

FIRST_CONV_NAME = "block1_conv1"


class WeightsDownloadError(RuntimeError):
    """Raised when the ImageNet weights cannot be downloaded."""


def resolve_weights(weights: str | os.PathLike | None) -> str | None:
    """Returns the local file that the `weights` argument points to.

    Args:
        weights: `None`, `"imagenet"`, or a path to a VGG19 no-top weights
            file.

    Returns:
        `None` for `None`, else the path of an existing local file. For
        `"imagenet"` the file is downloaded into the Keras cache once.

    Raises:
        ValueError: `weights` is not `None`, a string or a path.
        FileNotFoundError: the path does not exist.
        WeightsDownloadError: `"imagenet"` is not cached and cannot be
            downloaded (for example, no network).
    """
    if weights is None:
        return None
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str):
        raise ValueError(
            "`weights` must be None (random initialization), 'imagenet', or "
            "the path to a VGG19 no-top weights file; received "
            f"weights={weights!r}"
        )
    if weights == "imagenet":
        return _fetch_imagenet_notop()
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"The VGG19 weights file {weights!r} does not exist. Pass "
            "weights=None, weights='imagenet', or the path to an existing "
            f"file such as {IMAGENET_NOTOP_FILENAME!r}."
        )
    return weights


def _fetch_imagenet_notop() -> str:
    try:
        return keras.utils.get_file(
            IMAGENET_NOTOP_FILENAME,
            IMAGENET_NOTOP_URL,
            cache_subdir="models",
            file_hash=IMAGENET_NOTOP_MD5,
        )
    except Exception as error:  # get_file raises a bare `Exception`.
        raise WeightsDownloadError(
            "Could not download the ImageNet VGG19 weights from "
            f"{IMAGENET_NOTOP_URL} ({error}). Without network access, copy "
            f"that file ({IMAGENET_NOTOP_FILENAME}) to this machine and pass "
            "its path: TemporalVGG19(weights='/path/to/"
            f"{IMAGENET_NOTOP_FILENAME}'), or place it in the Keras cache "
            "(~/.keras/models/, or $KERAS_HOME/models/)."
        ) from error


def read_vgg19_notop_weights(
    filepath: str, reference: keras.Model | None = None
) -> dict[str, list[np.ndarray]]:
    """Reads the convolution weights of a VGG19 no-top weights file.

    The file is loaded by Keras' own `load_weights` into a 3-channel VGG19
    no-top model, the call `keras.applications.VGG19(weights=filepath)`
    makes, so every format and check of Keras applies.

    Args:
        filepath: An existing VGG19 no-top weights file.
        reference: Optional built model to load the file into, with the
            layers of `keras.applications.VGG19(include_top=False)` in the
            same order and 3 input channels; by default that model itself.
            Its weights are overwritten.

    Returns:
        `{layer_name: [kernel, bias]}` for the 16 convolutions, named as in
        keras.applications (`"block1_conv1"` ... `"block5_conv4"`), with the
        kernels for 3 (BGR) input channels.

    Raises:
        ValueError: the file is not a VGG19 no-top weights file in a format
            Keras reads.
    """
    if reference is None:
        reference = keras.applications.VGG19(include_top=False, weights=None)
    try:
        # Keras warns about each group it cannot match before it raises;
        # the error below says it once, so those warnings are kept only
        # when the file loads.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reference.load_weights(filepath)
    except (ValueError, OSError, KeyError, TypeError) as error:
        raise ValueError(
            f"The weights file {filepath!r} does not fit VGG19 without its "
            "classifier: keras.applications.VGG19(include_top=False, "
            f"weights=...) cannot load it ({type(error).__name__}: {error}). "
            f"Pass Keras' {IMAGENET_NOTOP_FILENAME} or a '.weights.h5' file "
            "saved by `keras.applications.VGG19(include_top=False)"
            ".save_weights(...)`."
        ) from error
    for warning in caught:
        warnings.warn_explicit(
            warning.message, warning.category, warning.filename, warning.lineno
        )
    return {
        layer.name: [keras.ops.convert_to_numpy(w) for w in layer.weights]
        for layer in reference.layers
        if layer.weights
    }


def adapt_input_kernel(kernel: np.ndarray, channels: int) -> np.ndarray:
    """Adapts an RGB first-layer kernel to `channels` input channels.

    As timm's `adapt_input_conv`: 1 channel sums the three kernels (so a gray
    frame gives what the gray frame repeated to RGB gives); `C > 3` (or 2)
    channels repeat the three kernels to `C` and scale them by `3 / C` (so
    the response to the RGB frame repeated along channels is unchanged).

    Args:
        kernel: A `(height, width, 3, filters)` convolution kernel.
        channels: The input channel count, a positive integer.

    Returns:
        A `(height, width, channels, filters)` kernel of the same dtype.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d.weights import adapt_input_kernel
    >>> kernel = np.ones((3, 3, 3, 64), "float32")
    >>> adapt_input_kernel(kernel, 1)[0, 0, :, 0]
    array([3.], dtype=float32)
    >>> adapt_input_kernel(kernel, 6)[0, 0, :, 0]
    array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5], dtype=float32)
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[2] != 3:
        raise ValueError(
            "adapt_input_kernel expects a (height, width, 3, filters) kernel, "
            f"received shape {kernel.shape}"
        )
    check_integer("adapt_input_kernel", "channels", channels, 1)
    if channels == 3:
        return kernel
    if channels == 1:
        return kernel.sum(axis=2, keepdims=True)
    repeats = -(-channels // 3)
    tiled = np.tile(kernel, (1, 1, repeats, 1))[:, :, :channels]
    return (tiled * (3.0 / channels)).astype(kernel.dtype)


def load_vgg19_notop_weights(
    model: keras.Model, filepath: str, reference: keras.Model | None = None
) -> None:
    """Loads a VGG19 no-top weights file into a built VGG19-like model.

    Copies every convolution by its keras.applications name and adapts
    `block1_conv1` to the model's input channel count with
    `adapt_input_kernel`.

    Args:
        model: A built model with layers named `block1_conv1` ...
            `block5_conv4`, any input channel count.
        filepath: An existing VGG19 no-top weights file.
        reference: Optional 3-channel model to read the file with (see
            `read_vgg19_notop_weights`).

    Raises:
        ValueError: the file does not fit (see `read_vgg19_notop_weights`).
    """
    saved = read_vgg19_notop_weights(filepath, reference)
    for name, values in saved.items():
        layer = model.get_layer(name)
        kernel, bias = values
        if name == FIRST_CONV_NAME:
            kernel = adapt_input_kernel(kernel, int(layer.kernel.shape[2]))
        layer.set_weights([kernel, bias])
