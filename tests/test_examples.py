"""The examples run end to end (on fewer clips and epochs than by default)."""

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "script, expected",
    [
        # Both tasks trained and scored: an accuracy and chance each.
        ("framewise.py", r"'appearance' task: validation accuracy "
                         r"(0\.\d\d|1\.00) \(chance 0\.\d\d\)\n.*"
                         r"'order' task: validation accuracy "
                         r"(0\.\d\d|1\.00) \(chance 0\.\d\d\)"),
        # The reloaded model predicts what the trained one did.
        ("conv3d_head.py", r"same predictions: True"),
        # Padded frames change no prediction.
        ("lstm_head.py", r"largest change in predicted probability 0\.0e\+00"),
    ],
)
def test_example_runs(script, expected):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", script),
         "--clips", "24", "--epochs", "1"],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(expected, result.stdout, re.S), result.stdout[-2000:]
