"""Every head exports to every format and answers what `predict` answers.

The artifacts are run in their own runtimes (TensorFlow, ONNX Runtime,
OpenVINO, LiteRT's interpreter without the Flex delegate) on clips with a
padded (all-zero) frame, and on other batch sizes and clip lengths than the
model was built for. Every model here is exported right after `build`,
never called before.

Exporting VGG19's 20M weights costs tens of seconds a format, the same for
every head, so the table is tested at two levels:

- every head x masking x format on `HeadProbe`: the artifact's head part
  (frame mask from the raw clips, the head) on a small stand-in for VGG19,
  exported through the same `prepare_export` as `VGG4DClassifier.export`;
- the whole `VGG4DClassifier` (with a `ScipyAugment`, which must not reach
  the artifact) in every format, for the `lstm` head (the case that used to
  fail) and, marked slow, the `conv3d` head; the other tests share these
  artifacts.
"""

import contextlib
import io
import os
import shutil
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_vgg4d import FrameFold
from keras_vgg4d import ScipyAugment
from keras_vgg4d import VGG4DClassifier
from keras_vgg4d.export import FORMATS
from keras_vgg4d.export import export_classifier
from keras_vgg4d.export import load_artifact
from keras_vgg4d.export import prepare_export
from keras_vgg4d.export import usage
from keras_vgg4d.heads import get_head
from keras_vgg4d.masking import nonzero_frames

HEAD_OPTIONS = {
    "framewise": {"units": 4},
    "conv3d": {"filters": 4, "num_layers": 2},
    "lstm": {"units": 4, "num_layers": 2, "bidirectional": True},
}
# The modules each format needs, to export and to run.
NEEDS = {
    "tf_saved_model": (),
    "onnx": ("tf2onnx", "onnxruntime"),
    "openvino": ("openvino",),
    "litert": ("ai_edge_litert",),
}
BUILT_SHAPE = (None, 3, 32, 32, 3)
# What a missing extra's error says to run.
PIP = r'pip install "keras_vgg4d\[{}\]"'
TOLERANCE = 1e-5


