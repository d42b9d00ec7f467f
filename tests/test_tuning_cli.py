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


def _assert_real_picture(path):
    """A PNG of a plausible size with more than one colour in it."""
    from matplotlib import image

    pixels = image.imread(path)
    assert pixels.shape[0] >= 200 and pixels.shape[1] >= 200, pixels.shape
    assert pixels[..., :3].std() > 0.01


def test_search_writes_leaderboard_report_and_best_model(tmp_path, capsys):
    status = search.main(SMALL + ["--directory", str(tmp_path), "--task",
                                  "appearance", "--epochs", "4",
                                  "--patience", "1", "--export", "onnx"])
    assert status == 0
    out = capsys.readouterr().out
    assert "rank" in out and "val_acc" in out and "best: trial" in out
    project = tmp_path / "search"
    rows = json.loads((project / "results.json").read_text())
    assert len(rows) == 2
    assert {row["head"] for row in rows} <= {"framewise", "conv3d", "lstm"}
    assert all(row["seconds"] > 0 for row in rows)
    assert rows[0]["score"] >= rows[1]["score"]
    for row in rows:
        history = json.loads(
            (project / f"trial_{row['trial']}" / "history.json").read_text())
        # Early stopping with patience 1 stops one epoch after the best.
        assert len(history["loss"]) <= min(row["best_epochs"] + 1, 4)
        assert row["score"] == pytest.approx(
            history["val_accuracy"][row["best_epochs"] - 1])
    header = (project / "results.csv").read_text().splitlines()[0]
    assert header.startswith("rank,trial,head,objective,score,val_accuracy")
    for name in ("scores_by_head", "learning_curves", "confusion_matrix"):
        _assert_real_picture(project / f"{name}.png")
    matrix = (project / "confusion_matrix.csv").read_text().splitlines()
    assert len(matrix) == 1 + 3
    counts = [int(v) for line in matrix[1:] for v in line.split(",")[1:]]
    assert sum(counts) == 6  # the validation clips
    per_class = (project / "per_class.csv").read_text().splitlines()
    assert per_class[0] == "class,precision,recall,f1,support"
    report = (project / "report.md").read_text()
    assert "learning_curves.png" in report and "per_class.csv" in report
    # Why the best model answered as it did, on up to 4 validation clips.
    explained = sorted(project.glob("explain_clip*.png"))
    assert 1 <= len(explained) <= 4 and str(explained[0].name) in report
    _assert_real_picture(explained[0])
    model = keras.models.load_model(project / "best_model.keras")
    assert model.predict(np.zeros((1, 2, 32, 32, 3)), verbose=0).shape == (1, 3)
    # --export onnx: the artifact answers what the model does, and the
    # report's lines load and run it as they stand.
    from keras_vgg4d.export import load_artifact

    clips = np.random.default_rng(0).uniform(0, 255, (3, 2, 32, 32, 3))
    np.testing.assert_allclose(
        load_artifact(project / "best_model.onnx")(clips.astype("float32")),
        model.predict(clips, verbose=0), atol=1e-5)
    code = report.split("```python\n")[1].split("```")[0]
    assert "best_model.onnx" in code and len(code.splitlines()) == 5
    run = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-1500:]
    assert run.stdout.strip() == str(model.predict(
        np.zeros((1, 2, 32, 32, 3)), verbose=0).argmax(axis=-1))


def test_a_missing_export_extra_is_named_before_the_search(tmp_path, capsys,
                                                           monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails
    status = search.main(SMALL + ["--directory", str(tmp_path),
                                  "--export", "onnx", "openvino"])
    assert status == 1
    error = capsys.readouterr().err
    assert error.startswith("vgg4d-tune: error: ImportError: Exporting to "
                            "'openvino' needs the `openvino` package")
    assert 'pip install "keras_vgg4d[openvino]"' in error
    assert not (tmp_path / "search").exists()  # no search ran


def test_progress_lines_and_refit(tmp_path, capsys):
    status = search.main(
        ["--num-clips", "24", "--frames", "2", "--max-trials", "2",
         "--epochs", "2", "--batch-size", "6", "--heads", "lstm",
         "--directory", str(tmp_path), "--refit", "--objective", "val_loss",
         "--class-weight", "balanced", "--precision", "bfloat16"])
    assert status == 0
    out = capsys.readouterr().out
    assert "features in mixed_bfloat16" in out
    assert "(1/2)  lstm" in out and "(2/2)  lstm" in out
    # One trial numbering: the progress lines, the leaderboard and the
    # `best:` line name each trial by its Keras Tuner id.
    rows = json.loads((tmp_path / "search" / "results.json").read_text())
    for row in rows:
        assert f"trial {row['trial']} (" in out, (row["trial"], out)
    assert f"best: trial {rows[0]['trial']}," in out
    assert "val_loss" in out and "about" in out
    final = keras.models.load_model(tmp_path / "search" / "final_model.keras")
    best = keras.models.load_model(tmp_path / "search" / "best_model.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, 2, 32, 32, 3))
    # Trained again on all the clips: other weights, same configuration.
    assert final.get_config()["head_options"] == best.get_config()["head_options"]
    assert np.abs(final.predict(x, verbose=0) - best.predict(x, verbose=0)).max() > 0


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
        (["--patience", "-1"], 1, "--patience must be >= 0"),
        (["--refit", "--validation-fraction", "0"], 1,
         "--refit retrains for the best epoch count"),
        (["--objective", "val_f1"], 2, "argument --objective: invalid choice"),
        (["--class-weight", "inverse"], 2,
         "argument --class-weight: invalid choice"),
        (["--precision", "float16"], 2, "argument --precision: invalid choice"),
        (["--backend", "numpy"], 2, "argument --backend: invalid choice"),
    ],
)
def test_bad_arguments_give_one_line(tmp_path, capsys, argv, status,
                                     message):
    # In this process: an exception other than the exit would fail the test.
    try:
        returned = search.main([*argv, "--directory", str(tmp_path)])
    except SystemExit as exit:  # argparse's own errors
        returned = exit.code
    assert returned == status
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines()
              if line.startswith("vgg4d-tune: error:")]
    assert len(errors) == 1 and message in errors[0], stderr[-1500:]
    assert not (tmp_path / "search").exists()  # failed before any search


