"""`vgg4d-tune`: a Keras Tuner search across the three temporal heads.

With no arguments it searches frame-wise, Conv3D and LSTM heads on the
built-in demo clips (the "order" task, where the class is the order of the
frames), prints a leaderboard, and writes `results.csv`, `results.json`, a
plot of the scores by head and the best model as `.keras` under
`--directory`.

Distributed search (Keras Tuner's own mode): start the same command once per
process with these environment variables set; the chief runs the oracle, the
workers run trials:

    KERASTUNER_TUNER_ID=chief   KERASTUNER_ORACLE_IP=127.0.0.1 \\
        KERASTUNER_ORACLE_PORT=8000 vgg4d-tune ...
    KERASTUNER_TUNER_ID=tuner0  KERASTUNER_ORACLE_IP=127.0.0.1 \\
        KERASTUNER_ORACLE_PORT=8000 vgg4d-tune ...
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_vgg4d.tuning.configs import DEFAULTS  # noqa: E402
from keras_vgg4d.tuning.configs import TUNERS  # noqa: E402


class _OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line of `vgg4d-tune`."""
    parser = _OneLineErrorParser(
        prog="vgg4d-tune",
        description="Search temporal heads for VGG19 on clips of frames.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--data", default=DEFAULTS["data"],
        help="'demo', a .npz file with arrays x and y, or a folder with one "
             "sub-folder of clips per class")
    add("--task", default=DEFAULTS["task"],
        help="demo task: 'order', 'appearance' or 'motion'")
    add("--num-clips", type=int, default=DEFAULTS["num_clips"],
        help="number of demo clips")
    add("--validation-fraction", type=float,
        default=DEFAULTS["validation_fraction"])
    add("--tuner", choices=TUNERS, default=DEFAULTS["tuner"])
    add("--max-trials", type=int, default=DEFAULTS["max_trials"])
    add("--epochs", type=int, default=DEFAULTS["epochs"])
    add("--batch-size", type=int, default=DEFAULTS["batch_size"])
    add("--frames", type=int, default=DEFAULTS["frames"],
        help="frames per clip (demo and folder data)")
    add("--image-size", type=int, default=DEFAULTS["image_size"],
        help="frame height and width (demo and folder data)")
    add("--heads", default="framewise,conv3d,lstm",
        help="comma-separated heads to search")
    add("--weights", default=DEFAULTS["weights"],
        help="'none', 'imagenet', or the path of a VGG19 no-top weights file")
    add("--trainable-blocks", type=int, default=DEFAULTS["trainable_blocks"])
    add("--augment", action="store_true",
        help="augment training clips with ScipyAugment (turns the feature "
             "cache off)")
    add("--no-cache", action="store_true",
        help="train whole models in every trial instead of heads on cached "
             "backbone features")
    add("--directory", default=DEFAULTS["directory"])
    add("--project-name", default=DEFAULTS["project_name"])
    add("--resume", action="store_true",
        help="keep the finished trials of an earlier search in --directory")
    add("--seed", type=int, default=DEFAULTS["seed"])
    add("--time-last", action="store_true",
        help="the data is laid out (n, height, width, channels, time)")
    add("--quiet", action="store_true", help="print only the leaderboard")
    return parser


def load_data(args):
    """Training and validation clips for the arguments.

    Returns:
        `(x_train, y_train, x_val, y_val, class_names, time_axis)`; the
        loaders return time-major clips, demo clips are always time-major.
    """
    from keras_vgg4d import data

    time_axis = -1 if args.time_last else 1
    if args.data == "demo":
        x, y = data.demo_clips(
            n=args.num_clips,
            frames=args.frames,
            size=args.image_size,
            channels=3,
            task=args.task,
            seed=args.seed,
        )
        class_names = [str(c) for c in range(int(y.max()) + 1)]
    elif args.data.endswith(".npz"):
        x, y = data.load_npz(args.data, time_axis=time_axis)
        time_axis = 1
        class_names = [str(c) for c in range(int(y.max()) + 1)]
    elif os.path.isdir(args.data):
        loaded = data.load_folder(
            args.data, frames=args.frames, size=args.image_size,
            time_axis=time_axis,
        )
        x, y, class_names = loaded.x, loaded.y, list(loaded.class_names)
        time_axis = 1
    else:
        raise FileNotFoundError(
            f"--data {args.data!r} is neither 'demo', a .npz file nor a "
            "folder of clips"
        )
    (x_train, y_train), (x_val, y_val) = data.split_balanced(
        x, y, validation_fraction=args.validation_fraction, seed=args.seed
    )
    return x_train, y_train, x_val, y_val, class_names, time_axis


