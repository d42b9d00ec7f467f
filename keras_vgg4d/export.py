"""Exporting a `VGG4DClassifier` for inference runtimes, and running it.

`VGG4DClassifier.export` is Keras' own `keras.Model.export`; this module is
what the classifier adds to it: the artifact's input signature (batch and
time dynamic, frame size and channels fixed), its checks, the runtimes'
optional extras with an error naming the one to install, LiteRT restricted
to built-in ops (no Flex delegate needed), and `load_artifact`, which runs
any artifact from NumPy the same way.

Formats, their files and the extra each needs (`pip install
"keras_vgg4d[onnx]"` and so on):

| format | artifact | export needs | run needs |
| --- | --- | --- | --- |
| `"tf_saved_model"` | a directory | TensorFlow | TensorFlow |
| `"onnx"` | `.onnx` | `tf2onnx` (`[onnx]`) | `onnxruntime` (`[onnx]`) |
| `"openvino"` | `.xml` and `.bin` | `openvino` (`[openvino]`) | the same |
| `"litert"` | `.tflite` | TensorFlow | `ai-edge-litert` (`[litert]`) |
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import numpy as np

from keras_vgg4d import validation
from keras_vgg4d.layout import LAYOUTS
from keras_vgg4d.layout import time_major_permutation


@dataclass(frozen=True)
class ExportFormat:
    """How one export format is written and run."""

    suffix: str
    extra: str | None
    export_modules: tuple[str, ...]
    run_modules: tuple[str, ...]
    # The pip packages the extra installs, for messages.
    packages: tuple[str, ...] = ()


FORMATS = {
    "tf_saved_model": ExportFormat("", None, (), ()),
    "onnx": ExportFormat(
        ".onnx", "onnx", ("tf2onnx",), ("onnxruntime",),
        ("tf2onnx", "onnxruntime"),
    ),
    "openvino": ExportFormat(
        ".xml", "openvino", ("openvino",), ("openvino",), ("openvino",)
    ),
    "litert": ExportFormat(
        ".tflite", "litert", (), ("ai_edge_litert",), ("ai-edge-litert",)
    ),
}

# What a user runs to load and call each artifact, without keras_vgg4d.
_USAGE = {
    "tf_saved_model": """\
import numpy as np, tensorflow as tf
artifact = tf.saved_model.load({path})
clips = np.zeros({shape}, "float32")  # raw frames, 0..255
probabilities = artifact.serve(clips).numpy()
print(probabilities.argmax(axis=-1))""",
    "onnx": """\
import numpy as np, onnxruntime as ort
session = ort.InferenceSession({path}, providers=["CPUExecutionProvider"])
clips = np.zeros({shape}, "float32")  # raw frames, 0..255
probabilities = session.run(None, {{session.get_inputs()[0].name: clips}})[0]
print(probabilities.argmax(axis=-1))""",
    "openvino": """\
import numpy as np, openvino as ov
compiled = ov.Core().compile_model({path}, "CPU", {{"INFERENCE_PRECISION_HINT": "f32"}})
clips = np.zeros({shape}, "float32")  # raw frames, 0..255
probabilities = compiled(clips)[0]
print(probabilities.argmax(axis=-1))""",
    "litert": """\
