"""`vgg4d-tune --parallel-trials N`: the option, the launcher, the workers'
shared features, and one search end to end."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import types

import keras_tuner
import numpy as np
import pytest

import keras_vgg4d.feature_cache
from feature_testing import FrameMeans
from keras_vgg4d import VGG4DHyperModel
from keras_vgg4d.frame_features import FrameFeatures
from keras_vgg4d.tuning import parallel
from keras_vgg4d.tuning import search


def _parse(*argv):
    return search.build_parser().parse_args(list(argv))


# --- the option -------------------------------------------------------------


def test_the_option_defaults_to_one_trial_at_a_time():
    assert _parse().parallel_trials == 1
    assert _parse("--parallel-trials", "3").parallel_trials == 3


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_count_below_one_exits_2_naming_the_option(capsys, value):
    with pytest.raises(SystemExit) as exit_:
        _parse("--parallel-trials", value)
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (f"vgg4d-tune: error: argument --parallel-trials: must be "
                    f"an integer >= 1, received '{value}' (see --help)")


def test_help_says_what_the_option_does_and_where_it_is_faster():
    text = " ".join(search.build_parser().format_help().split())
    # Named in the usage line, then described in the option list.
    _, _, helptext = text.split("--parallel-trials N")
    helptext = helptext[:900]
    assert "chief" in helptext and "workers" in helptext
    assert "faster" in helptext and "cores" in helptext


def test_a_namespace_with_zero_trials_at_once_is_refused():
    args = _parse()
    args.parallel_trials = 0
    with pytest.raises(ValueError, match="--parallel-trials must be an integer"
                                         " >= 1"):
        search.check_args(args)


def test_the_processes_get_the_command_line_that_parses_to_the_same_args():
    argv = ["--data", "clips.npz", "--num-clips", "40",
            "--validation-fraction", "0.3", "--frames", "5", "--time-last",
            "--tuner", "bayesian", "--heads", "lstm,conv3d", "--weights",
            "imagenet", "--export", "onnx", "litert", "--refit",
            "--patience", "0", "--precision", "float32",
            "--parallel-trials", "4", "--deterministic", "--backend",
            "tensorflow", "--directory", "runs dir", "--objective",
            "val_loss", "--seed", "7"]
    args = _parse(*argv)
    rebuilt = parallel.command_line(args, search.build_parser())
    assert _parse(*rebuilt) == args
    # Defaults and unset options are written as they are, flags only when set.
    assert "--quiet" not in rebuilt and "--groups" not in rebuilt
    assert _parse(*parallel.command_line(_parse(), search.build_parser())) \
        == _parse()


# --- the launcher -----------------------------------------------------------


def test_each_process_gets_its_id_the_port_and_its_share_of_the_cores():
    base = {"PATH": "/bin", "OMP_NUM_THREADS": "3"}
    chief = parallel.child_environment("chief", 4321, 2, 100.5, base, cpus=8)
    worker = parallel.child_environment("tuner1", 4321, 2, 100.5, {}, cpus=8)
    assert chief["KERASTUNER_TUNER_ID"] == "chief"
    assert worker["KERASTUNER_TUNER_ID"] == "tuner1"
    for env in (chief, worker):
        assert env["KERASTUNER_ORACLE_IP"] == "127.0.0.1"
        assert env["KERASTUNER_ORACLE_PORT"] == "4321"
        assert float(env[parallel.STARTED_VARIABLE]) == 100.5
        assert env["TF_NUM_INTRAOP_THREADS"] == "4"
    assert chief["OMP_NUM_THREADS"] == "3"  # the user's own setting stays
    assert worker["OMP_NUM_THREADS"] == "4"
    assert chief["PATH"] == "/bin" and "PATH" not in worker
    assert parallel.child_environment("tuner0", 1, 5, 0.0, {}, cpus=2)[
        "TF_NUM_INTRAOP_THREADS"] == "1"


def test_free_port_is_one_a_server_can_listen_on():
    import socket

    port = parallel.free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()


def test_role_follows_keras_tuners_variables(monkeypatch):
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_TUNER_ID",
                 parallel.STARTED_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    assert parallel.role() is None and not parallel.launched()
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert parallel.role() == "chief" and not parallel.launched()
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner3")
    monkeypatch.setenv(parallel.STARTED_VARIABLE, "1.0")
    assert parallel.role() == "worker" and parallel.launched()


# Stands in for `vgg4d-tune`: each process writes its environment, then does
# what FAKE_<its id> says: "lines" prints two progress lines and a stray one,
# "sleep" waits (as the chief serves until it is stopped), "fail" writes to
# stderr and exits 3, "kill" kills itself.
FAKE = """
import json, os, signal, sys, time
name = os.environ["KERASTUNER_TUNER_ID"]
with open(os.path.join(sys.argv[1], name + ".env"), "w") as f:
    json.dump({**dict(os.environ), "argv": sys.argv[2:]}, f)