def leaderboard(tuner) -> list[dict]:
    """One row per finished trial, best first."""
    times = tuner.trial_times()
    trials = tuner.oracle.get_best_trials(num_trials=len(tuner.oracle.trials))
    rows = []
    for rank, trial in enumerate(trials, start=1):
        values = dict(trial.hyperparameters.values)
        head = values.pop("temporal_head")
        rows.append(
            {
                "rank": rank,
                "trial": trial.trial_id,
                "head": head,
                "hyperparameters": values,
                "val_accuracy": trial.score,
                "seconds": times.get(trial.trial_id),
            }
        )
    return rows


def format_leaderboard(rows: list[dict]) -> str:
    """The leaderboard as a text table."""
    lines = [f"{'rank':>4}  {'trial':<6}{'head':<11}{'val_acc':>8}{'time s':>8}"
             "  hyperparameters"]
    for row in rows:
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        hps = ", ".join(
            f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(row["hyperparameters"].items())
        )
        lines.append(
            f"{row['rank']:>4}  {row['trial']:<6}{row['head']:<11}"
            f"{row['val_accuracy']:>8.3f}{seconds:>8}  {hps}"
        )
    return "\n".join(lines)


def write_results(rows: list[dict], directory: str) -> list[str]:
    """Writes `results.csv`, `results.json` and, with matplotlib, a plot."""
    os.makedirs(directory, exist_ok=True)
    written = []
    path = os.path.join(directory, "results.json")
    with open(path, "w") as file:
        json.dump(rows, file, indent=2)
    written.append(path)
    path = os.path.join(directory, "results.csv")
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["rank", "trial", "head", "val_accuracy", "seconds",
                         "hyperparameters"])
        for row in rows:
            writer.writerow([row["rank"], row["trial"], row["head"],
                             row["val_accuracy"], row["seconds"],
                             json.dumps(row["hyperparameters"], sort_keys=True)])
    written.append(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return written
    heads = sorted({row["head"] for row in rows})
    figure, axes = pyplot.subplots(figsize=(5, 3.5))
    for i, head in enumerate(heads):
        scores = [r["val_accuracy"] for r in rows if r["head"] == head]
        axes.scatter([i] * len(scores), scores, alpha=0.7)
    axes.set_xticks(range(len(heads)), heads)
    axes.set_ylabel("validation accuracy")
    axes.set_title("Trials by temporal head")
    figure.tight_layout()
    path = os.path.join(directory, "scores_by_head.png")
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    written.append(path)
    return written


def run(args) -> int:
    """Runs the search the parsed `args` describe."""
    import keras

    from keras_vgg4d import ScipyAugment
    from keras_vgg4d import VGG4DHyperModel
    from keras_vgg4d.tuning.configs import make_tuner

    keras.utils.set_random_seed(args.seed)
    verbose = 0 if args.quiet else 1
    x_train, y_train, x_val, y_val, class_names, time_axis = load_data(args)
    heads = tuple(h.strip() for h in args.heads.split(",") if h.strip())
    weights = None if args.weights.lower() == "none" else args.weights
    augment = (
        ScipyAugment(rotation=10, zoom=(0.9, 1.1), shift=0.05, seed=args.seed)
        if args.augment
        else None
    )
    project_dir = os.path.join(args.directory, args.project_name)
    hypermodel = VGG4DHyperModel(
        num_classes=len(class_names),
        input_shape=x_train.shape[1:],
        heads=heads,
        weights=weights,
        trainable_blocks=args.trainable_blocks,
        augment=augment,
        cache_features=not args.no_cache,
        time_axis=time_axis,
        feature_cache_dir=os.path.join(project_dir, "feature_cache"),
    )
    tuner = make_tuner(
        args.tuner,
        hypermodel,
        max_trials=args.max_trials,
        epochs=args.epochs,
        directory=args.directory,
        project_name=args.project_name,
        overwrite=not args.resume,
        seed=args.seed,
    )
    if verbose:
        print(
            f"vgg4d-tune: {len(x_train)} training and {len(x_val)} validation "
            f"clips of shape {x_train.shape[1:]}, {len(class_names)} classes; "
            f"heads {', '.join(heads)}; {args.tuner} search; feature cache "
            f"{'on' if hypermodel.uses_feature_cache else 'off'}"
        )
    tuner.search(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=verbose,
    )
    rows = leaderboard(tuner)
    if not rows:
        raise RuntimeError("The search finished no trial.")
    print(format_leaderboard(rows))
    written = write_results(rows, project_dir)
    best = tuner.get_best_models(num_models=1)[0]
    best_path = os.path.join(project_dir, "best_model.keras")
    best.save(best_path)
    written.append(best_path)
    _, accuracy = best.evaluate(x_val, y_val, verbose=0)
    print(
        f"best: trial {rows[0]['trial']}, {rows[0]['head']} head, validation "
        f"accuracy {accuracy:.3f} (chance {1 / len(class_names):.3f})"
    )
    print("wrote " + ", ".join(written))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vgg4d-tune` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError, OSError, ImportError,
            RuntimeError) as error:
        message = str(error).strip().splitlines()[0] if str(error) else ""
        print(f"vgg4d-tune: error: {type(error).__name__}: {message}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
