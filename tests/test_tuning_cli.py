import json
import os
import subprocess
import sys
import time

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
    # Classes by name, not by index, in the report's files and pictures.
    assert [line.split(",")[0] for line in per_class[1:]] == [
        "red disk", "green striped square", "blue checkered triangle"]
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
    np.savez(path, x=np.transpose(x, (0, 2, 3, 4, 1)), y=y,
             class_names=np.array(["disk", "square", "triangle"]))
    args = ["--data", str(path), "--time-last", "--max-trials", "1",
            "--epochs", "1", "--batch-size", "4", "--quiet",
            "--heads", "lstm", "--directory", str(tmp_path / "runs")]
    assert search.main(args) == 0
    capsys.readouterr()
    # Resuming a finished search runs nothing new and keeps its trial.
    assert search.main(args + ["--resume"]) == 0
    rows = json.loads((tmp_path / "runs" / "search" / "results.json").read_text())
    assert len(rows) == 1 and rows[0]["head"] == "lstm"
    matrix = (tmp_path / "runs" / "search" / "confusion_matrix.csv").read_text()
    assert matrix.splitlines()[0] == "true \\ predicted,disk,square,triangle"


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


# The command as its console script runs it.
COMMAND = "import sys, keras_vgg4d_cli; sys.exit(keras_vgg4d_cli.tune())"
# The same, then a first computation of TensorFlow's (its first look at
# the devices), as the search would do.
COMMAND_THEN_COMPUTE = """
import sys
import keras_vgg4d_cli
status = keras_vgg4d_cli.tune()
import keras
keras.ops.convert_to_numpy(keras.ops.ones(2) + 1)
sys.exit(status)
"""


def _without_tf_log_level():
    """The environment as a user has it who never set TF_CPP_MIN_LOG_LEVEL
    (CI sets it)."""
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


@pytest.mark.parametrize("argv, status", [(["--tuner", "grid"], 2),
                                          (["--patience", "-1"], 1)])
