"""`VGGPreprocessing`: VGG's own ImageNet ("caffe") preprocessing as a layer."""

from __future__ import annotations

import keras
from keras import ops

# The ImageNet channel means that `keras.applications.vgg19.preprocess_input`
# subtracts, in its output (BGR) channel order.
IMAGENET_BGR_MEANS = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="keras_vgg4d")
class VGGPreprocessing(keras.layers.Layer):
    """VGG's ImageNet preprocessing of raw 0..255 frames, inside the model.

    Does what `keras.applications.vgg19.preprocess_input` does (its "caffe"
    mode): no scaling, channel order RGB -> BGR, and each channel
    zero-centred by its ImageNet mean. How the channel count is handled:

    - 3 channels (RGB): exactly `preprocess_input`.
    - 1 channel (gray): the gray frame is treated as the RGB frame with the
      gray value in every channel, so the output has **3** channels and
      equals `preprocess_input(np.repeat(x, 3, axis=-1))`. This keeps
      pretrained VGG kernels exact for gray input.
    - any other count: no channel order is assumed; every channel is
      zero-centred by the mean of the three ImageNet means (114.799).

    Args:
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Channels-last images or clips with values in `0..255`, of
            any rank >= 2 and any (integer or float) dtype.

    Input shape:
        `(..., channels)`.

    Output shape:
        `(..., 3)` for 1 channel, else the input shape.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from keras_vgg4d.preprocessing import VGGPreprocessing
    >>> frames = np.random.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    >>> out = VGGPreprocessing()(frames)
    >>> expected = keras.applications.vgg19.preprocess_input(frames.copy())
    >>> bool(np.allclose(out, expected, atol=1e-4))
    True
    >>> tuple(VGGPreprocessing()(frames[..., :1]).shape)
    (2, 32, 32, 3)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def _channels(self, input_shape):
        channels = tuple(input_shape)[-1]
        if channels is None:
            raise ValueError(
                "VGGPreprocessing expects a known channel count (last axis), "
                f"received input shape {tuple(input_shape)}"
            )
        return channels

    def compute_output_shape(self, input_shape):
        channels = self._channels(input_shape)
        return (*tuple(input_shape)[:-1], 3 if channels == 1 else channels)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        channels = self._channels(x.shape)
        if channels == 3:
            # RGB to BGR; `ops.flip`, since PyTorch has no negative steps.
            return ops.flip(x, axis=-1) - ops.array(IMAGENET_BGR_MEANS, x.dtype)
        if channels == 1:
            return x - ops.array(IMAGENET_BGR_MEANS, x.dtype)
        mean = sum(IMAGENET_BGR_MEANS) / len(IMAGENET_BGR_MEANS)
        return x - ops.cast(mean, x.dtype)
