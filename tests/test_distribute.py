"""`tf.distribute.MirroredStrategy` over two logical CPUs trains every head.

TensorFlow fixes its logical devices when it first initializes them, so the
test body runs in a fresh subprocess that splits the CPU in two first.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from backend_testing import run_under

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras, numpy as np
    from keras_vgg4d import VGG4DClassifier
    from keras_vgg4d.data import demo_clips

    directory = sys.argv[1]
    keras.utils.set_random_seed(0)
    x, y = demo_clips(n=8, frames=3, size=32, task="appearance", seed=0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {"replicas": strategy.num_replicas_in_sync}
    options = {"framewise": {"units": 0}, "conv3d": {"filters": 8},
               "lstm": {"units": 8}}
    for head, head_options in options.items():
        with strategy.scope():
            model = VGG4DClassifier(3, head, head_options=head_options)
            model.build((None, *x.shape[1:]))
            model.compile(keras.optimizers.Adam(1e-3),
                          "sparse_categorical_crossentropy")
        history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        expected = model.predict(x, verbose=0)
        # Outside the strategy a mirrored variable reads its first replica,
        # the copy `save` writes.
        first_replica = keras.ops.convert_to_numpy(model(x, training=False))
        path = os.path.join(directory, f"{head}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        got = loaded.predict(x, verbose=0)
        with strategy.scope():
            mirrored = keras.saving.load_model(path, safe_mode=True)
        got_mirrored = mirrored.predict(x, verbose=0)
        results[head] = {
            "variable_type": type(model.trainable_variables[-1].value).__name__,
            "loss": history.history["loss"][-1],
            "loaded_vs_saved": float(np.abs(got - first_replica).max()),
            "loaded_in_scope_vs_saved": float(
                np.abs(got_mirrored - first_replica).max()),
            "loaded_vs_distributed_predict": float(
                np.abs(got - expected).max()),
            "shape": list(got.shape),
        }
    print("RESULTS " + json.dumps(results))
    """
)


def test_mirrored_strategy_trains_saves_and_loads_every_head(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(
        l for l in done.stdout.splitlines() if l.startswith("RESULTS ")
    )
    results = json.loads(line[len("RESULTS "):])
    print(json.dumps(results, indent=1))
    assert results["replicas"] == 2
    for head in ("framewise", "conv3d", "lstm"):
        result = results[head]
        # Variables created in the scope are mirrored across both devices.
        assert result["variable_type"] == "MirroredVariable", result
        assert 0 < result["loss"] < 1e3, result
        assert result["shape"] == [8, 3]
        # The loaded model, on one device or back in the strategy, predicts
        # what the saved model does.
        assert result["loaded_vs_saved"] < 1e-6, result
        assert result["loaded_in_scope_vs_saved"] < 1e-6, result
        # The trained model's own distributed `predict` differs slightly on
        # the second replica's half of the batch: each replica updates the
        # heads' BatchNormalization moving statistics from its own half
        # (`synchronized=False`), and `save` keeps the first replica's.
        assert result["loaded_vs_distributed_predict"] < 1e-3, result


# `keras.distribution.DataParallel` on JAX: the batch split over two host
# devices, the variables replicated. JAX fixes its devices when it first
# starts, so XLA_FLAGS makes two CPU devices in a fresh subprocess.
DATA_PARALLEL = """
import json, os
import numpy as np
import jax
import keras
from keras_vgg4d import VGG4DClassifier
from keras_vgg4d.data import demo_clips

devices = keras.distribution.list_devices()
keras.distribution.set_distribution(
    keras.distribution.DataParallel(devices=devices))
keras.utils.set_random_seed(0)
x, y = demo_clips(n=8, frames=3, size=32, task="appearance", seed=0)
results = {{"devices": len(devices)}}
for head in ("framewise", "conv3d", "lstm"):
    model = VGG4DClassifier(3, head)
    model.compile(keras.optimizers.Adam(1e-2),
                  "sparse_categorical_crossentropy")
    model(x[:4])
    before = np.array(model.head.trainable_weights[0])
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    weight = model.head.trainable_weights[0].value
    devices_holding = len(weight.sharding.device_set)
    after = np.array(weight)
    predicted = model.predict(x, batch_size=4, verbose=0)
    path = os.path.join({folder!r}, head + ".keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    results[head] = {{
        "sharding_devices": devices_holding,
        "moved": float(np.abs(after - before).max()),
        "loss": history.history["loss"][-1],
        "loaded_vs_saved": float(np.abs(
            loaded.predict(x, batch_size=4, verbose=0) - predicted).max()),
    }}
print(json.dumps(results))
"""


def test_data_parallel_on_jax_trains_saves_and_loads_every_head(tmp_path):
    flags = os.environ.get("XLA_FLAGS", "")
    report = run_under(
        "jax", DATA_PARALLEL.format(folder=str(tmp_path)),
        env={"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=2"},
    )
    assert report["devices"] == 2
    for head in ("framewise", "conv3d", "lstm"):
        result = report[head]
        # Each variable lives, replicated, on both devices.
        assert result["sharding_devices"] == 2, (head, result)
        assert result["moved"] > 1e-5, (head, result)
        assert 0 < result["loss"] < 1e3
        assert result["loaded_vs_saved"] < 1e-5, (head, result)
