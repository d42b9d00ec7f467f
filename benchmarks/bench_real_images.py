"""Heads against a linear probe, on clips made of real scanned digits.

Clips are made from scikit-learn's `load_digits` (1,797 real 8x8 scans of
handwritten digits, shipped with scikit-learn: no download), upsampled to
32x32 and made RGB, each scan jittered (shift, brightness, background,
noise; `--jitters` versions of each scan, 2 by default). Two tasks:

- `appearance` (5 classes, digits 0-4): a clip is 4-6 frames, each a
  different scan of the clip's digit (`--appearance-clips same-scan`:
  jitters of one scan). One frame tells the class.
- `order` (2 classes): a clip is 4-6 scans of distinct digits drawn from
  0-9, shown in rising or in falling order. Which digits a clip holds says
  nothing about its class; only their order does.

Scans are split into training and validation scans first, so validation
clips show only scans never trained on. The backbone is a frozen random
VGG19 (`weights=None`, seeded); every scan's features are computed once
with `VGG4DClassifier.feature_extractor`, and a clip's features are its
frames' features stacked (the backbone reads frames one by one, so these
are the features of the whole clip: checked on a few clips). Padded frames
get the features of an all-zero frame and are masked, as in a real clip.

For each seed (the scan split, the clips, the head's initial weights and
the batches), the script measures:

1. linear probes: scikit-learn's `LogisticRegression` on standardized
   features, C chosen by 5-fold cross-validation on the training clips,
   (a) on each clip's frame features averaged over its real frames, and
   (b) on single frames, the clip's answer the mean of its frames'
   probabilities;
2. each head (`framewise`, `conv3d`, `lstm`) trained through
   `VGG4DClassifier.head_model()` on the cached features, Adam 1e-3,
   batch 16, for a fixed number of epochs (the CLI's 15), and with
   `EarlyStopping(monitor="val_loss", patience=3,
   restore_best_weights=True)` within those epochs. Both come from one
   run: the weights of every epoch are kept, and the early-stopping result
   is read off the validation losses exactly as Keras' callback decides
   it (stop after `patience` epochs without a lower loss, restore the
   epoch with the lowest). Training accuracy is that of the final weights
   on the training clips, in inference mode.

The heads run with Adam at `--learning-rate` (1e-3, what the search and
the examples used before) and with `VGG4DClassifier.compile()`'s defaults
(`--candidate` adds the options given on the command line). Unless
`--no-demo` is given, they also train on the demo `"order"` and
`"appearance"` clips of the default `vgg4d-tune` run. Targets: on
`appearance`, every head within 0.05 of the mean-pooled probe; on
`order`, `conv3d` within 0.1 of `lstm`; the `compile()` defaults no worse
than Adam 1e-3.

The second protocol (`--protocol small`) is the regime of cine MRI and
ultrasound users: a few hundred one-channel clips whose frames are mostly
background, the digit small (16x16) at a random place, heads trained with
the `compile()` defaults for 12 epochs, 3 seeds. Targets: framewise within
0.05 of the probe on appearance; conv3d within 0.1 of lstm on order.

`--conv3d-variants` weighs the Conv3D head's kernels (3x3 spatial, chosen
from the map's size, (2+1)D) against lstm on the order task, at `--size`
pixels (block 5 is 1x1 at 32, 3x3 at 112).

    python benchmarks/bench_real_images.py
    python benchmarks/bench_real_images.py --protocol small
    python benchmarks/bench_real_images.py --conv3d-variants --size 112
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from keras_vgg4d import VGG4DClassifier  # noqa: E402
from keras_vgg4d.data import demo_clips  # noqa: E402
from keras_vgg4d.data import split_balanced  # noqa: E402
from _timing import machine  # noqa: E402

HEADS = ("framewise", "conv3d", "lstm")
TASKS = ("appearance", "order")
SIZE = 32
MAX_FRAMES = 6


# --------------------------------------------------------------------------
# Data: jittered scans, and clips as indices into them.


def digit_frames(jitters: int, seed: int, size: int = SIZE):
    """`jitters` jittered 32x32 RGB frames (0..255) of every digit scan.

    Returns `(frames (1797 * jitters, 32, 32, 3) float32, digits (1797,))`;
    frame `scan * jitters + j` is jitter `j` of scan `scan`. Jitter: a
    shift of up to 2 pixels each way, a rotation of up to 10 degrees,
    brightness 0.7-1.0, a background level of 0-40 and pixel noise
    (sigma 8). No frame is all zero (zero frames mean padding).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    scans = digits.images.astype("float32") * (255.0 / 16.0)
    # 8x8 -> 32x32, bilinear.
    scans = np.clip(ndimage.zoom(scans, (1, size / 8, size / 8), order=1),
                    0.0, 255.0)
    frames = np.repeat(scans, jitters, axis=0)
    for i in range(len(frames)):
        angle = rng.uniform(-10.0, 10.0)
        frame = ndimage.rotate(frames[i], angle, reshape=False, order=1)
        frames[i] = ndimage.shift(frame, rng.integers(-2, 3, 2), order=0)
    n = len(frames)
    background = rng.uniform(0.0, 40.0, (n, 1, 1))
    brightness = rng.uniform(0.7, 1.0, (n, 1, 1))
    frames = background + (255.0 - background) * brightness * frames / 255.0
    frames = frames + rng.normal(0.0, 8.0, frames.shape)
    frames = np.clip(frames, 1.0, 255.0).astype("float32")
    return np.repeat(frames[..., None], 3, axis=-1), digits.target.astype(int)