what = os.environ.get("FAKE_" + name, "lines")
if what == "lines":
    print(f"trial {name} (1/2)  lstm       val_accuracy 0.5000  best 0.5  1 s")
    print("lstm")
    print(f"trial {name}b (2/2)  lstm       val_accuracy 0.7500  best 0.75  "
          "2 s")
elif what == "sleep":
    time.sleep(300)
elif what == "fail":
    print("Traceback: something broke", file=sys.stderr)
    print("vgg4d-tune: error: RuntimeError: no luck", file=sys.stderr)
    time.sleep(0.3)
    sys.exit(3)
elif what == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _launcher(tmp_path, workers=2, **fakes):
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    shown, reported = [], []
    environ = dict(os.environ, **{f"FAKE_{k}": v for k, v in fakes.items()})
    environ.setdefault("FAKE_chief", "sleep")
    launcher = parallel.ParallelTrials(
        ["--max-trials", "2"], workers, str(logs),
        command=[sys.executable, "-c", FAKE, str(tmp_path)],
        show=shown.append, keep=parallel.is_progress_line,
        report=reported.append, environ=environ, poll_seconds=0.05)
    return launcher, shown, reported


def test_the_launcher_relays_progress_and_stops_the_chief(tmp_path):
    launcher, shown, reported = _launcher(tmp_path)
    started = time.monotonic()
    launcher.run()
    # The chief would sleep 300 s: it was stopped once the workers were done.
    assert time.monotonic() - started < 60
    assert [p.popen.returncode for p in launcher.processes][1:] == [0, 0]
    assert launcher.processes[0].popen.returncode == -signal.SIGTERM
    assert sorted(shown) == sorted(
        f"{name}: trial {name}{b} ({i}/2)  lstm       val_accuracy {score}  "
        f"best {best}  {i} s"
        for name in ("tuner0", "tuner1")
        for b, i, score, best in (("", 1, "0.5000", "0.5"),
                                  ("b", 2, "0.7500", "0.75")))
    assert reported == []
    # Everything a process printed is kept, the stray line too.
    assert (tmp_path / "logs" / "tuner1.out").read_text().splitlines()[1] \
        == "lstm"
    for name in ("chief", "tuner0", "tuner1"):
        env = json.loads((tmp_path / f"{name}.env").read_text())
        assert env["KERASTUNER_TUNER_ID"] == name
        assert env["KERASTUNER_ORACLE_PORT"] == str(launcher.port)
        assert env["argv"] == ["--max-trials", "2"]


@pytest.mark.parametrize("failing, message", [
    ("tuner1", "worker tuner1 exited with code 3"),
    ("chief", "the chief (the oracle) exited with code 3"),
])
def test_a_failed_process_is_named_with_its_last_stderr_lines(
        tmp_path, failing, message):
    fakes = {"tuner0": "sleep", "tuner1": "sleep", "chief": "sleep",
             failing: "fail"}
    launcher, _, reported = _launcher(tmp_path, **fakes)
    with pytest.raises(RuntimeError, match=re.escape(message)) as error:
        launcher.run()
    assert str(tmp_path / "logs" / f"{failing}.log") in str(error.value)
    assert reported == [f"{failing}: Traceback: something broke",
                        f"{failing}: vgg4d-tune: error: RuntimeError: no luck"]
    # The others were stopped, not left sleeping.
    assert all(p.popen.poll() is not None for p in launcher.processes)


def test_a_killed_worker_is_named_with_the_signal(tmp_path):
    launcher, _, _ = _launcher(tmp_path, tuner0="kill", tuner1="sleep")
    with pytest.raises(RuntimeError,
                       match="worker tuner0 was killed by SIGKILL .out of "
                             "memory.*wrote nothing to stderr"):
        launcher.run()


