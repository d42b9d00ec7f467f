"""`vgg4d-tune`: a Keras Tuner search across the three temporal heads.

With no arguments it searches frame-wise, Conv3D and LSTM heads on the
built-in demo clips (the "order" task, where the class is the order of the
frames), prints one line per trial and a leaderboard, and writes a report
(`report.md` with the leaderboard, learning curves, the best model's
confusion matrix and per-class scores; see `keras_vgg4d.tuning.report`) and
the best model as `.keras` under `--directory/--project-name`.

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
import gc
import importlib.util
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_vgg4d.backend import BACKENDS  # noqa: E402
from keras_vgg4d.tuning.configs import DEFAULTS  # noqa: E402
from keras_vgg4d.tuning.configs import TUNERS  # noqa: E402
from keras_vgg4d.tuning.search_data import load_search_data  # noqa: E402

OBJECTIVE_NAMES = ("val_accuracy", "val_loss", "val_auc", "val_macro_f1")
# --export names, and the `VGG4DClassifier.export` format of each.
EXPORT_FORMATS = {"onnx": "onnx", "openvino": "openvino", "litert": "litert",
                  "saved_model": "tf_saved_model"}


class _OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line of `vgg4d-tune`: data, search and output options."""
    parser = _OneLineErrorParser(
        prog="vgg4d-tune",
        description="Search temporal heads for VGG19 on clips of frames.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_data_arguments(parser.add_argument_group("data").add_argument)
    _add_search_arguments(parser.add_argument_group("search").add_argument)
    _add_output_arguments(parser.add_argument_group("output").add_argument)
    return parser


def _add_data_arguments(add) -> None:
    add("--data", default=DEFAULTS["data"],
        help="'demo', a .npz file with arrays x and y, or a folder with one "
             "sub-folder of clips per class")
    add("--task", default=DEFAULTS["task"],
        help="demo task: 'order', 'appearance', 'motion' or 'event'")
    add("--num-clips", type=int, default=DEFAULTS["num_clips"],
        help="number of demo clips")
    add("--validation-fraction", "--validation-split", type=float,
        default=DEFAULTS["validation_fraction"],
        help="share of the clips (of each class) that validate")
    add("--frames", type=int, default=DEFAULTS["frames"],
        help="frames per clip (demo and folder data)")
    add("--sampling", choices=("uniform", "random", "segments"),
        default="segments",
        help="folder data: how a clip's frames are picked, anew each epoch "
             "for training (see clip_dataset_from_directory)")
    add("--groups", default=None,
        help="folder data: a regular expression whose first group, found in "
             "a file's name, names its group (by default UCF101's _gNN_ for "
             "videos, the PatientID for DICOM); a group's clips all validate "
             "or all train")
    add("--intensity", default=None,
        help="folder data: DICOM/NIfTI intensities to 0..255: window, "
             "percentiles or minmax (None: window for DICOM, minmax for "
             "NIfTI)")
    add("--image-size", type=int, default=DEFAULTS["image_size"],
        help="frame height and width (demo and folder data)")
    add("--seed", type=int, default=DEFAULTS["seed"],
        help="seed of the demo clips, the split and the search")
    add("--time-last", action="store_true",
        help="the data is laid out (n, height, width, channels, time)")


def _add_search_arguments(add) -> None:
    add("--backend", choices=BACKENDS, default=None,
        help="the Keras backend (default: KERAS_BACKEND, else tensorflow); "
             "on a CPU TensorFlow is the fastest, on a GPU JAX "
             "(docs/backends.md)")
    add("--tuner", choices=TUNERS, default=DEFAULTS["tuner"])
    add("--max-trials", type=int, default=DEFAULTS["max_trials"])
    add("--epochs", type=int, default=DEFAULTS["epochs"])
    add("--batch-size", type=int, default=DEFAULTS["batch_size"])
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
    add("--objective", choices=OBJECTIVE_NAMES, default=DEFAULTS["objective"],
        help="what the search optimizes; val_macro_f1 or val_auc for "
             "imbalanced classes")
    add("--class-weight", choices=("none", "balanced"), default="none",
        help="'balanced' weighs each class by the inverse of its share")
    add("--patience", type=int, default=DEFAULTS["patience"],
        help="stop a trial after this many epochs without a better "
             "objective, keeping its best weights; 0 turns it off")
    add("--precision", choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="precision of the cached backbone features; auto: bfloat16 on "
             "CPUs with AVX-512 BF16 or AMX, else float32 (heads train in "
             "float32)")


def _add_output_arguments(add) -> None:
    add("--directory", default=DEFAULTS["directory"])
    add("--project-name", default=DEFAULTS["project_name"])
    add("--resume", action="store_true",
        help="keep the finished trials of an earlier search in --directory")
    add("--refit", action="store_true",
        help="retrain the best configuration on training + validation clips "
             "for its best epoch count; saved as final_model.keras")
    add("--export", nargs="+", default=[], metavar="FORMAT",
        choices=EXPORT_FORMATS,
        help="also export the best model for a runtime without Keras: "
             "onnx, openvino, litert and/or saved_model (beside "
             "best_model.keras; report.md shows how to load each)")
    add("--verbose", action="store_true",
        help="Keras' per-epoch progress bars instead of one line a trial")
    add("--quiet", action="store_true", help="print only the leaderboard")


def check_args(args) -> None:
    """Raises `ValueError` naming an argument that cannot work."""
    if args.patience < 0:
        raise ValueError(
            f"--patience must be >= 0 (0 turns early stopping off); "
            f"received {args.patience}"
        )
    for name in args.export:
        # Before the search, not after it: a missing extra is named now.
        from keras_vgg4d.export import require

        require(EXPORT_FORMATS[name])
    if args.refit and not args.validation_fraction > 0:
        raise ValueError(
            "--refit retrains for the best epoch count the validation clips "
            "showed, so it needs validation data: pass --validation-fraction "
            "> 0"
        )


def make_hypermodel(args, input_shape, num_classes, time_axis):
    """The `VGG4DHyperModel` the arguments describe."""
    from keras_vgg4d import ScipyAugment
    from keras_vgg4d import VGG4DHyperModel

    augment = (
        ScipyAugment(rotation=10, zoom=(0.9, 1.1), shift=0.05, seed=args.seed)
        if args.augment
        else None
    )
    return VGG4DHyperModel(
        num_classes=num_classes,
        input_shape=input_shape,
        heads=tuple(h.strip() for h in args.heads.split(",") if h.strip()),
        weights=None if args.weights.lower() == "none" else args.weights,
        trainable_blocks=args.trainable_blocks,
        augment=augment,
        cache_features=not args.no_cache,
        time_axis=time_axis,
        feature_cache_dir=os.path.join(_project_dir(args), "feature_cache"),
        objective=args.objective,
        class_weight=None if args.class_weight == "none" else "balanced",
        precision=args.precision,
    )


def _project_dir(args) -> str:
    return os.path.join(args.directory, args.project_name)


def _callbacks(args, hypermodel) -> list:
    import keras

    if not args.patience:
        return []
    objective = hypermodel.objective
    return [keras.callbacks.EarlyStopping(
        monitor=objective.name, mode=objective.direction,
        patience=args.patience, restore_best_weights=True,
    )]


def search(args, hypermodel, data):
    """Runs the search; returns the tuner."""
    from keras_vgg4d.tuning.configs import make_tuner

    tuner = make_tuner(
        args.tuner,
        hypermodel,
        max_trials=args.max_trials,
        epochs=args.epochs,
        directory=args.directory,
        project_name=args.project_name,
        overwrite=not args.resume,
        seed=args.seed,
        progress=not args.quiet and not args.verbose,
    )
    validation = (data.validation if data.streams
                  else (data.validation, data.validation_labels))
    tuner.search(
        data.train,
        data.train_labels,
        validation_data=validation,
        epochs=args.epochs,
        batch_size=args.batch_size,
        callbacks=_callbacks(args, hypermodel),
        verbose=1 if args.verbose else 0,
    )
    return tuner


def refit(args, tuner, hypermodel, data, best_epochs):
    """The best configuration trained on training + validation clips."""
    best_hp = tuner.get_best_hyperparameters(1)[0]
    model = hypermodel.build(best_hp)
    clips, labels = data.everything()
    hypermodel.fit(
        best_hp, model, clips, labels,
        epochs=best_epochs, batch_size=args.batch_size,
        verbose=1 if args.verbose else 0,
    )
    return model


def report(args, tuner, data, best) -> tuple[list[dict], list[str]]:
    """Prints the leaderboard, writes the report; returns rows and paths."""
    import numpy as np

    from keras_vgg4d.tuning import report as reports

    rows = reports.leaderboard(tuner)
    if not rows:
        raise RuntimeError("The search finished no trial.")
    print(reports.format_leaderboard(rows))
    directory = _project_dir(args)
    written = reports.write_results(rows, directory)
    written.append(reports.plot_scores_by_head(
        rows, os.path.join(directory, "scores_by_head.png")))
    written.append(reports.plot_learning_curves(
        tuner, rows, os.path.join(directory, "learning_curves.png")))
    class_names = data.class_names
    y_val = data.validation_targets()
    probabilities = best.predict(data.validation, verbose=0)
    predicted = probabilities.argmax(axis=-1)
    _print_study_accuracy(data, probabilities, y_val)
    written += reports.write_confusion(y_val, predicted, class_names, directory)
    written += write_explanations(best, data, predicted, y_val, directory)
    accuracy = float(np.mean(predicted == y_val)) if len(y_val) else 0.0
    print(
        f"best: trial {rows[0]['trial']}, {rows[0]['head']} head, "
        f"{rows[0]['objective']} {rows[0]['score']:.3f}, validation accuracy "
        f"{accuracy:.3f} (chance {1 / len(class_names):.3f})"
    )
    return rows, written


def write_explanations(best, data, predicted, labels, directory,
                       count: int = 4) -> list[str]:
    """Pictures of why the best model answered as it did, on a few
    validation clips: wrong ones first, then right ones."""
    import numpy as np

    from keras_vgg4d.explain import explain
    from keras_vgg4d.explain import save_explanation

    if data.streams:
        return []  # the clips are streamed; vgg4d-explain reads saved ones
    wrong = np.flatnonzero(predicted != labels)
    right = np.flatnonzero(predicted == labels)
    chosen = np.concatenate([wrong[: count // 2], right])[:count]
    if not len(chosen):
        return []
    clips = np.asarray(data.validation)[chosen]
    found = explain(best, clips, time_axis=data.time_axis)
    paths = []
    for i, clip in enumerate(chosen):
        verdict = "right" if predicted[clip] == labels[clip] else "wrong"
        path = os.path.join(directory, f"explain_clip{clip}_{verdict}.png")
        paths.append(save_explanation(clips, found, path, index=i,
                                      class_names=data.class_names))
    return paths


def export_best(args, best, data, directory, written) -> list[str]:
    """Exports the best model in each `--export` format, adding the paths
    to `written`; returns report.md's lines on loading each artifact."""
    from keras_vgg4d.export import export_classifier
    from keras_vgg4d.export import usage

    lines = ["## Deploy", ""] if args.export else []
    for name in args.export:
        paths = export_classifier(best, os.path.join(directory, "best_model"),
                                  EXPORT_FORMATS[name])
        written += paths
        lines += [f"`{os.path.basename(paths[0])}` ({name}):", "", "```python",
                  usage(paths[0], EXPORT_FORMATS[name],
                        (None, *data.input_shape)),
                  "```", ""]
    return lines


def _print_study_accuracy(data, probabilities, labels) -> None:
    """One answer per patient, where a patient's study gave several clips
    of its one class. Groups that mix classes (the source videos of
    UCF101's `gNN` groups) get no line: they are not studies."""
    from keras_vgg4d.studies import study_accuracy
    from keras_vgg4d.studies import study_ids

    sources = getattr(data.validation, "clip_sources", None)
    if sources is None:
        return
    ids = study_ids(sources)
    if len(set(ids)) == len(ids):
        return
    if len(set(zip(ids, labels.tolist()))) != len(set(ids)):
        return
    scores = study_accuracy(probabilities, labels, ids)
    print(f"per patient: accuracy {scores['study_accuracy']:.3f} over "
          f"{scores['studies']} patients (per clip "
          f"{scores['clip_accuracy']:.3f})")


def _count(clips) -> int:
    return len(getattr(clips, "clip_sources", clips))


def run(args) -> int:
    """Runs the search the parsed `args` describe."""
    import keras

    check_args(args)
    keras.utils.set_random_seed(args.seed)
    data = load_search_data(args)
    hypermodel = make_hypermodel(args, data.input_shape, len(data.class_names),
                                 data.time_axis)
    if not args.quiet:
        print(
            f"vgg4d-tune: {_count(data.train)} training and "
            f"{_count(data.validation)} validation clips of shape "
            f"{data.input_shape}, {len(data.class_names)} classes; "
            f"heads {', '.join(hypermodel.heads)}; {args.tuner} search for "
            f"{hypermodel.objective.name}; feature cache "
            + (f"on, features in {hypermodel.feature_cache.dtype_policy}"
               if hypermodel.uses_feature_cache else "off")
            + f"; Keras backend {keras.backend.backend()}"
        )
    # Keras Tuner collects garbage twice a trial; each full collection
    # walked TensorFlow's ~360,000 long-lived objects (0.7 s here). Frozen,
    # they are not walked again; what trials leave is collected as before.
    gc.collect()
    gc.freeze()
    tuner = search(args, hypermodel, data)
    best = tuner.get_best_models(num_models=1)[0]
    rows, written = report(args, tuner, data, best)
    directory = _project_dir(args)
    written.append(os.path.join(directory, "best_model.keras"))
    best.save(written[-1])
    if args.refit:
        final = refit(args, tuner, hypermodel, data, rows[0]["best_epochs"])
        written.append(os.path.join(directory, "final_model.keras"))
        final.save(written[-1])
    deploy = export_best(args, best, data, directory, written)
    from keras_vgg4d.tuning.report import write_markdown

    written.append(write_markdown(rows, written, directory, deploy))
    print("wrote " + ", ".join(written))
    return 0


def _run_under_backend(backend: str, argv: list[str]) -> int:
    """Runs this command again in a process whose Keras uses `backend`.

    Keras picks its backend once, when it is first imported, and importing
    `keras_vgg4d` imports Keras; `--backend` therefore starts the search in
    a new process with `KERAS_BACKEND` set, as a user would.
    """
    # Each backend's package has the backend's name.
    if importlib.util.find_spec(backend) is None:
        print(f"vgg4d-tune: error: --backend {backend} needs the "
              f"'{backend}' package, which is not installed "
              f"(pip install {'jax[cpu]' if backend == 'jax' else backend})",
              file=sys.stderr)
        return 1
    env = dict(os.environ, KERAS_BACKEND=backend)
    command = [sys.executable, "-m", "keras_vgg4d.tuning.search", *argv]
    return subprocess.call(command, env=env)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vgg4d-tune` console script."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.backend is not None:
        import keras

        if args.backend != keras.backend.backend():
            return _run_under_backend(args.backend, argv)
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
