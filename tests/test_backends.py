"""keras_vgg4d on every Keras backend: JAX without TensorFlow, PyTorch where
it is installed, and `.keras` files that cross backends.

Each test runs its backend in a subprocess (`tests/backend_testing.py`), so
these run once, under any `KERAS_BACKEND` the suite itself runs on.
"""

import numpy as np
import pytest

from backend_testing import installed_backends
from backend_testing import run_under

pytestmark = pytest.mark.slow

HEADS = ("framewise", "conv3d", "lstm")

# Builds, fits, evaluates, predicts, saves and loads every head; the loaded
# model's answers against the saved one's.
HEADS_ROUND_TRIP = """
import json, os, sys, tempfile
import numpy as np
import keras
import keras_vgg4d
from keras_vgg4d import VGG4DClassifier

rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (6, 3, 32, 32, 3)).astype("float32")
x[1, 2] = 0.0  # a padded frame
y = np.array([0, 1, 2, 0, 1, 2])
report = {"backend": keras.backend.backend(),
          "tensorflow_loaded": "tensorflow" in sys.modules}
folder = tempfile.mkdtemp()
for head in ("framewise", "conv3d", "lstm"):
    keras.utils.set_random_seed(0)
    model = VGG4DClassifier(num_classes=3, temporal_head=head)
    model.compile(keras.optimizers.Adam(1e-2),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    model(x[:1])  # builds the model, so its head's weights exist
    before = [np.array(w) for w in model.head.trainable_weights]
    history = model.fit(x, y, epochs=2, batch_size=3, verbose=0)
    moved = max(float(np.abs(np.array(w) - b).max())
                for w, b in zip(model.head.trainable_weights, before))
    loss, accuracy = model.evaluate(x, y, verbose=0)
    predicted = model.predict(x, verbose=0)
    path = os.path.join(folder, head + ".keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    report[head] = {
        "moved": moved,
        "loss": float(loss),
        "finite": bool(np.isfinite(history.history["loss"]).all()),
        "shape": list(predicted.shape),
        "sums": float(np.abs(predicted.sum(axis=1) - 1).max()),
        "loaded_class": type(loaded).__name__,
        "loaded_vs_saved": float(np.abs(
            loaded.predict(x, verbose=0) - predicted).max()),
    }
report["tensorflow_loaded"] = "tensorflow" in sys.modules
print(json.dumps(report))
"""


def check_heads_round_trip(report, backend):
    assert report["backend"] == backend
    for head in HEADS:
        result = report[head]
        assert result["finite"], result
        # A gradient reached the head's weights through its layers (the
        # masked LSTM included) and the optimizer moved them.
        assert result["moved"] > 1e-5, (head, result)
        assert result["shape"] == [6, 3]
        assert result["sums"] < 1e-5
        assert result["loaded_class"] == "VGG4DClassifier"
        assert result["loaded_vs_saved"] < 1e-5, (head, result)


def test_jax_heads_fit_save_and_load_without_tensorflow():
    report = run_under("jax", HEADS_ROUND_TRIP, block_tensorflow=True)
    check_heads_round_trip(report, "jax")
    assert report["tensorflow_loaded"] is False


@pytest.mark.skipif("torch" not in installed_backends(),
                    reason="PyTorch is not installed (CI leaves it out)")
def test_torch_heads_fit_save_and_load():
    report = run_under("torch", HEADS_ROUND_TRIP)
    check_heads_round_trip(report, "torch")


