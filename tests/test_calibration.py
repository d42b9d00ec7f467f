"""keras_vgg4d.calibration: temperature scaling kept in the classifier.

The NumPy functions are checked against known answers (a temperature that
generated the labels, ECEs computed by hand); `calibrate` on one small
untrained classifier whose answers are made confident (its head's feature
normalization set from the clips' features) and whose labels agree with
them 8 times in 12, so that the temperature fitted is well above 1 and
calibrated answers differ visibly from uncalibrated ones.
"""


import keras
import numpy as np
import pytest
from scipy.special import softmax

from keras_vgg4d import VGG4DClassifier
from keras_vgg4d.calibration import CalibrationResult
from keras_vgg4d.calibration import apply_temperature
from keras_vgg4d.calibration import calibrate
from keras_vgg4d.calibration import cross_fitted_ece
from keras_vgg4d.calibration import expected_calibration_error
from keras_vgg4d.calibration import fit_temperature
from keras_vgg4d.calibration import reliability_diagram
from keras_vgg4d.calibration import set_temperature

pytestmark = pytest.mark.backends

SHAPE = (None, 2, 32, 32, 3)


def sampled(true_temperature, n=4000, classes=4, seed=0):
    """Logits, and labels drawn from softmax(logits / true_temperature)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, (n, classes))
    truth = softmax(logits / true_temperature, axis=1)
    labels = (truth.cumsum(1) > rng.uniform(size=(n, 1))).argmax(1)
    return logits, labels


# --- NumPy functions ---------------------------------------------------------


@pytest.mark.parametrize("true_temperature", [2.5, 0.5])
def test_fit_temperature_recovers_the_temperature_of_the_labels(
    true_temperature,
):
    logits, labels = sampled(true_temperature)
    fitted = fit_temperature(softmax(logits, axis=1), labels)
    assert fitted == pytest.approx(true_temperature, rel=0.1)


def test_integer_sample_weights_equal_repeated_samples():
    logits, labels = sampled(2.0, n=300)
    p = softmax(logits, axis=1)
    # Weight the samples the model gets right: the weighted T differs.
    weights = np.where(p.argmax(1) == labels, 3, 1)
    repeated = np.repeat(np.arange(len(p)), weights)
    weighted = fit_temperature(p, labels, sample_weight=weights)
    assert weighted == pytest.approx(
        fit_temperature(p[repeated], labels[repeated]), rel=1e-4)
    assert abs(weighted - fit_temperature(p, labels)) > 0.05
    assert expected_calibration_error(p, labels, sample_weight=weights) == (
        pytest.approx(expected_calibration_error(p[repeated],
                                                 labels[repeated])))


def test_apply_temperature_is_softmax_of_scaled_logits():
    logits, _ = sampled(1.0, n=50)
    for temperature in (0.3, 1.7):
        scaled = apply_temperature(softmax(logits, axis=1), temperature)
        assert scaled.dtype == np.float32
        np.testing.assert_allclose(
            scaled, softmax(logits / temperature, axis=1), atol=1e-6)
        np.testing.assert_array_equal(scaled.argmax(1), logits.argmax(1))


def test_ece_equals_a_hand_computed_value():
    p = np.array([
        [0.95, 0.05],  # bin (0.8, 1.0]: right
        [0.05, 0.95],  # wrong
        [0.10, 0.90],  # right
        [0.70, 0.30],  # bin (0.6, 0.8]: right
        [0.55, 0.45],  # bin (0.4, 0.6]: wrong
    ])
    labels = np.array([0, 0, 1, 0, 1])
    # (3/5) |2/3 - 2.8/3| + (1/5) |1 - 0.7| + (1/5) |0 - 0.55|
    expected = 0.6 * (0.8 / 3) + 0.2 * 0.3 + 0.2 * 0.55
    assert expected_calibration_error(p, labels, num_bins=5) == (
        pytest.approx(expected))
    # Bins are closed on the right, (m / M, (m + 1) / M]: 0.5 falls in the
    # first of two bins, away from the 0.9 of a wrong answer.
    edge = np.array([[0.5, 0.5], [0.9, 0.1]])
    assert expected_calibration_error(edge, [0, 1], num_bins=2) == (
        pytest.approx(0.5 * 0.5 + 0.5 * 0.9))
    # One bin: |accuracy - mean confidence| over all samples.
    assert expected_calibration_error(p, labels, num_bins=1) == (
        pytest.approx(abs(3 / 5 - (0.95 * 2 + 0.9 + 0.7 + 0.55) / 5)))


def test_ece_is_zero_when_each_bin_is_calibrated():
    # 0.75 confident, 3 of 4 right; 0.5 confident, 1 of 2 right.
    p = np.array([[0.75, 0.25]] * 4 + [[0.5, 0.5]] * 2)
    labels = np.array([0, 0, 0, 1, 0, 1])
    assert expected_calibration_error(p, labels) == pytest.approx(0.0,
                                                                  abs=1e-12)


def test_cross_fitted_ece_halves_the_error_of_overconfident_answers():
    logits, labels = sampled(2.5, n=1000)
    before, after = cross_fitted_ece(softmax(logits, axis=1), labels)
    assert before > 0.1
    assert after < 0.5 * before


def test_temperature_at_the_end_of_the_range_warns():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    with pytest.warns(UserWarning, match="end of the range"):
        fit_temperature(p, np.array([0, 1, 0]))  # all right: T -> 0


@pytest.mark.parametrize(
    "probabilities, labels, match",
    [
        (np.array([[2.0, -1.0], [0.5, 0.3]]), [0, 1], "softmax probabilities"),
        (np.array([0.5, 0.5]), [0], "shape"),
        (np.array([[np.nan, 0.5]]), [0], "NaN"),
        (np.array([[0.5, 0.5]]), [[0, 1]], "one-hot"),
        (np.array([[0.5, 0.5]]), [2], "out of range"),
    ],
)
def test_bad_inputs_are_named(probabilities, labels, match):
    with pytest.raises(ValueError, match=match):
        fit_temperature(probabilities, labels)


def test_reliability_diagram_writes_a_png(tmp_path):
    logits, labels = sampled(2.5, n=200, classes=3)
    p = softmax(logits, axis=1)
    path = reliability_diagram(
        p, labels, str(tmp_path / "plots" / "reliability.png"),
        calibrated=apply_temperature(p, 2.5), class_names=["a", "b", "c"])
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        reliability_diagram(p, labels, path, class_names=["a", "b"])
    with pytest.raises(ValueError, match="shape of `probabilities`"):
        reliability_diagram(p, labels, path, calibrated=p[:10])


# --- the classifier ----------------------------------------------------------
#
# VGG19 on CPU is the cost here (under JAX about 0.1 s a frame), so the
# module runs the backbone a few times on 12 clips of 2 frames.


def run(model, x):
    """An eager call of `model`, as NumPy (no `predict` function traced)."""
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.fixture(scope="module")
def classifier():
    """A built framewise classifier with confident answers, 12 clips, their
    labels (the answer's class 8 times, another one 4 times) and the
    uncalibrated answers."""
    keras.utils.set_random_seed(0)
    model = VGG4DClassifier(3, "framewise")
    model.build(SHAPE)
    rng = np.random.default_rng(0)
    # Each clip repeats one frame: the framewise head's average over
    # frames keeps the frame's confidence.
    frames = rng.uniform(0, 255, (12, 1, 32, 32, 3)).astype("float32")
    x = np.repeat(frames, 2, axis=1)
    features, _ = model.feature_extractor(x.shape[1:])(x)
    pooled = keras.ops.convert_to_numpy(features)[:, 0].mean(axis=(1, 2))
    # Standardized features (a tenth of the mean variance at least: dead
    # channels stay small), and a classifier 3 times as strong as drawn.
    variance = np.maximum(pooled.var(0), 0.1 * pooled.var(0).mean())
    norm = model.head.normalization
    norm.moving_mean.assign(pooled.mean(0))
    norm.moving_variance.assign(variance)
    norm.gamma.assign(np.sqrt((variance + norm.epsilon) / variance))
    kernel = model.head.classifier.kernel
    kernel.assign(3.0 * keras.ops.convert_to_numpy(kernel))
    # `predict` at temperature 1: `calibrate` reuses its traced function.
    p = model.predict(x, verbose=0)
    labels = p.argmax(1)
    labels[:4] = (labels[:4] + 1) % 3
    return model, x, labels, p


@pytest.fixture(scope="module")
def calibrated(classifier):
    """`calibrate` on `classifier`: the result and `predict`'s answers."""
    model, x, labels, _ = classifier
    set_temperature(model, 1.0)
    result = calibrate(model, x, labels, verbose=0)
    return result, model.predict(x, verbose=0)


def calibrated_model(classifier, calibrated):
    """`classifier`'s model, at the temperature `calibrated` fitted."""
    model = classifier[0]
    set_temperature(model, calibrated[0].temperature)
    return model


@pytest.mark.filterwarnings("error:The fitted temperature:UserWarning")
def test_calibrate_stores_the_temperature_in_the_model(classifier, calibrated):
    _, x, labels, p = classifier
    result, answers = calibrated
    assert p.max(1).mean() > 0.8  # confident, and right 8 times in 12
    assert isinstance(result, CalibrationResult)
    temperature = result.temperature
    assert temperature > 1.5, temperature
    assert temperature == pytest.approx(fit_temperature(p, labels), rel=1e-5)
    model = calibrated_model(classifier, calibrated)
    assert model.temperature == temperature
    # Keras' traced predict function was dropped: `predict` answers
    # softmax(log p / T), visibly not p.
    np.testing.assert_allclose(answers, apply_temperature(p, temperature),
                               atol=1e-5)
    assert np.abs(answers - p).max() > 0.05
    assert result.ece_after == pytest.approx(
        expected_calibration_error(answers, labels), abs=1e-5)
    assert result.ece_before == pytest.approx(
        expected_calibration_error(p, labels), abs=1e-5)
    assert result.nll_after < result.nll_before
    assert result.ece_after_held_out is not None
    assert result.num_samples == 12
    # Calibrating again predicts at temperature 1: nothing compounds.
    again = calibrate(model, x, labels, verbose=0)
    assert again.temperature == pytest.approx(temperature, rel=1e-5)
    assert again.ece_before == pytest.approx(result.ece_before, abs=1e-6)


@pytest.mark.filterwarnings("error:The fitted temperature:UserWarning")
def test_calibrate_reads_a_shuffled_dataset_with_weights(classifier):
    import tensorflow as tf

    model, x, labels, p = classifier
    set_temperature(model, 1.0)
    weights = np.where(np.arange(12) < 4, 1.0, 3.0)  # the right answers
    dataset = tf.data.Dataset.from_tensor_slices((x, labels, weights))
    # Reshuffled on every pass: labels and answers must come from one pass.
    dataset = dataset.shuffle(12, seed=1).batch(6)
    result = calibrate(model, dataset, verbose=0)
    expected = fit_temperature(p, labels, sample_weight=weights)
    assert result.temperature == pytest.approx(expected, rel=1e-4)
    assert abs(expected - fit_temperature(p, labels)) > 0.1


def test_keras_file_and_config_keep_the_temperature(
    classifier, calibrated, tmp_path
):
    model = calibrated_model(classifier, calibrated)
    temperature = model.temperature
    path = str(tmp_path / "calibrated.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.temperature == temperature
    np.testing.assert_allclose(run(restored, classifier[1][:4]),
                               calibrated[1][:4], atol=1e-5)
    config = model.get_config()
    assert VGG4DClassifier.from_config(config).temperature == temperature
    del config["temperature"]  # saved before the argument existed
    assert VGG4DClassifier.from_config(config).temperature == 1.0


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"),
                                         float("inf"), "2", True])
