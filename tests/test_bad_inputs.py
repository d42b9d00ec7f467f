"""Bad input across the public API: each case fails early, clearly.

One table, one parametrized test. A case is `(id, call, error, pattern)`:
`call(tmp_path)` must raise `error` (that exact type or a subclass) before
any training starts, with a message matching `pattern`, which names the
argument or the value received and what was expected.
"""

import os
import re

import h5py
import keras
import numpy as np
import pytest

from keras_vgg4d.augment import ScipyAugment
from keras_vgg4d.calibration import calibrate
from keras_vgg4d.backbone import TemporalVGG19
from keras_vgg4d import data
from keras_vgg4d.data import demo_class_names
from keras_vgg4d.data import demo_clips
from keras_vgg4d.data import load_arrays
from keras_vgg4d.data import load_folder
from keras_vgg4d.data import load_nifti
from keras_vgg4d.data import load_npz
from keras_vgg4d.data import make_dataset
from keras_vgg4d.data import save_clip_grid
from keras_vgg4d.data import split_balanced
from keras_vgg4d.frame_fold import FrameFold
from keras_vgg4d.heads import Conv3DHead
from keras_vgg4d.heads import FramewiseHead
from keras_vgg4d.heads import LSTMHead
from keras_vgg4d.heads import get_head
from keras_vgg4d.hypermodel import VGG4DHyperModel
from keras_vgg4d.model import VGG4DClassifier
from keras_vgg4d.multiview import multiview_accuracy
from keras_vgg4d.multiview import predict_sources
from keras_vgg4d.multiview import predict_studies
from keras_vgg4d.multiview import predict_views
from keras_vgg4d.multiview import spatial_crops
from keras_vgg4d.multiview import view_frame_indices
from keras_vgg4d.multiview import view_windows
from keras_vgg4d.tuning import search

CLIP = (3, 32, 32, 3)


def clips(n=2, shape=CLIP, fill=1.0):
    return np.full((n, *shape), fill, "float32")


def with_value(value, index=(1, 2, 5, 5, 0)):
    x = clips()
    x[index] = value
    return x


def classifier(time_axis=1, shape=CLIP, **kwargs):
    """A small compiled classifier built for clips of `shape`."""
    model = VGG4DClassifier(
        3, "framewise", time_axis=time_axis,
        head_options={"units": 0}, **kwargs,
    )
    model.build((None, *shape))
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def labels(*values, dtype="int32"):
    return np.asarray(values, dtype)


# --- files -----------------------------------------------------------------


def text_file(tmp_path, name):
    """A text file under a video's or clip's name."""
    path = tmp_path / name
    path.write_text("not a video")
    return str(path)