def small_object_frames(jitters: int, seed: int, object_size: int = 12):
    """`jitters` one-channel 32x32 frames of every scan, the digit small.

    The second protocol's frames, as in cine MRI or ultrasound where the
    finding is a small part of the field: each frame is mostly background
    (a level of 0-40 and pixel noise of sigma 8), with the scan, upsampled
    to `object_size` pixels square (0..255, brightness 0.7-1.0), at a
    random place. Returns
    `(frames (1797 * jitters, 32, 32, 1) float32, digits (1797,))`, laid
    out as `digit_frames`'.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    scans = np.clip(ndimage.zoom(digits.images.astype("float32") / 16.0,
                                 (1, object_size / 8, object_size / 8),
                                 order=1), 0.0, 1.0)
    scans = np.repeat(scans, jitters, axis=0)
    n = len(scans)
    background = rng.uniform(0.0, 40.0, (n, 1, 1))
    frames = np.broadcast_to(background, (n, SIZE, SIZE)).copy()
    brightness = rng.uniform(0.7, 1.0, n)
    places = rng.integers(0, SIZE - object_size + 1, (n, 2))
    for i, (row, col) in enumerate(places):
        patch = frames[i, row:row + object_size, col:col + object_size]
        patch += (255.0 - patch) * brightness[i] * scans[i]
    frames = frames + rng.normal(0.0, 8.0, frames.shape)
    frames = np.clip(frames, 1.0, 255.0).astype("float32")
    return frames[..., None], digits.target.astype(int)


def split_scans(digits, rng, validation_fraction):
    """Scan indices per digit, `(train, val)`, each a dict digit -> array."""
    train, val = {}, {}
    for digit in np.unique(digits):
        scans = rng.permutation(np.flatnonzero(digits == digit))
        cut = int(round(validation_fraction * len(scans)))
        val[digit], train[digit] = scans[:cut], scans[cut:]
    return train, val


def appearance_clips(pool, n, rng, jitters, same_scan, num_classes=5):
    """`n` clips of digits `0..num_classes-1`, as frame indices (-1: pad).

    With `same_scan`, a clip shows one scan, each frame another of its
    jitters (as few repeats as `jitters` allows); otherwise each frame is
    another scan of the digit.
    """
    labels = rng.permutation(np.arange(n) % num_classes)
    index = np.full((n, MAX_FRAMES), -1)
    for i, label in enumerate(labels):
        length = rng.integers(4, MAX_FRAMES + 1)
        if same_scan:
            scans = np.full(length, rng.choice(pool[label]))
            jitter = np.resize(rng.permutation(jitters), length)
        else:
            scans = rng.choice(pool[label], length, replace=False)
            jitter = rng.integers(jitters, size=length)
        index[i, :length] = scans * jitters + jitter
    return index, labels


def order_clips(pool, n, rng, jitters):
    """`n` clips of distinct digits in rising (0) or falling (1) order."""
    labels = rng.permutation(np.arange(n) % 2)
    index = np.full((n, MAX_FRAMES), -1)
    for i, label in enumerate(labels):
        length = rng.integers(4, MAX_FRAMES + 1)
        shown = np.sort(rng.choice(len(pool), length, replace=False))
        if label == 1:
            shown = shown[::-1]
        scans = np.array([rng.choice(pool[digit]) for digit in shown])
        index[i, :length] = scans * jitters + rng.integers(jitters, size=length)
    return index, labels


def make_clips(task, digits, seed, args):
    """Training and validation clips of `task` for one seed, as indices."""
    rng = np.random.default_rng(1000 + seed)
    train_pool, val_pool = split_scans(digits, rng, args.validation_fraction)
    if task == "order":  # the digits the order is shown with
        shown = range(getattr(args, "order_digits", 10))
        train_pool = {d: train_pool[d] for d in shown}
        val_pool = {d: val_pool[d] for d in shown}
    if task == "appearance":
        def draw(pool, n):
            return appearance_clips(pool, n, rng, args.jitters,
                                    args.appearance_clips == "same-scan")
    else:
        def draw(pool, n):
            return order_clips(pool, n, rng, args.jitters)
    return draw(train_pool, args.train_clips), draw(val_pool, args.val_clips)


# --------------------------------------------------------------------------
# Features.


def feature_bank(model, frames, batch_size):
    """Backbone features of every frame, and of an all-zero (padding) one.

    Returns `(len(frames) + 1, h, w, 512)`: the last row is padding's.
    """
    extractor = model.feature_extractor((1, *frames.shape[1:]))
    clips = np.concatenate([frames, np.zeros_like(frames[:1])])[:, None]
    features, _ = extractor.predict(clips, batch_size=batch_size, verbose=0)
    return features[:, 0]


def clip_features(bank, index):
    """`(features (n, T, h, w, c), mask (n, T))` of clips of scan indices."""
    return bank[index], index >= 0  # index -1 reads the padding row


def check_stacking(model, frames, bank, index):
    """Max |stacked frame features - feature_extractor on whole clips|."""
    clips = np.where(
        (index >= 0)[..., None, None, None], frames[index], 0.0
    ).astype("float32")
    extractor = model.feature_extractor(clips.shape[1:])
    features, mask = extractor.predict(clips, verbose=0)
    stacked, stacked_mask = clip_features(bank, index)
    assert np.array_equal(mask, stacked_mask), "masks differ"
    return float(np.max(np.abs(features - stacked)[mask]))


# --------------------------------------------------------------------------
# Linear probes.


def probe(x_train, y_train, x_val, y_val, groups=None, clips_val=None):
    """Train and validation accuracy of a cross-validated logistic regression.

    `x` is `(n, features)`. With `groups` (the clip of each training row),
    the folds keep a clip's rows together; with `clips_val` (the clip of
    each validation row), validation accuracy is per clip, from the mean of
    its rows' probabilities.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.model_selection import GroupKFold
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    pipeline = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000)
    )
    cv = GroupKFold(5) if groups is not None else StratifiedKFold(
        5, shuffle=True, random_state=0
    )
    search = GridSearchCV(
        pipeline, {"logisticregression__C": np.logspace(-4, 1, 6)}, cv=cv,
        n_jobs=1,
    )
    # One BLAS thread: on a shared 2-core machine OpenBLAS' threads, next
    # to TensorFlow's, make these small fits some 50x slower.
    with threadpool_limits(limits=1):
        search.fit(x_train, y_train, groups=groups)
    with threadpool_limits(limits=1):
        train = search.score(x_train, y_train)
        if clips_val is None:
            return train, search.score(x_val, y_val), search.best_params_
        probabilities = search.predict_proba(x_val)
    n = clips_val.max() + 1
    summed = np.zeros((n, probabilities.shape[1]))
    np.add.at(summed, clips_val, probabilities)
    labels = np.zeros(n, int)
    labels[clips_val] = y_val
    val = float(np.mean(summed.argmax(1) == labels))
    return train, val, search.best_params_


