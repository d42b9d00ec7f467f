"""TemporalVGG19: VGG19's conv blocks on every frame of a clip."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

from keras_vgg4d import weights as vgg_weights
from keras_vgg4d.backbone import TemporalVGG19
from keras_vgg4d.backbone import VGG19_BLOCKS
from keras_vgg4d.preprocessing import VGGPreprocessing
from vgg_testing import scaled_random_vgg

pytestmark = pytest.mark.backends


def scaled_random_vgg19(seed=0):
    """keras.applications.VGG19 (no top) with He-scaled random weights."""
    return scaled_random_vgg(keras.applications.VGG19, seed=seed)


@pytest.fixture(scope="module")
def saved_vgg19(tmp_path_factory):
    """A VGG19 no-top weights file and its first and last kernels."""
    model = scaled_random_vgg19()
    path = str(tmp_path_factory.mktemp("vgg19") / "vgg19_notop.weights.h5")
    model.save_weights(path)
    kernels = {
        name: np.asarray(model.get_layer(name).kernel)
        for name in ("block1_conv1", "block5_conv4")
    }
    return path, kernels


@pytest.fixture(scope="module")
def weights_file(saved_vgg19):
    return saved_vgg19[0]


def clips(shape=(2, 3, 32, 32, 3), seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, shape).astype("float32")


def assert_features_close(got, expected, rtol=1e-4):
    expected = np.asarray(expected, "float32")
    assert np.abs(expected).max() > 1.0  # not vanishing features
    np.testing.assert_allclose(
        np.asarray(got, "float32"),
        expected,
        rtol=rtol,
        atol=rtol * np.abs(expected).max(),
    )


class TemporalVGG19LayerTest(testing.TestCase):
    def test_layer_harness_feature_maps(self):
        self.run_layer_test(
            TemporalVGG19,
            init_kwargs={"trainable_blocks": 1},
            input_shape=(1, 2, 32, 32, 3),
            expected_output_shape=(1, 2, 1, 1, 512),
            expected_num_trainable_weights=8,
            expected_num_non_trainable_weights=24,
            supports_masking=True,
        )

    @pytest.mark.slow
    def test_layer_harness_pooled_time_last_chunked(self):
        for pooling in ("avg", "max"):
            self.run_layer_test(
                TemporalVGG19,
                init_kwargs={
                    "pooling": pooling,
                    "trainable_blocks": 2,
                    "time_axis": -1,
                    "frame_chunk": 2,
                    "preprocess": False,
                },
                input_shape=(1, 32, 32, 1, 3),
                expected_output_shape=(1, 3, 512),
                expected_num_trainable_weights=16,
                expected_num_non_trainable_weights=16,
                supports_masking=True,
            )


@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_equals_keras_applications_vgg19(weights_file, pooling):
    # 64x64 frames: 2x2 feature maps, so global pooling has work to do.
    x = clips((1, 3, 64, 64, 3))
    reference = keras.applications.VGG19(
        weights=weights_file,
        include_top=False,
        input_shape=(64, 64, 3),
        pooling=pooling,
    )
    # preprocess_input changes numpy input in place: give it a copy.
    frames = keras.applications.vgg19.preprocess_input(
        x.reshape(-1, 64, 64, 3).copy()
    )
    expected = np.asarray(reference(frames))
    got = TemporalVGG19(weights=weights_file, pooling=pooling)(x)
    assert tuple(got.shape) == (1, 3, *expected.shape[1:])
    assert_features_close(got, expected.reshape(got.shape))
    if pooling is None:
        # preprocess=False: the caller preprocesses, as for keras.applications.
        unprocessed = TemporalVGG19(weights=weights_file, preprocess=False)(
            frames.reshape(x.shape)
        )
        assert_features_close(unprocessed, expected.reshape(got.shape))


def test_layer_names_match_keras_applications():
    layer = TemporalVGG19(preprocess=False)
    layer.build((None, 2, 32, 32, 3))
    reference = keras.applications.VGG19(weights=None, include_top=False)
    assert [w.path.split("/")[-2:] for w in layer.frame_model.weights] == [
        w.path.split("/") for w in reference.weights
    ]
    assert [lyr.name for lyr in layer.frame_model.layers[1:]] == [
        lyr.name for lyr in reference.layers[1:]
    ]


def test_time_last_equals_time_major(weights_file):
    x = clips()
    expected = TemporalVGG19(weights=weights_file)(x)
    got = TemporalVGG19(weights=weights_file, time_axis=-1)(
        np.transpose(x, (0, 2, 3, 4, 1))
    )
    assert_features_close(got, expected)


@pytest.mark.parametrize("chunk", [2])
def test_frame_chunk_gives_the_same_features(weights_file, chunk):
    x = clips((2, 3, 32, 32, 3))
    expected = TemporalVGG19(weights=weights_file, pooling="avg")(x)
    got = TemporalVGG19(weights=weights_file, pooling="avg", frame_chunk=chunk)
    assert got.get_config()["frame_chunk"] == chunk
    assert_features_close(got(x), expected)


@pytest.mark.parametrize("preprocess", [True, False])
def test_gray_clip_equals_clip_repeated_to_rgb(weights_file, preprocess):
    gray = clips((2, 3, 32, 32, 1))
    rgb = np.repeat(gray, 3, axis=-1)
    if not preprocess:  # any values: preprocessed by the caller
        gray, rgb = gray - 120.0, rgb - 120.0
    expected = TemporalVGG19(weights=weights_file, preprocess=preprocess)(rgb)
    got = TemporalVGG19(weights=weights_file, preprocess=preprocess)(gray)
    assert_features_close(got, expected)


def test_gray_kernels_are_summed_without_preprocessing(saved_vgg19):
    path, kernels = saved_vgg19
    layer = TemporalVGG19(weights=path, preprocess=False)
    layer.build((None, 2, 32, 32, 1))
    rgb_kernel = kernels["block1_conv1"]
    kernel = layer.frame_model.get_layer("block1_conv1").kernel
    assert tuple(kernel.shape) == (3, 3, 1, 64)
    np.testing.assert_allclose(
        kernel, np.sum(rgb_kernel, axis=2, keepdims=True), rtol=1e-6
    )


def test_five_channels_repeat_and_scale_rgb_kernels(saved_vgg19):
    path, kernels = saved_vgg19
    layer = TemporalVGG19(weights=path)
    layer(clips((1, 2, 32, 32, 5)))
    rgb_kernel = kernels["block1_conv1"]
    kernel = np.asarray(layer.frame_model.get_layer("block1_conv1").kernel)
    assert kernel.shape == (3, 3, 5, 64)
    for c in range(5):
        np.testing.assert_allclose(
            kernel[:, :, c], rgb_kernel[:, :, c % 3] * 3 / 5, rtol=1e-6
        )
    # The other layers are loaded unchanged.
    np.testing.assert_array_equal(
        layer.frame_model.get_layer("block5_conv4").kernel,
        kernels["block5_conv4"],
    )


def test_six_channels_holding_rgb_twice_equal_rgb(weights_file):
    rgb = clips() - 120.0
    expected = TemporalVGG19(weights=weights_file, preprocess=False)(rgb)
    got = TemporalVGG19(weights=weights_file, preprocess=False)(
        np.concatenate([rgb, rgb], axis=-1)
    )
    assert_features_close(got, expected)


def test_preprocessing_layer_matches_preprocess_input():
    x = clips((4, 32, 32, 3))
    expected = keras.applications.vgg19.preprocess_input(x.copy())
    np.testing.assert_allclose(VGGPreprocessing()(x), expected, atol=1e-4)
    gray = x[..., :1]
    np.testing.assert_allclose(
        VGGPreprocessing()(gray),
        keras.applications.vgg19.preprocess_input(np.repeat(gray, 3, -1)),
        atol=1e-4,
    )
    five = clips((4, 32, 32, 5))
    np.testing.assert_allclose(
        VGGPreprocessing()(five), five - np.mean([103.939, 116.779, 123.68]),
        atol=1e-4,
    )


def test_integer_frames_are_accepted(weights_file):
    x = np.round(clips())
    layer = TemporalVGG19(weights=weights_file, pooling="max")
    assert_features_close(layer(x.astype("uint8")), layer(x))


@pytest.mark.parametrize("trainable_blocks", range(6))
def test_trainable_blocks_freeze_all_but_the_last(trainable_blocks):
    layer = TemporalVGG19(trainable_blocks=trainable_blocks)
    layer.build((None, 2, 32, 32, 3))
    first_trainable = len(VGG19_BLOCKS) - trainable_blocks + 1
    trainable_convs = sum(n for _, n in VGG19_BLOCKS[first_trainable - 1:])
    assert len(layer.trainable_weights) == 2 * trainable_convs
    assert len(layer.non_trainable_weights) == 2 * (16 - trainable_convs)
    blocks = {w.path.split("/")[-2][:6] for w in layer.trainable_weights}
    assert blocks == {f"block{b}" for b in range(first_trainable, 6)}


def test_training_step_updates_only_unfrozen_blocks(weights_file):
    inputs = keras.Input((2, 32, 32, 3))
    backbone = TemporalVGG19(
        weights=weights_file, trainable_blocks=1, pooling="avg"
    )
    x = keras.layers.GlobalAveragePooling1D()(backbone(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    before = {w.path: np.asarray(w) for w in backbone.weights}
    model.fit(clips((2, 2, 32, 32, 3)), np.ones((2, 2)), epochs=1, verbose=0)
    changed = {
        path.split("/")[-2]
        for path, value in before.items()
        if not np.array_equal(value, np.asarray(
            next(w for w in backbone.weights if w.path == path)))
    }
    assert changed and all(name.startswith("block5") for name in changed)


@pytest.mark.parametrize("trainable_blocks, expected", [(0, False), (2, True)])
def test_frozen_backbone_runs_in_inference_mode(trainable_blocks, expected):
    layer = TemporalVGG19(trainable_blocks=trainable_blocks)
    layer.build((None, 2, 32, 32, 3))
    seen = []
    call = layer.frame_fold.call

    def recording_call(inputs, training=None, mask=None):
        seen.append(training)
        return call(inputs, training=training, mask=mask)

    layer.frame_fold.call = recording_call
    layer(clips((1, 2, 32, 32, 3)), training=True)
    assert seen == [expected]


def test_mask_passes_through():
    mask = np.array([[True, True, False]])
    layer = TemporalVGG19(pooling="avg")
    np.testing.assert_array_equal(
        layer.compute_mask(clips((1, 3, 32, 32, 3)), mask=tf.constant(mask)),
        mask,
    )


def test_output_shape_of_larger_and_uneven_frames():
    layer = TemporalVGG19()
    x = clips((1, 2, 64, 100, 3))
    assert tuple(layer(x).shape) == (1, 2, 2, 3, 512)
    assert layer.compute_output_shape((None, None, 64, 100, 3)) == (
        None, None, 2, 3, 512,
    )


def test_unknown_batch_and_time():
    inputs = keras.Input((None, 32, 32, 3))
    model = keras.Model(inputs, TemporalVGG19(pooling="avg")(inputs))
    assert model.output_shape == (None, None, 512)
    assert model(clips((3, 4, 32, 32, 3))).shape == (3, 4, 512)


@pytest.mark.parametrize(
    "shape, time_axis",
    [
        ((1, 2, 31, 32, 3), 1),
        ((1, 2, 32, 16, 3), 1),
        ((1, 16, 16, 3, 2), -1),
    ],
)
def test_small_frames_raise(shape, time_axis):
    with pytest.raises(
        ValueError, match=r"at least 32x32.*received input shape"
    ) as info:
        TemporalVGG19(time_axis=time_axis)(np.zeros(shape, "float32"))
    assert str(shape) in str(info.value)


def test_unknown_channels_raise():
    with pytest.raises(ValueError, match=r"channel count.*\(None, 2, 32, 32, "):
        TemporalVGG19()(keras.Input((2, 32, 32, None)))


def test_wrong_rank_raises():
    with pytest.raises(ValueError, match=r"rank 5.*\(1, 32, 32, 3\)"):
        TemporalVGG19()(np.zeros((1, 32, 32, 3), "float32"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"trainable_blocks": 6}, "trainable_blocks=6"),
        ({"trainable_blocks": -1}, "trainable_blocks=-1"),
        ({"trainable_blocks": True}, "trainable_blocks=True"),
        ({"pooling": "mean"}, "pooling='mean'"),
        ({"preprocess": "yes"}, "preprocess='yes'"),
        ({"time_axis": 2}, "time_axis=2"),
        ({"frame_chunk": 0}, "frame_chunk=0"),
        ({"weights": 3}, "weights=3"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TemporalVGG19(**kwargs)


def test_missing_weights_file_raises_at_construction(tmp_path):
    path = str(tmp_path / "missing_notop.h5")
    with pytest.raises(FileNotFoundError, match="missing_notop.h5"):
        TemporalVGG19(weights=path)


def test_imagenet_offline_raises_at_once(monkeypatch):
    def offline_get_file(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- offline")

    monkeypatch.setattr(keras.utils, "get_file", offline_get_file)
    with pytest.raises(
        vgg_weights.WeightsDownloadError, match=r"TemporalVGG19\(weights="
    ):
        TemporalVGG19(weights="imagenet")


def test_imagenet_loads_the_cached_file(monkeypatch, weights_file):
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: weights_file)
    x = clips()
    assert_features_close(
        TemporalVGG19(weights="imagenet")(x),
        TemporalVGG19(weights=weights_file)(x),
    )


@pytest.mark.tensorflow
def test_weights_are_loaded_when_built_inside_tf_function(weights_file):
    x = clips()
    layer = TemporalVGG19(weights=weights_file)
    got = tf.function(layer)(x)
    assert_features_close(got, TemporalVGG19(weights=weights_file)(x))


def model_with_backbone(weights):
    inputs = keras.Input((None, 32, 32, 3))
    x = TemporalVGG19(
        weights=weights, trainable_blocks=1, pooling="avg", frame_chunk=2
    )(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_keras_file_loads_without_the_weights_file(tmp_path, weights_file):
    local_copy = tmp_path / "copy_notop.weights.h5"
    local_copy.write_bytes(open(weights_file, "rb").read())
    model = model_with_backbone(str(local_copy))
    path = str(tmp_path / "model.keras")
    model.save(path)
    os.remove(local_copy)
    restored = keras.models.load_model(path, safe_mode=True)
    backbone = restored.layers[1]
    assert isinstance(backbone, TemporalVGG19)
    assert backbone.get_config()["weights"] == str(local_copy)
    assert backbone.trainable_blocks == 1 and backbone.frame_chunk == 2
    x = clips((2, 3, 32, 32, 3))
    assert_features_close(restored(x), model(x))


def test_keras_file_with_imagenet_loads_offline(
    tmp_path, monkeypatch, weights_file
):
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: weights_file)
    model = model_with_backbone("imagenet")
    path = str(tmp_path / "model.keras")
    model.save(path)

    def no_download(*args, **kwargs):
        pytest.fail("loading a .keras file must not fetch weights")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    restored = keras.models.load_model(path, safe_mode=True)
    assert restored.layers[1].get_config()["weights"] == "imagenet"
    x = clips((1, 2, 32, 32, 3))
    assert_features_close(restored(x), model(x))


def test_config_round_trip_keeps_arguments(weights_file):
    layer = TemporalVGG19(
        weights=weights_file,
        trainable_blocks=3,
        pooling="max",
        preprocess=False,
        time_axis=-1,
        frame_chunk=4,
        name="backbone",
    )
    config = layer.get_config()
    clone = TemporalVGG19.from_config(config)
    assert clone.get_config() == config
    assert config["weights"] == weights_file and config["name"] == "backbone"


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_float32_weights(weights_file, policy):
    x = clips()
    expected = TemporalVGG19(weights=weights_file, pooling="avg")(x)
    keras.config.set_dtype_policy(policy)
    layer = TemporalVGG19(weights=weights_file, pooling="avg")
    got = layer(x)
    assert keras.backend.standardize_dtype(got.dtype) == policy.split("_")[1]
    assert {w.dtype for w in layer.weights} == {"float32"}
    # bfloat16 keeps 8 bits of mantissa, float16 11: a few % of the scale.
    got = keras.ops.convert_to_numpy(keras.ops.cast(got, "float32"))
    assert_features_close(got, expected, rtol=0.05)
