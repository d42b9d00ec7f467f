"""The examples run end to end (on fewer clips and epochs than by default)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "script, expected",
    [
        ("framewise.py", "framewise head, 'order' task"),
        ("conv3d_head.py", "same predictions: True"),
        ("lstm_head.py", "largest change in predicted probability 0.0e+00"),
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
    assert expected in result.stdout
