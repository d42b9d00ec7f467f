"""A search over a folder of videos caches every frame's features once and
draws each clip's frames anew every epoch from them."""

import os

import keras_tuner
import numpy as np
import pytest

from keras_vgg4d.data import clip_dataset_from_directory
from keras_vgg4d.frame_features import FrameFeatures
from keras_vgg4d.frame_features import SampledFeatures
from keras_vgg4d.frame_features import compute_frame_features
from keras_vgg4d.frame_features import is_clip_dataset
from keras_vgg4d.hypermodel import VGG4DHyperModel
from keras_vgg4d.model import VGG4DClassifier
from feature_testing import FrameMeans
from video_testing import write_index_video

FRAMES = 4


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    lengths = iter([5, 9, 12, 3, 7, 10, 6, 11])
    for name in ("jump", "run"):
        for g in (1, 2):
            for c in (1, 2):
                write_index_video(root / name / f"v_{name}_g{g:02d}_c{c:02d}.mp4",
                                  next(lengths))
    return root


def _datasets(root, sampling="segments", **kwargs):
    return clip_dataset_from_directory(
        str(root), frames=FRAMES, image_size=(32, 32), batch_size=2,
        sampling=sampling, validation_split=0.5, subset="both", seed=3,
        verbose=False, **kwargs,
    )


def _hypermodel(tmp_path, head="lstm"):
    hypermodel = VGG4DHyperModel(2, (FRAMES, 32, 32, 3), heads=(head,),
                                 feature_cache_dir=str(tmp_path))
    hp = keras_tuner.HyperParameters()
    return hypermodel, hypermodel.build(hp), hp


@pytest.mark.parametrize("head", ["framewise", "lstm"])
def test_cached_validation_clips_answer_as_the_raw_clips_do(videos, tmp_path,
                                                             head):
    train, validation = _datasets(videos)
    hypermodel, model, _ = _hypermodel(tmp_path, head)
    frame_features = hypermodel.feature_cache.get(model, validation)
    assert len(frame_features) == len(validation.clip_sources)
    # Every frame of every clip is cached once, at the video's length.
    lengths = np.diff(frame_features.offsets)
    assert lengths.tolist() == [s.length for s in validation.clip_sources]
    sampled = SampledFeatures(frame_features, validation.clip_spec, 2,
                              training=False)
    np.testing.assert_allclose(
        model.head_model().predict(sampled, verbose=0),
        model.predict(validation, verbose=0), rtol=1e-4, atol=1e-5,
    )
    labels = np.concatenate([y for _, y in validation])
    np.testing.assert_array_equal(frame_features.labels, labels)


def test_training_draws_new_frames_each_epoch_reproducibly(videos, tmp_path):
    train, _ = _datasets(videos, sampling="random")
    hypermodel, model, _ = _hypermodel(tmp_path)
    cached = hypermodel.feature_cache.get(model, train)

    def epochs(seed, count=3):
        sampled = SampledFeatures(cached, train.clip_spec, 4, training=True,
                                  seed=seed)
        drawn = []
        for _ in range(count):
            drawn.append(np.concatenate(
                [sampled[i][0][0] for i in range(len(sampled))]))
            sampled.on_epoch_end()
        return drawn

    first, again = epochs(5), epochs(5)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[1], first[2])


def test_a_padded_short_clip_is_masked(videos, tmp_path):
    _, validation = _datasets(videos, short_clips="pad")
    hypermodel, model, _ = _hypermodel(tmp_path)
    cached = hypermodel.feature_cache.get(model, validation)
    sampled = SampledFeatures(cached, validation.clip_spec, 8, training=False)
    (_, mask), _ = sampled[0]
    lengths = np.diff(cached.offsets)
    np.testing.assert_array_equal(mask.sum(axis=1), np.minimum(lengths, FRAMES))


def test_the_search_trains_heads_on_cached_frames(videos, tmp_path):
    train, validation = _datasets(videos)
    hypermodel = VGG4DHyperModel(2, (FRAMES, 32, 32, 3), heads=("lstm",),
                                 feature_cache_dir=str(tmp_path / "cache"))
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_accuracy", max_trials=2,
        directory=str(tmp_path / "search"),
    )
    tuner.search(train, validation_data=validation, epochs=2, verbose=0)
    # Computed once for the whole search: one entry a dataset.
    assert len(hypermodel.feature_cache) == 2
    assert list((tmp_path / "cache").glob("frames-*.npy"))
    best = tuner.get_best_models(1)[0]
    logs = best.evaluate(validation, return_dict=True, verbose=0)
    trial = tuner.oracle.get_best_trials(1)[0]
    history = tuner.oracle.get_trial(trial.trial_id).metrics
    assert history.get_best_value("val_accuracy") == pytest.approx(
        logs["accuracy"])