def clips(batch, frames, seed):
    """Raw clips; the first one's last frame is padding (all zeros)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (batch, frames, 32, 32, 3)).astype("float32")
    x[0, -1] = 0.0
    return x


# The clips each artifact is checked on: as built, and other batch sizes
# and clip lengths; and those the feature normalization is set from.
CLIP_SETS = {"built": clips(2, 3, 0), "batch1": clips(1, 5, 1),
             "batch3": clips(3, 2, 2)}
CALIBRATION = clips(16, 3, 3)


def excite(head, backbone_weights, features, seed=0):
    """Random weights under which every part of a model moves the answer.

    He-scaled backbone kernels, LeCun-scaled head kernels, and the head's
    feature normalization set to the statistics of the maps that
    `features()` returns with them (with its frame mask; the features of
    `CALIBRATION`), variances floored at a tenth of their mean so that dead
    channels do not blow up rounding: the answers are far from uniform and
    from 0 and 1, and parity within 1e-5 means something.
    """
    rng = np.random.default_rng(seed)
    backbone = {id(weight) for weight in backbone_weights}
    for weight in list(backbone_weights) + head.trainable_weights:
        shape = tuple(weight.shape)
        if len(shape) > 1:
            gain = 2.0 if id(weight) in backbone else 1.0
            value = rng.normal(0, np.sqrt(gain / np.prod(shape[:-1])), shape)
        else:
            value = rng.normal(1.0 if "gamma" in weight.path else 0.0, 0.1,
                               shape)
        weight.assign(value.astype("float32"))
    maps, mask = features()
    real = np.asarray(maps)[np.asarray(mask)]  # (real frames, h, w, c)
    if head.name_in_registry != "conv3d":
        real = real.mean(axis=(1, 2))  # what the head normalizes
    real = real.reshape(-1, real.shape[-1])
    variance = real.var(axis=0)
    head.normalization.moving_mean.assign(real.mean(axis=0))
    head.normalization.moving_variance.assign(
        np.maximum(variance, 0.1 * variance.mean())
    )


class HeadProbe(keras.Model):
    """Raw clips -> a small stand-in for VGG19 -> a temporal head.

    Masks padded frames as `VGG4DClassifier` does, and exports through the
    same `prepare_export`: the head's part of a classifier's artifact, at a
    fraction of the cost of exporting VGG19's weights.
    """

    time_axis = 1

    def __init__(self, head, masking, **kwargs):
        super().__init__(**kwargs)
        self.masking = masking
        self.frames = FrameFold(keras.Sequential([
            keras.layers.Conv2D(8, 3, strides=4, activation="relu"),
            keras.layers.MaxPooling2D(4),
        ]))  # 32x32 frames -> 2x2x8 maps
        self.head = get_head(head, 3, **HEAD_OPTIONS[head])

    def build(self, input_shape):
        self.frames.build(input_shape)
        self.head.build(self.frames.compute_output_shape(input_shape))

    def features(self, clips):
        return self.frames(clips / 255.0)

    def call(self, clips):
        mask = nonzero_frames(clips) if self.masking else None
        return self.head(self.features(clips), mask=mask)

    def export(self, filepath, format="tf_saved_model", verbose=None,
               input_signature=None, **kwargs):
        input_signature, kwargs = prepare_export(
            self, filepath, format, input_signature, kwargs
        )
        return super().export(filepath, format=format, verbose=verbose,
                              input_signature=input_signature, **kwargs)


def run_artifact(model, folder, format, keep=True):
    """Exports `model`, runs the artifact on `CLIP_SETS`; the answers."""
    paths = export_classifier(model, folder / "model", format)
    artifact = load_artifact(paths[0])
    result = {
        "paths": paths,
        "input_shape": artifact.input_shape,
        "got": {k: artifact(x) for k, x in CLIP_SETS.items()},
    }
    del artifact
    if not keep:  # each artifact of a classifier is about 80 MB
        for path in paths:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return result


def assert_same_answers(result, expected, format):
    for name, want in expected.items():
        np.testing.assert_allclose(
            result["got"][name], want, rtol=0, atol=TOLERANCE,
            err_msg=f"{format} artifact, clips {name}",
        )


def table():
    """Every (head, masking, format); without masking, marked slow."""
    return [
        pytest.param(
            head, masking, format,
            id=f"{head}-{'mask' if masking else 'nomask'}-{format}",
            marks=() if masking else (pytest.mark.slow,),
        )
        for head in HEAD_OPTIONS
        for masking in (True, False)
        for format in FORMATS
    ]


@pytest.mark.parametrize("head, masking, format", table())
def test_every_head_exports_with_and_without_masking(
    tmp_path, head, masking, format
):
    for module in NEEDS[format]:
        pytest.importorskip(module)
    probe = HeadProbe(head, masking)
    probe.build(BUILT_SHAPE)
    excite(probe.head, probe.frames.weights, lambda: (
        probe.features(CALIBRATION), nonzero_frames(CALIBRATION)))
    result = run_artifact(probe, tmp_path, format)
    expected = {k: np.asarray(probe(x)) for k, x in CLIP_SETS.items()}
    built = expected["built"]
    # The comparison means something: answers far from uniform and 0 or 1,
    # and the padded frame would change the first clip's answer unmasked.
    assert built.min() > 1e-3 and np.ptp(built, axis=1).max() > 0.05
    if masking:
        x = CLIP_SETS["built"]
        unmasked = probe.head(probe.features(x))
        assert np.abs(unmasked[0] - built[0]).max() > 1e-3
    assert result["input_shape"] == (None, None, 32, 32, 3)
    assert_same_answers(result, expected, format)


# The classifier artifacts other tests read too; the others are deleted
# once checked.
KEPT = "lstm"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`exported(head, format)`: a masked classifier holding a
    `ScipyAugment`, exported right after `build`; the artifact's answers on
    `CLIP_SETS`, its input shape and paths, and `predict`'s answers."""
    cache = {}

    def get(head, format):
        for module in NEEDS[format]:
            pytest.importorskip(module)
        if head not in cache:
            model = VGG4DClassifier(
                3, head, head_options=HEAD_OPTIONS[head],
                augment=ScipyAugment(rotation=10, seed=0),
            )
            model.build(BUILT_SHAPE)
            extractor = model.feature_extractor(CALIBRATION.shape[1:])
            excite(model.head, model.backbone.weights,
                   lambda: extractor(CALIBRATION))
            cache[head] = {"model": model}
        entry = cache[head]
        if format not in entry:
            folder = tmp_path_factory.mktemp(f"{head}_{format}")
            # Exported before the model was ever called.
            entry[format] = run_artifact(entry["model"], folder, format,
                                         keep=head == KEPT)
        if "expected" not in entry:
            entry["expected"] = {
                k: entry["model"].predict(x, verbose=0)
                for k, x in CLIP_SETS.items()
            }
        return entry[format], entry["expected"]

    return get


