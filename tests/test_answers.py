"""`vgg4d-tune`'s report of the best model's answers: calibration, views."""

import os
import types

import numpy as np
import pytest

from keras_vgg4d import VGG4DClassifier
from keras_vgg4d.calibration import apply_temperature
from keras_vgg4d.calibration import expected_calibration_error
from keras_vgg4d.calibration import fit_temperature
from keras_vgg4d.tuning import answers

pytestmark = pytest.mark.backends


def overconfident(n=200, seed=0):
    """Answers of confidence about 0.97 that are right 3 times in 4."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    predicted = np.where(rng.uniform(size=n) < 0.75, labels, 1 - labels)
    p = np.full((n, 2), 0.03)
    p[np.arange(n), predicted] = 0.97
    return p, labels


def test_calibrate_best_stores_the_fitted_temperature(tmp_path, capsys):
    model = VGG4DClassifier(2)
    p, labels = overconfident()
    paths, lines = answers.calibrate_best(model, p, labels, ["a", "b"],
                                          str(tmp_path))
    expected = fit_temperature(p, labels)
    assert model.temperature == pytest.approx(expected)
    assert expected > 2  # over-confident answers are softened
    assert paths == [str(tmp_path / "reliability.png")]
    assert os.path.getsize(paths[0]) > 0
    before = expected_calibration_error(p, labels)
    after = expected_calibration_error(apply_temperature(p, expected), labels)
    assert after < before / 2
    table = "\n".join(lines)
    assert f"| {before:.4f} | {after:.4f} |" in table
    assert "reliability.png" in table
    printed = capsys.readouterr().out
    assert f"{before:.3f} before, {after:.3f} after" in printed


def test_calibrate_best_skips_too_few_clips(tmp_path):
    model = VGG4DClassifier(2)
    p, labels = overconfident(3)
    assert answers.calibrate_best(model, p, labels, ["a", "b"],
                                  str(tmp_path)) == ([], [])
    assert model.temperature == 1.0


class MeanOfFrames:
    """Answers `[1 - v, v]`, `v` the clip's mean over 255: any window of a
    clip whose frames brighten shows it another way."""

    time_axis = 1
    mask_padded_frames = True

    def __init__(self):
        self.lengths = []

    def predict(self, x, batch_size=None, verbose=0):
        x = np.asarray(x, "float32")
        self.lengths.append(x.shape[1])
        v = x.reshape(len(x), -1).mean(axis=1) / 255
        return np.stack([1 - v, v], axis=1)


def test_multiview_report_windows_three_quarters_of_the_frames(capsys):
    # Clip i brightens over its 8 frames; its label is 1 where the mean of
    # the last frames is over one half, which one view (the centre) misses.
    frames = np.linspace(0.2, 0.9, 8)[None, :, None, None, None]
    clips = np.broadcast_to(frames * 255, (4, 8, 32, 32, 1)).copy()
    clips[:2] *= 0.5
    labels = np.array([0, 0, 1, 1])
    data = types.SimpleNamespace(streams=False, validation=clips, time_axis=1)
    model = MeanOfFrames()
    lines = answers.multiview_report(model, data, labels)
    assert set(model.lengths) == {6}  # ceil(0.75 * 8)
    assert "3 windows of 6 frames" in capsys.readouterr().out
    assert lines[0] == "## Multi-view answers"
    assert lines[-2].startswith("| 4 clips |")
