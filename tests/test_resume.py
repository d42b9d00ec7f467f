"""A search killed mid-trial (SIGKILL) resumes without losing or repeating
finished trials."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    import keras, keras_tuner
    from keras_vgg4d import VGG4DHyperModel
    from keras_vgg4d.data import demo_clips

    directory, log, kill_in_trial = sys.argv[1], sys.argv[2], int(sys.argv[3])

    class Recorder(keras.callbacks.Callback):
        # Appends one line per trial it sees start; kills the process in the
        # middle of trial number `kill_in_trial` (counted over all runs).
        def on_train_begin(self, logs=None):
            with open(log, "a") as f:
                f.write("start\\n")

        def on_epoch_end(self, epoch, logs=None):
            with open(log) as f:
                started = len(f.read().split())
            if started == kill_in_trial and epoch == 0:
                os.kill(os.getpid(), signal.SIGKILL)

    x, y = demo_clips(n=16, frames=2, size=32, task="appearance", seed=0)
    tuner = keras_tuner.RandomSearch(
        VGG4DHyperModel(3, x.shape[1:]), objective="val_accuracy",
        max_trials=4, directory=directory, overwrite=False, seed=3)
    tuner.search(x[:12], y[:12], validation_data=(x[12:], y[12:]),
                 epochs=2, batch_size=4, verbose=0, callbacks=[Recorder()])
    done = [t.trial_id for t in tuner.oracle.trials.values()
            if t.status == "COMPLETED"]
    print(json.dumps(sorted(done)))
    """
)


def run(script, directory, log, kill_in_trial):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, str(script), str(directory), str(log),
         str(kill_in_trial)],
        capture_output=True, text=True, timeout=600, env=env,
    )


def test_killed_search_resumes_without_repeating_trials(tmp_path):
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    directory, log = tmp_path / "tuner", tmp_path / "starts.log"

    first = run(script, directory, log, kill_in_trial=3)
    assert first.returncode == -9, first.stderr[-2000:]
    assert log.read_text().split() == ["start"] * 3
    finished = sorted(
        name for name in os.listdir(directory / "untitled_project")
        if name.startswith("trial_")
        and json.loads(
            (directory / "untitled_project" / name / "trial.json").read_text()
        )["status"] == "COMPLETED"
    )
    assert len(finished) == 2

    second = run(script, directory, log, kill_in_trial=0)
    assert second.returncode == 0, second.stderr[-2000:]
    completed = json.loads(second.stdout.strip().splitlines()[-1])
    assert len(completed) == 4
    # Only the killed trial and the fourth one ran again: 3 + 2 starts.
    assert log.read_text().split() == ["start"] * 5