def classifier_table():
    """The LSTM classifier (the head whose export needed the most work) in
    every format, a Conv3D one in ONNX: the head probes above cover every
    head in every format, at a fraction of the cost of exporting VGG19."""
    return [pytest.param(KEPT, format, id=f"{KEPT}-{format}")
            for format in FORMATS] + [
        pytest.param("conv3d", "onnx", id="conv3d-onnx",
                     marks=pytest.mark.slow)]


@pytest.mark.parametrize("head, format", classifier_table())
def test_classifier_artifact_answers_what_predict_answers(
    exported, head, format
):
    result, expected = exported(head, format)
    assert len(result["paths"]) == (2 if format == "openvino" else 1)
    built = expected["built"]
    assert built.min() > 1e-3 and np.ptp(built, axis=1).max() > 0.05
    assert_same_answers(result, expected, format)


@pytest.mark.parametrize("format", list(FORMATS))
def test_artifact_takes_any_batch_size_and_clip_length(exported, format):
    result, expected = exported(KEPT, format)
    assert result["input_shape"] == (None, None, 32, 32, 3)
    for name in ("batch1", "batch3"):
        got = result["got"][name]
        assert got.shape == (len(CLIP_SETS[name]), 3)
        np.testing.assert_allclose(got, expected[name], atol=TOLERANCE)


