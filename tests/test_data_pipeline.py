import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_vgg4d.data import demo_clips
from keras_vgg4d.data import make_dataset
from keras_vgg4d.data import split_balanced


@keras.saving.register_keras_serializable(package="keras_vgg4d_tests")
class FlipClips(keras.layers.Layer):
    """Flips every frame left-right in training; identity otherwise."""

    def call(self, clips, training=None):
        if training:
            return keras.ops.flip(clips, axis=3)
        return clips


@keras.saving.register_keras_serializable(package="keras_vgg4d_tests")
class AddOne(keras.layers.Layer):
    def call(self, clips, training=None):
        return clips + 1.0 if training else clips


def numbered_clips(n=10, time=3):
    """Clip i is filled with the value i, so clips can be told apart."""
    x = np.ones((n, time, 32, 32, 3), "float32") * np.arange(n)[
        :, None, None, None, None
    ]
    return x, (np.arange(n) % 2).astype("int32")


def collect(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(xs), np.concatenate(ys)


def test_batches_hold_every_clip_once():
    x, y = numbered_clips(10)
    dataset = make_dataset(x, y, batch_size=4, seed=0)
    sizes = [len(batch) for batch, _ in dataset]
    assert sizes == [4, 4, 2]
    got_x, got_y = collect(dataset)
    ids = got_x[:, 0, 0, 0, 0].astype(int)
    assert sorted(ids) == list(range(10))
    np.testing.assert_array_equal(got_y, ids % 2)  # labels stay with clips


def test_shuffle_is_seeded_and_reshuffles_each_epoch():
    x, y = numbered_clips(16)

    def order(dataset):
        return collect(dataset)[0][:, 0, 0, 0, 0].tolist()

    a = make_dataset(x, y, batch_size=4, seed=1)
    b = make_dataset(x, y, batch_size=4, seed=1)
    first, second = order(a), order(a)
    assert first == order(b)
    assert first != second  # a new order each epoch
    assert first != list(range(16))
    plain = make_dataset(x, y, batch_size=4, shuffle=False)
    assert order(plain) == list(range(16))


def test_drop_remainder_gives_static_batch_size():
    x, y = numbered_clips(10)
    dataset = make_dataset(x, y, batch_size=4, drop_remainder=True)
    assert dataset.element_spec[0].shape == (4, 3, 32, 32, 3)
    assert len(list(dataset)) == 2


def test_augment_runs_on_batches():
    x, y = demo_clips(n=6, frames=3, task="motion", num_classes=2, seed=0)
    dataset = make_dataset(x, y, batch_size=4, shuffle=False,
                           augment=FlipClips())
    got_x, got_y = collect(dataset)
    np.testing.assert_array_equal(got_x, x[:, :, :, ::-1])
    np.testing.assert_array_equal(got_y, y)


def test_mask_zeroes_padded_frames_after_augmentation():
    x, y = numbered_clips(4, time=4)
    x += 5.0
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]],
                    bool)
    dataset = make_dataset(x, y, batch_size=3, shuffle=False, mask=mask,
                           augment=AddOne())
    got_x, _ = collect(dataset)
    frame_values = got_x[:, :, 0, 0, 0]
    expected = (x[:, :, 0, 0, 0] + 1.0) * mask
    np.testing.assert_array_equal(frame_values, expected)


def test_without_labels_and_time_last():
    x, _ = numbered_clips(5)
    dataset = make_dataset(np.moveaxis(x, 1, -1), batch_size=5,
                           shuffle=False, time_axis=-1)
    (batch,) = list(dataset)
    np.testing.assert_array_equal(batch, x)


def test_dataset_input_is_cached():
    calls = []

    def read(i):
        calls.append(int(i))
        return np.full((2, 32, 32, 3), float(i), "float32")

    def source():
        return tf.data.Dataset.range(6).map(
            lambda i: (tf.numpy_function(read, [i], tf.float32), i % 2)
        )

    cached = make_dataset(source(), batch_size=4, seed=0, cache=True)
    for _ in range(3):
        ids = sorted(collect(cached)[0][:, 0, 0, 0, 0].astype(int).tolist())
        assert ids == list(range(6))
    assert len(calls) == 6  # read once, then served from the cache
    calls.clear()
    uncached = make_dataset(source(), batch_size=4, cache=False)
    for _ in range(2):
        collect(uncached)
    assert len(calls) == 12


