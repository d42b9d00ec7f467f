"""keras_vgg4d.explain: frame importance, Grad-CAM, the picture, the command.

The fast tests use small untrained classifiers (32x32 frames) and check what
must hold for any weights: the explanation reports the model's own
probabilities, occlusion is exactly the model on the clip without the frame,
integrated gradients add up, padding changes nothing, both layouts agree.

The tests marked slow train each head once for the module on the demo
"event" task (the class is what one single frame shows) from a frozen
random backbone, and check that the explanations mean something: they find
that frame and that object, the gradient methods agree with occlusion, and
re-initialising the head changes them (Adebayo et al., 2018).
"""

import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from keras_vgg4d import VGG4DClassifier
from keras_vgg4d import explain_cli
from keras_vgg4d.data import demo_class_names
from keras_vgg4d.data import demo_clips
from keras_vgg4d.explain import METHODS
from keras_vgg4d.explain import Explanation
from keras_vgg4d.explain import explain
from keras_vgg4d.explain import save_explanation

pytestmark = pytest.mark.backends

HEADS = ("framewise", "conv3d", "lstm")
SHAPE = (4, 32, 32, 3)


def run(model, inputs):
    """An eager call of `model` as NumPy: no `predict` graph to trace for
    each new clip length."""
    outputs = model(inputs, training=False)
    if isinstance(outputs, (list, tuple)):
        return [keras.ops.convert_to_numpy(o) for o in outputs]
    return keras.ops.convert_to_numpy(outputs)


def random_clips(n=2, frames=4, seed=0, pad_last=True):
    """Demo "event" clips (one frame differs from the others); the last
    frame of the second clip is padding (zeros)."""
    x, _ = demo_clips(n=max(n, 3), frames=frames, task="event", seed=seed)
    x = x[:n]
    if pad_last and n > 1 and frames > 1:
        x[1, -1] = 0.0
    return x


@pytest.fixture(scope="module")
def models():
    """One small classifier a head, built for clips of SHAPE, its head
    fitted a little on event clips so that its answers are far from
    uniform (an untrained head answers about 1/3 whatever the clip)."""
    keras.utils.set_random_seed(3)
    x, y = demo_clips(n=24, frames=SHAPE[0], task="event", seed=9)
    built, features = {}, None
    for head in HEADS:
        model = VGG4DClassifier(3, temporal_head=head)
        model.build((None, *SHAPE))
        if features is None:
            backbone = model.backbone.get_weights()
            features = run(model.feature_extractor(SHAPE), x)
        model.backbone.set_weights(backbone)
        head_model = model.head_model()
        head_model.compile(keras.optimizers.Adam(1e-2),
                           "sparse_categorical_crossentropy",
                           run_eagerly=True)  # a few steps: no tracing
        head_model.fit(list(features), y, batch_size=12, epochs=4, verbose=0)
        built[head] = model
    return built


# --- what holds for any weights -------------------------------------------


@pytest.mark.parametrize("head", HEADS)
def test_reports_the_models_own_probabilities(models, head):
    model, x = models[head], random_clips()
    found = explain(model, x)
    assert isinstance(found, Explanation) and found.method == "occlusion"
    np.testing.assert_allclose(
        found.probabilities, model.predict(x, verbose=0), atol=1e-5
    )
    np.testing.assert_array_equal(
        found.class_index, found.probabilities.argmax(axis=1)
    )
    assert found.importance.shape == (2, 4)
    assert found.heatmaps.shape == (2, 4, 32, 32)
    assert found.importance.dtype == found.heatmaps.dtype == np.float32
    np.testing.assert_array_equal(
        found.frame_mask, [[True] * 4, [True, True, True, False]]
    )
    # The padded frame: no importance, no heat; heat is never negative.
    assert found.importance[1, 3] == 0 and found.heatmaps[1, 3].max() == 0
    assert found.heatmaps.min() >= 0
    assert found.top_frame[1] != 3


@pytest.mark.parametrize("head", HEADS)
def test_occlusion_is_the_model_without_the_frame(models, head):
    model, x = models[head], random_clips(seed=1)
    classes = np.array([0, 2])
    found = explain(model, x, class_index=classes, method="occlusion")
    full = run(model, x)[[0, 1], classes]
    for t in range(3):  # frame 3 of clip 1 is padding: importance 0
        without = run(model, np.delete(x, t, axis=1))
        np.testing.assert_allclose(
            found.importance[:, t], full - without[[0, 1], classes],
            atol=1e-5,
        )


