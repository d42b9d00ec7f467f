"""Faults lose nothing: a killed `fit` resumes from its last backup, and
`.keras` files from other versions of the package load or say why not."""

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest

from keras_vgg4d.data import demo_clips
from keras_vgg4d.model import VGG4DClassifier
from keras_vgg4d.version import __version__

# 8 clips, batches of 2: 4 batches an epoch; a backup every 2 batches, so
# after batches 1 and 3 of each epoch. The first run is killed after batch 2
# of epoch 1 (0-based): its last backup is epoch 1, batch 1.
FIT_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, signal, sys
    import keras, numpy as np
    from keras_vgg4d import VGG4DClassifier
    from keras_vgg4d.data import demo_clips

    backup_dir, log_path, kill = sys.argv[1], sys.argv[2], sys.argv[3] == "1"

    def digest(model):
        data = b"".join(np.asarray(w).tobytes() for w in model.get_weights())
        return hashlib.sha256(data).hexdigest()

    def log(**record):
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\\n")

    class Recorder(keras.callbacks.Callback):
        # Runs after BackupAndRestore: sees the weights it restored or saved.
        def on_train_begin(self, logs=None):
            log(event="train_begin", weights=digest(self.model))

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            log(event="epoch_begin", epoch=epoch)

        def on_train_batch_end(self, batch, logs=None):
            log(event="batch_end", epoch=self.epoch, batch=batch,
                loss=float(logs["loss"]), weights=digest(self.model))
            if kill and self.epoch == 1 and batch == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    keras.utils.set_random_seed(0)
    x, y = demo_clips(n=8, frames=2, size=32, task="appearance", seed=0)
    model = VGG4DClassifier(3, "framewise", head_options={"units": 0})
    model.build((None, *x.shape[1:]))
    model.compile(keras.optimizers.Adam(1e-3),
                  "sparse_categorical_crossentropy")
    backup = keras.callbacks.BackupAndRestore(backup_dir, save_freq=2)
    model.fit(x, y, epochs=3, batch_size=2, shuffle=False, verbose=0,
              callbacks=[backup, Recorder()])
    probabilities = model.predict(x, verbose=0)
    log(event="done", shape=list(probabilities.shape),
        finite=bool(np.isfinite(probabilities).all()),
        rows_sum_to_one=bool(np.allclose(probabilities.sum(-1), 1, atol=1e-4)))
    """
)


def run_fit(tmp_path, kill):
    script = tmp_path / "fit.py"
    script.write_text(FIT_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / "backup"),
         str(tmp_path / "log.jsonl"), "1" if kill else "0"],
        env=env, capture_output=True, text=True, timeout=600,
    )


def read_runs(log_path):
    """The log's records, split into runs at each `train_begin`."""
    runs = []
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "train_begin":
            runs.append([])
        runs[-1].append(record)
    return runs


@pytest.mark.slow
def test_killed_fit_resumes_from_its_last_backup(tmp_path):
    killed = run_fit(tmp_path, kill=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert os.listdir(tmp_path / "backup")

    resumed = run_fit(tmp_path, kill=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    first, second = read_runs(tmp_path / "log.jsonl")
    batches = [r for r in first if r["event"] == "batch_end"]
    assert (batches[-1]["epoch"], batches[-1]["batch"]) == (1, 2)
    last_backup = next(
        r for r in batches if (r["epoch"], r["batch"]) == (1, 1)
    )
    # The second run starts from the weights of the last backup ...
    assert second[0]["weights"] == last_backup["weights"]
    assert second[0]["weights"] != first[0]["weights"]
    # ... at the epoch it was in, not from epoch 0, and finishes.
    epochs = [r["epoch"] for r in second if r["event"] == "epoch_begin"]
    assert epochs == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in second if "loss" in r)
    done = second[-1]
    assert done == {"event": "done", "shape": [8, 3], "finite": True,
                    "rows_sum_to_one": True}


# --- .keras files from other versions --------------------------------------


def saved_classifier(tmp_path):
    keras.utils.set_random_seed(0)
    x, _ = demo_clips(n=3, frames=2, size=32, task="appearance", seed=0)
    model = VGG4DClassifier(
        3, "lstm", head_options={"units": 8}, frame_chunk=2
    )
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    return path, x, expected


def edit_config(path, edit):
    """A copy of the `.keras` file at `path` with its config edited."""
    edited = path.replace(".keras", "_edited.keras")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(edited, "w") as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config["config"])
                data = json.dumps(config).encode()
            out.writestr(item, data)
    return edited


def test_config_records_the_package_version(tmp_path):
    path, _, _ = saved_classifier(tmp_path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))["config"]
    assert config["package_version"] == __version__


def test_file_saved_before_newer_arguments_existed_loads(tmp_path):
    path, x, expected = saved_classifier(tmp_path)

    def as_older_version(config):
        # Before versions were recorded, and before these arguments existed.
        for key in ("package_version", "frame_chunk", "mask_padded_frames"):
            del config[key]

    older = edit_config(path, as_older_version)
    model = keras.saving.load_model(older, safe_mode=True)
    assert model.frame_chunk is None and model.mask_padded_frames
    np.testing.assert_allclose(
        model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6
    )


def test_file_from_a_newer_version_names_the_version_and_arguments(tmp_path):
    path, _, _ = saved_classifier(tmp_path)

    def as_newer_version(config):
        config.update(package_version="9.1.0", temporal_pooling="attention")

    newer = edit_config(path, as_newer_version)
    with pytest.raises(
        ValueError,
        match=r"saved by keras_vgg4d 9\.1\.0 with argument\(s\) "
              r"\['temporal_pooling'\]",
    ):
        keras.saving.load_model(newer, safe_mode=True)


def test_file_with_an_unknown_class_fails_clearly(tmp_path):
    path, _, _ = saved_classifier(tmp_path)
    # An unregistered class name (e.g. a class renamed in another version).
    edited = path.replace(".keras", "_unknown.keras")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(edited, "w") as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["class_name"] = "VGG4DClassifierV9"
                config["registered_name"] = "keras_vgg4d>VGG4DClassifierV9"
                data = json.dumps(config).encode()
            out.writestr(item, data)
    with pytest.raises(TypeError, match=r"VGG4DClassifierV9"):
        keras.saving.load_model(edited, safe_mode=True)