def test_validation_data_must_be_a_clip_dataset_too(videos, tmp_path):
    train, _ = _datasets(videos)
    hypermodel, model, hp = _hypermodel(tmp_path)
    x = np.zeros((2, FRAMES, 32, 32, 3), "float32")
    with pytest.raises(ValueError, match="subset='both'"):
        hypermodel.fit(hp, model, train, validation_data=(x, np.zeros(2)),
                       epochs=1, verbose=0)


# --- every frame's features, computed once -----------------------------------
#
# Fast tests on `.npy` clips with the stand-in classifier of
# `feature_testing` (a frame's features are its mean per channel), so the
# cached frames can be compared with the clips' own frames.

LENGTHS = [5, 1, 7, 3, 2, 6]  # more clips than are read ahead (4)


def _write_npy_clips(root, lengths=LENGTHS, height=8, width=12,
                     time_last=False):
    """Clip `i` (class "a" or "b" in turn) of `lengths[i]` frames; pixel
    values grow across the width, and with the clip, frame and channel.
    Clip 2's frame 1 is all zero (a padded frame)."""
    for i, length in enumerate(lengths):
        t = np.arange(length)[:, None, None, None]
        w = np.arange(width)[None, None, :, None]
        c = np.arange(3)[None, None, None, :]
        clip = np.broadcast_to(1 + i + 8 * t + 80 * c + w,
                               (length, height, width, 3)).astype("uint8")
        if i == 2:
            clip = clip.copy()
            clip[1] = 0
        if time_last:
            clip = np.moveaxis(clip, 0, -1)
        folder = root / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"clip{i}.npy", clip)
    return root


@pytest.fixture(scope="module")
def npy_clips(tmp_path_factory):
    return _write_npy_clips(tmp_path_factory.mktemp("npy_clips"))


def _npy_dataset(root, **kwargs):
    arguments = dict(frames=4, image_size=(8, 12), batch_size=2,
                     shuffle=False, verbose=False)
    return clip_dataset_from_directory(str(root), **{**arguments, **kwargs})


def _frame_means(source, frame_step=1):
    frames = np.load(source.path)[::frame_step].astype("float32")
    return frames.mean(axis=(1, 2))