def test_the_command_exits_with_one_line_and_no_traceback(tmp_path, argv,
                                                          status):
    # `--patience -1` fails after TensorFlow is imported: absl's "All log
    # messages before absl::InitializeLog()", the oneDNN, cudart_stub and
    # cuInit lines must not show around the one line.
    result = subprocess.run(
        [sys.executable, "-c", COMMAND_THEN_COMPUTE, *argv,
         "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env=_without_tf_log_level(), cwd=tmp_path,
    )
    assert result.returncode == status
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("vgg4d-tune: error:")


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
    """`--backend jax` runs the search on JAX: the command's own line says
    so, the best model it saved loads, and no C++ log line shows (the
    search imports TensorFlow on every backend, to seed it)."""
    result = subprocess.run(
        [sys.executable, "-c", COMMAND, "--backend",
         "jax", "--num-clips", "24", "--frames", "2", "--max-trials", "2",
         "--epochs", "2", "--batch-size", "6", "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
        env=dict(_without_tf_log_level(), JAX_PLATFORMS="cpu"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""
    assert "Keras backend jax" in result.stdout
    assert "best: trial" in result.stdout
    model = keras.models.load_model(tmp_path / "search" / "best_model.keras")
    # The default "order" task has two classes.
    assert model.predict(np.zeros((1, 2, 32, 32, 3)), verbose=0).shape == (1, 2)


def test_backend_option_reruns_the_command_where_keras_is_loaded(
        monkeypatch, tmp_path):
    # Keras is imported here: another backend needs another process.
    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    calls = []
    monkeypatch.setattr(subprocess, "call",
                        lambda command, env: calls.append((command, env)) or 7)
    argv = ["--backend", other, "--epochs", "1"]
    assert search.main(argv) == 7
    ((command, env),) = calls
    assert env["KERAS_BACKEND"] == other and command[-4:] == argv
    monkeypatch.undo()
    # The command it starts is vgg4d-tune's own.
    help_ = subprocess.run(command[:-4] + ["--help"], capture_output=True,
                           text=True, timeout=120, cwd=tmp_path)
    assert help_.stdout.startswith("usage: vgg4d-tune"), help_.stderr


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


# What a console script runs, loaded from the installed entry point: its
# output, its exit code and the heavy modules it imported, as JSON last.
RUN_ENTRY_POINT = """
import json, sys
from importlib.metadata import entry_points
(command,) = [e for e in entry_points(group="console_scripts")
              if e.name == sys.argv[1]]
try:
    status = command.load()(sys.argv[2:])
except SystemExit as exit_:
    status = exit_.code
heavy = ("keras", "tensorflow", "jax", "torch", "keras_vgg4d", "numpy")
print(json.dumps({"status": status,
                  "heavy": [m for m in heavy if m in sys.modules]}))
"""


@pytest.mark.parametrize(
    "command, argv, status, expected",
    [
        ("vgg4d-tune", ["--help"], 0, "usage: vgg4d-tune"),
        ("vgg4d-tune", ["--objective", "nonsense"], 2,
         "vgg4d-tune: error: argument --objective: invalid choice: "
         "'nonsense'"),
        ("vgg4d-explain", ["--help"], 0, "usage: vgg4d-explain"),
        ("vgg4d-explain", ["m.keras", "c.npy", "--method", "saliency"], 2,
         "vgg4d-explain: error: argument --method: invalid choice: "
         "'saliency'"),
    ],
    ids=["tune help", "tune bad option", "explain help",
         "explain bad option"],
)
def test_help_and_argument_errors_answer_before_keras_loads(
        tmp_path, command, argv, status, expected):
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", RUN_ENTRY_POINT, command, *argv],
        capture_output=True, text=True, timeout=120,
        env=_without_tf_log_level(), cwd=tmp_path,
    )
    seconds = time.perf_counter() - started
    *printed, last = result.stdout.splitlines()
    report = json.loads(last)
    assert report == {"status": status, "heavy": []}, result.stderr[-2000:]
    # Nothing but the help, or the one-line error.
    if status == 0:
        assert printed[0].startswith(expected) and result.stderr == ""
    else:
        assert printed == []
        assert result.stderr.splitlines() == [result.stderr.strip()]
        assert result.stderr.startswith(expected), result.stderr
    # Importing TensorFlow alone takes seconds; Python itself ~0.1 s.
    assert seconds < 5, seconds


def test_backend_before_keras_is_imported_needs_no_second_process(tmp_path):
    code = ("import os, sys, keras_vgg4d_cli\n"
            "status = keras_vgg4d_cli._use_backend('jax', [])\n"
            "print(status, os.environ['KERAS_BACKEND'], 'keras' in sys.modules)")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        timeout=120, env=dict(os.environ, KERAS_BACKEND="torch"), cwd=tmp_path,
    )
    assert result.stdout.split() == ["None", "jax", "False"], result.stderr


SILENCED = """
import os, sys, warnings
import keras_vgg4d_cli
with keras_vgg4d_cli._native_logs_silenced():
    os.write(2, b"native log line\\n")
    warnings.warn("a Python warning")
os.write(2, b"native after\\n")
print(os.environ["TF_CPP_MIN_LOG_LEVEL"])
"""


@pytest.mark.parametrize("level", [None, "0"])
def test_native_log_lines_are_hidden_unless_the_user_set_a_level(tmp_path,
                                                                 level):
    env = _without_tf_log_level()
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", SILENCED], capture_output=True,
        text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    # Python's own stderr still shows inside; C++'s is back afterwards.
    assert "UserWarning: a Python warning" in result.stderr
    assert lines[-1] == "native after"
    assert ("native log line" in lines) == (level is not None)
    # TensorFlow's own filter: the user's level, else warnings and up hidden.
    assert result.stdout.strip() == (level or "2")


def test_the_package_uses_the_names_the_command_line_offers():
    import keras_vgg4d_cli as cli
    from keras_vgg4d import backend
    from keras_vgg4d import explain
    from keras_vgg4d import metrics
    from keras_vgg4d.tuning import configs

    assert backend.BACKENDS is cli.BACKENDS
    assert metrics.OBJECTIVES is cli.OBJECTIVES
    assert configs.DEFAULTS is cli.DEFAULTS and configs.TUNERS is cli.TUNERS
    assert explain.METHODS is cli.EXPLAIN_METHODS
    assert explain.DEFAULT_LAYER == cli.EXPLAIN_LAYER
    assert search.EXPORT_FORMATS is cli.EXPORT_FORMATS
    assert search.main is cli.tune and search.build_parser is cli.build_tune_parser
