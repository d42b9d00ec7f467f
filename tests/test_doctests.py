"""The `Example:` sections of the public docstrings run as written."""

import doctest
import importlib

import pytest

MODULES = [
    "keras_vgg4d.frame_fold",
    "keras_vgg4d.backbone",
    "keras_vgg4d.augment",
    "keras_vgg4d.resampling",
    "keras_vgg4d.heads",
    "keras_vgg4d.model",
    "keras_vgg4d.hypermodel",
    "keras_vgg4d.data.demo",
    "keras_vgg4d.data.arrays",
    "keras_vgg4d.data.pipeline",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