@pytest.mark.parametrize("head", ["framewise", "lstm"])
def test_occlusion_equals_masking_for_heads_that_skip_masked_frames(
    models, head
):
    model, x = models[head], random_clips(seed=2)
    found = explain(model, x, class_index=1)
    features, mask = run(model.feature_extractor(SHAPE), x)
    head_model = model.head_model()
    full = run(head_model, [features, mask])[:, 1]
    for t in range(4):
        masked = mask.copy()
        masked[:, t] = False
        without = run(head_model, [features, masked])[:, 1]
        expected = np.where(mask[:, t], full - without, 0.0)
        np.testing.assert_allclose(found.importance[:, t], expected,
                                   atol=1e-5)


@pytest.mark.parametrize("head", HEADS)
def test_occlusion_importances_of_all_classes_add_up_to_zero(models, head):
    """Probabilities sum to 1 with and without a frame, for any head."""
    model, x = models[head], random_clips(seed=3)
    total = sum(explain(model, x, class_index=k).importance for k in range(3))
    np.testing.assert_allclose(total, 0.0, atol=1e-5)


@pytest.mark.parametrize("head", HEADS)
def test_integrated_gradients_add_up_to_the_change_from_the_mean_frame(
    models, head
):
    """Completeness: the frames' attributions sum to p(clip) - p(baseline),
    the baseline being every real frame replaced by the clip's mean frame."""
    model, x = models[head], random_clips(seed=4)
    found = explain(model, x, method="integrated_gradients", steps=64)
    features, mask = run(model.feature_extractor(SHAPE), x)
    weights = mask[:, :, None, None, None]
    mean = (features * weights).sum(1, keepdims=True) / weights.sum(1)[:, None]
    baseline = np.broadcast_to(mean, features.shape)
    p_baseline = run(model.head_model(), [baseline, mask])
    rows = np.arange(2)
    change = (found.probabilities[rows, found.class_index]
              - p_baseline[rows, found.class_index])
    np.testing.assert_allclose(found.importance.sum(1), change, atol=2e-3)
    # Not trivially zero: the frames' shares are sizable.
    assert np.abs(found.importance).max() > 1e-3


@settings(max_examples=6, deadline=None)
@given(
    head=st.sampled_from(HEADS),
    method=st.sampled_from(METHODS),
    frames=st.integers(1, 4),
    padding=st.integers(1, 3),
)
def test_appended_padding_changes_no_explanation(
    models, head, method, frames, padding
):
    """Padded frames get nothing, and the real frames' importances and
    heatmaps stay what they were without the padding."""
    model = models[head]
    x = random_clips(frames=frames, seed=frames, pad_last=False)
    padded = np.concatenate(
        [x, np.zeros((2, padding, 32, 32, 3), "float32")], axis=1
    )
    short, long = explain(model, x, method=method), explain(
        model, padded, method=method
    )
    np.testing.assert_allclose(long.probabilities, short.probabilities,
                               atol=1e-5)
    np.testing.assert_allclose(long.importance[:, :frames], short.importance,
                               atol=1e-5)
    np.testing.assert_allclose(long.heatmaps[:, :frames], short.heatmaps,
                               rtol=1e-4, atol=1e-6 * short.heatmaps.max())
    assert not long.importance[:, frames:].any()
    assert not long.heatmaps[:, frames:].any()


def test_time_last_layout_gives_the_same_explanation(models):
    model = models["conv3d"]
    time_last = VGG4DClassifier.from_config(
        {**model.get_config(), "time_axis": -1}
    )
    time_last.build((None, 32, 32, 3, 4))
    time_last.set_weights(model.get_weights())
    x = random_clips(seed=5)
    x_last = np.moveaxis(x, 1, -1)
    for method in ("occlusion", "gradient"):
        major = explain(model, x, method=method)
        last = explain(time_last, x_last, method=method)
        overridden = explain(model, x_last, method=method, time_axis=-1)
        for other in (last, overridden):
            np.testing.assert_allclose(other.importance, major.importance,
                                       atol=1e-6)
            np.testing.assert_allclose(other.heatmaps, major.heatmaps,
                                       atol=1e-6)
    assert last.time_axis == -1 and major.time_axis == 1


