"""The command lines of keras_vgg4d, read before Keras is imported.

`vgg4d-tune` and `vgg4d-explain` start here. Importing `keras_vgg4d`
imports Keras, and with it TensorFlow: seconds, and a few lines of
TensorFlow's C++ log. The package must import them, since importing it
registers its classes for `.keras` loading. So this module, which imports
neither, parses the command line first: `--help` and a mistyped option are
answered at once, and only a command that will run imports the package.

It also holds what the parsers offer and the package uses: the default
search, the names of the tuners, backends, objectives, export formats and
explanation methods. The package imports them from here, so each is
defined once.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import os
import subprocess
import sys
import zipfile

#: The Keras backends keras_vgg4d runs on.
BACKENDS = ("tensorflow", "jax", "torch")

#: What a search may optimize: the validation metric and its direction.
OBJECTIVES = {
    "val_accuracy": "max",
    "val_loss": "min",
    "val_auc": "max",
    "val_macro_f1": "max",
}
OBJECTIVE_NAMES = tuple(OBJECTIVES)

#: The Keras Tuner tuners of `vgg4d-tune --tuner`.
TUNERS = ("random", "hyperband", "bayesian")

#: `vgg4d-tune --export` names, and the `VGG4DClassifier.export` format of
#: each.
EXPORT_FORMATS = {"onnx": "onnx", "openvino": "openvino", "litert": "litert",
                  "saved_model": "tf_saved_model"}

#: The default `vgg4d-tune` run: the built-in demo data, all three heads.
DEFAULTS = {
    "data": "demo",
    "task": "order",
    "num_clips": 192,
    "validation_fraction": 0.25,
    "frames": 6,
    "image_size": 32,
    "tuner": "random",
    "max_trials": 9,
    "epochs": 15,
    "batch_size": 16,
    "weights": "none",
    "trainable_blocks": 0,
    "directory": "vgg4d_runs",
    "project_name": "search",
    "seed": 0,
    "objective": "val_accuracy",
    "patience": 3,
}

#: How `keras_vgg4d.explain` measures frame importance.
EXPLAIN_METHODS = ("occlusion", "gradient", "integrated_gradients")
#: The backbone convolution Grad-CAM reads by default.
EXPLAIN_LAYER = "block5_conv4"

# The exceptions a command reports as one line (exit code 1): what a user
# can fix. Anything else is a bug, and keeps its traceback.
_TUNE_ERRORS = (ValueError, OSError, ImportError, RuntimeError)
_EXPLAIN_ERRORS = (ValueError, OSError, ImportError, zipfile.BadZipFile)


class _OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# --- vgg4d-tune -------------------------------------------------------------


def build_tune_parser() -> argparse.ArgumentParser:
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
        help="'demo', a .npz file with arrays x and y (and optionally "
             "class_names), or a folder with one sub-folder of clips per "
             "class")
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
        help="seed of the demo clips, the split, the search and each "
             "trial's training")
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
    add("--parallel-trials", type=_at_least_one, default=1, metavar="N",
        help="run N trials at once on this machine, in Keras Tuner's "
             "distributed mode: this command starts a chief (the oracle) "
             "and N workers on localhost (one computes the backbone "
             "features, the others read them), then writes the report as "
             "usual. Each worker gets 1/N of the cores, so it is faster "
             "only where one trial leaves cores idle (many cores, small "
             "heads): on 2 cores the default search took 1.5x as long "
             "with N=2 (docs/distributed.md)")
    add("--deterministic", action="store_true",
        help="deterministic ops (TensorFlow's op determinism; XLA's on "
             "GPUs): --seed already repeats a search on a CPU; this covers "
             "GPUs and parallel tf.data maps (docs/search.md)")


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


def _at_least_one(text: str) -> int:
    """An integer >= 1, for argparse's `type`."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"must be an integer >= 1, received {text!r}")
    return value


