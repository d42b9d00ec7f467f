"""keras_vgg4d: classify 4D images (clips of 2D frames) with VGG19 in Keras 3.

Importing the package registers its layers and model for `.keras` loading
under `safe_mode=True`; it builds no model and touches no network. The
hypermodel (which needs Keras Tuner) and the data module load on first use.
"""

from keras_vgg4d.frame_fold import FrameFold
from keras_vgg4d.version import __version__

_LAZY = {}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return getattr(module, name) if name != module.__name__ else module
    raise AttributeError(f"module 'keras_vgg4d' has no attribute {name!r}")


__all__ = ["FrameFold", "__version__"]