def test_without_frame_masking_every_frame_is_read(models):
    model = VGG4DClassifier(3, temporal_head="framewise",
                            mask_padded_frames=False)
    model.build((None, *SHAPE))
    x = random_clips(seed=6)
    found = explain(model, x)
    assert found.frame_mask.all()
    np.testing.assert_allclose(found.probabilities,
                               run(model, x), atol=1e-5)
    assert found.importance[1, 3] != 0  # the zero frame counts here


def test_framewise_heatmap_of_a_frame_depends_on_that_frame_alone(models):
    """The framewise head averages per-frame predictions: the gradient on a
    frame, so its Grad-CAM map, does not see the other frames."""
    model = models["framewise"]
    x = random_clips(n=4, seed=7, pad_last=False)
    other = x.copy()
    other[:, 1:] = random_clips(n=4, seed=8, pad_last=False)[:, 1:]
    compared = 0
    for k in range(3):
        first = explain(model, x, class_index=k, method="gradient")
        second = explain(model, other, class_index=k, method="gradient")
        np.testing.assert_allclose(
            first.heatmaps[:, 0], second.heatmaps[:, 0], rtol=1e-4,
            atol=1e-5 * max(first.heatmaps.max(), 1e-30),
        )
        compared += int((first.heatmaps[:, 0].max(axis=(1, 2)) > 0).sum())
        # The clip's probability, so the importances, do see them.
        assert np.abs(first.importance - second.importance).max() > 1e-4
    assert compared > 0  # some of the compared maps are not all zero


def upsampled_corners(heatmaps):
    """Each map rebuilt from its four corner pixels, as a 2x2 map upsampled
    the way explain upsamples (bilinear)."""
    corners = heatmaps[..., [0, -1], :][..., [0, -1]]
    size = heatmaps.shape[-2:]
    rebuilt = keras.ops.image.resize(
        corners.reshape(-1, 2, 2, 1), size, interpolation="bilinear"
    )
    return keras.ops.convert_to_numpy(rebuilt).reshape(heatmaps.shape)


def test_heatmaps_have_their_layers_resolution(models):
    """block5_conv4 sees a 32x32 frame as 2x2 cells, block3_conv4 as 8x8."""
    model = models["lstm"]
    x = random_clips(seed=9, pad_last=False)
    coarse = explain(model, x, method="gradient").heatmaps
    assert coarse.max() > 0
    np.testing.assert_allclose(upsampled_corners(coarse), coarse,
                               atol=1e-5 * coarse.max())
    fine = explain(model, x, method="gradient",
                   layer_name="block3_conv4").heatmaps
    assert fine.max() > 0
    error = np.abs(upsampled_corners(fine) - fine).max(axis=(2, 3))
    assert (error > 1e-3 * fine.max()).any()


def test_mixed_precision_model():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = VGG4DClassifier(3, temporal_head="conv3d")
    model.build((None, *SHAPE))
    x = random_clips(seed=10)
    for method in ("occlusion", "integrated_gradients"):
        found = explain(model, x, method=method)
        assert found.importance.dtype == np.float32
        assert np.isfinite(found.importance).all()
        assert np.isfinite(found.heatmaps).all()
    np.testing.assert_allclose(found.probabilities,
                               run(model, x), atol=1e-3)


# --- bad input: one table, one test ---------------------------------------


def _explain_with(**overrides):
    """A call of explain on a small model with one argument replaced."""

    def call(models, tmp_path):
        arguments = {"model": models["lstm"], "clips": random_clips()}
        arguments.update(overrides)
        return explain(**arguments)

    return call


def _picture_with(**overrides):
    def call(models, tmp_path):
        x = random_clips()
        arguments = {
            "clip": x, "explanation": explain(models["lstm"], x),
            "path": str(tmp_path / "x.png"),
        }
        arguments.update(overrides)
        return save_explanation(**arguments)

    return call