def weights_file(tmp_path, kind):
    """A weights file that does not fit VGG19 no-top, or a missing path."""
    path = str(tmp_path / f"{kind}.weights.h5")
    if kind == "vgg16":
        keras.applications.VGG16(
            weights=None, include_top=False, input_shape=(32, 32, 3)
        ).save_weights(path)
    elif kind == "truncated":
        keras.applications.VGG19(
            weights=None, include_top=False, input_shape=(32, 32, 3)
        ).save_weights(path)
        size = os.path.getsize(path)
        with open(path, "r+b") as file:
            file.truncate(size // 3)
    elif kind == "empty_h5":
        with h5py.File(path, "w"):
            pass
    return path


def backbone_with_weights(tmp_path, kind):
    layer = TemporalVGG19(weights=weights_file(tmp_path, kind))
    layer.build((None, *CLIP))


def corrupt_npz(tmp_path):
    """A file named `.npz` that holds no NumPy archive."""
    path = tmp_path / "corrupt.npz"
    path.write_bytes(b"these bytes are not a zip archive" * 8)
    return str(path)


def npz_with(tmp_path, **arrays):
    path = str(tmp_path / "clips.npz")
    np.savez(path, **arrays)
    return path


def empty_class_folders(tmp_path):
    for name in ("cats", "dogs"):
        (tmp_path / "clips" / name).mkdir(parents=True)
    return str(tmp_path / "clips")


def saved_model_with_config(tmp_path, **changes):
    """A `.keras` file whose classifier config is edited by `changes`."""
    import json
    import zipfile

    model = classifier()
    path = str(tmp_path / "model.keras")
    model.save(path)
    edited = str(tmp_path / "edited.keras")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(edited, "w") as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"].update(changes)
                data = json.dumps(config).encode()
            out.writestr(item, data)
    return edited


def cli(tmp_path, *argv):
    """Runs `vgg4d-tune` the way its entry point does, errors unhandled."""
    args = search.build_parser().parse_args(
        ["--max-trials", "1", "--epochs", "1", "--num-clips", "12",
         "--frames", "2", "--quiet", "--directory", str(tmp_path / "runs"),
         *argv]
    )
    return search.run(args)


def fit(model, x, y, **kwargs):
    model.fit(x, y, epochs=1, verbose=0, **kwargs)


def hypermodel_fit(x, y):
    hypermodel = VGG4DHyperModel(3, CLIP, heads=("framewise",))
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hypermodel.fit(hp, hypermodel.build(hp), x, y, epochs=1, verbose=0)


CASES = [
    # FrameFold
    ("frame_fold/not_a_layer", lambda p: FrameFold("conv"),
     ValueError, r"layer='conv'"),
    ("frame_fold/time_axis", lambda p: FrameFold(keras.layers.Identity(),
                                                 time_axis=2),
     ValueError, r"time_axis.*2"),
    ("frame_fold/frame_chunk", lambda p: FrameFold(
        keras.layers.Identity(), frame_chunk=0),
     ValueError, r"frame_chunk=0"),
    ("frame_fold/rank", lambda p: FrameFold(keras.layers.Identity())(
        np.zeros((2, 3), "float32")),
     ValueError, r"rank.*\(2, 3\)"),
    # TemporalVGG19
    ("backbone/rank", lambda p: TemporalVGG19()(np.zeros((2, 32, 32, 3))),
     ValueError, r"rank 5.*\(2, 32, 32, 3\)"),
    ("backbone/small_frames", lambda p: TemporalVGG19()(clips(shape=(3, 16, 16, 3))),
     ValueError, r"at least 32x32.*\(2, 3, 16, 16, 3\)"),
    ("backbone/time_and_channels_mixed", lambda p: TemporalVGG19()(
        clips(shape=(32, 32, 3, 4))),
     ValueError, r"at least 32x32.*\(2, 32, 32, 3, 4\).*time_axis=1"),
    ("backbone/unknown_channels", lambda p: TemporalVGG19().build(
        (None, 3, 32, 32, None)),
     ValueError, r"channel count.*None"),
    ("backbone/trainable_blocks", lambda p: TemporalVGG19(trainable_blocks=6),
     ValueError, r"trainable_blocks=6"),
    ("backbone/pooling", lambda p: TemporalVGG19(pooling="sum"),
     ValueError, r"pooling='sum'"),
    ("backbone/weights_missing", lambda p: TemporalVGG19(
        weights=str(p / "nowhere_notop.h5")),
     FileNotFoundError, r"nowhere_notop\.h5"),
    ("backbone/weights_truncated", lambda p: backbone_with_weights(
        p, "truncated"),
     ValueError, r"truncated\.weights\.h5"),
    ("backbone/weights_other_architecture", lambda p: backbone_with_weights(
        p, "vgg16"),
     ValueError, r"vgg16\.weights\.h5"),
    ("backbone/weights_empty_file", lambda p: backbone_with_weights(
        p, "empty_h5"),
     ValueError, r"empty_h5\.weights\.h5"),
    # ScipyAugment
    ("augment/probability", lambda p: ScipyAugment(probability=1.5),
     ValueError, r"probability.*1\.5"),
    ("augment/rotation", lambda p: ScipyAugment(rotation="a lot"),
     ValueError, r"rotation.*'a lot'"),
    ("augment/rank", lambda p: ScipyAugment(rotation=5)(
        np.zeros((2, 32, 32), "float32"), training=True),
     ValueError, r"rank.*\(2, 32, 32\)"),
    # Heads
    ("heads/unknown_head", lambda p: get_head("gru", 3),
     ValueError, r"'gru'.*conv3d.*framewise.*lstm"),
    ("heads/unknown_option", lambda p: get_head("lstm", 3, filters=8),
     ValueError, r"filters.*valid options"),
    ("heads/units", lambda p: LSTMHead(3, units=0),
     ValueError, r"units.*0"),
    ("heads/framewise_pooling", lambda p: FramewiseHead(3, pooling="mean"),
     ValueError, r"pooling.*'avg', 'max'.*'mean'"),
    ("heads/conv3d_temporal_kernel", lambda p: Conv3DHead(
        3, temporal_kernel=True),
     ValueError, r"temporal_kernel.*integer >= 1.*True"),
    # VGG4DClassifier: construction
    ("classifier/unknown_head", lambda p: VGG4DClassifier(3, "gru"),
     ValueError, r"temporal_head='gru'"),
    ("classifier/unknown_head_option", lambda p: VGG4DClassifier(
        3, "conv3d", head_options={"units": 8}),
     ValueError, r"\['units'\].*conv3d"),
    ("classifier/num_classes", lambda p: VGG4DClassifier(1),
     ValueError, r">= 2.*num_classes=1"),
    ("classifier/time_axis", lambda p: VGG4DClassifier(3, time_axis=4),
     ValueError, r"time_axis.*4"),
    ("classifier/augment_not_a_layer", lambda p: VGG4DClassifier(
        3, augment="flip"),
     ValueError, r"augment.*'flip'"),
    ("classifier/weights_missing", lambda p: VGG4DClassifier(
        3, weights=str(p / "missing_notop.h5")),
     FileNotFoundError, r"missing_notop\.h5"),
    # VGG4DClassifier: data given to fit / evaluate / predict
    ("classifier/predict_rank", lambda p: classifier().predict(
        np.zeros((2, 32, 32, 3)), verbose=0),
     ValueError, r"rank 5.*\(2, 32, 32, 3\)"),
    ("classifier/predict_time_axis_mixed_up", lambda p: classifier(
        time_axis=-1, shape=(32, 32, 3, 3)).predict(clips(), verbose=0),
     ValueError, r"\(2, 3, 32, 32, 3\).*time_axis=-1"),
    ("classifier/predict_small_frames", lambda p: classifier().predict(
        clips(shape=(3, 16, 16, 3)), verbose=0),
     ValueError, r"at least 32x32.*16"),
    ("classifier/predict_channel_mismatch", lambda p: classifier().predict(
        clips(shape=(3, 32, 32, 1)), verbose=0),
     ValueError, r"has 1 channels.*built for 3"),
    ("classifier/predict_empty_batch", lambda p: classifier().predict(
        clips(n=0), verbose=0),
     ValueError, r"empty.*\(0, 3, 32, 32, 3\)"),
    ("classifier/predict_zero_length_clip", lambda p: classifier().predict(
        clips(shape=(0, 32, 32, 3)), verbose=0),
     ValueError, r"empty.*\(2, 0, 32, 32, 3\)"),
    ("classifier/predict_nan", lambda p: classifier().predict(
        with_value(np.nan), verbose=0),
     ValueError, r"clip 1 \(NaN, first in frame 2\)"),
    ("classifier/evaluate_inf", lambda p: classifier().evaluate(
        with_value(np.inf), labels(0, 1), verbose=0),
     ValueError, r"clip 1 \(infinite values"),
    ("classifier/fit_labels_out_of_range", lambda p: fit(
        classifier(), clips(), labels(0, 3)),
     ValueError, r"\[0, 3\).*index 1 \(3\)"),
    ("classifier/fit_negative_label", lambda p: fit(
        classifier(), clips(), labels(-1, 0)),
     ValueError, r"index 0 \(-1\)"),
    ("classifier/fit_labels_not_whole", lambda p: fit(
        classifier(), clips(), labels(0.5, 1, dtype="float32")),
     ValueError, r"integers.*index 0 \(0\.5\)"),
    ("classifier/fit_labels_strings", lambda p: fit(
        classifier(), clips(), np.array(["cat", "dog"])),
     ValueError, r"integers.*dtype <U3"),
    ("classifier/fit_labels_one_hot", lambda p: fit(
        classifier(), clips(), np.eye(3)[[0, 1]]),
     ValueError, r"\(2, 3\).*one-hot"),
    ("classifier/fit_labels_count", lambda p: fit(
        classifier(), clips(), labels(0, 1, 2)),
     ValueError, r"2 clips but 3 labels"),
    ("classifier/fit_validation_nan", lambda p: fit(
        classifier(), clips(), labels(0, 1),
        validation_data=(with_value(np.nan), labels(0, 1))),
     ValueError, r"validation_data.*clip 1 \(NaN"),
    ("classifier/load_unknown_config_key", lambda p: keras.saving.load_model(
        saved_model_with_config(p, colour_jitter=0.5,
                                package_version="9.0.0")),
     ValueError, r"9\.0\.0.*colour_jitter"),
    # VGG4DHyperModel
    ("hypermodel/num_classes", lambda p: VGG4DHyperModel(1, CLIP),
     ValueError, r"num_classes=1"),
    ("hypermodel/objective", lambda p: VGG4DHyperModel(
        3, CLIP, objective="val_f1"),
     ValueError, r"objective.*val_macro_f1.*'val_f1'"),
    ("hypermodel/class_weight_unknown_class", lambda p: VGG4DHyperModel(
        3, CLIP, class_weight={5: 2.0}),
     ValueError, r"class 5.*\[0, 3\)"),
    ("hypermodel/class_weight_negative", lambda p: VGG4DHyperModel(
        3, CLIP, class_weight={0: -2.0}),
     ValueError, r"class 0.*-2\.0.*>= 0"),
    ("hypermodel/input_shape_rank", lambda p: VGG4DHyperModel(
        3, (32, 32, 3)),
     ValueError, r"input_shape=\(32, 32, 3\)"),
    ("hypermodel/small_frames", lambda p: VGG4DHyperModel(3, (3, 16, 16, 3)),
     ValueError, r"input_shape=\(3, 16, 16, 3\).*at least 32x32"),
    ("hypermodel/time_and_channels_mixed", lambda p: VGG4DHyperModel(
        3, (32, 32, 3, 3)),
     ValueError, r"input_shape=\(32, 32, 3, 3\).*time_axis=1"),
    ("hypermodel/unknown_channels", lambda p: VGG4DHyperModel(
        3, (3, 32, 32, None)),
     ValueError, r"input_shape=\(3, 32, 32, None\).*channel"),
    ("hypermodel/unknown_head", lambda p: VGG4DHyperModel(
        3, CLIP, heads=("gru",)),
     ValueError, r"heads=\('gru',\)"),
    ("hypermodel/trainable_blocks", lambda p: VGG4DHyperModel(
        3, CLIP, trainable_blocks=9),
     ValueError, r"trainable_blocks=9"),
    ("hypermodel/fit_labels_out_of_range", lambda p: hypermodel_fit(
        clips(), labels(0, 5)),
     ValueError, r"\[0, 3\).*index 1 \(5\)"),
    ("hypermodel/fit_nan", lambda p: hypermodel_fit(
        with_value(np.nan), labels(0, 1)),
     ValueError, r"clip 1 \(NaN"),
    ("hypermodel/fit_channel_mismatch", lambda p: hypermodel_fit(
        clips(shape=(3, 32, 32, 1)), labels(0, 1)),
     ValueError, r"has 1 channels.*built for 3"),
    # keras_vgg4d.data
    ("data/demo_no_clips", lambda p: demo_clips(n=0),
     ValueError, r"n=0"),
    ("data/demo_unknown_task", lambda p: demo_clips(n=4, task="colour"),
     ValueError, r"task='colour'"),
    ("data/demo_class_names_too_many", lambda p: demo_class_names(
        "order", num_classes=9),
     ValueError, r"at most 4 classes.*num_classes=9"),
    ("data/save_clip_grid_rank", lambda p: save_clip_grid(
        np.zeros((2, 32, 32)), str(p / "grid.png")),
     ValueError, r"\(n, time, height, width, channels\).*\(2, 32, 32\)"),
    ("data/probe_video_not_a_video", lambda p: data.probe_video(
        text_file(p, "notes.mp4")),
     ValueError, r"notes\.mp4.*not a video FFmpeg can read"),
    ("data/read_video_missing", lambda p: data.read_video(
        str(p / "missing.mp4")),
     FileNotFoundError, r"missing\.mp4"),
    ("data/write_video_float_frames", lambda p: data.write_video(
        str(p / "out.mp4"), np.zeros((2, 32, 32))),
     ValueError, r"uint8 frames.*float64 \(2, 32, 32\)"),
    ("data/read_clip_path", lambda p: data.read_clip(
        text_file(p, "notes.mp4")),
     ValueError, r"ClipSource.*str.*read_video"),
    ("data/resize_clip_size", lambda p: data.resize_clip(
        np.zeros((2, 32, 32, 3)), image_size=0),
     ValueError, r"resize_clip.*image_size.*0"),
    ("data/sample_frame_indices_frames", lambda p: data.sample_frame_indices(
        10, 0),
     ValueError, r"frames.*>= 1.*frames=0"),
    ("data/group_split_lengths", lambda p: data.group_split(
        [0, 1], ["g1"], 0.5),
     ValueError, r"2 labels but 1 groups"),
    ("data/split_clip_sources_fraction", lambda p: data.split_clip_sources(
        [], 1.5),
     ValueError, r"validation_split.*1\.5"),
    ("data/index_clip_directory_missing", lambda p: data.index_clip_directory(
        str(p / "nowhere")),
     FileNotFoundError, r"nowhere"),
    ("data/load_dicom_missing", lambda p: data.load_dicom(str(p / "scan.dcm")),
     FileNotFoundError, r"scan\.dcm"),
    ("data/scale_intensity_mode", lambda p: data.scale_intensity(
        np.ones(4), intensity="auto"),
     ValueError, r"intensity='auto'"),
    ("data/clip_dataset_sampling", lambda p: data.clip_dataset_from_directory(
        str(p), sampling="tsn"),
     ValueError, r"sampling.*'tsn'"),
    ("data/save_clip_grid_max_clips", lambda p: save_clip_grid(
        clips(), str(p / "grid.png"), max_clips=0),
     ValueError, r"max_clips=0"),
    ("data/load_arrays_rank", lambda p: load_arrays(np.zeros((2, 32, 32))),
     ValueError, r"rank 5.*\(2, 32, 32\)"),
    ("data/load_arrays_zero_length", lambda p: load_arrays(
        clips(shape=(0, 32, 32, 3))),
     ValueError, r"empty.*\(2, 0, 32, 32, 3\)"),
    ("data/load_arrays_nan", lambda p: load_arrays(with_value(np.nan)),
     ValueError, r"clip 1 \(NaN, first in frame 2\)"),
    ("data/load_arrays_ragged", lambda p: load_arrays(
        [np.zeros(CLIP), np.zeros((4, 32, 32, 3))]),
     ValueError, r"clip\(s\) 1 \(4, 32, 32, 3\) differ"),
    ("data/load_arrays_labels_range", lambda p: load_arrays(
        clips(), [0, 7], num_classes=3),
     ValueError, r"\[0, 3\) for num_classes=3.*index 1 \(7\)"),
    ("data/load_npz_missing", lambda p: load_npz(str(p / "none.npz")),
     FileNotFoundError, r"none\.npz"),
    ("data/load_npz_corrupt", lambda p: load_npz(corrupt_npz(p)),
     ValueError, r"corrupt\.npz"),
    ("data/load_npz_missing_key", lambda p: load_npz(npz_with(
        p, clips=clips(), y=[0, 1])),
     ValueError, r"no array named 'x' \(x_key\)"),
    ("data/load_folder_missing", lambda p: load_folder(str(p / "nowhere")),
     FileNotFoundError, r"nowhere"),
    ("data/load_folder_no_clips", lambda p: load_folder(
        empty_class_folders(p), verbose=0),
     ValueError, r"(cats|dogs).*no clip|no clip.*(cats|dogs)"),
    ("data/load_nifti_missing", lambda p: load_nifti(str(p / "scan.nii.gz")),
     FileNotFoundError, r"scan\.nii\.gz"),
    ("data/make_dataset_batch_size", lambda p: make_dataset(
        clips(), labels(0, 1), batch_size=0),
     ValueError, r"batch_size.*0"),
    ("data/split_fraction", lambda p: split_balanced(
        clips(4), labels(0, 1, 0, 1), validation_fraction=1.5),
     ValueError, r"validation_fraction.*1\.5"),
    # Calibration and multi-view answers
    ("calibrate/labels_out_of_range", lambda p: calibrate(
        classifier(), clips(2), labels(0, 5)),
     ValueError, r"calibrate.*\(5\)"),
    ("multiview/view_windows_length", lambda p: view_windows(0, 2),
     ValueError, r"length=0"),
    ("multiview/view_frame_indices_sampling", lambda p: view_frame_indices(
        8, 4, sampling="sideways"),
     ValueError, r"sampling='sideways'"),
    ("multiview/spatial_crops_count", lambda p: spatial_crops(
        32, 32, crops=2),
     ValueError, r"crops=2"),
    ("multiview/predict_views_windows", lambda p: predict_views(
        classifier(), clips(2), num_windows=0),
     ValueError, r"num_windows=0"),
    ("multiview/predict_sources_not_sources", lambda p: predict_sources(
        classifier(), [1, 2]),
     ValueError, r"ClipSource.*predict_views"),
    ("multiview/predict_studies_ids", lambda p: predict_studies(
        classifier(), clips(2), studies=[1]),
     ValueError, r"2 clips but 1 study"),
    ("multiview/accuracy_labels", lambda p: multiview_accuracy(
        classifier(), clips(2), labels=[0]),
     ValueError, r"2 clips but 1 labels"),
    # vgg4d-tune
    ("cli/data_missing", lambda p: cli(p, "--data", str(p / "clips.npz")),
     FileNotFoundError, r"clips\.npz"),
    ("cli/data_corrupt_npz", lambda p: cli(p, "--data", corrupt_npz(p)),
     ValueError, r"corrupt\.npz"),
    ("cli/data_folder_no_clips", lambda p: cli(
        p, "--data", empty_class_folders(p)),
     ValueError, r"(cats|dogs).*no clip|no clip.*(cats|dogs)"),
    ("cli/unknown_head", lambda p: cli(p, "--heads", "framewise,gru"),
     ValueError, r"'gru'"),
    ("cli/small_frames", lambda p: cli(p, "--image-size", "16"),
     ValueError, r"16"),
    ("cli/weights_missing", lambda p: cli(
        p, "--weights", str(p / "vgg.h5")),
     FileNotFoundError, r"vgg\.h5"),
    ("cli/unknown_tuner", lambda p: cli(p, "--tuner", "grid"),
     SystemExit, r"--tuner.*'grid'.*random"),
    ("cli/unknown_option", lambda p: cli(p, "--trials", "3"),
     SystemExit, r"unrecognized arguments: --trials 3"),
]


@pytest.mark.parametrize(
    "call, error, pattern", [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_fails_early_with_a_clear_message(
    call, error, pattern, tmp_path, capsys
):
    with pytest.raises(error) as raised:
        call(tmp_path)
    # argparse prints its message and exits: read it from stderr.
    message = str(raised.value) + capsys.readouterr().err
    assert raised.type is error, (raised.type, message)
    assert re.search(pattern, message, re.S), message


def _public_entry_points():
    """The public classes and functions that take users' arguments.

    Exceptions, and the dataclasses and named tuples loaders return, are
    left out.
    """
    import dataclasses

    import keras_vgg4d
    import keras_vgg4d.data

    objects = [(n, getattr(keras_vgg4d, n)) for n in keras_vgg4d.__all__]
    objects += [(n, getattr(keras_vgg4d.data, n))
                for n in keras_vgg4d.data.__all__]
    return {
        name for name, obj in objects
        if callable(obj) and not dataclasses.is_dataclass(obj)
        and not (isinstance(obj, type) and issubclass(obj, (Exception, tuple)))
    }


def test_the_table_covers_every_public_entry_point():
    """Every public class and function is called with bad input in a case."""
    import inspect

    called = "\n".join(inspect.getsource(case[1]) for case in CASES)
    called += inspect.getsource(hypermodel_fit) + inspect.getsource(classifier)
    missing = sorted(
        name for name in _public_entry_points()
        if not re.search(rf"\b{name}\(", called)
    )
    assert missing == [], f"no bad-input case calls {missing}"
    assert len({case[0] for case in CASES}) == len(CASES)