import numpy as np; from ai_edge_litert.interpreter import Interpreter
runner = Interpreter(model_path={path}).get_signature_runner()
clips = np.zeros({shape}, "float32")  # raw frames, 0..255
probabilities = next(iter(runner(clips=clips).values()))
print(probabilities.argmax(axis=-1))""",
}


def check_format(format: str) -> ExportFormat:
    """The `ExportFormat` of `format`, else a `ValueError` listing them."""
    validation.check_choice("VGG4DClassifier.export", "format", format,
                            list(FORMATS))
    return FORMATS[format]


def require(format: str, purpose: str = "export") -> None:
    """Imports what `purpose` (`"export"` or `"run"`) of `format` needs.

    Raises:
        ImportError: naming the missing package and the extra to install,
            e.g. `pip install "keras_vgg4d[onnx]"`.
    """
    spec = check_format(format)
    modules = spec.export_modules if purpose == "export" else spec.run_modules
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            action = (
                f"Exporting to {format!r}" if purpose == "export"
                else f"Running a {format!r} artifact"
            )
            raise ImportError(
                f"{action} needs the `{module}` package, which is not "
                f"installed ({error}). Install the {spec.extra!r} extra: "
                f'pip install "keras_vgg4d[{spec.extra}]" (it installs '
                f"{', '.join(spec.packages)})."
            ) from error


def artifact_path(path, format: str) -> str:
    """`path` with the format's suffix (`.onnx`, `.xml`, `.tflite`) added.

    A path that already ends with the suffix is returned unchanged; a
    SavedModel is a directory and takes no suffix.
    """
    path = os.fspath(path)
    suffix = check_format(format).suffix
    return path if path.endswith(suffix) else path + suffix


def written_files(path: str, format: str) -> list[str]:
    """The files (or the directory) an export of `format` to `path` writes."""
    if format == "openvino":
        return [path, path[: -len(".xml")] + ".bin"]
    return [path]


def _as_layout(time_major_shape, time_axis: int) -> tuple:
    """A time-major shape reordered to the layout `time_axis` names."""
    permutation = time_major_permutation(len(time_major_shape), time_axis)
    shape = [None] * len(time_major_shape)
    for position, axis in enumerate(permutation):
        shape[axis] = time_major_shape[position]
    return tuple(shape)


def default_input_signature(model) -> list:
    """The signature `VGG4DClassifier.export` uses by default.

    One float32 `tf.TensorSpec` named `"clips"`, laid out as the model's
    `time_axis` says, with batch and time unknown and the frame size and
    channel count the model was built for.
    """
    import tensorflow as tf

    build_config = model.get_build_config() or {}
    shape = build_config.get("input_shape")
    if shape is None:
        raise ValueError(
            "VGG4DClassifier.export needs a built model: call it on clips "
            "or call `model.build((None, time, height, width, channels))` "
            "(with your `time_axis`) before exporting it."
        )
    _, _, height, width, channels = validation.check_clip_shape(
        "The shape VGG4DClassifier was built for", tuple(shape),
        model.time_axis, known_frame_size=True, allow_empty=True,
    )
    shape = _as_layout((None, None, height, width, channels), model.time_axis)
    return [tf.TensorSpec(shape, tf.float32, name="clips")]


def check_input_signature(model, input_signature, format: str) -> list:
    """Checks a user's `input_signature`; returns it as a list of one spec.

    Height, width and channels must be known (they are fixed in every
    artifact; channels must be the ones the model was built for); batch
    and time may be `None`, and are then dynamic in every format.
    """
    import tensorflow as tf

    specs = list(input_signature) if isinstance(
        input_signature, (list, tuple)) else [input_signature]
    if len(specs) != 1 or not hasattr(specs[0], "shape"):
        raise ValueError(
            "VGG4DClassifier.export takes one input, clips: pass "
            "input_signature=[tf.TensorSpec(shape, 'float32')], received "
            f"input_signature={input_signature!r}"
        )
    spec = specs[0]
    shape = tuple(spec.shape)
    validation.check_clip_shape(
        f"The input_signature given to VGG4DClassifier.export({format!r}) "
        f"(height, width and channels are fixed in the artifact; batch and "
        f"time may be None; layout {LAYOUTS[model.time_axis]})",
        shape,
        model.time_axis,
        channels=getattr(model, "input_channels", None),
        known_frame_size=True,
        allow_empty=True,
    )
    dtype = getattr(spec, "dtype", None) or "float32"
    name = getattr(spec, "name", None) or "clips"
    return [tf.TensorSpec(shape, tf.as_dtype(dtype), name=name)]


def _litert_builtins_only(kwargs: dict) -> dict:
    """Converter options restricting LiteRT to its built-in ops.

    Keras' LiteRT export allows Select TF ops, whose artifacts run only
    with the Flex delegate (not in `ai-edge-litert`'s interpreter). Every
    head converts to built-in ops, so ask for those alone; a caller's own
    `target_spec` wins.
    """
    import tensorflow as tf

    if "target_spec" in kwargs or "enable_select_tf_ops" in kwargs:
        return kwargs
    return {
        **kwargs,
        "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]},
    }


def prepare_export(model, filepath, format: str, input_signature, kwargs):
    """Checks an export of `model`; returns the signature and kwargs to use.

    Raises:
        ValueError: an unknown format, a file name without the suffix
            OpenVINO or LiteRT needs, an unbuilt model, a bad signature,
            or `frame_chunk` with ONNX or LiteRT, whose converters cannot
            convert its loop.
        ImportError: the format's exporter is not installed (naming the
            extra to install).
    """
    suffix = check_format(format).suffix
    require(format, "export")
    if format in ("openvino", "litert") and not os.fspath(filepath).endswith(
        suffix
    ):
        raise ValueError(
            f"VGG4DClassifier.export(format={format!r}) writes a {suffix} "
            f"file: `filepath` must end with {suffix!r}; received "
            f"filepath={os.fspath(filepath)!r}. (`keras_vgg4d.export."
            "export_classifier` adds the suffix.)"
        )
    if input_signature is None:
        input_signature = default_input_signature(model)
    else:
        input_signature = check_input_signature(model, input_signature, format)
    frame_chunk = getattr(model, "frame_chunk", None)
    if frame_chunk is not None and format in ("onnx", "litert"):
        raise ValueError(
            f"VGG4DClassifier(frame_chunk={frame_chunk}) runs its "
            "backbone in a TensorArray loop, which the "
            f"{format!r} converter cannot convert (tf_saved_model and "
            "openvino can). Export a copy without "
            "it (the same weights and answers): `copy = VGG4DClassifier."
            "from_config({**model.get_config(), 'frame_chunk': None}); "
            "copy.build(shape); copy.set_weights(model.get_weights())`."
        )
    if format == "litert":
        kwargs = _litert_builtins_only(kwargs)
    return input_signature, kwargs


def export_classifier(model, path, format: str) -> list[str]:
    """Exports `model` for `format`; returns the paths written.

    `VGG4DClassifier.export` with the default signature (batch and time
    dynamic; the frame size and channels the model was built for), quietly,
    to `path` with the format's suffix added when missing (`.onnx`,
    `.xml` (and its `.bin`), `.tflite`; a SavedModel is a directory).

    Args:
        model: A built `VGG4DClassifier`.
        path: Where to write, with or without the suffix.
        format: `"tf_saved_model"`, `"onnx"`, `"openvino"` or `"litert"`.

    Returns:
        The paths written: one, or for OpenVINO the `.xml` and `.bin`.

    Example:

    >>> import tempfile
    >>> import numpy as np
    >>> from keras_vgg4d import VGG4DClassifier
    >>> from keras_vgg4d.export import export_classifier, load_artifact
    >>> model = VGG4DClassifier(2, "lstm", head_options={"units": 4})
    >>> model.build((None, 3, 32, 32, 3))
    >>> folder = tempfile.mkdtemp()
    >>> paths = export_classifier(model, f"{folder}/clips", "tf_saved_model")
    >>> [path.endswith("clips") for path in paths]
    [True]
    >>> artifact = load_artifact(paths[0])  # a SavedModel, by TensorFlow
    >>> artifact.input_shape
    (None, None, 32, 32, 3)
    >>> artifact(np.zeros((1, 5, 32, 32, 3))).shape
    (1, 2)
    """
    path = artifact_path(path, format)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    model.export(path, format=format, verbose=False)
    return written_files(path, format)


def usage(path, format: str, clip_shape=(1, 8, 224, 224, 3)) -> str:
    """Five lines of Python that load the artifact at `path` and run it.

    They need the format's runtime only, not keras_vgg4d nor Keras.

    Args:
        path: The artifact (for OpenVINO, its `.xml`).
        format: The format it was exported in.
        clip_shape: The shape of the example clips in the lines, laid out
            as the model's `time_axis` says; an unknown batch (`None`)
            becomes 1, an unknown time 8.

    Returns:
        The lines, joined by newlines.

    Example:

    >>> from keras_vgg4d.export import usage
    >>> print(usage("clf.onnx", "onnx", (None, None, 64, 64, 3)))
    import numpy as np, onnxruntime as ort
    session = ort.InferenceSession('clf.onnx', providers=["CPUExecutionProvider"])
    clips = np.zeros((1, 8, 64, 64, 3), "float32")  # raw frames, 0..255
    probabilities = session.run(None, {session.get_inputs()[0].name: clips})[0]
    print(probabilities.argmax(axis=-1))
    """
    check_format(format)
    shape = tuple(
        (1 if axis == 0 else 8) if size is None else int(size)
        for axis, size in enumerate(clip_shape)
    )
    return _USAGE[format].format(path=repr(os.fspath(path)), shape=shape)


def infer_format(path) -> str:
    """The format of the artifact at `path`, from its suffix or folder."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return "tf_saved_model"
    for name, spec in FORMATS.items():
        if spec.suffix and path.endswith(spec.suffix):
            return name
    raise ValueError(
        f"Cannot tell the format of {path!r}: expected a SavedModel folder, "
        "or a file ending in .onnx, .xml (OpenVINO) or .tflite (LiteRT). "
        "Pass `format=`."
    )