BAD_INPUTS = [
    # (id, call, pattern the ValueError's message must match)
    ("model is a plain keras model",
     _explain_with(model=keras.Sequential([keras.layers.Dense(2)])),
     r"`model` to be a keras_vgg4d VGG4DClassifier.*Sequential"),
    ("model is None", _explain_with(model=None),
     r"`model` to be a keras_vgg4d VGG4DClassifier.*NoneType"),
    ("layer is not a convolution", _explain_with(layer_name="block5_pool"),
     r"`layer_name` to be one of \['block1_conv1'.*'block5_conv4'\], "
     r"received: layer_name='block5_pool'"),
    ("layer does not exist", _explain_with(layer_name="conv5"),
     r"`layer_name` to be one of .*layer_name='conv5'"),
    ("class index too large", _explain_with(class_index=3),
     r"`class_index` to be an integer from 0 to 2, received: class_index=3"),
    ("class index negative", _explain_with(class_index=-1),
     r"`class_index` to be an integer from 0 to 2"),
    ("class index not an integer", _explain_with(class_index=1.0),
     r"`class_index` to be None, an integer from 0 to 2, or one such "
     r"integer for each of the 2 clips"),
    ("one class index a clip, wrong count", _explain_with(class_index=[0]),
     r"`class_index`.*each of the 2 clips; received: class_index=\[0\]"),
    ("one class index a clip, out of range",
     _explain_with(class_index=[0, 3]),
     r"`class_index`.*class_index=\[0, 3\]"),
    ("clips without a batch axis", _explain_with(clips=random_clips()[0]),
     r"`clips` passed to explain must be clips of rank 5.*rank 4"),
    ("clips time-last for a time-major model",
     _explain_with(clips=np.moveaxis(random_clips(), 1, -1)),
     r"`clips` passed to explain must hold frames of at least 32x32.*"
     r"pass time_axis=-1"),
    ("clips of the wrong channel count",
     _explain_with(clips=random_clips()[..., :1]),
     r"`clips` passed to explain has 1 channels.*built for 3"),
    ("clips with NaN",
     _explain_with(clips=np.where(np.arange(4)[:, None, None, None] == 2,
                                  np.nan, random_clips())),
     r"`clips` passed to explain.*NaN.*first in frame 2"),
    ("frames too small", _explain_with(clips=random_clips()[:, :, :16, :16]),
     r"frames of at least 32x32"),
    ("unknown method", _explain_with(method="saliency"),
     r"`method` to be one of \['occlusion', 'gradient', "
     r"'integrated_gradients'\], received: method='saliency'"),
    ("time axis 2", _explain_with(time_axis=2),
     r"`time_axis` must be 1 .* or -1 .*received time_axis=2"),
    ("batch size 0", _explain_with(batch_size=0),
     r"`batch_size` to be an integer >= 1, received: batch_size=0"),
    ("steps 0", _explain_with(method="integrated_gradients", steps=0),
     r"`steps` to be an integer >= 1"),
    ("picture of another clip", _picture_with(clip=random_clips(frames=3)),
     r"`clip` to be the clip explained, \(batch, time, height, width, "
     r"channels\).*4 frames of 32x32; received shape \(2, 3, 32, 32, 3\)"),
    ("picture of no explanation", _picture_with(explanation={"a": 1}),
     r"`explanation` to be what explain\(\) returns.*dict"),
    ("picture with too few class names", _picture_with(class_names=["a"]),
     r"`class_names` to name the model's 3 classes, received 1"),
    ("picture of a clip not explained", _picture_with(index=2),
     r"`index` to be an integer from 0 to 1, received: index=2"),
    ("picture of no frames", _picture_with(max_frames=0),
     r"`max_frames` to be an integer >= 1"),
]