@pytest.mark.parametrize("frame_step", [1, 2])
def test_every_frame_is_cached_once_clip_after_clip(npy_clips, tmp_path,
                                                     frame_step):
    dataset = _npy_dataset(npy_clips, sampling="random",
                           frame_step=frame_step)
    model = FrameMeans()
    cached = compute_frame_features(model, dataset, str(tmp_path), chunk=2,
                                    verbose=0, dtype_policy="mixed_bfloat16")
    sources = dataset.clip_sources
    assert model.extractors == [((None, 8, 12, 3), "float32",
                                 "mixed_bfloat16")]
    steps = [-(-s.length // frame_step) for s in sources]
    assert cached.offsets.tolist() == np.cumsum([0, *steps]).tolist()
    assert len(cached) == len(sources)
    # One clip a call, at most `chunk` frames of it.
    assert [shape[:2] for shape in model.shapes] == [
        (1, min(2, n - first)) for n in steps for first in range(0, n, 2)]
    for i, source in enumerate(sources):
        rows = slice(cached.offsets[i], cached.offsets[i + 1])
        np.testing.assert_allclose(cached.features[rows, 0, 0],
                                   _frame_means(source, frame_step),
                                   rtol=1e-6)
    padded = [cached.offsets[i] + 1 for i, s in enumerate(sources)
              if s.path.endswith("clip2.npy")]
    expected_mask = np.ones(sum(steps), bool)
    if frame_step == 1:
        expected_mask[padded] = False
    np.testing.assert_array_equal(cached.frame_mask, expected_mask)
    assert cached.labels.tolist() == [s.label for s in sources]
    # The features live in one memory-mapped .npy file in `directory`.
    assert isinstance(cached.features, np.memmap)
    assert cached.features.dtype == np.float32
    (path,) = tmp_path.glob("frames-*.npy")
    np.testing.assert_array_equal(np.load(path), cached.features)


def test_frames_go_to_a_temporary_folder_and_show_progress(npy_clips, capsys):
    import shutil
    import tempfile

    dataset = _npy_dataset(npy_clips)
    cached = compute_frame_features(FrameMeans(), dataset)
    folder = os.path.dirname(cached.features.filename)
    assert os.path.dirname(folder) == tempfile.gettempdir()
    assert os.path.basename(folder).startswith("vgg4d_features_")
    shutil.rmtree(folder)
    out = capsys.readouterr().out
    assert "6/6" in out and "/clip" in out and "━" in out
    compute_frame_features(FrameMeans(), dataset, verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"sampling": "uniform"},
        {"sampling": "random", "frame_step": 2},
        {"short_clips": "loop"},
        {"image_size": (8, 8), "crop_to_aspect_ratio": True},
        {"image_size": (8, 8), "pad_to_aspect_ratio": True},
        {"image_size": (6, 6), "interpolation": "nearest"},
        {"color_mode": "grayscale"},
    ],
    ids=lambda options: ",".join(f"{k}={v}" for k, v in options.items())
    or "defaults",
)
def test_validation_samples_are_the_frames_the_dataset_gives(npy_clips,
                                                            options):
    """Not training, the cached frames of each clip are the frames the
    dataset itself yields (same sampling, resizing and channels), in the
    same batches and order, padding masked alike."""
    dataset = _npy_dataset(npy_clips, batch_size=4, **options)
    model = FrameMeans()
    cached = compute_frame_features(model, dataset, verbose=0)
    sampled = SampledFeatures(cached, dataset.clip_spec, 4, training=False)
    batches = list(dataset)
    assert len(sampled) == len(batches) == 2
    for (clips, labels), i in zip(batches, range(len(sampled))):
        (features, mask), sampled_labels = sampled[i]
        expected_features, expected_mask = model.expected(clips)
        np.testing.assert_allclose(features, expected_features, rtol=1e-5,
                                   atol=1e-4)
        np.testing.assert_array_equal(mask, expected_mask)
        np.testing.assert_array_equal(sampled_labels, labels)


def test_the_padded_frame_of_a_clip_stays_masked(npy_clips):
    dataset = _npy_dataset(npy_clips, sampling="uniform", frames=7,
                           batch_size=6)
    model = FrameMeans()
    cached = compute_frame_features(model, dataset, verbose=0)
    (_, mask), _ = SampledFeatures(cached, dataset.clip_spec, 6,
                                   training=False)[0]
    lengths = [s.length for s in dataset.clip_sources]
    expected = np.arange(7)[None, :] < np.array(lengths)[:, None]
    expected[[s.path.endswith("clip2.npy")
              for s in dataset.clip_sources].index(True), 1] = False
    np.testing.assert_array_equal(mask, expected)


def _indexed_frames(lengths):
    """FrameFeatures whose frame `r` holds the value `r`; clip `i`'s label
    is `i`, so a sample names the clip and frames it came from."""
    total = sum(lengths)
    return FrameFeatures(
        features=np.arange(total, dtype="float32").reshape(total, 1, 1, 1),
        frame_mask=np.ones(total, bool),
        offsets=np.cumsum([0, *lengths]),
        labels=np.arange(len(lengths), dtype="int32"),
    )


def _spec(**kwargs):
    import types

    return types.SimpleNamespace(
        **{"frames": 4, "sampling": "random", "short_clips": "pad", **kwargs})


def _epochs(sampled, count=3):
    """Each epoch's (clip order, rows drawn for each clip)."""
    epochs = []
    for _ in range(count):
        order, rows = [], {}
        for i in range(len(sampled)):
            (features, mask), labels = sampled[i]
            for clip, clip_rows, clip_mask in zip(labels, features, mask):
                order.append(int(clip))
                rows[int(clip)] = clip_rows.ravel()[clip_mask].astype(int)
        epochs.append((order, rows))
        sampled.on_epoch_end()
    return epochs


