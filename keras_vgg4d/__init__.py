"""keras_vgg4d: classify 4D images (clips of 2D frames) with VGG19 in Keras 3.

Importing the package registers its layers and model for `.keras` loading
under `safe_mode=True`; it builds no model and touches no network. The
hypermodel (which needs Keras Tuner), the data and the explain modules load
on first use.
"""

from keras_vgg4d.augment import ScipyAugment
from keras_vgg4d.backbone import TemporalVGG19
from keras_vgg4d.frame_fold import FrameFold
from keras_vgg4d.heads import Conv3DHead
from keras_vgg4d.heads import FramewiseHead
from keras_vgg4d.heads import LSTMHead
from keras_vgg4d.model import VGG4DClassifier
from keras_vgg4d.ndimage_ops import TransformError
from keras_vgg4d.version import __version__

# Loaded on first use: Keras Tuner and the loaders are not needed to load or
# run a saved model.
_LAZY = {
    "VGG4DHyperModel": "keras_vgg4d.hypermodel",
    "calibrate": "keras_vgg4d.calibration",
    "data": "keras_vgg4d.data",
    "explain": "keras_vgg4d.explain",
    "multiview_accuracy": "keras_vgg4d.multiview",
    "predict_sources": "keras_vgg4d.multiview",
    "predict_studies": "keras_vgg4d.multiview",
    "predict_views": "keras_vgg4d.multiview",
    "spatial_crops": "keras_vgg4d.multiview",
    "view_frame_indices": "keras_vgg4d.multiview",
    "view_windows": "keras_vgg4d.multiview",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return module if module.__name__ == f"keras_vgg4d.{name}" else getattr(
            module, name
        )
    raise AttributeError(f"module 'keras_vgg4d' has no attribute {name!r}")


__all__ = [
    "Conv3DHead",
    "FrameFold",
    "FramewiseHead",
    "LSTMHead",
    "ScipyAugment",
    "TemporalVGG19",
    "TransformError",
    "VGG4DClassifier",
    "VGG4DHyperModel",
    "__version__",
    "calibrate",
    "data",
    "explain",
    "multiview_accuracy",
    "predict_sources",
    "predict_studies",
    "predict_views",
    "spatial_crops",
    "view_frame_indices",
    "view_windows",
]