@pytest.mark.parametrize(
    "call, pattern",
    [pytest.param(call, pattern, id=name)
     for name, call, pattern in BAD_INPUTS],
)
def test_bad_input_is_named(models, tmp_path, call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(models, tmp_path)


# --- the picture -------------------------------------------------------------


def read_png(path):
    from matplotlib import image

    return image.imread(path)


def test_picture_is_a_real_image(models, tmp_path):
    model = models["lstm"]
    x = random_clips()
    found = explain(model, x)
    path = str(tmp_path / "explained.png")
    names = ["disk", "square", "triangle"]
    assert save_explanation(x, found, path, class_names=names, index=1) == path
    pixels = read_png(path)
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 600, pixels.shape
    assert pixels[..., :3].var() > 0
    # One clip of a time-last batch draws the same picture.
    time_last = explain(model, np.moveaxis(x, 1, -1), time_axis=-1)
    other = str(tmp_path / "time_last.png")
    save_explanation(np.moveaxis(x, 1, -1)[1], time_last, other,
                     class_names=names, index=1)
    np.testing.assert_allclose(read_png(other), pixels, atol=1 / 255)


def test_long_clips_show_their_most_important_frames(models, tmp_path):
    x = random_clips(n=1, frames=12, seed=11)
    found = explain(models["framewise"], x, method="gradient")
    narrow, wide = str(tmp_path / "narrow.png"), str(tmp_path / "wide.png")
    save_explanation(x, found, narrow, max_frames=4)
    save_explanation(x, found, wide, max_frames=12)
    assert read_png(wide).shape[1] > read_png(narrow).shape[1]


def test_picture_without_matplotlib(models, monkeypatch, tmp_path):
    x = random_clips()
    found = explain(models["lstm"], x)
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install keras_vgg4d\[plot\]"):
        save_explanation(x, found, str(tmp_path / "x.png"))


# --- the command ------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Paths of a saved small classifier, of clips for it (either layout),
    of a plain Keras model that is not one; the clips; the classifier."""
    folder = tmp_path_factory.mktemp("explain_cli")
    keras.utils.set_random_seed(4)
    model = VGG4DClassifier(3, temporal_head="framewise")
    model.build((None, 3, 32, 32, 3))
    paths = {"model": str(folder / "model.keras"),
             "clips": str(folder / "clips.npy"),
             "time_last": str(folder / "time_last.npy"),
             "flat": str(folder / "flat.npy"),
             "plain": str(folder / "plain.keras")}
    model.save(paths["model"])
    x, _ = demo_clips(n=3, frames=3, task="event", seed=0)
    np.save(paths["clips"], x)
    np.save(paths["time_last"], np.moveaxis(x, 1, -1))
    np.save(paths["flat"], x[0])
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    plain.save(paths["plain"])
    return paths, x, model


def test_command_writes_pictures_and_csv(saved, tmp_path, capsys):
    paths, x, model = saved
    out = str(tmp_path / "out")
    names = ",".join(demo_class_names("event"))
    status = explain_cli.main([paths["model"], paths["clips"], "--out", out,
                               "--class-names", names, "--batch-size", "2"])
    assert status == 0
    assert sorted(os.listdir(out)) == [
        "clip_0000.png", "clip_0001.png", "clip_0002.png", "importance.csv"
    ]
    pixels = read_png(os.path.join(out, "clip_0002.png"))
    assert pixels.shape[0] >= 300 and pixels[..., :3].var() > 0
    lines = open(os.path.join(out, "importance.csv")).read().splitlines()
    assert lines[0] == ("clip,class_index,class_name,probability,top_frame,"
                        "frame_0,frame_1,frame_2")
    found = explain(model, x)  # the model that was saved
    for i, line in enumerate(lines[1:]):
        cells = line.split(",")
        assert int(cells[0]) == i and int(cells[1]) == found.class_index[i]
        assert cells[2] == demo_class_names("event")[found.class_index[i]]
        np.testing.assert_allclose(
            [float(c) for c in cells[5:]], found.importance[i], atol=1e-5
        )
    printed = capsys.readouterr().out
    assert "clip 2: class" in printed and "wrote 3 picture(s)" in printed


@pytest.mark.parametrize(
    "arguments, code, pattern",
    [
        (["missing.keras", "{clips}"], 1,
         r"FileNotFoundError: MODEL.keras: no such file: missing.keras"),
        (["{model}", "{clips}", "--method", "saliency"], 2,
         r"argument --method: invalid choice: 'saliency'.*\(see --help\)"),
        (["{model}", "{clips}", "--time-axis", "2"], 2,
         r"argument --time-axis: invalid choice: 2"),
        (["{model}", "{clips}", "--class-index", "3"], 1,
         r"ValueError: explain expects `class_index` to be an integer from "
         r"0 to 2, received: class_index=3"),
        (["{plain}", "{clips}"], 1,
         r"ValueError: explain expects `model` to be a keras_vgg4d "
         r"VGG4DClassifier.*Sequential"),
        (["{model}", "{flat}"], 1, r"ValueError: .*must be clips of rank 5"),
        (["{model}", "{clips}", "--batch-size", "0"], 1,
         r"ValueError: --batch-size must be >= 1; received 0"),
    ],
    ids=["missing model", "unknown method", "bad time axis",
         "class index out of range", "not a VGG4DClassifier",
         "one clip without batch axis", "batch size 0"],
)
def test_command_errors_are_one_line(saved, tmp_path, capsys, arguments,
                                     code, pattern):
    paths = saved[0]
    argv = [a.format(**paths) for a in arguments]
    argv += ["--out", str(tmp_path / "out")]
    try:
        status = explain_cli.main(argv)
    except SystemExit as exit_:  # argparse
        status = exit_.code
    assert status == code
    error = capsys.readouterr().err
    assert error.startswith("vgg4d-explain: error: ")
    assert len(error.strip().splitlines()) == 1, error
    assert re.search(pattern, error), error


def test_command_names_classes_from_the_searchs_per_class_csv(
        saved, tmp_path, capsys):
    """A model vgg4d-tune saved sits beside its per_class.csv: without
    --class-names, the pictures, the CSV and the printed lines name the
    classes from it."""
    paths, x, model = saved
    folder = tmp_path / "search"
    folder.mkdir()
    shutil.copy(paths["model"], folder / "best_model.keras")
    names = ["left", "right", "up"]
    (folder / "per_class.csv").write_text(
        "class,precision,recall,f1,support\n"
        + "".join(f"{n},0.5,0.5,0.5,2\n" for n in names))
    out = tmp_path / "out"
    argv = [str(folder / "best_model.keras"), paths["clips"], "--out",
            str(out)]
    assert explain_cli.main(argv) == 0
    rows = (out / "importance.csv").read_text().splitlines()[1:]
    found = explain(model, x)
    assert [row.split(",")[2] for row in rows] == [
        names[k] for k in found.class_index]
    assert f"({names[found.class_index[0]]})" in capsys.readouterr().out
    # Written for another model: said, with the way out.
    (folder / "per_class.csv").write_text("class,f1\na,0.5\nb,0.5\n")
    assert explain_cli.main(argv) == 1
    error = capsys.readouterr().err
    assert error.startswith("vgg4d-explain: error: ValueError: ")
    assert "names 2 classes, the model has 3" in error
    assert "--class-names" in error


@pytest.mark.slow
def test_command_runs_as_a_module(saved, tmp_path):
    paths = saved[0]
    out = str(tmp_path / "out")
    result = subprocess.run(
        [sys.executable, "-m", "keras_vgg4d.explain_cli", paths["model"],
         paths["time_last"], "--time-axis", "-1", "--method", "gradient",
         "--out", out],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert len([f for f in os.listdir(out) if f.endswith(".png")]) == 3
    assert "wrote 3 picture(s)" in result.stdout


# --- on the "event" task: do the explanations mean something? ---------------

EVENT = {"frames": 4, "train": 240, "val": 32, "epochs": 20}
# How many correctly classified clips the costlier checks look at.
SOME = 16
# At 32x32, block5_conv4's maps are 2x2; block3_conv4's 8x8 match the
# resolution block5_conv4 has on 128x128 frames.
FINE_LAYER = "block3_conv4"


@pytest.fixture(scope="module")
def event():
    """Each head trained on the "event" task from one frozen random
    backbone (on cached features), and its occlusion explanations of the
    validation clips."""
    frames, train = EVENT["frames"], EVENT["train"]
    x, y, info = demo_clips(n=train + EVENT["val"], frames=frames, size=32,
                            task="event", seed=1, return_info=True)
    keras.utils.set_random_seed(7)
    base = VGG4DClassifier(3)
    base.build((None, *x.shape[1:]))
    backbone = base.backbone.get_weights()
    features, mask = base.feature_extractor(x.shape[1:]).predict(
        x[:train], batch_size=64, verbose=0
    )
    result = {"x": x[train:], "y": y[train:],
              "frame": info["event_frame"][train:],
              "object": info["object_mask"][train:], "heads": {}}
    for head in HEADS:
        keras.utils.set_random_seed(0)
        model = VGG4DClassifier(3, temporal_head=head)
        model.build((None, *x.shape[1:]))
        model.backbone.set_weights(backbone)
        head_model = model.head_model()
        head_model.compile(keras.optimizers.Adam(3e-3),
                           "sparse_categorical_crossentropy")
        head_model.fit([features, mask], y[:train], batch_size=32,
                       epochs=EVENT["epochs"], verbose=0)
        result["heads"][head] = (model, explain(model, result["x"]))
    return result


def correctly_classified(event, head, limit=None):
    """The model, its explanation, and the indices of the validation clips
    it classifies correctly (the first `limit` of them)."""
    model, found = event["heads"][head]
    right = np.flatnonzero(found.class_index == event["y"])
    return model, found, right[:limit]


def event_rank(importance, frame):
    """Rank (0 = most important) of each clip's event frame."""
    ranks = np.argsort(np.argsort(-importance, axis=1), axis=1)
    return ranks[np.arange(len(frame)), frame]


@pytest.mark.slow
@pytest.mark.tensorflow  # trains models: once, on the default backend
@pytest.mark.parametrize("head, accuracy", [
    # The framewise head must call every background frame something: it
    # learns the task less well (chance is 1/3).
    ("framewise", 0.5), ("conv3d", 0.8), ("lstm", 0.8),
])
def test_the_event_frame_is_the_most_important(event, head, accuracy):
    _, found, right = correctly_classified(event, head)
    assert len(right) >= accuracy * EVENT["val"]
    hits = found.top_frame[right] == event["frame"][right]
    assert hits.mean() >= 0.9, hits.mean()


@pytest.mark.slow
@pytest.mark.tensorflow  # trains models: once, on the default backend
@pytest.mark.parametrize("head", HEADS)
def test_gradient_methods_agree_with_occlusion(event, head):
    model, found, right = correctly_classified(event, head, SOME)
    frame = event["frame"][right]
    rank = event_rank(found.importance[right], frame)
    # Integrated gradients follow the head's curve; the plain gradient, a
    # tangent, misses where the probability saturates.
    for method, least in (("integrated_gradients", 0.85), ("gradient", 0.75)):
        other = explain(model, event["x"][right], method=method)
        agree = event_rank(other.importance, frame) == rank
        assert agree.mean() >= least, (method, agree.mean())


def heatmap_peak(heatmap):
    """Centre of the region at least half the maximum; None if all zero."""
    if heatmap.max() <= 0:
        return None
    rows, columns = np.nonzero(heatmap >= 0.5 * heatmap.max())
    return int(round(rows.mean())), int(round(columns.mean()))


@pytest.mark.slow
@pytest.mark.tensorflow  # trains models: once, on the default backend
def test_grad_cam_points_at_the_object(event):
    """Over the heads, the event frame's heatmap peaks inside the object
    far more often than a random point would (the object's share of the
    frame)."""
    inside, share = [], []
    for head in HEADS:
        model, _, right = correctly_classified(event, head, SOME)
        heat = explain(model, event["x"][right], method="gradient",
                       layer_name=FINE_LAYER).heatmaps
        heat = heat[np.arange(len(right)), event["frame"][right]]
        for heatmap, drawn in zip(heat, event["object"][right]):
            peak = heatmap_peak(heatmap)
            inside.append(peak is not None and drawn[peak])
            share.append(drawn.mean())
    assert np.mean(inside) >= max(2 * np.mean(share), 0.35), np.mean(inside)


@pytest.mark.slow
@pytest.mark.tensorflow  # trains models: once, on the default backend
@pytest.mark.parametrize("head", HEADS)
def test_randomising_the_head_changes_the_importances(event, head):
    """The head's weights drawn afresh, as before training: the frame
    importances of the same clips, for the same classes, change."""
    model, found, right = correctly_classified(event, head, SOME)
    trained = model.head.get_weights()
    keras.utils.set_random_seed(11)
    fresh = type(model.head).from_config(model.head.get_config())
    fresh.build((None, None, *model.frame_feature_shape))
    try:
        model.head.set_weights(fresh.get_weights())
        again = explain(model, event["x"][right],
                        class_index=found.class_index[right])
    finally:
        model.head.set_weights(trained)
    rho = [spearmanr(a, b)[0] for a, b in
           zip(found.importance[right], again.importance)]
    assert np.nanmean(rho) < 0.5, np.nanmean(rho)
