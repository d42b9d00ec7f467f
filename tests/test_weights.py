"""Weight handling: finding, reading and adapting VGG19 no-top weights."""

import inspect
import pathlib

import h5py
import keras
import numpy as np
import pytest

from keras_vgg4d import weights as vgg_weights
from keras_vgg4d.backbone import TemporalVGG19
from keras_vgg4d.weights import WeightsDownloadError
from keras_vgg4d.weights import adapt_input_kernel
from keras_vgg4d.weights import read_vgg19_notop_weights
from keras_vgg4d.weights import resolve_weights
from vgg_testing import scaled_random_vgg

pytestmark = pytest.mark.backends


def write_legacy_notop_h5(model, path):
    """Writes `model`'s weights in the layout of Keras' own `*_notop.h5`.

    That file predates Keras 3: an HDF5 file whose `layer_names` attribute
    lists the layers in order, one group per layer whose `weight_names`
    attribute lists datasets named `<layer>/<weight>:0`.
    """
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array(
            [layer.name.encode("utf8") for layer in model.layers]
        )
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [
                f"{layer.name}/{kind}:0".encode("utf8")
                for kind in ("kernel", "bias")
            ] if layer.weights else []
            group.attrs["weight_names"] = np.array(names, dtype="S")
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name.decode("utf8"), data=value)


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """A VGG19 no-top model and its weights in both accepted formats."""
    model = scaled_random_vgg(keras.applications.VGG19)
    folder = tmp_path_factory.mktemp("vgg19")
    keras_file = str(folder / "vgg19_notop.weights.h5")
    legacy_file = str(folder / vgg_weights.IMAGENET_NOTOP_FILENAME)
    model.save_weights(keras_file)
    write_legacy_notop_h5(model, legacy_file)
    expected = {layer.name: layer.get_weights() for layer in model.layers
                if layer.weights}
    return {"keras": keras_file, "legacy": legacy_file, "values": expected}


def frames(shape=(6, 32, 32, 3), seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, shape).astype("float32")


# adapt_input_kernel ---------------------------------------------------------


def rgb_kernel(seed=0):
    return np.random.default_rng(seed).normal(size=(3, 3, 3, 8)).astype(
        "float32"
    )


def test_adapt_three_channels_is_identity():
    kernel = rgb_kernel()
    np.testing.assert_array_equal(adapt_input_kernel(kernel, 3), kernel)


def test_adapt_one_channel_sums_rgb_kernels():
    kernel = rgb_kernel()
    adapted = adapt_input_kernel(kernel, 1)
    assert adapted.shape == (3, 3, 1, 8)
    np.testing.assert_allclose(
        adapted[:, :, 0], kernel[:, :, 0] + kernel[:, :, 1] + kernel[:, :, 2],
        rtol=1e-6,
    )


@pytest.mark.parametrize("channels", [2, 4, 5, 7])
def test_adapt_c_channels_repeats_rgb_and_scales(channels):
    kernel = rgb_kernel()
    adapted = adapt_input_kernel(kernel, channels)
    assert adapted.shape == (3, 3, channels, 8)
    assert adapted.dtype == kernel.dtype
    for c in range(channels):
        np.testing.assert_allclose(
            adapted[:, :, c], kernel[:, :, c % 3] * 3 / channels, rtol=1e-6
        )


def test_adapt_repeated_input_keeps_response():
    # C = 6 channels holding the RGB image twice respond like the RGB image.
    kernel = rgb_kernel()
    patch = np.random.default_rng(1).normal(size=(3, 3, 3)).astype("float32")
    rgb = np.einsum("hwc,hwcf->f", patch, kernel)
    six = np.einsum(
        "hwc,hwcf->f", np.tile(patch, (1, 1, 2)), adapt_input_kernel(kernel, 6)
    )
    np.testing.assert_allclose(six, rgb, rtol=1e-5)


@pytest.mark.parametrize(
    "kernel_shape, channels, match",
    [
        ((3, 3, 1, 8), 3, "received shape"),
        ((3, 3, 8), 3, "received shape"),
        ((3, 3, 3, 8), 0, "channels=0"),
        ((3, 3, 3, 8), True, "channels=True"),
    ],
)
def test_adapt_rejects_bad_arguments(kernel_shape, channels, match):
    with pytest.raises(ValueError, match=match):
        adapt_input_kernel(np.zeros(kernel_shape, "float32"), channels)


# resolve_weights --------------------------------------------------------------


def test_resolve_none_and_existing_paths(reference):
    assert resolve_weights(None) is None
    assert resolve_weights(reference["keras"]) == reference["keras"]
    assert resolve_weights(pathlib.Path(reference["keras"])) == (
        reference["keras"]
    )


def test_resolve_missing_file_names_the_path(tmp_path):
    path = str(tmp_path / "nowhere_notop.h5")
    with pytest.raises(FileNotFoundError, match="nowhere_notop.h5"):
        resolve_weights(path)


@pytest.mark.parametrize("bad", [3, True, ["imagenet"]])
def test_resolve_rejects_other_types(bad):
    with pytest.raises(ValueError, match="weights="):
        resolve_weights(bad)


