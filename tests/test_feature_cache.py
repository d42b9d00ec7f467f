"""`FeatureCache`: each array's and dataset's features, computed once.

A stand-in classifier (`feature_testing.FrameMeans`) whose "backbone" turns
each frame into its mean per channel lets these tests say exactly which
clips, in which batches, for which clip shape and dtype policy, reached the
backbone, and what came back. `tests/test_cache_path.py` checks the real
classifier: the cached path trains what the plain path trains.
"""

import gc
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.trainers.data_adapters.array_slicing import (
    train_validation_split,
)

from keras_vgg4d.data import clip_dataset_from_directory
from keras_vgg4d.feature_cache import CachedFeatures
from keras_vgg4d.feature_cache import FeatureCache
from keras_vgg4d.feature_cache import OnWholeModel
from keras_vgg4d.frame_features import FrameFeatures
from feature_testing import FrameMeans

pytestmark = pytest.mark.backends


def _clips(n, frames=3, size=4, channels=2, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    clips = rng.uniform(1, 255, (n, frames, size, size, channels))
    clips[0, -1] = 0  # a padded frame
    return clips.astype(dtype)


# --- arrays ------------------------------------------------------------------


def test_an_array_is_read_once_in_the_batches_asked():
    model, cache = FrameMeans(), FeatureCache()
    x = _clips(7)
    y = np.arange(7) % 3
    cached = cache.get(model, x, y, batch_size=3, verbose=0)
    assert model.batches == [3, 3, 1]
    assert model.extractors == [((3, 4, 4, 2), "float32", None)]
    features, mask = model.expected(x)
    np.testing.assert_array_equal(cached.features, features)
    np.testing.assert_array_equal(cached.mask, mask)
    assert not cached.mask[0, -1] and cached.mask.sum() == 7 * 3 - 1
    assert cached.mask.dtype == bool
    np.testing.assert_array_equal(cached.labels, y)
    assert cached.batch_size == 3
    assert type(cached.features) is np.ndarray
    assert cached.features.dtype == np.float32
    assert len(cache) == 1
    # The same clips again (another copy, no labels, Keras' default batch
    # size): no backbone call, the same features.
    again = cache.get(model, x.copy(), verbose=0)
    assert model.batches == [3, 3, 1] and len(cache) == 1
    assert again.features is cached.features and again.mask is cached.mask
    assert again.labels is None and again.batch_size is None
    assert [a.shape for a in again.inputs] == [features.shape, mask.shape]
    assert again.inputs[0] is cached.features


def test_clips_read_in_keras_default_batches_of_32():
    model, cache = FrameMeans(), FeatureCache()
    x = _clips(33, frames=1, size=2, channels=1)
    cache.get(model, x, verbose=0)
    assert model.batches == [32, 1]


def test_arrays_of_the_same_bytes_but_another_shape_or_dtype_differ():
    """An entry is keyed by an array's bytes, shape and dtype: the same
    bytes read as more clips of fewer frames, or as another dtype, are
    other clips."""
    model, cache = FrameMeans(), FeatureCache()
    x = _clips(4, frames=2)
    changed = x.copy()
    changed[3, 1, 2, 2, 1] += 1
    variants = [x, x.reshape(2, 4, 4, 4, 2), x.view("int32"), changed,
                x.astype("uint8")]
    for clips in variants:
        cached = cache.get(model, clips, verbose=0)
        np.testing.assert_array_equal(cached.features,
                                      model.expected(clips)[0])
    assert len(cache) == len(variants)
    assert [e[1] for e in model.extractors] == [
        "float32", "float32", "int32", "float32", "uint8"]


def test_another_backbone_mask_rule_layout_or_policy_recomputes():
    """The features depend on the backbone's config, the masking rule, the
    time axis and the dtype policy: a change in any one is a new entry."""
    cache = FeatureCache(dtype_policy="mixed_bfloat16")
    x = _clips(2, frames=4, size=4, channels=4)  # reads either way round
    models = [FrameMeans(), FrameMeans(name="other"),
              FrameMeans(mask_padded_frames=False), FrameMeans(time_axis=-1)]
    for model in models:
        cached = cache.get(model, x, verbose=0)
        features, mask = model.expected(x)
        np.testing.assert_array_equal(cached.features, features)
        np.testing.assert_array_equal(cached.mask, mask)
        assert model.extractors == [((4, 4, 4, 4), "float32",
                                     "mixed_bfloat16")]
    assert len(cache) == len(models)
    model = models[0]
    cache.dtype_policy = None
    cache.get(model, x, verbose=0)
    assert model.extractors[-1][2] is None
    assert len(cache) == len(models) + 1


# --- memory-mapped features ----------------------------------------------------


def _features_bytes(x):
    return x.shape[0] * x.shape[1] * x.shape[-1] * 4  # float32, 1x1 maps


def test_features_over_the_limit_go_to_a_memory_map_in_the_directory(tmp_path):
    """Over `memory_limit_bytes`, each array's features get a file of their
    own in `directory` (which may already exist), and keep their values
    when another array's features are written beside them."""
    model = FrameMeans()
    x, other = _clips(3), _clips(3, seed=1)
    limit = _features_bytes(x) - 1
    cache = FeatureCache(str(tmp_path), memory_limit_bytes=limit)
    first = cache.get(model, x, verbose=0)
    second = cache.get(model, other, verbose=0)
    files = sorted(tmp_path.glob("features-*.npy"))
    assert len(files) == 2
    for cached, clips in ((first, x), (second, other)):
        assert isinstance(cached.features, np.memmap)
        assert cached.features.dtype == np.float32
        np.testing.assert_array_equal(cached.features,
                                      model.expected(clips)[0])
    stored = sorted(np.load(f).tobytes() for f in files)
    assert stored == sorted(c.features.tobytes() for c in (first, second))


def test_features_at_the_limit_or_without_a_directory_stay_in_memory(tmp_path):
    model, x = FrameMeans(), _clips(3)
    at_limit = FeatureCache(str(tmp_path / "cache"),
                            memory_limit_bytes=_features_bytes(x))
    no_directory = FeatureCache(None, memory_limit_bytes=0)
    for cache in (at_limit, no_directory):
        cached = cache.get(model, x, verbose=0)
        assert type(cached.features) is np.ndarray
        np.testing.assert_array_equal(cached.features, model.expected(x)[0])
    assert not (tmp_path / "cache").exists()


# --- datasets ----------------------------------------------------------------


def test_a_dataset_is_read_once_and_held_weakly():
    model, cache = FrameMeans(), FeatureCache()
    x = _clips(7, dtype="uint8")
    y = np.arange(7) % 3
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    cached = cache.get(model, dataset, verbose=0)
    assert model.extractors == [((3, 4, 4, 2), "uint8", None)]
    assert model.batches == [3, 3, 1]
    features, mask = model.expected(x)
    np.testing.assert_array_equal(cached.features, features)
    np.testing.assert_array_equal(cached.mask, mask)
    np.testing.assert_array_equal(cached.labels, y)
    assert cached.batch_size == 3
    assert cache.get(model, dataset, verbose=0) is cached
    assert model.batches == [3, 3, 1]
    cache.get(FrameMeans(name="other"), dataset, verbose=0)
    cache.get(model, x, verbose=0)
    assert len(cache) == 3
    # An entry lives as long as its dataset.
    del dataset, cached
    gc.collect()
    assert len(cache) == 1


class ClipBatches(keras.utils.PyDataset):
    """Clips and labels in batches, as a user's `PyDataset` gives them."""

    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]


