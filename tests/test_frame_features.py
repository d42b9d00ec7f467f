"""A search over a folder of videos caches every frame's features once and
draws each clip's frames anew every epoch from them."""

import keras
import keras_tuner
import numpy as np
import pytest

from keras_vgg4d.data import clip_dataset_from_directory
from keras_vgg4d.frame_features import SampledFeatures
from keras_vgg4d.hypermodel import VGG4DHyperModel
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
