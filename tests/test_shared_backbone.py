"""The backbone a search's trials share: a random one kept as its seed."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_vgg4d.backbone import TemporalVGG19
from keras_vgg4d.shared_backbone import SEED_FILE
from keras_vgg4d.shared_backbone import SharedBackbone
from keras_vgg4d.shared_backbone import seeded_random_weights

pytestmark = pytest.mark.backends


def _backbone(channels=3):
    backbone = TemporalVGG19(weights=None)
    backbone.build((None, 2, 32, 32, channels))
    return backbone


class _Model:
    """What `SharedBackbone.share` reads of a classifier: its backbone."""

    def __init__(self, channels=3):
        self.backbone = _backbone(channels)


def test_seeded_weights_are_vgg19s_initialisation():
    backbone = _backbone(channels=2)
    weights = seeded_random_weights(backbone, seed=5)
    assert [w.shape for w in weights] == [
        tuple(w.shape) for w in backbone.weights]
    kernels, biases = weights[0::2], weights[1::2]
    for kernel in kernels:
        fan_in = np.prod(kernel.shape[:-1])
        fan_out = kernel.shape[-1] * np.prod(kernel.shape[:2])
        limit = np.sqrt(6 / (fan_in + fan_out))
        assert np.abs(kernel).max() <= limit * (1 + 1e-6)
        # Glorot uniform: the variance of U(-limit, limit).
        assert kernel.std() == pytest.approx(limit / np.sqrt(3), rel=0.05)
    for bias in biases:
        np.testing.assert_array_equal(bias, 0)


def test_the_ith_weight_is_drawn_with_seed_plus_i():
    """Pinned: a seed file written today must draw the same backbone in
    later versions of this package."""
    backbone = _backbone()
    assert backbone.weights[0].path.endswith("block1_conv1/kernel")
    weights = seeded_random_weights(backbone, seed=11)
    for i in (0, 2, 30):
        expected = keras.initializers.GlorotUniform(seed=11 + i)(
            weights[i].shape)
        np.testing.assert_array_equal(weights[i], expected)


def test_weights_other_than_kernels_and_biases_are_refused():
    model = keras.Sequential([keras.layers.Conv2D(2, 3, use_bias=False),
                              keras.layers.BatchNormalization()])
    model.build((None, 8, 8, 1))
    with pytest.raises(ValueError, match=(
            r"^seeded_random_weights draws kernels and biases only; the "
            r"backbone also has \[.*gamma.*\]\.$")):
        seeded_random_weights(model, seed=0)


def test_a_kernel_without_its_initializer_is_refused():
    class Kernel(keras.layers.Layer):
        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(2,), name="kernel")

    layer = Kernel()
    layer.build((1,))
    with pytest.raises(ValueError, match=r"draws kernels and biases only"):
        seeded_random_weights(layer, seed=0)


@pytest.mark.skipif(
    keras.backend.backend() == "jax",
    reason="JAX computes float64 as float32 unless jax_enable_x64 is set",
)
def test_weights_are_drawn_in_each_variables_dtype():
    model = keras.Sequential([keras.layers.Dense(3, dtype="float64")])
    model.build((None, 4))
    weights = seeded_random_weights(model, seed=0)
    assert [w.dtype for w in weights] == ["float64", "float64"]


def test_seeds_decide_the_weights():
    backbone = _backbone()
    first = seeded_random_weights(backbone, seed=1)
    again = seeded_random_weights(backbone, seed=1)
    other = seeded_random_weights(backbone, seed=2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    # Every kernel is drawn with a seed of its own.
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[2].ravel()[:100], first[4].ravel()[:100])


def test_a_new_process_draws_the_same_backbone():
    script = (
        "import sys, numpy as np\n"
        "from keras_vgg4d.backbone import TemporalVGG19\n"
        "from keras_vgg4d.shared_backbone import seeded_random_weights\n"
        "b = TemporalVGG19(weights=None); b.build((None, 2, 32, 32, 3))\n"
        "w = seeded_random_weights(b, 7)\n"
        "print(repr([float(np.sum(a, dtype='float64')) for a in w[::2]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True,
                         text=True, check=True).stdout
    here = seeded_random_weights(_backbone(), 7)
    assert eval(out.strip().splitlines()[-1]) == [
        float(np.sum(a, dtype="float64")) for a in here[::2]]


def test_only_the_seed_is_written_and_read_back(tmp_path):
    keras.utils.set_random_seed(0)
    first = _Model()
    SharedBackbone(random=True, directory=str(tmp_path)).share(first)
    assert os.listdir(tmp_path) == [SEED_FILE]
    assert os.path.getsize(tmp_path / SEED_FILE) < 200

    keras.utils.set_random_seed(1)  # another process, another draw
    second = _Model()
    assert not np.array_equal(second.backbone.get_weights()[0],
                              first.backbone.get_weights()[0])
    SharedBackbone(random=True, directory=str(tmp_path)).share(second)
    for a, b in zip(first.backbone.get_weights(),
                    second.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_later_models_of_one_search_get_the_first_ones_weights():
    shared = SharedBackbone(random=False, directory=None)
    first, second = _Model(), _Model()
    expected = first.backbone.get_weights()
    shared.share(first)
    assert shared.holds_weights
    shared.share(second)
    for a, b in zip(expected, second.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_no_seed_file_without_a_directory_or_for_file_weights(tmp_path):
    SharedBackbone(random=True, directory=None).share(_Model())
    SharedBackbone(random=False, directory=str(tmp_path)).share(_Model())
    assert os.listdir(tmp_path) == []


def test_a_seed_that_draws_another_backbone_is_an_error(tmp_path):
    SharedBackbone(random=True, directory=str(tmp_path)).share(_Model())
    path = tmp_path / SEED_FILE
    stored = json.loads(path.read_text())
    stored["seed"] += 1  # as if another Keras drew other numbers from it
    path.write_text(json.dumps(stored))
    with pytest.raises(RuntimeError, match=(
            r"^The random backbone drawn from the seed in .*backbone_seed\.json"
            r" is not the one this search's features were computed with "
            r"\(written by Keras 3[^,]*, this is Keras 3[^)]*\)\. Start the "
            r"search in a new directory, or give the backbone a weights "
            r"file\.$")):
        SharedBackbone(random=True, directory=str(tmp_path)).share(_Model())