def test_imagenet_uses_the_keras_applications_download(monkeypatch, tmp_path):
    # Same file name, URL, hash and cache folder as keras.applications, so a
    # file it already downloaded is found in the cache.
    from keras.src.applications import vgg19 as keras_vgg19

    assert vgg_weights.IMAGENET_NOTOP_URL == keras_vgg19.WEIGHTS_PATH_NO_TOP
    assert vgg_weights.IMAGENET_NOTOP_MD5 in inspect.getsource(keras_vgg19)
    calls = []

    def fake_get_file(fname, origin, **kwargs):
        calls.append((fname, origin, kwargs))
        return str(tmp_path / fname)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    assert resolve_weights("imagenet").endswith(
        vgg_weights.IMAGENET_NOTOP_FILENAME
    )
    assert calls == [
        (
            vgg_weights.IMAGENET_NOTOP_FILENAME,
            keras_vgg19.WEIGHTS_PATH_NO_TOP,
            {"cache_subdir": "models",
             "file_hash": vgg_weights.IMAGENET_NOTOP_MD5},
        )
    ]


def test_imagenet_offline_says_how_to_pass_a_local_file(monkeypatch):
    origin = vgg_weights.IMAGENET_NOTOP_URL

    def offline_get_file(fname, origin, **kwargs):
        # What keras.utils.get_file raises on a machine without network.
        raise Exception(
            f"URL fetch failure on {origin}: None -- [Errno -2] Name or "
            "service not known"
        )

    monkeypatch.setattr(keras.utils, "get_file", offline_get_file)
    with pytest.raises(WeightsDownloadError) as info:
        resolve_weights("imagenet")
    message = str(info.value)
    assert "Could not download" in message and origin in message
    assert "TemporalVGG19(weights='/path/to/" in message
    assert "Name or service not known" in message
    assert isinstance(info.value, RuntimeError)


# read_vgg19_notop_weights ----------------------------------------------------


@pytest.mark.parametrize("kind", ["keras", "legacy"])
def test_reads_both_formats(reference, kind):
    values = read_vgg19_notop_weights(reference[kind])
    assert list(values) == list(reference["values"])
    assert len(values) == 16
    for name, (kernel, bias) in values.items():
        np.testing.assert_array_equal(kernel, reference["values"][name][0])
        np.testing.assert_array_equal(bias, reference["values"][name][1])


@pytest.fixture(scope="module")
def misfit_files(tmp_path_factory, reference):
    folder = tmp_path_factory.mktemp("misfits")
    files = {}
    files["vgg16"] = str(folder / "vgg16_notop.weights.h5")
    keras.applications.VGG16(weights=None, include_top=False).save_weights(
        files["vgg16"]
    )
    files["vgg16_legacy"] = str(folder / "vgg16_notop.h5")
    write_legacy_notop_h5(
        keras.applications.VGG16(weights=None, include_top=False),
        files["vgg16_legacy"],
    )
    files["gray_vgg19"] = str(folder / "gray_vgg19.weights.h5")
    keras.applications.VGG19(
        weights=None, include_top=False, input_shape=(32, 32, 1)
    ).save_weights(files["gray_vgg19"])
    files["truncated"] = str(folder / "truncated.weights.h5")
    with open(reference["keras"], "rb") as source:
        pathlib.Path(files["truncated"]).write_bytes(source.read(100_000))
    files["text"] = str(folder / "notes.txt")
    pathlib.Path(files["text"]).write_text("not weights")
    return files


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("vgg16", "could not be loaded"),
        ("vgg16_legacy", "Layer count mismatch"),
        ("gray_vgg19", r"\(3, 3, 1, 64\)"),
        ("truncated", "truncated file"),
        ("text", "format"),
    ],
)
def test_file_that_does_not_fit_raises_value_error(misfit_files, kind, reason):
    path = misfit_files[kind]
    with pytest.raises(ValueError, match="does not fit VGG19") as info:
        read_vgg19_notop_weights(path)
    assert path in str(info.value)
    assert info.match(reason)


# Loaded into TemporalVGG19 ---------------------------------------------------


@pytest.mark.parametrize("kind", ["keras", "legacy"])
def test_temporal_vgg19_equals_keras_applications(reference, kind):
    expected_model = keras.applications.VGG19(
        weights=reference[kind], include_top=False, input_shape=(32, 32, 3)
    )
    clips = frames((2, 3, 32, 32, 3))
    # preprocess_input changes numpy input in place: give it a copy.
    expected = expected_model(
        keras.applications.vgg19.preprocess_input(
            clips.reshape(6, 32, 32, 3).copy()
        )
    )
    got = TemporalVGG19(weights=reference[kind])(clips)
    assert got.shape == (2, 3, 1, 1, 512)
    expected = np.asarray(expected).reshape(got.shape)
    assert np.abs(expected).max() > 1.0  # features are not vanishing
    np.testing.assert_allclose(
        got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max()
    )


def test_wrong_file_raises_when_the_layer_builds(misfit_files):
    layer = TemporalVGG19(weights=misfit_files["vgg16"])
    with pytest.raises(ValueError, match="does not fit VGG19"):
        layer(frames((1, 2, 32, 32, 3)))
