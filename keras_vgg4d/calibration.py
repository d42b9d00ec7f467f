"""Temperature scaling: probabilities that mean what they say.

A classifier trained to a low loss is often over-confident: of the clips it
answers with 90% confidence, fewer than 90% are right. Temperature scaling
(Guo et al., 2017, "On Calibration of Modern Neural Networks") divides the
logits by one number `T`, fitted on held-out clips by minimizing the
negative log-likelihood: the answers become `softmax(log(p) / T)`
(`softmax(logits / T)`), the predicted class never changes (so neither does
accuracy), and `T > 1` softens over-confident answers.

`calibrate(model, x_val, y_val)` predicts once, fits `T`, and stores it in
the `VGG4DClassifier` (`temperature`, in its config): `predict`, `.keras`
files and `model.export()` artifacts then give calibrated answers.

    model.fit(x_train, y_train, epochs=12)
    before = model.predict(x_val)
    result = calibrate(model, x_val, y_val)
    print(result.temperature, result.ece_before, result.ece_after_held_out)
    reliability_diagram(before, y_val, "reliability.png",
                        calibrated=model.predict(x_val))

`expected_calibration_error` measures the gap between confidence and
accuracy; `reliability_diagram` draws it.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import keras
import numpy as np
from scipy import optimize
from scipy import special

from keras_vgg4d import validation
from keras_vgg4d.backend import is_tensorflow
from keras_vgg4d.feature_cache import batches
from keras_vgg4d.feature_cache import is_dataset

# The range `fit_temperature` searches, on a log scale.
TEMPERATURE_BOUNDS = (1e-2, 1e2)
# float32's smallest normal number: what log(0) is taken at, as the model
# does.
_TINY = float(np.finfo("float32").tiny)


@dataclasses.dataclass(frozen=True)
class CalibrationResult:
    """What `calibrate` fitted and measured.

    Attributes:
        temperature: The temperature fitted and stored in the model.
        ece_before: Expected calibration error of the uncalibrated answers.
        ece_after: The same, calibrated, on the clips `T` was fitted on
            (optimistic: fitted and measured on the same clips).
        nll_before: Mean negative log-likelihood, uncalibrated.
        nll_after: Mean negative log-likelihood, calibrated.
        ece_after_held_out: The honest after-figure: the clips are split
            in two halves, each calibrated with the temperature fitted on
            the other, and their ECEs averaged. `None` under 4 clips.
        num_samples: How many clips it was fitted on.
    """

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    ece_after_held_out: float | None
    num_samples: int


# --- checks ----------------------------------------------------------------


def _check_probabilities(owner: str, probabilities) -> np.ndarray:
    p = np.asarray(probabilities)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        raise ValueError(
            f"{owner} expects probabilities of shape (samples, classes) with "
            f"at least 1 sample and 2 classes; received shape {p.shape}."
        )
    if not np.issubdtype(p.dtype, np.number) or p.dtype == bool:
        raise ValueError(
            f"{owner} expects numeric probabilities; received dtype {p.dtype}."
        )
    p = p.astype("float64")
    if not np.all(np.isfinite(p)):
        raise ValueError(
            f"{owner} received probabilities with NaN or infinity, at rows "
            f"{validation.list_some(np.flatnonzero(~np.isfinite(p).all(1)))}."
        )
    sums = p.sum(axis=1)
    bad = np.flatnonzero((p.min(axis=1) < -1e-6) | (np.abs(sums - 1.0) > 1e-3))
    if len(bad):
        raise ValueError(
            f"{owner} expects softmax probabilities (each row in [0, 1], "
            "summing to 1, as `VGG4DClassifier.predict` returns); row "
            f"{bad[0]} is {p[bad[0]].tolist()}. For logits, pass "
            "`scipy.special.softmax(logits, axis=-1)`."
        )
    return np.clip(p, 0.0, 1.0)


def _check_labels(owner: str, labels, num_samples: int, num_classes: int):
    try:
        return validation.validate_labels(labels, num_samples, num_classes)
    except ValueError as error:
        raise ValueError(f"`labels` passed to {owner}: {error}") from None


def _check_weights(owner: str, sample_weight, num_samples: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(num_samples)
    w = np.asarray(sample_weight, "float64").reshape(-1)
    if (len(w) != num_samples or not np.all(np.isfinite(w))
            or np.any(w < 0) or not w.sum() > 0):
        raise ValueError(
            f"{owner} expects `sample_weight` to be {num_samples} finite, "
            "non-negative weights, one a sample, not all zero; received "
            f"{len(w)} weights summing to {w.sum()!r}."
        )
    return w


def _check_inputs(owner, probabilities, labels, sample_weight=None):
    p = _check_probabilities(owner, probabilities)
    y = _check_labels(owner, labels, len(p), p.shape[1])
    return p, y, _check_weights(owner, sample_weight, len(p))


def _check_temperature(owner: str, temperature) -> float:
    return validation.check_positive(owner, "temperature", temperature)


# --- the arithmetic ----------------------------------------------------------


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(p, _TINY))


def _nll(log_p, labels, weights, temperature) -> float:
    """Weighted mean of -log softmax(log_p / T)[label]."""
    z = log_p / temperature
    losses = special.logsumexp(z, axis=1) - z[np.arange(len(z)), labels]
    return float(np.sum(weights * losses) / np.sum(weights))


def _fit(log_p, labels, weights) -> float:
    low, high = np.log(TEMPERATURE_BOUNDS)

    def loss(log_t):
        return _nll(log_p, labels, weights, np.exp(log_t))

    result = optimize.minimize_scalar(
        loss, bounds=(low, high), method="bounded", options={"xatol": 1e-5}
    )
    # At an end, or where the loss has flattened out towards one (all
    # answers right: it underflows to 0 as T shrinks).
    if min(loss(low), loss(high)) <= result.fun + 1e-12:
        warnings.warn(
            f"The fitted temperature {np.exp(result.x):.3g} lies at the end "
            f"of the range searched, {TEMPERATURE_BOUNDS}: the clips are "
            "all answered right (T shrinks to 0) or the answers carry no "
            "information (T grows without end). Calibrate on more held-out "
            "clips, with some mistakes among them.",
            stacklevel=3,
        )
    return float(np.exp(result.x))


def _bins(p, labels, weights, num_bins):
    """Per equal-width confidence bin: total weight, weighted sums of the
    top-label confidence and of correctness."""
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == labels).astype("float64")
    # Bin m holds confidences in (m / M, (m + 1) / M]; 0 falls in bin 0.
    inner_edges = np.linspace(0.0, 1.0, num_bins + 1)[1:-1]
    index = np.searchsorted(inner_edges, confidence, side="left")
    return (
        np.bincount(index, weights, num_bins),
        np.bincount(index, weights * confidence, num_bins),
        np.bincount(index, weights * correct, num_bins),
    )


def _ece(p, labels, weights, num_bins) -> float:
    total, confidence, correct = _bins(p, labels, weights, num_bins)
    return float(np.abs(correct - confidence).sum() / total.sum())


def _scaled(log_p, temperature) -> np.ndarray:
    return special.softmax(log_p / temperature, axis=1)


def _halves(num_samples: int, seed: int):
    order = np.random.default_rng(seed).permutation(num_samples)
    return order[: num_samples // 2], order[num_samples // 2:]


# --- public functions --------------------------------------------------------


def apply_temperature(probabilities, temperature: float) -> np.ndarray:
    """`softmax(log(p) / temperature)`: what a calibrated model returns.

    Args:
        probabilities: `(samples, classes)` softmax probabilities.
        temperature: The temperature, > 0.

    Returns:
        float32 `(samples, classes)` probabilities, each row's largest
        where it was.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d.calibration import apply_temperature
    >>> apply_temperature(np.array([[0.8, 0.2]]), 2.0).round(3)
    array([[0.667, 0.333]], dtype=float32)
    """
    p = _check_probabilities("apply_temperature", probabilities)
    temperature = _check_temperature("apply_temperature", temperature)
    return _scaled(_log(p), temperature).astype("float32")


def fit_temperature(probabilities, labels, sample_weight=None) -> float:
    """The temperature that minimizes the negative log-likelihood.

    Finds `T` in `TEMPERATURE_BOUNDS` minimizing the (weighted) mean of
    `-log softmax(log(p) / T)[label]`, with SciPy's bounded scalar
    minimizer over `log T` (the loss is unimodal in it). Fit it on clips the
    model was not trained on.

    Args:
        probabilities: `(samples, classes)` softmax probabilities of the
            uncalibrated model.
        labels: `(samples,)` integer labels.
        sample_weight: Optional `(samples,)` non-negative weights.

    Returns:
        The temperature, a Python float.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d.calibration import fit_temperature
    >>> p = np.array([[0.99, 0.01], [0.99, 0.01], [0.99, 0.01], [0.01, 0.99]])
    >>> labels = np.array([0, 0, 1, 1])  # right 3 times in 4, not 99 in 100
    >>> round(fit_temperature(p, labels), 2)
    4.18
    """
    p, y, w = _check_inputs("fit_temperature", probabilities, labels,
                            sample_weight)
    return _fit(_log(p), y, w)


def expected_calibration_error(
    probabilities, labels, num_bins: int = 15, sample_weight=None
) -> float:
    """Top-label expected calibration error, with equal-width bins.

    As Guo et al. (2017) define it: the samples are binned by their
    confidence (the largest probability) into `num_bins` equal-width bins
    `(m / M, (m + 1) / M]`, and

        ECE = sum over bins of (n_bin / n) * |accuracy(bin) - confidence(bin)|

    where `accuracy` is the share of the bin's samples whose most probable
    class is their label and `confidence` their mean confidence (both
    weighted by `sample_weight` when given). 0 is perfectly calibrated.

    Args:
        probabilities: `(samples, classes)` softmax probabilities.
        labels: `(samples,)` integer labels.
        num_bins: Number of bins, >= 1.
        sample_weight: Optional `(samples,)` non-negative weights.

    Returns:
        The ECE, in [0, 1].

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d.calibration import expected_calibration_error
    >>> p = np.array([[0.85, 0.15], [0.85, 0.15], [0.65, 0.35], [0.35, 0.65]])
    >>> labels = np.array([0, 1, 0, 1])  # bins: 1 of 2 right at 0.85; 2 of 2
    >>> round(expected_calibration_error(p, labels, num_bins=10), 3)
    0.35
    """
    p, y, w = _check_inputs("expected_calibration_error", probabilities,
                            labels, sample_weight)
    num_bins = validation.check_integer(
        "expected_calibration_error", "num_bins", num_bins, minimum=1
    )
    return _ece(p, y, w, num_bins)


def cross_fitted_ece(
    probabilities, labels, sample_weight=None, num_bins: int = 15,
    seed: int = 0,
) -> tuple[float, float]:
    """ECE before and after temperature scaling, each half fitted on the other.

    The samples are split at random (by `seed`) into two halves; each half
    is calibrated with the temperature fitted on the other half. Both
    figures are the mean of the two halves' ECEs, so the after-figure is
    measured on samples its temperature never saw, and the before-figure on
    the same halves (an ECE over fewer samples reads higher: compare these
    two with each other).

    Args:
        probabilities: `(samples, classes)` softmax probabilities, at least
            4 samples.
        labels: `(samples,)` integer labels.
        sample_weight: Optional `(samples,)` non-negative weights.
        num_bins: Number of ECE bins.
        seed: Seed of the split.

    Returns:
        `(ece_before, ece_after)`.
    """
    p, y, w = _check_inputs("cross_fitted_ece", probabilities, labels,
                            sample_weight)
    num_bins = validation.check_integer(
        "cross_fitted_ece", "num_bins", num_bins, minimum=1
    )
    if len(p) < 4:
        raise ValueError(
            "cross_fitted_ece needs at least 4 samples (two a half); "
            f"received {len(p)}."
        )
    log_p = _log(p)
    before, after = [], []
    first, second = _halves(len(p), seed)
    for fit_on, measure_on in ((first, second), (second, first)):
        if not w[fit_on].sum() > 0 or not w[measure_on].sum() > 0:
            raise ValueError(
                "cross_fitted_ece: one half of the samples has zero total "
                "weight; give weight to more samples."
            )
        temperature = _fit(log_p[fit_on], y[fit_on], w[fit_on])
        before.append(_ece(p[measure_on], y[measure_on], w[measure_on],
                           num_bins))
        after.append(_ece(_scaled(log_p[measure_on], temperature),
                          y[measure_on], w[measure_on], num_bins))
    return float(np.mean(before)), float(np.mean(after))


def set_temperature(model: keras.Model, temperature: float) -> None:
    """Sets a `VGG4DClassifier`'s temperature, effective at once.

    Keras traces `call` into its predict, test and train functions once and
    keeps them, with the temperature they saw; when the temperature
    changes, this drops them, so that the next `predict`, `evaluate` or
    `fit` traces them anew. Set the temperature with this function (or
    `calibrate`), not by assigning `model.temperature`.

    Args:
        model: A `VGG4DClassifier`.
        temperature: The temperature, > 0; `1.0` removes the scaling.
    """
    _check_model("set_temperature", model)
    temperature = _check_temperature("set_temperature", temperature)
    if temperature != model.temperature:
        model.temperature = temperature
        model.train_function = None
        model.test_function = None
        model.predict_function = None


def _check_model(owner: str, model) -> None:
    if not isinstance(getattr(model, "temperature", None), float):
        raise ValueError(
            f"{owner} expects a VGG4DClassifier (a model with a "
            f"`temperature`), received: {type(model).__name__}"
        )


def _predictions(model, x, y, sample_weight, batch_size, verbose):
    """`(probabilities, labels, sample_weight or None)` of arrays or a
    dataset, one pass."""
    if not is_dataset(x):
        if y is None:
            raise ValueError(
                "calibrate needs the labels of the clips: pass `y`, or a "
                "dataset of (clips, labels) batches as `x`."
            )
        # Checked before the (costly) predictions.
        y = _check_labels("calibrate", y, len(x),
                          getattr(model, "num_classes", None))
        probabilities = model.predict(x, batch_size=batch_size,
                                      verbose=verbose)
        return probabilities, y, sample_weight
    if y is not None or sample_weight is not None:
        raise ValueError(
            "calibrate reads the labels (and weights) of a dataset from its "
            "batches: pass `y` and `sample_weight` only with array clips."
        )
    # One pass, predicting batch by batch: a shuffling dataset would give
    # its labels in another order on a second pass.
    probabilities, labels, weights = [], [], []
    progress = keras.utils.Progbar(None, verbose=0 if verbose == 0 else 1,
                                   unit_name="batch")
    for element in batches(x):
        if not isinstance(element, (tuple, list)) or len(element) < 2:
            raise ValueError(
                "calibrate needs labels: the dataset must yield (clips, "
                "labels) or (clips, labels, sample_weight) batches."
            )
        clips = element[0] if is_tensorflow() else np.asarray(element[0])
        probabilities.append(np.asarray(model.predict_on_batch(clips)))
        labels.append(np.asarray(element[1]).reshape(-1))
        if len(element) > 2 and element[2] is not None:
            weights.append(np.asarray(element[2]).reshape(-1))
        progress.add(1)
    if not probabilities:
        raise ValueError("The dataset given to calibrate yielded no batches.")
    if weights and len(weights) != len(labels):
        raise ValueError(
            "The dataset given to calibrate yielded sample weights with some "
            "batches only."
        )
    return (np.concatenate(probabilities), np.concatenate(labels),
            np.concatenate(weights) if weights else None)


def calibrate(
    model: keras.Model,
    x,
    y=None,
    *,
    sample_weight=None,
    batch_size: int | None = None,
    verbose="auto",
    num_bins: int = 15,
) -> CalibrationResult:
    """Fits a classifier's temperature on held-out clips and stores it.

    Predicts the clips once without temperature scaling (a model
    calibrated before is predicted at temperature 1, so calibrating twice
    does not compound), fits the temperature with `fit_temperature`, sets
    it on the model with `set_temperature`, and measures the ECE and the
    negative log-likelihood before and after. The model then answers
    `softmax(log(p) / T)`; `get_config`, `.keras` files and exports keep
    `T`. Calibrate last: training again through a temperature other than 1
    trains the scaled answers (`set_temperature(model, 1.0)` first, then
    calibrate again).

    Args:
        model: A trained `VGG4DClassifier`.
        x: Held-out clips (with `y`), or a `tf.data.Dataset` or
            `keras.utils.PyDataset` of `(clips, labels)` or
            `(clips, labels, sample_weight)` batches.
        y: Integer labels of array clips.
        sample_weight: Optional weights of array clips.
        batch_size: `predict`'s batch size for array clips.
        verbose: `predict`'s verbosity.
        num_bins: Bins of the ECE.

    Returns:
        A `CalibrationResult`.
    """
    _check_model("calibrate", model)
    num_bins = validation.check_integer("calibrate", "num_bins", num_bins,
                                        minimum=1)
    previous = model.temperature
    set_temperature(model, 1.0)
    try:
        probabilities, labels, weights = _predictions(
            model, x, y, sample_weight, batch_size, verbose
        )
        p, labels, weights = _check_inputs("calibrate", probabilities, labels,
                                           weights)
    except BaseException:
        set_temperature(model, previous)
        raise
    log_p = _log(p)
    temperature = _fit(log_p, labels, weights)
    set_temperature(model, temperature)
    calibrated = _scaled(log_p, temperature)
    held_out = None
    if len(p) >= 4 and min(map(np.sum, (weights[half] for half in
                                        _halves(len(p), 0)))) > 0:
        with warnings.catch_warnings():  # `T` itself was warned about
            warnings.simplefilter("ignore")
            held_out = cross_fitted_ece(p, labels, weights, num_bins)[1]
    return CalibrationResult(
        temperature=temperature,
        ece_before=_ece(p, labels, weights, num_bins),
        ece_after=_ece(calibrated, labels, weights, num_bins),
        nll_before=_nll(log_p, labels, weights, 1.0),
        nll_after=_nll(log_p, labels, weights, temperature),
        ece_after_held_out=held_out,
        num_samples=len(p),
    )


def reliability_diagram(
    probabilities,
    labels,
    path: str,
    calibrated=None,
    num_bins: int = 15,
    class_names=None,
) -> str:
    """Draws accuracy against confidence per bin, before and after, as a PNG.

    The top panel shows, for each non-empty equal-width confidence bin, the
    accuracy of its samples against their mean confidence (a perfectly
    calibrated model lies on the diagonal; below it, over-confident), for
    `probabilities` and, if given, the `calibrated` ones; the legend gives
    each one's ECE. The bottom panel shows how many samples each bin holds.
    Drawn with Matplotlib's Agg canvas, without touching `pyplot`.

    Args:
        probabilities: `(samples, classes)` uncalibrated probabilities.
        labels: `(samples,)` integer labels.
        path: Where to write the PNG.
        calibrated: Optional `(samples, classes)` calibrated probabilities
            of the same samples.
        num_bins: Number of bins.
        class_names: Optional names of the classes, shown in the title.

    Returns:
        `path`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    owner = "reliability_diagram"
    p, y, w = _check_inputs(owner, probabilities, labels)
    num_bins = validation.check_integer(owner, "num_bins", num_bins, minimum=1)
    series = [("before", p)]
    if calibrated is not None:
        q = _check_probabilities(owner, calibrated)
        if q.shape != p.shape:
            raise ValueError(
                f"{owner} expects `calibrated` of the shape of "
                f"`probabilities`, {p.shape}; received {q.shape}."
            )
        series.append(("after", q))
    if class_names is not None and len(class_names) != p.shape[1]:
        raise ValueError(
            f"{owner} received {len(class_names)} class names for "
            f"{p.shape[1]} classes."
        )
    figure = Figure(figsize=(5, 6))
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    top.plot([0, 1], [0, 1], color="grey", linestyle="--",
             label="perfectly calibrated")
    for i, (name, values) in enumerate(series):
        total, confidence, correct = _bins(values, y, w, num_bins)
        used = total > 0
        ece = _ece(values, y, w, num_bins)
        top.plot(confidence[used] / total[used], correct[used] / total[used],
                 marker="o", color=f"C{i}", label=f"{name} (ECE {ece:.3f})")
        bottom.stairs(total, edges, color=f"C{i}", label=name)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left")
    title = f"Reliability, {len(p)} samples, {num_bins} bins"
    if class_names is not None:
        names = ", ".join(str(name) for name in class_names)
        title += "\nclasses: " + (names if len(names) <= 60
                                  else names[:57] + "...")
    top.set_title(title)
    bottom.set_xlabel("confidence (top-label probability)")
    bottom.set_ylabel("samples")
    figure.tight_layout()
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    figure.savefig(path, dpi=100)
    return os.fspath(path)