def test_a_pydataset_is_read_once_batch_by_batch():
    """No tf.data needed: the path of a search on JAX or PyTorch."""
    model, cache = FrameMeans(), FeatureCache()
    x, y = _clips(7), np.arange(7) % 3
    dataset = ClipBatches(x, y, 3)
    cached = cache.get(model, dataset, verbose=0)
    assert model.batches == [3, 3, 1]
    np.testing.assert_array_equal(cached.features, model.expected(x)[0])
    np.testing.assert_array_equal(cached.mask, model.expected(x)[1])
    np.testing.assert_array_equal(cached.labels, y)
    assert cached.batch_size == 3
    assert cache.get(model, dataset, verbose=0) is cached
    assert model.batches == [3, 3, 1]


def test_a_dataset_keeps_its_batch_size_and_the_cache_dtype_policy():
    model = FrameMeans()
    cache = FeatureCache(dtype_policy="mixed_bfloat16")
    x = _clips(5, frames=3)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.arange(5))).batch(2)
    cached = cache.get(model, dataset, verbose=0)
    assert cached.batch_size == 2
    assert model.extractors == [((3, 4, 4, 2), "float32", "mixed_bfloat16")]
    np.testing.assert_array_equal(cached.features, model.expected(x)[0])


def test_a_dataset_with_sample_weights_reads_clips_and_labels():
    model, cache = FrameMeans(), FeatureCache()
    x, y = _clips(4), np.array([2, 0, 1, 1])
    dataset = tf.data.Dataset.from_tensor_slices((x, y, np.ones(4))).batch(4)
    cached = cache.get(model, dataset, verbose=0)
    np.testing.assert_array_equal(cached.features, model.expected(x)[0])
    np.testing.assert_array_equal(cached.labels, y)