def test_prepare_project_starts_afresh_or_makes_the_chief_resume(tmp_path):
    project = tmp_path / "search"
    (project / "trial_0").mkdir(parents=True)
    (project / "oracle.json").write_text("{}")
    (project / "tuner0.json").write_text("{}")
    shared = project / "feature_cache" / "shared"
    shared.mkdir(parents=True)
    (shared / "old.json").write_text("{}")
    logs = parallel.prepare_project(str(project), resume=True)
    assert (project / "trial_0").is_dir()
    assert (project / "chief.json").read_text() == "{}"
    assert not shared.exists()
    assert os.listdir(logs) == []
    (project / "parallel" / "chief.log").write_text("old")
    parallel.prepare_project(str(project), resume=False)
    assert sorted(os.listdir(project)) == ["parallel"]
    assert os.listdir(project / "parallel") == []


# --- the workers -------------------------------------------------------------


def _head_space():
    """The hypermodel's search space, declared without building a model."""
    hypermodel = VGG4DHyperModel(3, (2, 32, 32, 3), seed=5)
    hp = keras_tuner.HyperParameters()
    hp.Choice("temporal_head", list(hypermodel.heads))
    for name in hypermodel.heads:
        with hp.conditional_scope("temporal_head", [name]):
            hypermodel.declare_head_hyperparameters(hp, name)
    hp.Float("learning_rate", 3e-4, 3e-2, sampling="log", default=3e-3)
    hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.0)
    return hypermodel, hp


def test_a_trial_from_the_chief_trains_what_it_trains_in_one_process(capsys):
    hypermodel, hp = _head_space()
    hp.values.update(temporal_head="lstm", lstm_units=128, dropout=0.3)
    hp.values = {k: v for k, v in hp.values.items() if hp.is_active(k)}
    trial = keras_tuner.engine.trial.Trial(hp, trial_id="1")
    # What a worker receives: Keras Tuner's protocol buffers add the
    # frame-wise head's defaults to an LSTM trial (keras-tuner#342).
    received = keras_tuner.engine.trial.Trial.from_proto(trial.to_proto())
    capsys.readouterr()  # Keras Tuner prints condition values while at it
    assert "framewise_units" in received.hyperparameters.values
    assert (hypermodel.trial_seed(received.hyperparameters)
            != hypermodel.trial_seed(hp))
    parallel.active_values_only(received.hyperparameters)
    assert received.hyperparameters.values == hp.values
    assert (hypermodel.trial_seed(received.hyperparameters)
            == hypermodel.trial_seed(hp))


def test_hyperbands_own_values_reach_the_worker(capsys):
    _, hp = _head_space()
    hp.values.update(temporal_head="lstm")
    hp.values = {k: v for k, v in hp.values.items() if hp.is_active(k)}
    # Hyperband puts these in the values without declaring them.
    hyperband = {"tuner/epochs": 6, "tuner/initial_epoch": 2,
                 "tuner/bracket": 1, "tuner/round": 1, "tuner/trial_id": "3"}
    hp.values.update(hyperband)
    trial = keras_tuner.engine.trial.Trial(hp, trial_id="7")
    received = keras_tuner.engine.trial.Trial.from_proto(trial.to_proto())
    capsys.readouterr()
    parallel.active_values_only(received.hyperparameters)
    assert received.hyperparameters.values == hp.values
    assert "framewise_units" not in received.hyperparameters.values


class _Oracle:
    """A worker's view of the chief's oracle, with two finished trials."""

    objective = keras_tuner.Objective("val_accuracy", "max")
    max_trials = 5

    def __init__(self, tmp_path):
        hypermodel, hp = _head_space()
        hp.values.update(temporal_head="conv3d")
        self.scored = keras_tuner.engine.trial.Trial(hp.copy(), trial_id="3")
        self.scored.score = 0.75
        best = keras_tuner.engine.trial.Trial(hp.copy(), trial_id="1")
        best.score = 0.875
        self.best = [best, self.scored]
        self.sent = []

    def get_trial(self, trial_id):
        return {"3": self.scored}[trial_id]

    def get_best_trials(self, num_trials):
        return self.best[:num_trials]

    def create_trial(self, tuner_id):
        _, hp = _head_space()
        hp.values["temporal_head"] = "lstm"  # framewise values stay, inactive
        self.sent.append(tuner_id)
        return keras_tuner.engine.trial.Trial(hp, trial_id="4")