@pytest.mark.parametrize("argv, status", [(["--tuner", "grid"], 2),
                                          (["--patience", "-1"], 1)])
def test_the_command_exits_with_one_line_and_no_traceback(tmp_path, argv,
                                                          status):
    result = subprocess.run(
        [sys.executable, "-m", "keras_vgg4d.tuning.search", *argv,
         "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert result.returncode == status
    errors = [line for line in result.stderr.splitlines()
              if line.startswith("vgg4d-tune: error:")]
    assert len(errors) == 1, result.stderr[-1500:]
    assert "Traceback" not in result.stderr


def test_a_folder_of_videos_streams_through_the_search(tmp_path, capsys):
    from video_testing import write_index_video

    for name in ("jump", "run", "walk"):
        for g in (1, 2, 3):
            write_index_video(tmp_path / "videos" / name
                              / f"v_{name}_g{g:02d}_c01.mp4", 6 + g)
    status = search.main(
        ["--data", str(tmp_path / "videos"), "--frames", "3",
         "--sampling", "random", "--image-size", "32",
         "--validation-split", "0.34", "--max-trials", "1", "--epochs", "2",
         "--batch-size", "3", "--heads", "framewise",
         "--directory", str(tmp_path / "runs"), "--refit"])
    assert status == 0
    out = capsys.readouterr().out
    assert "6 training and 3 validation clips of shape (3, 32, 32, 3)" in out
    project = tmp_path / "runs" / "search"
    # The features of every frame of every video, cached on disk.
    assert list((project / "feature_cache").glob("frames-*.npy"))
    matrix = (project / "confusion_matrix.csv").read_text().splitlines()
    assert matrix[0] == "true \\ predicted,jump,run,walk"
    assert sum(int(v) for line in matrix[1:] for v in line.split(",")[1:]) == 3
    final = keras.models.load_model(project / "final_model.keras")
    assert final.predict(np.zeros((1, 3, 32, 32, 3)), verbose=0).shape == (1, 3)


def _sources(groups):
    from keras_vgg4d.data import ClipSource

    return [ClipSource(f"{g}/clip{i}", "dicom", 0, g, 8, 32, 32, 1)
            for i, g in enumerate(groups)]


@pytest.mark.parametrize(
    "groups, labels, line",
    [
        # Two patients of one class each; p1's mean answer is right,
        # p2's wrong: half the patients, three of four clips.
        (["p1", "p1", "p2", "p2"], [0, 0, 1, 1],
         "per patient: accuracy 0.500 over 2 patients (per clip 0.750)"),
        # A group that mixes classes is not a study: no line.
        (["g1", "g1", "g2", "g2"], [0, 1, 0, 1], None),
        # One clip a patient: per patient is per clip, no line.
        (["p1", "p2", "p3", "p4"], [0, 0, 1, 1], None),
    ],
)
def test_per_patient_accuracy_only_where_patients_hold_one_class(
        capsys, groups, labels, line):
    import types

    data = types.SimpleNamespace(
        validation=types.SimpleNamespace(clip_sources=_sources(groups)))
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.4, 0.6]])
    search._print_study_accuracy(data, probabilities, np.array(labels))
    out = capsys.readouterr().out.strip()
    assert out == (line or "")


@pytest.mark.slow
def test_backend_option_runs_the_search_under_jax(tmp_path):
    """`--backend jax` runs the search in a process whose Keras uses JAX:
    the command's own line says so, and the best model it saved loads."""
    result = subprocess.run(
        [sys.executable, "-m", "keras_vgg4d.tuning.search", "--backend",
         "jax", "--num-clips", "24", "--frames", "2", "--max-trials", "2",
         "--epochs", "2", "--batch-size", "6", "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Keras backend jax" in result.stdout
    assert "best: trial" in result.stdout
    model = keras.models.load_model(tmp_path / "search" / "best_model.keras")
    # The default "order" task has two classes.
    assert model.predict(np.zeros((1, 2, 32, 32, 3)), verbose=0).shape == (1, 2)


def test_backend_option_names_a_missing_package(monkeypatch, capsys):
    import importlib.util

    other = "torch" if keras.backend.backend() != "torch" else "jax"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == other
                        else real(name, *a))
    assert search.main(["--backend", other]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"vgg4d-tune: error: --backend {other} needs")
    if other == "torch":
        assert "pip install torch" in error
