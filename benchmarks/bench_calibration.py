"""Temperature scaling on trained heads: ECE before and after, held out.

Each head (`framewise`, `conv3d`, `lstm`) is trained briefly on a frozen
random VGG19's features (`weights=None`, seeded), as `vgg4d-tune` and
`bench_real_images.py` train them: `VGG4DClassifier.compile()`'s defaults,
15 epochs, batch 16, on the cached features through `head_model()`. Its
answers on the validation clips are then calibrated with
`keras_vgg4d.calibration`:

- the validation clips are split at random into two halves; each half is
  calibrated with the temperature fitted on the other (`cross_fitted_ece`),
  and the two halves' expected calibration errors (15 equal-width bins)
  are averaged, before and after; this is repeated over `--splits` random
  halvings and averaged again. Target: ECE after <= half the ECE before,
  judged on the heads that get some validation clips wrong (with none
  wrong, the fit only sharpens every answer towards certainty).
- the same for the negative log-likelihood (NLL), and the `floor`: the ECE
  that answers exactly as confident as the calibrated ones would show on
  a half through sampling alone (labels drawn from those answers). ECE
  reads high on few clips; "after" cannot go below the floor.
- the temperature fitted on all validation clips is printed too, and on
  the demo task `calibrate()` runs on each whole classifier (backbone
  included) to check that it fits the temperature measured here.

Tasks:

(a) the demo clips of the default `vgg4d-tune` run (`--data demo --task
    order --num-clips 192 --frames 6 --image-size 32 --validation-fraction
    0.25 --seed 0`): 144 training and 48 validation clips;
(b) clips of real scanned digits (`bench_real_images.py`: scikit-learn's
    `load_digits`, upsampled to 32x32, 2 jitters a scan, validation clips
    show only scans never trained on), 500 training clips of 4-6 frames,
    as there, and 1,000 validation clips (there 250: the floor of an ECE
    over 125 clips is about as large as the errors measured), tasks
    `appearance` (5 digits) and `order` (rising or falling).

    python benchmarks/bench_calibration.py
    python benchmarks/bench_calibration.py --quick   # a smoke run
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_vgg4d import VGG4DClassifier  # noqa: E402
from keras_vgg4d.calibration import apply_temperature  # noqa: E402
from keras_vgg4d.calibration import calibrate  # noqa: E402
from keras_vgg4d.calibration import cross_fitted_ece  # noqa: E402
from keras_vgg4d.calibration import expected_calibration_error  # noqa: E402
from keras_vgg4d.calibration import fit_temperature  # noqa: E402
from keras_vgg4d.data import demo_clips  # noqa: E402
from keras_vgg4d.data import split_balanced  # noqa: E402
from _timing import machine  # noqa: E402
from bench_real_images import MAX_FRAMES  # noqa: E402
from bench_real_images import clip_features  # noqa: E402
from bench_real_images import digit_frames  # noqa: E402
from bench_real_images import feature_bank  # noqa: E402
from bench_real_images import make_clips  # noqa: E402

HEADS = ("framewise", "conv3d", "lstm")
SIZE = 32
# The default `vgg4d-tune` run's data and training.
DEMO = {"task": "order", "n": 192, "frames": 6, "validation_fraction": 0.25,
        "seed": 0}


def train_head(name, train, val, num_classes, backbone, clip_shape, args):
    """Trains head `name` on cached features; `(model, validation answers)`.

    `model` is the whole classifier (its head trained, temperature 1), with
    the backbone of `backbone`, which computed the features.
    """
    keras.utils.set_random_seed(args.seed)
    model = VGG4DClassifier(num_classes, temporal_head=name, weights=None)
    model.build((None, *clip_shape))
    model.backbone.set_weights(backbone.backbone.get_weights())
    head = model.head_model()
    model.compile()  # the defaults, on the head they train
    head.compile(optimizer=model.optimizer, loss=model.loss,
                 metrics=["accuracy"])
    (f_train, m_train, y_train), (f_val, m_val, _) = train, val
    head.fit([f_train, m_train], y_train, epochs=args.epochs,
             batch_size=args.batch_size, verbose=0)
    return model, head.predict([f_val, m_val], batch_size=256, verbose=0)


def nll(probabilities, labels):
    """Mean negative log-likelihood of the labels."""
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(picked, 1e-38))))


def measure(probabilities, labels, splits):
    """The figures of one head's validation answers.

    For each of `splits` random halvings and both ways round (what
    `cross_fitted_ece` does): the temperature fitted on one half, the other
    half's ECE and NLL before and after, and the ECE that answers exactly
    as confident as the calibrated ones would show on that many clips
    through sampling alone (labels drawn from the calibrated answers):
    the floor the measured "after" cannot go below.
    """
    p, y = probabilities, labels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        temperature = fit_temperature(p, y)
    at_bound = any("end of the range" in str(w.message) for w in caught)
    figures, halves_at_bound = [], 0
    rng = np.random.default_rng(0)
    for seed in range(splits):
        order = np.random.default_rng(seed).permutation(len(p))
        first, second = order[: len(p) // 2], order[len(p) // 2:]
        for fit_on, on in ((first, second), (second, first)):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                t = fit_temperature(p[fit_on], y[fit_on])
            halves_at_bound += any("end of the range" in str(w.message)
                                   for w in caught)
            q = apply_temperature(p[on], t).astype("float64")
            drawn = (q.cumsum(1) > rng.uniform(size=(len(q), 1))).argmax(1)
            figures.append((
                expected_calibration_error(p[on], y[on]),
                expected_calibration_error(q, y[on]),
                expected_calibration_error(q, drawn),
                nll(p[on], y[on]),
                nll(q, y[on]),
            ))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        library = cross_fitted_ece(p, y, seed=0)  # the first halving
    np.testing.assert_allclose(library, np.mean(figures[:2], axis=0)[:2],
                               rtol=1e-5, atol=1e-6)
    before, after, floor, nll_before, nll_after = np.mean(figures, axis=0)
    return {
        "accuracy": float(np.mean(p.argmax(1) == y)),
        "temperature": temperature,
        "ece all": expected_calibration_error(p, y),
        "before": float(before),
        "after": float(after),
        "floor": float(floor),
        "nll before": float(nll_before),
        "nll after": float(nll_after),
        "at bound": at_bound,
        "halves at bound": halves_at_bound,
        "fits": 2 * splits,
    }


def target(r) -> str:
    """`met`, `MISSED`, or `n/a` where every clip is answered right."""
    if r["accuracy"] == 1.0:
        return "n/a (no mistakes)"
    return "met" if r["after"] <= 0.5 * r["before"] else "MISSED"


def print_table(title, rows):
    print(f"\n{title}")
    print(f"{'head':<11}{'val acc':>8}{'T':>8}{'ECE all':>9}"
          f"{'ECE before':>12}{'ECE after':>11}{'ratio':>7}{'floor':>8}"
          f"{'NLL before':>12}{'NLL after':>11}  target")
    for name, r in rows.items():
        ratio = r["after"] / r["before"] if r["before"] > 0 else float("nan")
        notes = []
        if r["at bound"]:
            notes.append("T at the end of its range")
        if r["halves at bound"]:
            notes.append(f"{r['halves at bound']} of {r['fits']} half fits "
                         "at the end")
        note = f" ({'; '.join(notes)})" if notes else ""
        print(f"{name:<11}{r['accuracy']:>8.3f}{r['temperature']:>8.3f}"
              f"{r['ece all']:>9.4f}{r['before']:>12.4f}{r['after']:>11.4f}"
              f"{ratio:>7.2f}{r['floor']:>8.4f}{r['nll before']:>12.4f}"
              f"{r['nll after']:>11.4f}  {target(r)}{note}", flush=True)


def run_demo(args):
    """Task (a): the default `vgg4d-tune` demo run's clips."""
    start = time.perf_counter()
    x, y = demo_clips(n=args.demo_clips, frames=DEMO["frames"], size=SIZE,
                      channels=3, task=DEMO["task"], seed=DEMO["seed"])
    (x_train, y_train), (x_val, y_val) = split_balanced(
        x, y, validation_fraction=DEMO["validation_fraction"],
        seed=DEMO["seed"])
    keras.utils.set_random_seed(args.seed)
    backbone = VGG4DClassifier(2, weights=None)
    backbone.build((None, *x.shape[1:]))
    extractor = backbone.feature_extractor(x.shape[1:])
    train = (*extractor.predict(x_train, verbose=0), y_train)
    val = (*extractor.predict(x_val, verbose=0), y_val)
    print(f"demo features: {time.perf_counter() - start:.1f} s", flush=True)
    rows, checks = {}, []
    for name in HEADS:
        model, p = train_head(name, train, val, int(y.max()) + 1, backbone,
                              x.shape[1:], args)
        rows[name] = measure(p, y_val, args.splits)
        # The library's path: the whole classifier, backbone included.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = calibrate(model, x_val, y_val, verbose=0)
        checks.append(f"{name} T={result.temperature:.4f} (fit on cached "
                      f"features: {rows[name]['temperature']:.4f}), held-out "
                      f"ECE {result.ece_after_held_out:.4f}")
    print_table(
        f"(a) demo {DEMO['task']!r}: {len(y_train)} train / {len(y_val)} val "
        f"clips of {DEMO['frames']} frames, {args.epochs} epochs; ECE before "
        f"/ after: mean over {args.splits} random halvings of the validation "
        "clips, each half calibrated on the other", rows)
    print("calibrate() on each whole classifier: " + "; ".join(checks))
    print(f"(a) took {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def run_digits(args):
    """Task (b): clips of real digit scans, appearance and order."""
    start = time.perf_counter()
    frames, digits = digit_frames(args.jitters, args.seed)
    clips = {task: make_clips(task, digits, args.seed, args)
             for task in args.tasks}
    # Features of the frames the clips show (and of padding), once.
    used = np.unique(np.concatenate([
        index[index >= 0] for part in clips.values() for index, _ in part]))
    keras.utils.set_random_seed(args.seed)
    clip_shape = (MAX_FRAMES, SIZE, SIZE, 3)
    backbone = VGG4DClassifier(2, weights=None)
    backbone.build((None, *clip_shape))
    bank = feature_bank(backbone, frames[used], batch_size=64)

    def features(index):
        rows = np.where(index >= 0, np.searchsorted(used, index), -1)
        return clip_features(bank, rows)

    print(f"digit features of {len(used)} frames: "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    results = {}
    for task, ((i_train, y_train), (i_val, y_val)) in clips.items():
        train = (*features(i_train), y_train)
        val = (*features(i_val), y_val)
        num_classes = 5 if task == "appearance" else 2
        rows = {}
        for name in HEADS:
            _, p = train_head(name, train, val, num_classes, backbone,
                              clip_shape, args)
            rows[name] = measure(p, y_val, args.splits)
        print_table(
            f"(b) digits {task!r}: {len(y_train)} train / {len(y_val)} val "
            f"clips of 4-6 frames, {args.epochs} epochs; ECE before / after "
            f"as in (a), {args.splits} halvings", rows)
        results[task] = rows
    print(f"(b) took {time.perf_counter() - start:.0f} s", flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: fewer clips, 3 epochs, the "
                        "digits' appearance task only")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the backbone, the heads and the digits")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--splits", type=int, default=20,
                        help="random halvings of the validation clips")
    parser.add_argument("--tasks", nargs="+", default=["appearance", "order"],
                        choices=("appearance", "order"))
    parser.add_argument("--train-clips", type=int, default=500)
    parser.add_argument("--val-clips", type=int, default=1000)
    parser.add_argument("--jitters", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=(),
                        choices=("demo", "digits"))
    args = parser.parse_args()
    args.demo_clips = DEMO["n"]
    if args.quick:
        args.epochs, args.splits, args.jitters = 3, 5, 1
        args.train_clips, args.val_clips, args.tasks = 100, 60, ["appearance"]
        args.demo_clips = 64
    # What `make_clips` reads besides the above.
    args.validation_fraction = 0.4
    args.appearance_clips = "distinct-scans"

    print(machine(), flush=True)
    start = time.perf_counter()
    rows = []
    if "demo" not in args.skip:
        rows += list(run_demo(args).values())
    if "digits" not in args.skip:
        for task_rows in run_digits(args).values():
            rows += list(task_rows.values())
    judged = [r for r in rows if r["accuracy"] < 1.0]
    met = sum(target(r) == "met" for r in judged)
    print(f"\ntarget ECE after <= 0.5 x ECE before: met by {met} of "
          f"{len(judged)} heads that make mistakes ({len(rows) - len(judged)} "
          "answer every validation clip right); over those, mean ECE before "
          f"{np.mean([r['before'] for r in judged]):.4f}, after "
          f"{np.mean([r['after'] for r in judged]):.4f}, floor "
          f"{np.mean([r['floor'] for r in judged]):.4f}")
    print(f"total: {time.perf_counter() - start:.0f} s; {machine()}")


if __name__ == "__main__":
    main()
