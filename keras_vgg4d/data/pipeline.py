"""The `tf.data` input pipeline, and a class-balanced validation split."""

from __future__ import annotations

import keras
import numpy as np

from keras_vgg4d.backend import LazyTensorFlow
from keras_vgg4d.data.arrays import load_arrays
from keras_vgg4d.data.groups import group_split
from keras_vgg4d.validation import check_integer
from keras_vgg4d.validation import validate_labels

tf = LazyTensorFlow("make_dataset (a tf.data pipeline)")


def make_dataset(
    x,
    y=None,
    batch_size: int = 8,
    augment: keras.layers.Layer | None = None,
    shuffle: bool = True,
    cache: bool | str = True,
    seed: int | None = None,
    mask=None,
    drop_remainder: bool = False,
    time_axis: int = 1,
    shuffle_buffer: int = 1024,
) -> tf.data.Dataset:
    """A batched, shuffled, augmented and prefetched `tf.data.Dataset`.

    The pipeline: slices of `x` (and `y`), cache, shuffle, batch, the
    augmentation layer mapped over whole batches with
    `num_parallel_calls=tf.data.AUTOTUNE` (fewer, larger calls scale better
    than one call a clip), then prefetch.

    Arrays are validated first, like `load_arrays` does: rank, NaN or
    infinity, labels that are not integers. A `tf.data.Dataset` of single
    clips, or of `(clip, label)` pairs, is taken as it is, e.g. one whose
    map reads clips from files; `cache` then keeps its elements after the
    first epoch.

    Args:
        x: Clips `(n, time, height, width, channels)` (or time last with
            `time_axis=-1`, or grayscale without a channel axis), or an
            unbatched `tf.data.Dataset`.
        y: Integer labels `(n,)`, or `None` for clips alone (e.g. to
            predict). Must be `None` when `x` is a dataset.
        batch_size: Clips a batch.
        augment: Optional Keras layer called as
            `augment(batch, training=True)` on `(batch, time, height, width,
            channels)` batches, such as `keras_vgg4d.ScipyAugment`; it must
            keep the shape and dtype.
        shuffle: Shuffle the clips, anew each epoch.
        cache: For a dataset `x`: `True` caches elements in memory after
            the first epoch, a string caches to that file, `False` does not
            cache. In-memory arrays need no cache and are never copied.
        seed: Seed of the shuffle.
        mask: Optional bool `(n, time)`, true for real frames, as
            `load_folder` returns it. Padded frames are set to zero after
            augmentation, so a model that reads padding from all-zero
            frames still finds it.
        drop_remainder: Drop the last batch if it is smaller.
        time_axis: `1` or `-1`, where time is in the array `x`.
        shuffle_buffer: Shuffle buffer of a dataset `x`; arrays are
            shuffled whole.

    Returns:
        A `tf.data.Dataset` of `(clips, labels)` batches, or of `clips`
        batches when `y` is `None`.

    Example:

    >>> from keras_vgg4d.data import demo_clips, make_dataset
    >>> x, y = demo_clips(n=10, frames=4, task="motion", seed=0)
    >>> dataset = make_dataset(x, y, batch_size=4, seed=0)
    >>> [tuple(clips.shape) for clips, labels in dataset]
    [(4, 4, 32, 32, 3), (4, 4, 32, 32, 3), (2, 4, 32, 32, 3)]
    """
    check_integer("make_dataset", "batch_size", batch_size, 1)
    if augment is not None and not isinstance(augment, keras.layers.Layer):
        raise ValueError(
            "`augment` must be a Keras layer called as "
            "`augment(clips, training=True)`, e.g. "
            f"`keras_vgg4d.ScipyAugment()`; received augment={augment!r}."
        )
    if isinstance(x, tf.data.Dataset):
        if y is not None or mask is not None:
            raise ValueError(
                "When `x` is a tf.data.Dataset, its elements carry the "
                "labels: pass y=None and mask=None, received "
                f"y={type(y).__name__}, mask={type(mask).__name__}."
            )
        dataset = x
        if cache:
            dataset = dataset.cache() if cache is True else dataset.cache(
                str(cache)
            )
        if shuffle:
            dataset = dataset.shuffle(
                shuffle_buffer, seed=seed, reshuffle_each_iteration=True
            )
        has_mask = False
    else:
        x, y = load_arrays(x, y, time_axis=time_axis)
        tensors = (x,) if y is None else (x, y)
        has_mask = mask is not None
        if has_mask:
            mask = np.asarray(mask)
            if mask.shape != x.shape[:2]:
                raise ValueError(
                    f"`mask` must have shape (n, time) = {x.shape[:2]}, one "
                    f"flag a frame; received shape {mask.shape}."
                )
            tensors = (*tensors, mask.astype(bool))
        dataset = tf.data.Dataset.from_tensor_slices(
            tensors if len(tensors) > 1 else tensors[0]
        )
        if shuffle:
            dataset = dataset.shuffle(
                len(x), seed=seed, reshuffle_each_iteration=True
            )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if augment is not None or has_mask:
        dataset = dataset.map(
            _BatchTransform(augment, has_mask),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


class _BatchTransform:
    """Augments a batch's clips and zeroes its padded frames."""

    def __init__(self, augment, has_mask):
        self.augment = augment
        self.has_mask = has_mask

    def __call__(self, clips, *rest):
        if self.has_mask:
            *rest, mask = rest
        if self.augment is not None:
            clips = self.augment(clips, training=True)
        if self.has_mask:
            weights = tf.cast(mask, clips.dtype)[:, :, None, None, None]
            clips = clips * weights
        return (clips, *rest) if rest else clips


def split_balanced(
    x,
    y,
    validation_fraction: float = 0.25,
    seed: int = 0,
    mask=None,
    groups=None,
):
    """Splits clips into training and validation, every class in both.

    Each class is split on its own: `round(validation_fraction * count)`
    of its clips, at least one and at most all but one, go to validation.
    With `groups`, whole groups go to one side instead (clips of one
    recording, actor or patient never train and validate at once), chosen
    by `group_split` so that each class comes close to that share and has
    clips on both sides where the groups allow. Each part keeps the
    original order of the clips.

    Args:
        x: Clips, any array with one entry a clip along axis 0.
        y: Integer labels `(n,)`; every class needs at least 2 clips.
        validation_fraction: Fraction of each class for validation, in
            `(0, 1)`.
        seed: Seed of the draw.
        mask: Optional `(n, time)` frame mask, split alike.
        groups: Optional group id of each clip, `(n,)` (strings or
            integers); a class needs clips in at least 2 groups.

    Returns:
        `((x_train, y_train), (x_val, y_val))`, or with a mask
        `((x_train, y_train, mask_train), (x_val, y_val, mask_val))`.

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d.data import demo_clips, split_balanced
    >>> x, y = demo_clips(n=12, frames=2, task="appearance", seed=0)
    >>> (x_train, y_train), (x_val, y_val) = split_balanced(x, y, 0.25)
    >>> np.bincount(y_train).tolist(), np.bincount(y_val).tolist()
    ([3, 3, 3], [1, 1, 1])
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            "`validation_fraction` must lie in (0, 1); received "
            f"validation_fraction={validation_fraction!r}."
        )
    x = np.asarray(x)
    labels = validate_labels(y, len(x))
    classes, counts = np.unique(labels, return_counts=True)
    too_few = [
        f"class {c} ({n} clip)" for c, n in zip(classes, counts) if n < 2
    ]
    if too_few:
        raise ValueError(
            "split_balanced needs at least 2 clips of every class to put "
            f"one in each part; {', '.join(too_few)} has fewer."
        )
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (len(x),):
            raise ValueError(
                f"`groups` must hold one group id a clip, shape ({len(x)},); "
                f"received shape {groups.shape}."
            )
        is_validation = group_split(labels, groups, validation_fraction, seed)
    else:
        is_validation = _split_each_class(
            labels, classes, counts, validation_fraction, seed
        )
    arrays = [x, labels] + ([] if mask is None else [np.asarray(mask)])
    train = tuple(a[~is_validation] for a in arrays)
    val = tuple(a[is_validation] for a in arrays)
    return train, val


def _split_each_class(labels, classes, counts, validation_fraction, seed):
    """Validation flags: a random `validation_fraction` of each class."""
    rng = np.random.default_rng(seed)
    validation = []
    for c, count in zip(classes, counts):
        members = rng.permutation(np.flatnonzero(labels == c))
        take = int(np.clip(round(validation_fraction * count), 1, count - 1))
        validation.append(members[:take])
    is_validation = np.zeros(len(labels), bool)
    is_validation[np.concatenate(validation)] = True
    return is_validation