def test_the_progress_line_reads_the_score_the_chief_gave(tmp_path):
    oracle = _Oracle(tmp_path)
    unscored = keras_tuner.engine.trial.Trial(oracle.scored.hyperparameters,
                                              trial_id="3")
    line = parallel.progress_line(oracle, unscored, elapsed=30.2)
    assert line == ("trial 3 (2/5)  conv3d     val_accuracy 0.7500  best "
                    "0.8750  30 s, about 45 s left")
    assert parallel.is_progress_line(line)
    assert not parallel.is_progress_line("conv3d")


def test_a_worker_records_its_trials_under_a_lock(tmp_path, monkeypatch,
                                                  capsys):
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner2")
    monkeypatch.setenv(parallel.STARTED_VARIABLE, repr(time.time() - 12))
    project = tmp_path / "search"
    project.mkdir()
    ended = []

    class Tuner:
        tuner_id = "tuner2"
        project_dir = str(project)
        progress = True
        oracle = _Oracle(tmp_path)

        def get_trial_dir(self, trial_id):
            return str(project / f"trial_{trial_id}")

        def on_trial_end(self, trial):
            # The lock is held: another process cannot take it now.
            import fcntl

            with open(project / "trials.lock", "a") as file:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.makedirs(self.get_trial_dir(trial.trial_id))
            ended.append(trial.trial_id)

    tuner = Tuner()
    parallel.join_as_worker(tuner, progress=True)
    assert tuner.progress is False  # TrialTimer's own line is off
    trial = tuner.oracle.create_trial("tuner2")
    assert trial.hyperparameters.values["temporal_head"] == "lstm"
    assert not any(k.startswith("framewise") for k in
                   trial.hyperparameters.values)
    tuner.on_trial_end(tuner.oracle.scored)
    assert ended == ["3"]
    assert parallel.trial_workers(str(project)) == {"3": "tuner2"}
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("trial 3 (2/5)  conv3d     val_accuracy 0.7500")
    assert " 12 s, about " in line


class _Clips:
    """Stands in for a dataset from `clip_dataset_from_directory`."""

    element_spec = None

    def __init__(self, paths):
        self.clip_sources = [types.SimpleNamespace(path=p) for p in paths]
        self.clip_spec = types.SimpleNamespace(frames=4)


def _clips(seed):
    return np.random.default_rng(seed).uniform(0, 255, (6, 3, 8, 8, 3))


@pytest.mark.parametrize("limit, on_disk", [(2**30, False), (0, True)])
def test_one_process_computes_the_features_and_the_others_read_them(
        tmp_path, limit, on_disk):
    directory = str(tmp_path / "feature_cache")
    clips, labels = _clips(0), np.arange(6) % 3
    first, second = FrameMeans(), FrameMeans()
    computed = parallel.SharedFeatureCache(directory, limit).get(
        first, clips, labels, batch_size=4)
    read = parallel.SharedFeatureCache(directory, limit).get(
        second, clips, labels[::-1], batch_size=4)
    assert first.batches == [4, 2] and second.batches == []
    expected_features, expected_mask = first.expected(clips)
    for cached in (computed, read):
        np.testing.assert_allclose(cached.features, expected_features)
        np.testing.assert_array_equal(cached.mask, expected_mask)
    np.testing.assert_array_equal(read.labels, labels[::-1])
    assert read.batch_size == 4
    # Large features are read where they are, memory-mapped read-only;
    # small ones are held in memory, as the process that computed them does.
    assert isinstance(read.features, np.memmap) == on_disk
    assert isinstance(computed.features, np.memmap) == on_disk
    if on_disk:
        assert not read.features.flags.writeable
        assert read.features.filename == computed.features.filename
    # Other clips, another backbone: computed anew.
    other = FrameMeans(name="other")
    parallel.SharedFeatureCache(directory, limit).get(other, _clips(1))
    parallel.SharedFeatureCache(directory, limit).get(other, clips)
    assert other.batches == [6, 6]


def test_features_are_computed_once_when_processes_ask_at_once(tmp_path):
    directory = str(tmp_path / "feature_cache")
    clips = _clips(2)
    models = [FrameMeans() for _ in range(3)]
    for model in models:
        extractor = model.feature_extractor

        def slow(*args, _extractor=extractor, **kwargs):
            time.sleep(0.3)  # the others ask meanwhile
            return _extractor(*args, **kwargs)

        model.feature_extractor = slow
    results = [None] * 3

    def ask(i):
        results[i] = parallel.SharedFeatureCache(directory).get(
            models[i], clips)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(m.batches) for m in models) == [0, 0, 1]
    for result in results:
        np.testing.assert_allclose(result.features,
                                   models[0].expected(clips)[0])