class LoadedArtifact:
    """An exported classifier in its runtime, called on NumPy clips.

    Made by `load_artifact`. Calling it checks the clips against the
    artifact's input shape (a `ValueError` naming both shapes), casts them
    to float32 and returns the `(batch, num_classes)` probabilities.

    Attributes:
        format: The export format.
        input_shape: The artifact's input shape, `None` where dynamic.
    """

    def __init__(self, format: str, run, input_shape: tuple):
        self.format = format
        self.input_shape = tuple(input_shape)
        self._run = run

    def __call__(self, clips) -> np.ndarray:
        clips = np.asarray(clips, dtype="float32")
        fits = len(clips.shape) == len(self.input_shape) and all(
            expected is None or expected == size
            for expected, size in zip(self.input_shape, clips.shape)
        )
        if not fits:
            raise ValueError(
                f"This {self.format!r} artifact takes clips of shape "
                f"{self.input_shape} (None: any size; the frame size and "
                f"channels are fixed at export); received clips of shape "
                f"{clips.shape}. Resize the frames, or export again with "
                "`input_signature=` for this frame size."
            )
        return np.array(self._run(clips), dtype="float32", copy=True)


def _load_saved_model(path, num_threads):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()

    def run(clips):
        return loaded.serve(clips).numpy()  # `loaded` owns the variables

    return run, tuple(spec.shape)