def pooled(features, mask):
    """Frame features averaged over space and over the real frames."""
    vectors = features.mean(axis=(2, 3))
    weights = mask[..., None].astype("float32")
    return (vectors * weights).sum(1) / weights.sum(1)


def probes(train, val):
    """`{"probe mean": (train, val), "probe frames": (train, val)}`."""
    (f_train, m_train, y_train), (f_val, m_val, y_val) = train, val
    results = {}
    t, v, _ = probe(pooled(f_train, m_train), y_train,
                    pooled(f_val, m_val), y_val)
    results["probe, mean of frames"] = (t, v)

    def rows(features, mask, labels):
        clip = np.broadcast_to(np.arange(len(mask))[:, None], mask.shape)
        vectors = features.mean(axis=(2, 3))
        return (vectors[mask], np.broadcast_to(labels[:, None], mask.shape)[mask],
                clip[mask])

    x_t, y_t, g_t = rows(f_train, m_train, y_train)
    x_v, y_v, g_v = rows(f_val, m_val, y_val)
    t, v, _ = probe(x_t, y_t, x_v, y_v, groups=g_t, clips_val=g_v)
    results["probe, per frame"] = (t, v)
    return results


# --------------------------------------------------------------------------
# Heads.


def candidate(args) -> dict:
    """The settings given on the command line, as a settings dict."""
    return {
        "dropout": args.dropout,
        "l2": args.l2,
        "weight_decay": args.weight_decay,
        "label_smoothing": args.label_smoothing,
        "head_options": {
            "framewise": {"units": args.framewise_units},
            "conv3d": {"filters": args.conv3d_filters,
                       "pooling": args.conv3d_pooling},
            "lstm": {"units": args.lstm_units},
        },
    }