def tune(argv: list[str] | None = None) -> int:
    """Entry point of `vgg4d-tune`: parses, then runs the search.

    Args:
        argv: The arguments, without the program's name; by default
            `sys.argv[1:]`.

    Returns:
        The exit code: 0 done, 1 an error reported in one line. A wrong
        command line exits with code 2 (`SystemExit`), `--help` with 0.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_tune_parser().parse_args(argv)
    if args.backend is not None:
        status = _use_backend(args.backend, argv)
        if status is not None:
            return status
    with _native_logs_silenced():
        search = importlib.import_module("keras_vgg4d.tuning.search")
        # The search seeds TensorFlow too, on every backend, which imports
        # it where it is installed: now, with its log hidden.
        if importlib.util.find_spec("tensorflow") is not None:
            importlib.import_module("tensorflow")
    return _report_errors("vgg4d-tune", _TUNE_ERRORS, search.run, args)


def _use_backend(backend: str, argv: list[str]) -> int | None:
    """Makes Keras use `backend`; an exit code where this process cannot.

    Keras picks its backend once, when it is first imported. Before that,
    setting `KERAS_BACKEND` is enough; after it (a caller in Python that
    imported Keras already), the command runs again in a new process with
    `KERAS_BACKEND` set, as a user would run it.
    """
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() == backend:
        return None
    # Each backend's package has the backend's name.
    if importlib.util.find_spec(backend) is None:
        print(f"vgg4d-tune: error: --backend {backend} needs the "
              f"'{backend}' package, which is not installed "
              f"(pip install {'jax[cpu]' if backend == 'jax' else backend})",
              file=sys.stderr)
        return 1
    if keras is None:
        os.environ["KERAS_BACKEND"] = backend
        return None
    command = [sys.executable, "-c",
               "import sys, keras_vgg4d_cli; sys.exit(keras_vgg4d_cli.tune())",
               *argv]
    return subprocess.call(command, env=dict(os.environ,
                                             KERAS_BACKEND=backend))


# --- vgg4d-explain ----------------------------------------------------------


def build_explain_parser() -> argparse.ArgumentParser:
    """The command line of `vgg4d-explain`."""
    parser = _OneLineErrorParser(
        prog="vgg4d-explain",
        description="Explain a saved VGG4DClassifier's predictions: "
                    "frame importance and per-frame Grad-CAM, as pictures "
                    "and a CSV.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("model", metavar="MODEL.keras", help="a saved VGG4DClassifier")
    add("clips", metavar="CLIPS.npy", help="clips, (n, time, h, w, channels)")
    add("--out", default="explanations", help="folder to write into")
    add("--class-index", type=int, default=None,
        help="class to explain in every clip (default: the predicted one)")
    add("--method", choices=EXPLAIN_METHODS, default="occlusion",
        help="how frame importance is measured")
    add("--time-axis", type=int, choices=(1, -1), default=None,
        help="1: clips are (n, time, h, w, c); -1: (n, h, w, c, time); "
             "default: the model's own time_axis")
    add("--layer", default=EXPLAIN_LAYER,
        help="backbone convolution layer for Grad-CAM")
    add("--class-names", default=None,
        help="comma-separated class names, in label order (default: those "
             "of the per_class.csv that vgg4d-tune wrote beside "
             "MODEL.keras, if there is one)")
    add("--batch-size", type=int, default=8, help="clips explained at once")
    add("--max-frames", type=int, default=16,
        help="frames drawn a picture (the most important ones)")
    return parser


def explain(argv: list[str] | None = None) -> int:
    """Entry point of `vgg4d-explain`: parses, then explains the clips.

    Args:
        argv: The arguments, without the program's name; by default
            `sys.argv[1:]`.

    Returns:
        The exit code: 0 done, 1 an error reported in one line. A wrong
        command line exits with code 2 (`SystemExit`), `--help` with 0.
    """
    args = build_explain_parser().parse_args(argv)
    with _native_logs_silenced():
        explain_cli = importlib.import_module("keras_vgg4d.explain_cli")
    return _report_errors("vgg4d-explain", _EXPLAIN_ERRORS, explain_cli.run,
                          args)


# --- shared -----------------------------------------------------------------


def _report_errors(prog: str, errors: tuple, run, args) -> int:
    """`run(args)`, with the `errors` a user can fix as one line on stderr."""
    try:
        return run(args)
    except errors as error:
        message = str(error).strip().splitlines()[0] if str(error) else ""
        print(f"{prog}: error: {type(error).__name__}: {message}",
              file=sys.stderr)
        return 1


@contextlib.contextmanager
def _native_logs_silenced():
    """Keeps TensorFlow's C++ start-up log out of the output.

    Importing TensorFlow 2.2x writes lines such as absl's "WARNING: All log
    messages before absl::InitializeLog() is called are written to STDERR",
    `I0000 ... port.cc] oneDNN custom operations are on` and
    `cudart_stub.cc` straight to the process's stderr, whatever
    `TF_CPP_MIN_LOG_LEVEL` says; its first look at the devices adds
    `cuda_platform.cc] failed call to cuInit` on a machine without a GPU.
    Inside this context the stderr file descriptor points to the null
    device, while Python's own `sys.stderr` (warnings, tracebacks) still
    reaches the real one; on leaving, TensorFlow's devices are listed
    (if Keras imported it), and `TF_CPP_MIN_LOG_LEVEL` is 2 for the rest
    of the run. A user who set `TF_CPP_MIN_LOG_LEVEL` sees everything
    TensorFlow logs at that level; where TensorFlow is imported already,
    there is nothing to hide.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    python_stderr = sys.stderr
    try:
        writes_fd_2 = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # in memory, or none
        writes_fd_2 = False
    if python_stderr is not None:
        python_stderr.flush()
    try:
        real = os.dup(2)
    except OSError:  # no stderr to keep clean
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    if writes_fd_2:
        # Not closed here: a logging handler made meanwhile may hold it.
        sys.stderr = io.TextIOWrapper(
            io.FileIO(os.dup(real), "w"), encoding=python_stderr.encoding,
            errors="backslashreplace", line_buffering=True,
        )
    try:
        yield
        if "tensorflow" in sys.modules:
            sys.modules["tensorflow"].config.list_physical_devices()
    finally:
        if writes_fd_2:
            sys.stderr.flush()
            sys.stderr = python_stderr
        os.dup2(real, 2)
        os.close(real)