def _load_onnx(path, num_threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = num_threads
    session = ort.InferenceSession(
        path, options, providers=["CPUExecutionProvider"]
    )
    clips_input = session.get_inputs()[0]
    shape = tuple(d if isinstance(d, int) else None for d in clips_input.shape)
    return (lambda clips: session.run(None, {clips_input.name: clips})[0]), shape


def _load_openvino(path, num_threads, precision="f32"):
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": precision}
    if num_threads:
        config["INFERENCE_NUM_THREADS"] = num_threads
    compiled = ov.Core().compile_model(path, "CPU", config)
    shape = tuple(
        dim.get_length() if dim.is_static else None
        for dim in compiled.inputs[0].get_partial_shape()
    )
    return (lambda clips: compiled(clips)[0]), shape


def _load_litert(path, num_threads):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(
        model_path=path, num_threads=num_threads or os.cpu_count()
    )
    runner = interpreter.get_signature_runner()
    ((name, details),) = runner.get_input_details().items()
    shape = tuple(
        None if size < 0 else int(size) for size in details["shape_signature"]
    )
    return (lambda clips: next(iter(runner(**{name: clips}).values()))), shape


_LOADERS = {
    "tf_saved_model": _load_saved_model,
    "onnx": _load_onnx,
    "openvino": _load_openvino,
    "litert": _load_litert,
}


def load_artifact(
    path, format: str | None = None, num_threads: int | None = None,
    openvino_precision: str = "f32",
) -> LoadedArtifact:
    """Loads an exported classifier into its runtime, callable on NumPy.

    Args:
        path: A SavedModel folder, or an `.onnx`, `.xml` or `.tflite` file.
        format: The format; by default read from `path`.
        num_threads: CPU threads for the runtime; `None` for its default
            (LiteRT: all CPUs).
        openvino_precision: OpenVINO's `INFERENCE_PRECISION_HINT`. The
            default `"f32"` gives `predict`'s answers; OpenVINO's own default
            on CPUs with bfloat16 units (AVX512-BF16, AMX) is `"bf16"`:
            several times faster, but not `predict`'s answers (see
            `docs/deploy.md`).

    Returns:
        A `LoadedArtifact`: `artifact(clips)` returns the probabilities.

    Raises:
        ImportError: the format's runtime is not installed (naming the
            extra to install).
    """
    format = infer_format(path) if format is None else format
    require(format, "run")
    path = os.fspath(path)
    if format == "openvino":
        run, shape = _load_openvino(path, num_threads, openvino_precision)
    else:
        run, shape = _LOADERS[format](path, num_threads)
    return LoadedArtifact(format, run, shape)