CURRENT = {"dropout": 0.0, "l2": 0.0, "weight_decay": 0.0,
           "label_smoothing": 0.0,
           "head_options": {"framewise": {}, "conv3d": {}, "lstm": {}}}
# `VGG4DClassifier.compile()` with no arguments: each head's default rate.
COMPILE_DEFAULTS = {**CURRENT, "compile_defaults": True}
# Conv3D heads weighed against each other on the order task: today's 3x3
# spatial kernel, the kernel chosen from the map's size, and (2+1)D.
CONV3D_VARIANTS = {
    "spatial 3": {**COMPILE_DEFAULTS, "head_options": {
        "conv3d": {"spatial_kernel": 3}, "lstm": {}}},
    "auto": COMPILE_DEFAULTS,
    "(2+1)D": {**COMPILE_DEFAULTS, "head_options": {
        "conv3d": {"factorized": True}, "lstm": {}}},
}


def add_l2(head, l2):
    """Puts an L2 penalty of `l2` on the head's kernels, before it is built.

    A stand-in for a head argument the package does not have yet: the
    classifier's, hidden layer's, Conv3D's and LSTM's input kernels.
    """
    regularizer = keras.regularizers.L2(l2)
    layers = [head.classifier]
    layers += [getattr(head, "hidden", None)] + list(getattr(head, "convs", []))
    for layer in getattr(head, "recurrent", []):
        inner = getattr(layer, "forward_layer", None)
        layers += [layer.cell] if inner is None else [
            layer.forward_layer.cell, layer.backward_layer.cell]
    for layer in layers:
        if layer is not None:
            layer.kernel_regularizer = regularizer


