"""The best model's answers in `vgg4d-tune`'s report: calibration, views.

After a search, the best classifier is calibrated on the validation clips
(temperature scaling, kept in `best_model.keras`; see
`keras_vgg4d.calibration`), and its validation accuracy is measured on one
view of each clip and on several (`keras_vgg4d.multiview`).
"""

from __future__ import annotations

import logging
import math
import os
import warnings

import numpy as np

# Temporal windows of the multi-view answer.
NUM_WINDOWS = 3


def calibrate_best(best, probabilities, labels, class_names,
                   directory) -> tuple[list[str], list[str]]:
    """Fits the best model's temperature on its validation answers.

    `probabilities` are the model's answers at temperature 1 on the
    validation clips. Sets the temperature in `best`, prints one line and
    returns `(paths written, report.md lines)`. The after-figure on held-out
    halves is the honest one: there each half's temperature was fitted on
    the other half.
    """
    from keras_vgg4d.calibration import apply_temperature
    from keras_vgg4d.calibration import cross_fitted_ece
    from keras_vgg4d.calibration import expected_calibration_error
    from keras_vgg4d.calibration import fit_temperature
    from keras_vgg4d.calibration import reliability_diagram
    from keras_vgg4d.calibration import set_temperature

    labels = np.asarray(labels)
    if len(labels) < 4:
        return [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        temperature = fit_temperature(probabilities, labels)
        held_before, held_after = cross_fitted_ece(probabilities, labels)
    calibrated = apply_temperature(probabilities, temperature)
    before = expected_calibration_error(probabilities, labels)
    after = expected_calibration_error(calibrated, labels)
    set_temperature(best, temperature)
    path = reliability_diagram(
        probabilities, labels, os.path.join(directory, "reliability.png"),
        calibrated=calibrated, class_names=class_names,
    )
    note = ""
    if caught:  # `fit_temperature` warns at an end of its range
        note = (" (at its bound: the validation clips give no mistakes to "
                "calibrate on)" if temperature < 1 else
                " (at its bound: the answers carry no information on the "
                "validation clips)")
    line = (
        f"calibration: temperature {temperature:.3g}{note}; expected "
        f"calibration error {before:.3f} before, {after:.3f} after on the "
        f"validation clips; {held_before:.3f} before, {held_after:.3f} after "
        "with each half calibrated on the other"
    )
    print(line)
    lines = [
        "## Calibration", "",
        f"Temperature scaling fitted on the {len(labels)} validation clips "
        f"and kept in `best_model.keras`: T = {temperature:.4g}{note}.", "",
        "| expected calibration error | before | after |",
        "| --- | --- | --- |",
        f"| validation clips (T fitted on them) | {before:.4f} | {after:.4f} |",
        f"| each half, T fitted on the other | {held_before:.4f} | "
        f"{held_after:.4f} |",
        "", f"![reliability diagram]({os.path.basename(path)})", "",
    ]
    return [path], lines


def multiview_report(best, data, labels) -> list[str]:
    """Single- and multi-view validation accuracy; prints one line, returns
    report.md lines.

    Clips in memory give `NUM_WINDOWS` windows of three quarters of their
    frames; streamed clips `NUM_WINDOWS` windows as their dataset samples
    frames, out of each whole file.
    """
    from keras_vgg4d.multiview import multiview_accuracy

    if data.streams:
        options = {"num_windows": NUM_WINDOWS}
    else:
        frames = np.asarray(data.validation).shape[data.time_axis]
        if frames < 2:
            return []
        options = {"window": max(1, math.ceil(0.75 * frames)),
                   "num_windows": NUM_WINDOWS, "time_axis": data.time_axis}
    # Each window length is another input shape, which TensorFlow traces
    # anew and warns of: expected here.
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        scores = multiview_accuracy(
            best, data.validation, None if data.streams else labels,
            verbose=0, **options,
        )
    finally:
        logger.setLevel(level)
    window = options.get("window")
    what = (f"{NUM_WINDOWS} windows of {window} frames" if window
            else f"{NUM_WINDOWS} windows a clip")
    line = (
        f"multi-view: validation accuracy {scores['single_view_accuracy']:.3f} "
        f"on one view (the centred window), "
        f"{scores['multi_view_accuracy']:.3f} averaged over {what} "
        f"({scores['views']:.1f} views a clip)"
    )
    print(line)
    return [
        "## Multi-view answers", "",
        "| validation accuracy | one view (centred window) | "
        f"mean over {what} |",
        "| --- | --- | --- |",
        f"| {scores['clips']} clips | {scores['single_view_accuracy']:.4f} | "
        f"{scores['multi_view_accuracy']:.4f} |", "",
    ]