def test_an_empty_dataset_is_named():
    x = _clips(2)
    empty = tf.data.Dataset.from_tensor_slices((x[:0], np.zeros(0))).batch(2)
    with pytest.raises(ValueError, match=r"^The dataset given to the search "
                                         r"yielded no batches\.$"):
        FeatureCache().get(FrameMeans(), empty, verbose=0)


# --- progress ----------------------------------------------------------------


def test_progress_bars_count_clips_or_batches_unless_verbose_is_0(capsys):
    x = _clips(3)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(3))).batch(2)
    for data in (x, dataset):
        FeatureCache().get(FrameMeans(), data, verbose=0)
        assert capsys.readouterr().out == ""
    for verbose in ("auto", 1):
        FeatureCache().get(FrameMeans(), x, verbose=verbose)
        out = capsys.readouterr().out
        # Keras' bar (verbose=1), counting the 3 clips.
        assert "3/3" in out and "/clip" in out and "━" in out
        FeatureCache().get(FrameMeans(), dataset, verbose=verbose)
        out = capsys.readouterr().out
        # A dataset's length is unknown: batches are counted as they come
        # (the bar prints its first count, then at most every 0.05 s).
        assert re.search(r"(^|\s)1/Unknown", out) and "/batch" in out


# --- validation_split --------------------------------------------------------


@pytest.mark.parametrize("n, fraction", [(10, 0.3), (10, 0.25), (7, 0.5),
                                         (3, 0.2)])
def test_split_takes_the_last_fraction_as_keras_fit_does(n, fraction):
    features = np.arange(n, dtype="float32").reshape(n, 1, 1, 1, 1)
    mask = np.arange(n)[:, None] % 2 == 0
    labels = np.arange(n) * 10
    train, validation = CachedFeatures(features, mask, labels, 4).split(
        fraction)
    (kx, km, ky), (vx, vm, vy) = train_validation_split(
        (features, mask, labels), fraction)
    for part, (f, m, l) in ((train, (kx, km, ky)), (validation, (vx, vm, vy))):
        np.testing.assert_array_equal(part.features, f)
        np.testing.assert_array_equal(part.mask, m)
        np.testing.assert_array_equal(part.labels, l)
        assert part.batch_size == 4
    unlabelled = CachedFeatures(features, mask, None).split(fraction)
    assert [len(p.features) for p in unlabelled] == [len(kx), len(vx)]
    assert all(p.labels is None and p.batch_size is None for p in unlabelled)


# --- callbacks see the whole model -------------------------------------------


class Recorder(keras.callbacks.Callback):
    """Logs every hook it gets, with its arguments and the model it sees."""

    HOOKS = {
        "on_train_begin": 0, "on_train_end": 0, "on_test_begin": 0,
        "on_test_end": 0, "on_epoch_begin": 1, "on_epoch_end": 1,
        "on_train_batch_begin": 1, "on_train_batch_end": 1,
        "on_test_batch_begin": 1, "on_test_batch_end": 1,
    }

    def __init__(self, stop_on=None):
        super().__init__()
        self.calls = []
        self.stop_on = stop_on

    def __getattribute__(self, name):
        if name in Recorder.HOOKS:
            def hook(*args):
                self.calls.append((name, args, self.model))
                if name == self.stop_on:
                    self.model.stop_training = True
            return hook
        return super().__getattribute__(name)


def _tiny_model(units):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(units)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def test_every_hook_reaches_the_callback_with_the_whole_model():
    whole, head = _tiny_model(1), _tiny_model(1)
    whole.stop_training = True  # left over from an earlier fit
    recorder = Recorder()
    wrapped = OnWholeModel(recorder, whole)
    wrapped.set_model(head)
    wrapped.set_params({"epochs": 3, "steps": 2, "verbose": 0})
    assert wrapped.model is head and recorder.model is whole
    assert whole.optimizer is head.optimizer
    assert whole.stop_training is False
    assert recorder.params == wrapped.params == {"epochs": 3, "steps": 2,
                                                 "verbose": 0}
    expected = []
    for i, (hook, takes_index) in enumerate(Recorder.HOOKS.items()):
        logs = {"loss": float(i)}
        args = (10 + i, logs) if takes_index else (logs,)
        getattr(wrapped, hook)(*args)
        expected.append((hook, args, whole))
    assert recorder.calls == expected
    assert head.stop_training is False