def test_a_clip_datasets_frame_features_are_shared(tmp_path, monkeypatch):
    directory = tmp_path / "feature_cache"
    calls = []

    def compute_frame_features(model, dataset, directory, **kwargs):
        calls.append(dataset)
        os.makedirs(directory, exist_ok=True)
        features = np.lib.format.open_memmap(
            os.path.join(directory, "frames-1.npy"), "w+", "float32",
            (5, 1, 1, 2))
        features[:] = np.arange(10).reshape(5, 1, 1, 2)
        return FrameFeatures(features, np.array([1, 1, 0, 1, 1], bool),
                             np.array([0, 2, 5]), np.array([1, 0], "int32"))

    monkeypatch.setattr(keras_vgg4d.feature_cache, "compute_frame_features",
                        compute_frame_features)
    train = _Clips(["a.mp4", "b.mp4"])
    computed = parallel.SharedFeatureCache(str(directory)).get(
        FrameMeans(), train)
    # Another process: its own dataset of the same clips.
    read = parallel.SharedFeatureCache(str(directory), 0).get(
        FrameMeans(), _Clips(["a.mp4", "b.mp4"]))
    assert calls == [train]
    assert isinstance(read, FrameFeatures)
    for name in ("features", "frame_mask", "offsets", "labels"):
        np.testing.assert_array_equal(getattr(read, name),
                                      getattr(computed, name))
    assert read.features.filename == str(directory / "frames-1.npy")
    parallel.SharedFeatureCache(str(directory)).get(
        FrameMeans(), _Clips(["c.mp4"]))
    assert len(calls) == 2  # other clips: computed


def test_share_features_keeps_the_cache_settings():
    hypermodel = VGG4DHyperModel(2, (2, 32, 32, 3), feature_cache_dir="fc",
                                 memory_limit_bytes=123, precision="bfloat16")
    parallel.share_features(hypermodel)
    cache = hypermodel.feature_cache
    assert isinstance(cache, parallel.SharedFeatureCache)
    assert (cache.directory, cache.memory_limit_bytes, cache.dtype_policy) \
        == ("fc", 123, "mixed_bfloat16")
    assert cache.shared_directory == os.path.join("fc", "shared")


# --- end to end --------------------------------------------------------------


@pytest.mark.slow
def test_two_trials_at_once_end_to_end(tmp_path):
    command = "import sys, keras_vgg4d_cli; sys.exit(keras_vgg4d_cli.tune())"
    result = subprocess.run(
        [sys.executable, "-c", command, "--parallel-trials", "2",
         "--num-clips", "24", "--frames", "2", "--max-trials", "3",
         "--epochs", "1", "--batch-size", "6", "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, (result.stdout[-3000:],
                                    result.stderr[-3000:])
    project = tmp_path / "search"
    workers = parallel.trial_workers(str(project))
    assert sorted(workers) == ["0", "1", "2"]
    assert set(workers.values()) == {"tuner0", "tuner1"}
    lines = result.stdout.splitlines()
    progress = [line for line in lines
                if line.startswith(("tuner0: trial ", "tuner1: trial "))]
    assert len(progress) == 3, result.stdout
    assert not any(line.endswith((": lstm", ": conv3d", ": framewise"))
                   for line in lines)  # Keras Tuner's stray prints
    rows = json.loads((project / "results.json").read_text())
    assert len(rows) == 3 and all(row["seconds"] > 0 for row in rows)
    for row in rows:  # only the values the trial's head uses
        assert all(name.startswith(row["head"]) or name in (
            "learning_rate", "dropout") for name in row["hyperparameters"])
    assert set(json.loads((project / "trial_times.json").read_text())) \
        == {"0", "1", "2"}
    for name in ("report.md", "best_model.keras", "results.csv",
                 "learning_curves.png"):
        assert (project / name).is_file(), name
    assert f"best: trial {rows[0]['trial']}" in result.stdout
    assert not (project / "feature_cache" / "shared").exists()
    assert sorted(os.listdir(project / "parallel")) == [
        "chief.log", "chief.out", "tuner0.log", "tuner0.out", "tuner1.log",
        "tuner1.out"]