def test_bad_temperature_is_named(temperature):
    with pytest.raises(ValueError, match="`temperature` to be a positive"):
        VGG4DClassifier(2, temperature=temperature)
    with pytest.raises(ValueError, match="`temperature` to be a positive"):
        apply_temperature(np.array([[0.5, 0.5]]), temperature)


def test_calibrate_names_what_is_missing(classifier, monkeypatch):
    model, x, labels, _ = classifier
    set_temperature(model, 2.0)

    def refuse(*args, **kwargs):
        raise AssertionError("predicted clips before checking their labels")

    with pytest.raises(ValueError, match="expects a VGG4DClassifier"):
        calibrate(keras.Sequential([keras.layers.Dense(2)]), x, labels)
    with pytest.raises(ValueError, match="labels of the clips"):
        calibrate(model, x)
    # Labels are checked before the clips are predicted.
    monkeypatch.setattr(model, "predict", refuse)
    with pytest.raises(ValueError, match=r"out of range"):
        calibrate(model, x, labels + 3, verbose=0)
    with pytest.raises(ValueError, match="12 clips but 11 labels"):
        calibrate(model, x, labels[:11], verbose=0)
    assert model.temperature == 2.0  # a failed calibration changes nothing


@pytest.mark.tensorflow
def test_export_gives_the_calibrated_answers(classifier, calibrated, tmp_path):
    from keras_vgg4d.export import export_classifier
    from keras_vgg4d.export import load_artifact

    model = calibrated_model(classifier, calibrated)
    (path,) = export_classifier(model, tmp_path / "calibrated",
                                "tf_saved_model")
    answers = load_artifact(path)(classifier[1])
    np.testing.assert_allclose(answers, calibrated[1], atol=1e-5)
    assert np.abs(answers - classifier[3]).max() > 0.05
