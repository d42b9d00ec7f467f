import numpy as np
import pytest
import tensorflow as tf
import keras

from keras_vgg4d.augment import ScipyAugment
from keras_vgg4d.model import VGG4DClassifier

pytestmark = pytest.mark.backends

HEADS = ["framewise", "conv3d", "lstm"]
SMALL_OPTIONS = {
    "framewise": {"units": 8},
    "conv3d": {"filters": 8},
    "lstm": {"units": 8, "bidirectional": True},
}


def clips(n=4, frames=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, frames, 32, 32, 3)).astype("float32")


def small_model(head, **kwargs):
    return VGG4DClassifier(
        3, temporal_head=head, head_options=SMALL_OPTIONS[head], **kwargs
    )


@pytest.mark.parametrize("head", HEADS)
def test_fit_evaluate_predict_with_arrays_and_dataset(head):
    model = small_model(head)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = clips(6), np.array([0, 1, 2, 0, 1, 2])
    history = model.fit(x, y, batch_size=3, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    loss, accuracy = model.evaluate(dataset, verbose=0)
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (6, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_frozen_backbone_trains_only_the_head():
    model = small_model("lstm")
    model.build((None, 3, 32, 32, 3))
    head_weights = {id(w) for w in model.head.trainable_weights}
    assert {id(w) for w in model.trainable_weights} == head_weights
    tuned = small_model("lstm", trainable_blocks=1)
    tuned.build((None, 3, 32, 32, 3))
    # block5 has four convolutions, each a kernel and a bias.
    assert len(tuned.trainable_weights) == len(head_weights) + 8


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("with_augment", [False, True])
def test_keras_file_round_trip(tmp_path, head, with_augment):
    augment = ScipyAugment(rotation=10, seed=1) if with_augment else None
    model = small_model(head, augment=augment, dropout=0.1)
    x = clips()
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)  # safe_mode=True by default
    assert type(restored) is VGG4DClassifier
    assert restored.temporal_head == head
    assert isinstance(restored.augment, ScipyAugment) == with_augment
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.tensorflow
@pytest.mark.parametrize("head", HEADS)
def test_export_serves_what_predict_gives(tmp_path, head):
    model = small_model(head, augment=ScipyAugment(rotation=10, seed=0))
    x = clips(2)
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "exported")
    model.export(
        path,
        verbose=0,
        input_signature=[tf.TensorSpec((None, None, 32, 32, 3), tf.float32)],
    )
    exported = tf.saved_model.load(path)  # keep it: it owns the variables
    served = exported.serve
    np.testing.assert_allclose(served(x), expected, rtol=1e-5, atol=1e-6)
    longer = clips(1, frames=5)
    np.testing.assert_allclose(
        served(longer), model.predict(longer, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_time_last_equals_time_major():
    x = clips()
    model = small_model("conv3d")
    expected = model.predict(x, verbose=0)
    time_last = small_model("conv3d", time_axis=-1)
    time_last.build((None, 32, 32, 3, 3))
    time_last.set_weights(model.get_weights())
    got = time_last.predict(np.transpose(x, (0, 2, 3, 4, 1)), verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("head", HEADS)
def test_zero_padded_frames_are_masked(head):
    model = small_model(head)
    x = clips(2, frames=3)
    padded = np.concatenate([x, np.zeros_like(x[:, :2])], axis=1)
    np.testing.assert_allclose(
        model.predict(padded, verbose=0),
        model.predict(x, verbose=0),
        rtol=1e-4,
        atol=1e-6,
    )


@pytest.mark.parametrize("head", HEADS)
def test_mixed_bfloat16_outputs_float32(head):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = small_model(head)
    outputs = model(clips(2))
    assert keras.backend.standardize_dtype(outputs.dtype) == "float32"
    assert all(w.dtype == "float32" for w in model.weights)
    np.testing.assert_allclose(
        np.sum(keras.ops.convert_to_numpy(outputs), axis=1), 1.0, rtol=1e-3)


def test_head_model_shares_the_head():
    model = small_model("lstm")
    x = clips()
    model.build(x.shape)
    head_model = model.head_model()
    features = model.backbone(x)
    mask = model.frame_mask(x)
    np.testing.assert_allclose(
        head_model([features, mask]), model(x), rtol=1e-5, atol=1e-6
    )
    assert {id(w) for w in head_model.weights} == {
        id(w) for w in model.head.weights
    }


def test_summary_names_backbone_and_head():
    model = small_model("conv3d")
    model.build((None, 3, 32, 32, 3))
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    text = "\n".join(lines)
    assert "TemporalVGG19" in text and "Conv3DHead" in text


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temporal_head": "gru"}, r"temporal_head.*conv3d.*framewise.*lstm.*'gru'"),
        ({"head_options": {"filters": 4}}, r"filters"),
        ({"head_options": {"dropout": 0.1}}, r"dropout="),
        ({"time_axis": 2}, r"time_axis"),
        ({"augment": "flip"}, r"augment"),
        ({"augment": ScipyAugment(time_axis=-1)}, r"time_axis=1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VGG4DClassifier(2, **kwargs)


def test_wrong_rank_names_the_layout():
    model = VGG4DClassifier(2)
    with pytest.raises(ValueError, match=r"rank 5.*received input shape"):
        model(np.zeros((2, 32, 32, 3), "float32"))