class KeepWeights(keras.callbacks.Callback):
    """Keeps the model's weights at the end of every epoch."""

    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def early_stopping_epoch(val_losses, patience):
    """The epoch `EarlyStopping(patience, restore_best_weights=True)` keeps.

    Keras 3's rule: after each epoch `wait += 1`; a lower loss than the best
    resets `wait` and becomes the best; `wait >= patience` (after the first
    epoch) stops training; at the end the best epoch's weights are restored.
    Returns `(best_epoch, epochs_run)`.
    """
    best, best_epoch, wait = np.inf, 0, 0
    for epoch, loss in enumerate(val_losses):
        wait += 1
        if loss < best:
            best, best_epoch, wait = loss, epoch, 0
            continue
        if wait >= patience and epoch > 0:
            return best_epoch, epoch + 1
    return best_epoch, len(val_losses)


def train_head(name, settings, train, val, num_classes, seed, args):
    """Train and validation accuracy of head `name`: fixed epochs and ES.

    Returns `{"fixed": (train_acc, val_acc), "early stop": (train_acc,
    val_acc, epochs_run)}`.
    """
    keras.utils.set_random_seed(seed)
    model = VGG4DClassifier(
        num_classes, temporal_head=name, weights=None,
        dropout=settings["dropout"],
        head_options=settings["head_options"][name],
    )
    if settings["l2"]:
        add_l2(model.head, settings["l2"])
    if settings.get("bn_epsilon") and model.head.normalization is not None:
        model.head.normalization.epsilon = settings["bn_epsilon"]
    model.build((None, MAX_FRAMES, *args.frame_shape))
    head = model.head_model()
    if settings.get("compile_defaults"):
        # What `model.compile()` picks, on the head it trains (the backbone
        # is frozen: `model.fit` on clips trains exactly this).
        model.compile()
        head.compile(optimizer=model.optimizer, loss=model.loss,
                     metrics=["accuracy"])
        encode = lambda y: y  # noqa
    elif settings["weight_decay"]:
        optimizer = keras.optimizers.AdamW(
            args.learning_rate, weight_decay=settings["weight_decay"]
        )
    else:
        optimizer = keras.optimizers.Adam(args.learning_rate)
    if not settings.get("compile_defaults"):
        smoothing = settings["label_smoothing"]
        if smoothing:
            loss = keras.losses.CategoricalCrossentropy(
                label_smoothing=smoothing)
            metric = keras.metrics.CategoricalAccuracy(name="accuracy")
            encode = lambda y: keras.utils.to_categorical(  # noqa
                y, num_classes)
        else:
            loss = keras.losses.SparseCategoricalCrossentropy()
            metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
            encode = lambda y: y  # noqa
        head.compile(optimizer=optimizer, loss=loss, metrics=[metric])
    (f_train, m_train, y_train), (f_val, m_val, y_val) = train, val
    keep = KeepWeights()
    history = head.fit(
        [f_train, m_train], encode(y_train),
        validation_data=([f_val, m_val], encode(y_val)),
        epochs=args.epochs, batch_size=args.batch_size, verbose=0,
        callbacks=[keep],
    )

    def accuracy(features, mask, labels):
        predicted = head.predict([features, mask], batch_size=256, verbose=0)
        return float(np.mean(predicted.argmax(-1) == labels))

    results = {"fixed": (accuracy(f_train, m_train, y_train),
                         history.history["val_accuracy"][-1])}
    best, epochs_run = early_stopping_epoch(
        history.history["val_loss"], args.patience
    )
    head.set_weights(keep.weights[best])
    results["early stop"] = (accuracy(f_train, m_train, y_train),
                             accuracy(f_val, m_val, y_val), epochs_run)
    return results


