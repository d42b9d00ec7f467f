"""The `Example:` sections of the public docstrings run as written.

Every module of the package is collected, so a new module's examples run
without being listed here; the modules that hold public classes and
functions must have examples.
"""

import doctest
import importlib
import pkgutil

import pytest

import keras_vgg4d

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(keras_vgg4d.__path__, "keras_vgg4d.")
    if not info.name.rsplit(".", 1)[-1].startswith("_")
)

# Modules of the public API: each shows how it is used.
WITH_EXAMPLES = {
    "keras_vgg4d.frame_fold",
    "keras_vgg4d.backbone",
    "keras_vgg4d.augment",
    "keras_vgg4d.resampling",
    "keras_vgg4d.heads",
    "keras_vgg4d.metrics",
    "keras_vgg4d.model",
    "keras_vgg4d.hypermodel",
    "keras_vgg4d.data.demo",
    "keras_vgg4d.data.arrays",
    "keras_vgg4d.data.pipeline",
    "keras_vgg4d.data.dicom",
    "keras_vgg4d.data.intensity",
    "keras_vgg4d.data.streaming",
    "keras_vgg4d.data.sampling",
    "keras_vgg4d.data.video",
    "keras_vgg4d.frame_features",
    "keras_vgg4d.precision",
    "keras_vgg4d.class_weight",
    "keras_vgg4d.studies",
    "keras_vgg4d.optimizers",
    "keras_vgg4d.calibration",
    "keras_vgg4d.multiview",
    "keras_vgg4d.compiled_steps",
}


def test_every_module_is_collected():
    assert WITH_EXAMPLES <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    if name in WITH_EXAMPLES:
        assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