@pytest.mark.parametrize("hook", sorted(Recorder.HOOKS))
def test_stopping_the_whole_model_from_any_hook_stops_the_head(hook):
    whole, head = _tiny_model(1), _tiny_model(1)
    wrapped = OnWholeModel(Recorder(stop_on=hook), whole)
    wrapped.set_model(head)
    args = (0, {}) if Recorder.HOOKS[hook] else ({},)
    getattr(wrapped, hook)(*args)
    assert head.stop_training is True


def test_a_callback_on_the_whole_model_steers_the_head_training():
    """Trained through its head, the whole model's callbacks stop the
    training and set the learning rate that trains."""
    whole, head = _tiny_model(1), _tiny_model(1)
    x = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    rates = []

    class HalveAndStop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            assert self.model is whole
            self.model.optimizer.learning_rate = 0.5 * float(
                self.model.optimizer.learning_rate)
            rates.append(float(head.optimizer.learning_rate))
            if epoch == 1:
                self.model.stop_training = True

    history = head.fit(x, y, epochs=5, verbose=0,
                       callbacks=[OnWholeModel(HalveAndStop(), whole)])
    assert len(history.history["loss"]) == 2
    assert rates == pytest.approx([0.005, 0.0025])


def test_a_resumed_whole_model_resumes_the_head_at_its_epoch(tmp_path):
    """`BackupAndRestore` on the whole model: a training stopped after
    epoch 2 of 4 resumes at epoch 3, not from the start."""
    dense = keras.layers.Dense(1)
    whole = keras.Sequential([keras.Input((2,)), dense])

    def head_model():  # shares the whole model's layer, as the head does
        model = keras.Sequential([keras.Input((2,)), dense])
        model.compile(keras.optimizers.Adam(0.01), "mse")
        return model

    x = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    backup = str(tmp_path / "backup")

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    class Epochs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_epoch_begin(self, epoch, logs=None):
            self.seen.append(epoch)

    first = Epochs()
    with pytest.raises(RuntimeError, match="interrupted"):
        head_model().fit(x, y, epochs=4, verbose=0, callbacks=[
            OnWholeModel(keras.callbacks.BackupAndRestore(backup), whole),
            first, Crash()])
    second = Epochs()
    history = head_model().fit(x, y, epochs=4, verbose=0, callbacks=[
        OnWholeModel(keras.callbacks.BackupAndRestore(backup), whole),
        second])
    assert first.seen == [0, 1]
    assert second.seen == [2, 3]
    assert len(history.history["loss"]) == 2


# --- clip datasets -------------------------------------------------------------


def test_a_clip_dataset_caches_the_frames_of_its_clips(tmp_path, capsys):
    """A dataset from `clip_dataset_from_directory` caches every frame of
    its clips (`FrameFeatures`), in `directory`, under the cache's dtype
    policy, once."""
    lengths = [3, 2]
    for i, length in enumerate(lengths):
        folder = tmp_path / "clips" / "ab"[i]
        folder.mkdir(parents=True)
        clip = np.arange(length * 4 * 4 * 3).reshape(length, 4, 4, 3)
        np.save(folder / f"clip{i}.npy", (clip + 10 * i).astype("uint8"))
    dataset = clip_dataset_from_directory(
        str(tmp_path / "clips"), frames=2, image_size=(4, 4), batch_size=2,
        shuffle=False, verbose=False)
    model = FrameMeans()
    cache = FeatureCache(str(tmp_path / "features"),
                         dtype_policy="mixed_bfloat16")
    cached = cache.get(model, dataset, verbose=0)
    assert capsys.readouterr().out == ""  # no progress bar with verbose=0
    assert isinstance(cached, FrameFeatures)
    assert model.extractors == [((None, 4, 4, 3), "float32",
                                 "mixed_bfloat16")]
    assert cached.offsets.tolist() == [0, 3, 5]
    for i, source in enumerate(dataset.clip_sources):
        frames = np.load(source.path).astype("float32")
        rows = slice(cached.offsets[i], cached.offsets[i + 1])
        np.testing.assert_allclose(cached.features[rows, 0, 0],
                                   frames.mean(axis=(1, 2)), rtol=1e-6)
    assert len(list((tmp_path / "features").glob("*.npy"))) == 1
    assert cache.get(model, dataset, verbose=0) is cached
    assert len(model.extractors) == 1 and len(cache) == 1