def test_fits_a_model():
    x, y = demo_clips(n=8, frames=2, task="appearance", num_classes=2)
    inputs = keras.Input((2, 32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling3D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    history = model.fit(
        make_dataset(x, y, batch_size=4, augment=FlipClips(), seed=0),
        epochs=2, verbose=0, shuffle=False,
    )
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"augment": lambda x: x}, "Keras layer"),
        ({"mask": np.ones((10, 2), bool)}, r"mask.*\(10, 3\)"),
        ({"y": np.arange(10) - 1}, r"index 0 \(-1\)"),
    ],
)
def test_bad_arguments(kwargs, match):
    x, y = numbered_clips(10)
    with pytest.raises(ValueError, match=match):
        make_dataset(x, **{"y": y, **kwargs})


def test_nan_clips_are_rejected():
    x, y = numbered_clips(10)
    x[7, 2, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"clip 7 \(NaN, first in frame 2\)"):
        make_dataset(x, y)


def test_dataset_input_with_labels_is_rejected():
    with pytest.raises(ValueError, match="y=None"):
        make_dataset(tf.data.Dataset.range(3), y=[0, 1, 0])


def test_split_balanced_keeps_every_class_on_both_sides():
    x, y = demo_clips(n=30, frames=2, task="motion", seed=0)  # 4 classes
    (x_train, y_train), (x_val, y_val) = split_balanced(x, y, 0.3, seed=0)
    assert set(y_train) == set(y_val) == {0, 1, 2, 3}
    assert len(x_train) + len(x_val) == 30
    assert len(x_train) == len(y_train) and len(x_val) == len(y_val)
    # Each class: round(0.3 * count) to validation.
    counts = np.bincount(y)
    np.testing.assert_array_equal(
        np.bincount(y_val), np.round(0.3 * counts).astype(int)
    )
    # Disjoint, and together all the clips, each with its own label.
    train_ids = {x_train[i].tobytes(): y_train[i] for i in range(len(x_train))}
    val_ids = {x_val[i].tobytes(): y_val[i] for i in range(len(x_val))}
    assert not set(train_ids) & set(val_ids)
    everything = {x[i].tobytes(): y[i] for i in range(30)}
    assert {**train_ids, **val_ids} == everything


def test_split_balanced_is_seeded_and_splits_a_mask():
    x, y = numbered_clips(12)
    mask = np.arange(12 * 3).reshape(12, 3) % 2 == 0
    a_train, a_val = split_balanced(x, y, 0.25, seed=3, mask=mask)
    b_train, b_val = split_balanced(x, y, 0.25, seed=3, mask=mask)
    c_train, _ = split_balanced(x, y, 0.25, seed=4, mask=mask)
    np.testing.assert_array_equal(a_train[0], b_train[0])
    assert not np.array_equal(a_train[0], c_train[0])
    ids = a_val[0][:, 0, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(a_val[2], mask[ids])
    np.testing.assert_array_equal(a_val[1], y[ids])


def test_split_balanced_small_classes_keep_one_each_side():
    x = np.zeros((5, 2, 32, 32, 3))
    y = np.array([0, 0, 1, 1, 1])
    for fraction in (0.01, 0.99):
        (_, y_train), (_, y_val) = split_balanced(x, y, fraction)
        assert set(y_train) == set(y_val) == {0, 1}


def test_split_balanced_errors():
    x = np.zeros((5, 2, 32, 32, 3))
    with pytest.raises(ValueError, match=r"class 2 \(1 clip\)"):
        split_balanced(x, np.array([0, 0, 1, 1, 2]))
    with pytest.raises(ValueError, match="validation_fraction"):
        split_balanced(x, np.array([0, 0, 1, 1, 1]), validation_fraction=1.0)
    with pytest.raises(ValueError, match="5 clips but 4 labels"):
        split_balanced(x, np.array([0, 0, 1, 1]))
