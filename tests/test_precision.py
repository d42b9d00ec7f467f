"""bfloat16 features where the CPU has the instructions; float32 heads."""

import keras_tuner
import numpy as np
import pytest

from keras_vgg4d.hypermodel import VGG4DHyperModel
from keras_vgg4d.precision import cpu_flags
from keras_vgg4d.precision import resolve_precision

pytestmark = pytest.mark.backends

CLIP_SHAPE = (3, 32, 32, 3)


@pytest.mark.parametrize(
    "precision, flags, policy",
    [
        ("auto", {"avx2", "avx512_bf16"}, "mixed_bfloat16"),
        ("auto", {"avx2", "amx_bf16", "amx_tile"}, "mixed_bfloat16"),
        ("auto", {"avx2", "avx512f"}, "float32"),
        ("auto", set(), "float32"),
        ("float32", {"avx512_bf16"}, "float32"),
        ("bfloat16", {"avx2"}, "mixed_bfloat16"),
    ],
)
def test_auto_reads_the_cpu_flags(precision, flags, policy):
    assert resolve_precision(precision, flags) == policy


def test_cpu_flags_reads_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx2 amx_bf16\n")
    assert cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "amx_bf16"}
    assert cpu_flags(str(tmp_path / "missing")) == set()


def test_bfloat16_features_are_close_to_float32_and_stored_as_float32():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, *CLIP_SHAPE)).astype("float32")
    features = {}
    for precision in ("float32", "bfloat16"):
        hypermodel = VGG4DHyperModel(2, CLIP_SHAPE, precision=precision)
        model = hypermodel.build(keras_tuner.HyperParameters())
        if precision == "bfloat16":
            model.backbone.set_weights(weights)
        weights = model.backbone.get_weights()
        cached = hypermodel.feature_cache.get(model, x)
        assert cached.features.dtype == np.float32
        assert model.head.dtype_policy.name == "float32"
        features[precision] = cached.features
    scale = np.abs(features["float32"]).max()
    difference = np.abs(features["bfloat16"] - features["float32"]).max()
    # bfloat16 keeps 8 bits of mantissa: the backbone tests' 5% of the scale.
    assert 0 < difference < 0.05 * scale


def test_an_unknown_precision_is_named():
    with pytest.raises(ValueError, match=r"precision.*'float16'"):
        VGG4DHyperModel(2, CLIP_SHAPE, precision="float16")