# --------------------------------------------------------------------------
# Report.


def spread(values):
    values = np.asarray(values, float)
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {(values.max() - values.min()) / 2:.3f}"


def print_table(title, rows):
    """`rows`: list of (label, [train values], [val values], note)."""
    print(f"\n{title}")
    print(f"{'model':<56}{'train acc':>16}{'val acc':>16}  notes")
    for label, train, val, note in rows:
        print(f"{label:<56}{spread(train):>16}{spread(val):>16}  {note}")


def run_task(task, bank, digits, settings_by_name, args):
    """Probe and heads on one digits task over the seeds; returns the rows."""
    num_classes = 5 if task == "appearance" else 2
    collected = {}

    def add(label, train_acc, val_acc, note=""):
        entry = collected.setdefault(label, ([], [], []))
        entry[0].append(train_acc)
        entry[1].append(val_acc)
        if note:
            entry[2].append(note)

    for seed in range(args.seeds):
        (i_train, y_train), (i_val, y_val) = make_clips(
            task, digits, seed, args
        )
        train = (*clip_features(bank, i_train), y_train)
        val = (*clip_features(bank, i_val), y_val)
        if getattr(args, "probes", True):
            for label, (t, v) in probes(train, val).items():
                add(label, t, v)
        for settings_name, settings in settings_by_name.items():
            for name in getattr(args, "heads", HEADS):
                start = time.perf_counter()
                result = train_head(name, settings, train, val, num_classes,
                                    seed, args)
                add(f"{name}, {settings_name}, {args.epochs} epochs",
                    *result["fixed"])
                t, v, epochs = result["early stop"]
                add(f"{name}, {settings_name}, early stop", t, v,
                    str(epochs))
                print(f"  ({task}, seed {seed}, {name}, {settings_name}: "
                      f"{time.perf_counter() - start:.1f} s)", flush=True)
    rows = []
    for label, (train, val, notes) in collected.items():
        note = f"epochs run: {','.join(notes)}" if notes else ""
        rows.append((label, train, val, note))
    return rows


def run_demo(model, settings_by_name, args):
    """Each head on the default `vgg4d-tune` demo clips; returns the rows."""
    rows = []
    for task in ("order", "appearance"):
        x, y = demo_clips(n=192, frames=6, size=SIZE, task=task,
                          seed=args.seed)
        (x_train, y_train), (x_val, y_val) = split_balanced(
            x, y, validation_fraction=0.25, seed=args.seed
        )
        extractor = model.feature_extractor(x.shape[1:])
        train = (*extractor.predict(x_train, verbose=0), y_train)
        val = (*extractor.predict(x_val, verbose=0), y_val)
        num_classes = int(y.max()) + 1
        for settings_name, settings in settings_by_name.items():
            for name in HEADS:
                result = train_head(name, settings, train, val, num_classes,
                                    args.seed, args)
                t, v = result["fixed"]
                te, ve, epochs = result["early stop"]
                label = f"demo {task}, {name}, {settings_name}"
                rows.append((f"{label}, {args.epochs} epochs", [t], [v], ""))
                rows.append((f"{label}, early stop", [te], [ve],
                             f"epochs run: {epochs}"))
    return rows


def mean_val(rows, label):
    """The mean validation accuracy of the row labelled `label`."""
    return float(np.mean(next(val for name, _, val, _ in rows if name == label)))


def check(name, value, bound, met):
    print(f"target: {name}: {value:.3f} against {bound:.3f}: "
          f"{'met' if met else 'MISSED'}")


