import json
import os
import subprocess
import sys

import numpy as np
import pytest
import keras

from keras_vgg4d.tuning import search

SMALL = ["--num-clips", "24", "--frames", "2", "--max-trials", "2",
         "--epochs", "2", "--batch-size", "6", "--quiet"]


def test_search_writes_leaderboard_results_and_best_model(tmp_path, capsys):
    status = search.main(SMALL + ["--directory", str(tmp_path), "--task",
                                  "appearance"])
    assert status == 0
    out = capsys.readouterr().out
    assert "rank" in out and "val_acc" in out and "best: trial" in out
    project = tmp_path / "search"
    rows = json.loads((project / "results.json").read_text())
    assert len(rows) == 2
    assert {row["head"] for row in rows} <= {"framewise", "conv3d", "lstm"}
    assert all(row["seconds"] > 0 for row in rows)
    assert rows[0]["val_accuracy"] >= rows[1]["val_accuracy"]
    header = (project / "results.csv").read_text().splitlines()[0]
    assert header.startswith("rank,trial,head,val_accuracy")
    assert (project / "scores_by_head.png").stat().st_size > 0
    model = keras.models.load_model(project / "best_model.keras")
    assert model.predict(np.zeros((1, 2, 32, 32, 3)), verbose=0).shape == (1, 3)


def test_npz_time_last_data_and_resume(tmp_path, capsys):
    from keras_vgg4d.data import demo_clips

    x, y = demo_clips(n=16, frames=2, size=32, task="appearance", seed=1)
    path = tmp_path / "clips.npz"
    np.savez(path, x=np.transpose(x, (0, 2, 3, 4, 1)), y=y)
    args = ["--data", str(path), "--time-last", "--max-trials", "1",
            "--epochs", "1", "--batch-size", "4", "--quiet",
            "--heads", "lstm", "--directory", str(tmp_path / "runs")]
    assert search.main(args) == 0
    capsys.readouterr()
    # Resuming a finished search runs nothing new and keeps its trial.
    assert search.main(args + ["--resume"]) == 0
    rows = json.loads((tmp_path / "runs" / "search" / "results.json").read_text())
    assert len(rows) == 1 and rows[0]["head"] == "lstm"


@pytest.mark.parametrize(
    "argv, status, message",
    [
        (["--tuner", "grid"], 2, "argument --tuner: invalid choice"),
        (["--epochs", "many"], 2, "argument --epochs: invalid int value"),
        (["--data", "missing.npz"], 1, "No such .npz file"),
        (["--data", "no/such/folder"], 1, "neither 'demo'"),
        (["--heads", "framewise,gru"], 1, "heads"),
        (["--task", "colour"], 1, "colour"),
    ],
)
def test_bad_arguments_give_one_line_and_no_traceback(tmp_path, argv, status,
                                                       message):
    result = subprocess.run(
        [sys.executable, "-m", "tuning.search", *argv,
         "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert result.returncode == status
    errors = [line for line in result.stderr.splitlines()
              if line.startswith("vgg4d-tune: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-1500:]
    assert "Traceback" not in result.stderr