def test_scipy_augment_never_reaches_the_artifact(exported):
    from tensorflow.core.protobuf import saved_model_pb2

    result, _ = exported(KEPT, "tf_saved_model")
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(result["paths"][0], "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    graph = proto.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
    assert "While" in ops or "StatelessWhile" in ops  # the LSTM's loop


def test_export_right_after_build_with_time_last(tmp_path):
    model = VGG4DClassifier(2, "lstm", head_options={"units": 4}, time_axis=-1)
    model.build((None, 32, 32, 3, 4))
    (path,) = export_classifier(model, tmp_path / "last", "tf_saved_model")
    artifact = load_artifact(path)
    assert artifact.input_shape == (None, 32, 32, 3, None)
    x = np.moveaxis(clips(2, 5, 3), 1, -1)
    np.testing.assert_allclose(
        artifact(x), model.predict(x, verbose=0), atol=TOLERANCE
    )


@pytest.mark.parametrize("format", list(FORMATS))
def test_usage_lines_load_and_run_the_artifact(exported, format):
    result, expected = exported(KEPT, format)
    text = usage(result["paths"][0], format, clip_shape=(2, 3, 32, 32, 3))
    assert len(text.splitlines()) == 5
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(text, {})
    assert output.getvalue().strip().startswith("[")


def test_wrong_frame_size_names_both_shapes(exported):
    result, _ = exported(KEPT, "tf_saved_model")
    artifact = load_artifact(result["paths"][0])
    with pytest.raises(ValueError, match=r"\(None, None, 32, 32, 3\).*64, 64"):
        artifact(np.zeros((1, 2, 64, 64, 3), "float32"))


@pytest.mark.parametrize(
    "format, module, extra",
    [("onnx", "tf2onnx", "onnx"), ("openvino", "openvino", "openvino")],
)
def test_missing_exporter_names_the_extra(monkeypatch, tmp_path, format,
                                          module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    model = VGG4DClassifier(2, "framewise")  # checked before it is built
    path = str(tmp_path / f"m{FORMATS[format].suffix}")
    with pytest.raises(ImportError, match=PIP.format(extra)):
        model.export(path, format=format)


@pytest.mark.parametrize(
    "suffix, module, extra",
    [(".onnx", "onnxruntime", "onnx"), (".xml", "openvino", "openvino"),
     (".tflite", "ai_edge_litert", "litert")],
)
def test_missing_runtime_names_the_extra(monkeypatch, suffix, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=PIP.format(extra)):
        load_artifact(f"model{suffix}")


@pytest.mark.parametrize("format, suffix", [("openvino", ".xml"),
                                            ("litert", ".tflite")])
def test_a_file_name_without_the_suffix_names_it(tmp_path, format, suffix):
    pytest.importorskip("openvino")
    model = VGG4DClassifier(2, "framewise")
    with pytest.raises(ValueError, match=rf"must end with '\{suffix}'"):
        model.export(str(tmp_path / "model"), format=format)


def test_a_converter_failure_names_the_head_and_format(monkeypatch, tmp_path):
    def fail(*args, **kwargs):
        raise RuntimeError("unsupported op Foo")

    monkeypatch.setattr(keras.Model, "export", fail)
    model = VGG4DClassifier(2, "lstm", head_options={"units": 4})
    model.build(BUILT_SHAPE)
    with pytest.raises(RuntimeError, match="'lstm' head to 'tf_saved_model'"
                       ".*unsupported op Foo"):
        model.export(str(tmp_path / "model"))


def test_export_before_build_says_build_first(tmp_path):
    with pytest.raises(ValueError, match="build"):
        VGG4DClassifier(2).export(str(tmp_path / "m"))


@pytest.mark.parametrize(
    "signature, match",
    [
        ([tf.TensorSpec((None, None, None, None, 3))], "at least 32x32"),
        ([tf.TensorSpec((None, None, 32, 32, None))], "channel count"),
        ([tf.TensorSpec((None, None, 32, 32, 1))], "built for 3"),
        ([tf.TensorSpec((None, 32, 32, 3))], "rank 5"),
        ([tf.TensorSpec((None, 2, 32, 32, 3))] * 2, "one input"),
    ],
)
def test_bad_input_signature_is_named(tmp_path, signature, match):
    model = VGG4DClassifier(2, "framewise")
    model.build(BUILT_SHAPE)
    with pytest.raises(ValueError, match=match):
        model.export(str(tmp_path / "m"), input_signature=signature)


def test_unknown_format_lists_the_formats(tmp_path):
    model = VGG4DClassifier(2, "framewise")
    with pytest.raises(ValueError, match="saved_model.*onnx.*openvino.*litert"):
        model.export(str(tmp_path / "m"), format="torchscript")


@pytest.mark.parametrize(
    "format, suffix", [("onnx", ".onnx"), ("litert", ".tflite")]
)
def test_frame_chunk_error_names_the_format_and_its_fix_works(
    tmp_path, format, suffix
):
    pytest.importorskip("tf2onnx")
    model = VGG4DClassifier(2, "conv3d", head_options={"filters": 4},
                            frame_chunk=2)
    model.build(BUILT_SHAPE)
    with pytest.raises(ValueError, match=rf"frame_chunk=2.*'{format}'.*copy"):
        model.export(str(tmp_path / f"m{suffix}"), format=format)
    # The fix the message gives: a copy without frame_chunk.
    config = {**model.get_config(), "frame_chunk": None}
    copy = VGG4DClassifier.from_config(config)
    copy.build(BUILT_SHAPE)
    copy.set_weights(model.get_weights())
    x = clips(2, 3, 4)
    np.testing.assert_allclose(
        copy.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


def test_a_callers_own_signature_is_kept(tmp_path):
    """A caller's own signature (here a static batch and time) is kept."""
    probe = HeadProbe("framewise", True)
    probe.build(BUILT_SHAPE)
    path = str(tmp_path / "static")
    probe.export(path, verbose=False,
                 input_signature=[keras.InputSpec(shape=(2, 3, 32, 32, 3))])
    artifact = load_artifact(path)
    assert artifact.input_shape == (2, 3, 32, 32, 3)
    x = CLIP_SETS["built"]
    np.testing.assert_allclose(artifact(x), probe(x), atol=TOLERANCE)