def run_small_protocol(args):
    """The second protocol: few small one-channel clips, `compile()` defaults.

    A few hundred clips (160 training, 80 validation) of 4-6 one-channel
    32x32 frames that are mostly background, the digit small and at a
    random place (`small_object_frames`); heads trained as
    `model.compile(); model.fit(clips, labels, epochs=12, batch_size=16)`
    trains them (on the frozen backbone's features), against Adam at 1e-3,
    the rate the search and the examples used before. Appearance is digits
    0-4; order shows 4-6 distinct digits of 0-5, rising or falling.
    """
    frames, digits = small_object_frames(args.jitters, args.seed,
                                         args.object_size)
    model = VGG4DClassifier(2, weights=None)
    model.build((None, MAX_FRAMES, SIZE, SIZE, 1))
    bank = feature_bank(model, frames, batch_size=64)
    small = argparse.Namespace(**{
        **vars(args), "train_clips": 160, "val_clips": 80, "epochs": 12,
        "frame_shape": (SIZE, SIZE, 1), "order_digits": 6,
    })
    settings = {"Adam 1e-3": CURRENT, "compile()": COMPILE_DEFAULTS}
    results = {}
    for task in args.tasks:
        rows = run_task(task, bank, digits, settings, small)
        print_table(
            f"small data, {task}: 160 train / 80 val one-channel clips of "
            f"4-6 frames, digit {args.object_size}x{args.object_size} at a "
            f"random place, {args.seeds} seed(s), mean ± half range", rows)
        results[task] = rows
    if "appearance" in results:
        rows = results["appearance"]
        probe_acc = mean_val(rows, "probe, mean of frames")
        framewise = mean_val(rows, "framewise, compile(), 12 epochs")
        check("small data, appearance: framewise >= probe - 0.05",
              framewise, probe_acc - 0.05, framewise >= probe_acc - 0.05)
    if "order" in results:
        rows = results["order"]
        conv3d = mean_val(rows, "conv3d, compile(), 12 epochs")
        lstm = mean_val(rows, "lstm, compile(), 12 epochs")
        check("small data, order: conv3d >= lstm - 0.1", conv3d,
              lstm - 0.1, conv3d >= lstm - 0.1)