SEARCH_WITHOUT_TENSORFLOW = """
import json, sys, tempfile
import numpy as np
import keras
import keras_tuner
import keras_vgg4d
from keras_vgg4d import VGG4DHyperModel, VGG4DClassifier

rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (12, 3, 32, 32, 3)).astype("float32")
y = np.arange(12) % 3


class Clips(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, i):
        part = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[part], self.y[part]


report = {}
for name, data in (("arrays", None), ("pydataset", Clips(x, y, 4))):
    hypermodel = VGG4DHyperModel(3, (3, 32, 32, 3))
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_accuracy", max_trials=3, seed=0,
        directory=tempfile.mkdtemp(),
    )
    if data is None:
        tuner.search(x, y, validation_data=(x[:6], y[:6]), epochs=2,
                     batch_size=4, verbose=0)
    else:
        tuner.search(data, validation_data=Clips(x[:6], y[:6], 3),
                     epochs=2, verbose=0)
    best = tuner.get_best_models(1)[0]
    report[name] = {
        "trials": len(tuner.oracle.trials),
        "heads": sorted({t.hyperparameters.get("temporal_head")
                         for t in tuner.oracle.trials.values()}),
        "cached": len(hypermodel.feature_cache),
        "best": type(best).__name__,
        "shape": list(best.predict(x[:2], verbose=0).shape),
    }
try:
    keras_vgg4d.data.make_dataset(x, y, batch_size=4)
    report["make_dataset"] = "no error"
except ImportError as error:
    report["make_dataset"] = str(error)
report["demo"] = list(keras_vgg4d.data.demo_clips(
    n=3, frames=2, size=32)[0].shape)
report["tensorflow_loaded"] = "tensorflow" in sys.modules
print(json.dumps(report))
"""


def test_jax_search_over_arrays_and_a_pydataset_without_tensorflow():
    report = run_under("jax", SEARCH_WITHOUT_TENSORFLOW, block_tensorflow=True)
    for name in ("arrays", "pydataset"):
        result = report[name]
        assert result["trials"] == 3, result
        assert result["best"] == "VGG4DClassifier"
        assert result["shape"] == [2, 3]
        # The frozen backbone's features were cached: heads trained on them.
        assert result["cached"] >= 1, result
    # What is built on tf.data says that it needs TensorFlow.
    assert "make_dataset" in report["make_dataset"]
    assert "needs TensorFlow" in report["make_dataset"]
    assert "pip install tensorflow" in report["make_dataset"]
    assert report["demo"][:2] == [3, 2]
    assert report["tensorflow_loaded"] is False


CROSS_SAVE = """
import json, os
import numpy as np
import keras
from keras_vgg4d import VGG4DClassifier

folder = {folder!r}
rng = np.random.default_rng(1)
x = rng.uniform(0, 255, (4, 3, 32, 32, 3)).astype("float32")
x[2, 1:] = 0.0  # padded frames
np.save(os.path.join(folder, "x.npy"), x)
y = np.array([0, 1, 2, 1])
for head in ("framewise", "conv3d", "lstm"):
    keras.utils.set_random_seed(0)
    model = VGG4DClassifier(num_classes=3, temporal_head=head)
    model.compile(keras.optimizers.Adam(1e-2),
                  "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    np.save(os.path.join(folder, head + ".npy"), model.predict(x, verbose=0))
    model.save(os.path.join(folder, head + ".keras"))
print(json.dumps({{"saved": keras.backend.backend()}}))
"""

CROSS_LOAD = """
import json, os
import numpy as np
import keras
import keras_vgg4d

folder = {folder!r}
x = np.load(os.path.join(folder, "x.npy"))
report = {{}}
for head in ("framewise", "conv3d", "lstm"):
    model = keras.saving.load_model(os.path.join(folder, head + ".keras"),
                                    safe_mode=True)
    saved = np.load(os.path.join(folder, head + ".npy"))
    report[head] = float(np.abs(model.predict(x, verbose=0) - saved).max())
print(json.dumps(report))
"""


@pytest.mark.parametrize(
    "saved_under, loaded_under",
    [("tensorflow", "jax"), ("jax", "tensorflow"), ("jax", "torch"),
     ("torch", "tensorflow")],
)
def test_a_keras_file_saved_under_one_backend_loads_under_another(
    tmp_path, saved_under, loaded_under
):
    missing = {saved_under, loaded_under} - set(installed_backends())
    if missing:
        pytest.skip(f"not installed: {sorted(missing)}")
    folder = str(tmp_path)
    run_under(saved_under, CROSS_SAVE.format(folder=folder))
    report = run_under(loaded_under, CROSS_LOAD.format(folder=folder))
    for head in HEADS:
        assert report[head] <= 1e-5, (head, report)
    # The answers compared are a trained model's, not a uniform constant.
    for head in HEADS:
        answers = np.load(tmp_path / f"{head}.npy")
        assert np.ptp(answers) > 1e-3, (head, answers)
