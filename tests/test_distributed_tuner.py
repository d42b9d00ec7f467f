"""Keras Tuner's distributed mode: one chief (the oracle), two workers."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import keras, keras_tuner
    from keras_vgg4d import VGG4DHyperModel
    from keras_vgg4d.data import demo_clips

    class Log(keras.callbacks.Callback):
        # One line per trial this process trains.
        def on_train_begin(self, logs=None):
            with open(sys.argv[2], "a") as f:
                f.write(os.environ["KERASTUNER_TUNER_ID"] + "\\n")

    x, y = demo_clips(n=16, frames=2, size=32, task="appearance", seed=0)
    tuner = keras_tuner.RandomSearch(
        VGG4DHyperModel(3, x.shape[1:]), objective="val_accuracy",
        max_trials=4, directory=sys.argv[1], seed=2)
    tuner.search(x[:12], y[:12], validation_data=(x[12:], y[12:]),
                 epochs=1, batch_size=4, verbose=0, callbacks=[Log()])
    if os.environ["KERASTUNER_TUNER_ID"] == "chief":
        trials = tuner.oracle.get_best_trials(10)
        print(json.dumps([t.trial_id for t in trials]))
    """
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers_on_localhost(tmp_path):
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    directory, log = tmp_path / "tuner", tmp_path / "trials.log"
    base = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                KERASTUNER_ORACLE_IP="127.0.0.1",
                KERASTUNER_ORACLE_PORT=str(free_port()))
    processes = {
        tuner_id: subprocess.Popen(
            [sys.executable, str(script), str(directory), str(log)],
            env=dict(base, KERASTUNER_TUNER_ID=tuner_id),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for tuner_id in ("chief", "tuner0", "tuner1")
    }
    outputs = {}
    try:
        for tuner_id, process in processes.items():
            outputs[tuner_id] = process.communicate(timeout=600)
    finally:
        for process in processes.values():
            process.kill()
    for tuner_id, process in processes.items():
        assert process.returncode == 0, (tuner_id, outputs[tuner_id][1][-2000:])
    best = json.loads(outputs["chief"][0].strip().splitlines()[-1])
    assert len(best) == 4
    # The workers ran the four trials between them; the chief ran none.
    runs = log.read_text().split()
    assert len(runs) == 4 and "chief" not in runs
    assert set(runs) <= {"tuner0", "tuner1"}