def test_training_draws_each_clip_once_an_epoch_anew_and_reproducibly():
    lengths = [9, 12, 3, 10, 15, 8, 11]
    frames = _indexed_frames(lengths)
    sampled = SampledFeatures(frames, _spec(), 3, training=True, seed=11)
    assert len(sampled) == 3
    epochs = _epochs(sampled)
    assert sampled.epoch == 3
    for order, rows in epochs:
        assert sorted(order) == list(range(len(lengths)))
        for clip, clip_rows in rows.items():
            # A window of consecutive frames of that clip (random sampling,
            # frame_step 1: the cached frames are already frame_step apart).
            start, end = frames.offsets[clip], frames.offsets[clip + 1]
            assert len(clip_rows) == min(4, lengths[clip])
            assert start <= clip_rows[0] and clip_rows[-1] < end
            assert np.all(np.diff(clip_rows) == 1)
    orders = [order for order, _ in epochs]
    assert orders[0] != orders[1] != orders[2]
    for clip in (1, 4):  # long clips: new frames each epoch
        draws = [tuple(rows[clip]) for _, rows in epochs]
        assert len(set(draws)) > 1
    again = _epochs(SampledFeatures(frames, _spec(), 3, training=True,
                                    seed=11))
    assert [(o, {k: v.tolist() for k, v in r.items()}) for o, r in again] == [
        (o, {k: v.tolist() for k, v in r.items()}) for o, r in epochs]
    other = _epochs(SampledFeatures(frames, _spec(), 3, training=True,
                                    seed=12))
    assert [o for o, _ in other] != orders


def test_validation_never_shuffles_nor_redraws():
    lengths = [9, 12, 3, 10, 15]
    frames = _indexed_frames(lengths)
    sampled = SampledFeatures(frames, _spec(), 2, training=False, seed=11)
    epochs = _epochs(sampled, count=2)
    for order, rows in epochs:
        assert order == list(range(len(lengths)))
    assert {k: v.tolist() for k, v in epochs[0][1].items()} == {
        k: v.tolist() for k, v in epochs[1][1].items()}


def test_gather_pads_with_masked_zeros_and_keeps_the_dtype():
    cached = FrameFeatures(
        features=np.arange(1, 7, dtype="float16").reshape(6, 1, 1, 1),
        frame_mask=np.array([True, True, False, True, True, True]),
        offsets=np.array([0, 3, 6]),
        labels=np.array([0, 1]),
    )
    features, mask = cached.gather(0, np.array([2, 0, 0], "int32"), frames=5)
    assert features.dtype == np.float16 and features.shape == (5, 1, 1, 1)
    assert features.ravel().tolist() == [3, 1, 1, 0, 0]
    assert mask.tolist() == [False, True, True, False, False]
    features, mask = cached.gather(1, [1, 2], frames=2)
    assert features.ravel().tolist() == [5, 6] and mask.all()


def test_only_a_dataset_with_its_clip_spec_and_sources_is_a_clip_dataset(
        npy_clips):
    import types

    import tensorflow as tf

    dataset = _npy_dataset(npy_clips)
    assert is_clip_dataset(dataset)
    assert not is_clip_dataset(dataset.map(lambda x, y: (x, y)))
    assert not is_clip_dataset(tf.data.Dataset.range(3))
    assert not is_clip_dataset(types.SimpleNamespace(clip_sources=[]))
    assert not is_clip_dataset(types.SimpleNamespace(clip_spec=None))


def test_time_last_clips_cache_the_frames_time_major_clips_do(tmp_path):
    """A time_axis=-1 search over a time-last clip dataset caches the
    features a time-major one does."""
    features = {}
    for time_axis in (1, -1):
        root = _write_npy_clips(tmp_path / str(time_axis), lengths=[3, 2],
                                height=32, width=32,
                                time_last=time_axis == -1)
        dataset = _npy_dataset(root, image_size=(32, 32), time_axis=time_axis)
        model = VGG4DClassifier(2, "framewise", time_axis=time_axis)
        shape = (None, 32, 32, 3) if time_axis == 1 else (32, 32, 3, None)
        model.build((None, *shape))
        if time_axis == -1:
            model.backbone.set_weights(weights)
        weights = model.backbone.get_weights()
        features[time_axis] = compute_frame_features(model, dataset,
                                                     verbose=0).features
    np.testing.assert_allclose(features[-1], features[1], rtol=1e-5)