def run_conv3d_variants(args):
    """Conv3D heads (`CONV3D_VARIANTS`) against lstm on the order task."""
    frames, digits = digit_frames(args.jitters, args.seed, args.size)
    model = VGG4DClassifier(2, weights=None)
    model.build((None, MAX_FRAMES, args.size, args.size, 3))
    bank = feature_bank(model, frames, batch_size=32)
    variants = argparse.Namespace(**{
        **vars(args), "heads": ("conv3d",), "probes": False,
        "frame_shape": (args.size, args.size, 3)})
    rows = run_task("order", bank, digits, CONV3D_VARIANTS, variants)
    lstm = argparse.Namespace(**{**vars(variants), "heads": ("lstm",)})
    rows += run_task("order", bank, digits, {"auto": COMPILE_DEFAULTS}, lstm)
    print_table(
        f"conv3d variants, order, {args.size}x{args.size} frames (block 5 "
        f"{bank.shape[1]}x{bank.shape[2]}), {args.train_clips} train / "
        f"{args.val_clips} val clips, {args.seeds} seed(s)", rows)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--protocol", choices=("large", "small", "both"),
                        default="both",
                        help="large: 500/250 RGB clips of whole-frame digits; "
                        "small: 160/80 one-channel clips of small digits, "
                        "compile() defaults, 12 epochs")
    parser.add_argument("--conv3d-variants", action="store_true",
                        help="only weigh the Conv3D head's kernels on the "
                        "order task, at --size pixels")
    parser.add_argument("--size", type=int, default=SIZE,
                        help="frame size of --conv3d-variants")
    parser.add_argument("--object-size", type=int, default=16,
                        help="the small protocol's digit size in pixels")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the backbone and the jitter")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=TASKS)
    parser.add_argument("--train-clips", type=int, default=500)
    parser.add_argument("--val-clips", type=int, default=250)
    parser.add_argument("--validation-fraction", type=float, default=0.4,
                        help="share of each digit's scans kept for validation")
    parser.add_argument("--jitters", type=int, default=2,
                        help="jittered versions of each scan")
    parser.add_argument("--appearance-clips", default="distinct-scans",
                        choices=("distinct-scans", "same-scan"),
                        help="appearance clips: another scan of the digit "
                        "per frame, or jitters of one scan")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=3)
    candidates = parser.add_argument_group("candidate defaults")
    candidates.add_argument("--candidate", action="store_true",
                            help="also train with the options below")
    candidates.add_argument("--dropout", type=float, default=0.0)
    candidates.add_argument("--l2", type=float, default=0.0)
    candidates.add_argument("--weight-decay", type=float, default=0.0)
    candidates.add_argument("--label-smoothing", type=float, default=0.0)
    candidates.add_argument("--framewise-units", type=int, default=0)
    candidates.add_argument("--conv3d-filters", type=int, default=64)
    candidates.add_argument("--conv3d-pooling", choices=("avg", "max"),
                            default="avg")
    candidates.add_argument("--lstm-units", type=int, default=64)
    parser.add_argument("--no-demo", action="store_true",
                        help="skip the demo tasks")
    args = parser.parse_args()
    args.frame_shape = (SIZE, SIZE, 3)

    print(machine())
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    if args.conv3d_variants:
        run_conv3d_variants(args)
        print(f"\ntotal: {time.perf_counter() - start:.0f} s; {machine()}")
        return
    if args.protocol in ("small", "both"):
        run_small_protocol(args)
    if args.protocol in ("large", "both"):
        run_large_protocol(args, start)
    print(f"\ntotal: {time.perf_counter() - start:.0f} s; {machine()}")


def run_large_protocol(args, start):
    """The first protocol: 500/250 RGB clips of whole-frame digits, and the
    demo clips; Adam at `--learning-rate` against the `compile()` defaults
    (and `--candidate` options)."""
    frames, digits = digit_frames(args.jitters, args.seed)
    model = VGG4DClassifier(2, weights=None)
    model.build((None, MAX_FRAMES, SIZE, SIZE, 3))
    bank = feature_bank(model, frames, batch_size=64)
    (index, _), _ = make_clips("order", digits, 0, args)
    difference = check_stacking(model, frames, bank, index[:8])
    print(f"features of {len(frames)} scans: "
          f"{time.perf_counter() - start:.1f} s; stacked frame features vs "
          f"whole clips: max |difference| {difference:.1e}", flush=True)

    settings_by_name = {f"Adam {args.learning_rate:g}": CURRENT,
                        "compile()": COMPILE_DEFAULTS}
    if args.candidate:
        settings_by_name["candidate"] = candidate(args)
        print(f"candidate: {settings_by_name['candidate']}")
    for task in args.tasks:
        rows = run_task(task, bank, digits, settings_by_name, args)
        print_table(
            f"{task}: {args.train_clips} train / {args.val_clips} val clips "
            f"of 4-6 frames, {args.seeds} seed(s), mean ± half range", rows
        )
        for name in HEADS:
            before = mean_val(rows, f"{name}, Adam {args.learning_rate:g}, "
                              f"{args.epochs} epochs")
            after = mean_val(rows, f"{name}, compile(), {args.epochs} epochs")
            check(f"{task}, {name}: compile() no worse than Adam "
                  f"{args.learning_rate:g} (within 0.01)", after,
                  before - 0.01, after >= before - 0.01)
    if not args.no_demo:
        rows = run_demo(model, settings_by_name, args)
        print_table(
            "demo clips (192 of 6 frames of 32x32, 25% validation), "
            f"seed {args.seed}: {args.epochs} epochs, early stop", rows
        )


if __name__ == "__main__":
    main()
