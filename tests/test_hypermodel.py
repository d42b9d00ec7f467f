import numpy as np
import pytest
import tensorflow as tf
import keras
import keras_tuner

from keras_vgg4d.data import demo_clips
from keras_vgg4d.hypermodel import VGG4DHyperModel
from keras_vgg4d.model import VGG4DClassifier

pytestmark = pytest.mark.backends

CLIP_SHAPE = (3, 32, 32, 3)


@pytest.fixture(scope="module")
def clips():
    x, y = demo_clips(n=24, frames=3, size=32, task="appearance", seed=0)
    return x[:18], y[:18], x[18:], y[18:]


def test_defaults_and_inactive_hyperparameters():
    hp = keras_tuner.HyperParameters()
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE)
    model = hypermodel.build(hp)
    assert isinstance(model, VGG4DClassifier)
    # A frozen, random backbone, time-major clips, padded frames masked:
    # trials train their heads on cached features.
    assert hypermodel.uses_feature_cache
    assert model.backbone.trainable_weights == []
    assert model.backbone.weights_source is None
    assert model.time_axis == 1 and model.mask_padded_frames is True
    assert model.augment is None
    assert model.temporal_head == "framewise"
    assert hp.values == {
        "temporal_head": "framewise",
        "framewise_units": 0,
        "framewise_pooling": "avg",
        "learning_rate": 3e-3,
        "dropout": 0.0,
    }
    # The learning rate is searched on a log scale centred on the default.
    rate = next(h for h in hp.space if h.name == "learning_rate")
    assert (rate.min_value, rate.max_value) == pytest.approx((3e-4, 3e-2))
    # The inactive heads' hyperparameters are declared, but conditional.
    names = {h.name for h in hp.space}
    assert {"conv3d_filters", "lstm_units", "lstm_bidirectional"} <= names
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(3e-3)
    assert model.loss == "sparse_categorical_crossentropy"


def test_fixed_overrides():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("temporal_head", "lstm")
    hp.Fixed("learning_rate", 0.005)
    model = VGG4DHyperModel(2, CLIP_SHAPE).build(hp)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.temporal_head == "lstm"
    assert model.head.units == 64 and not model.head.bidirectional
    assert "framewise_units" not in hp.values
    assert hp.values["lstm_units"] == 64
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)


def test_heads_subset_restricts_the_choice():
    hp = keras_tuner.HyperParameters()
    VGG4DHyperModel(2, CLIP_SHAPE, heads=("conv3d",)).build(hp)
    assert hp.values["temporal_head"] == "conv3d"
    assert hp.get_config()["space"][0]["config"]["values"] == ["conv3d"]


_EXPECTS = r"^VGG4DHyperModel expects "


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 1}, _EXPECTS + r"`num_classes` to be an integer >= "
                                       r"2, received: num_classes=1$"),
        ({"input_shape": (32, 32, 3)},
         _EXPECTS + r"`input_shape` of one clip without the batch axis, "
                    r"\(time, height, width, channels\), received: "
                    r"input_shape=\(32, 32, 3\)$"),
        ({"input_shape": (3, 16, 16, 3)},
         r"^VGG4DHyperModel's input_shape=\(3, 16, 16, 3\) must hold frames "
         r"of at least 32x32"),
        ({"heads": ("framewise", "gru")},
         _EXPECTS + r"`heads` to be distinct names from \['conv3d', "
                    r"'framewise', 'lstm'\], received: heads=\('framewise', "
                    r"'gru'\)$"),
        ({"heads": ()}, _EXPECTS + r"`heads` .*, received: heads=\(\)$"),
        ({"heads": ("lstm", "conv3d", "lstm")},
         _EXPECTS + r"`heads` .*, received: heads=\('lstm', 'conv3d', "
                    r"'lstm'\)$"),
        ({"trainable_blocks": 6}, _EXPECTS + r"`trainable_blocks` to be an "
                                             r"integer from 0 to 5, received: "
                                             r"trainable_blocks=6$"),
        ({"time_axis": 0}, r"^`time_axis` must be 1 for .* or -1 for .*; "
                           r"received time_axis=0$"),
        ({"objective": "accuracy"},
         _EXPECTS + r"`objective` to be one of \['val_accuracy', 'val_auc', "
                    r"'val_loss', 'val_macro_f1'\], received: "
                    r"objective='accuracy'$"),
        ({"cache_features": "yes"}, _EXPECTS + r"`cache_features` to be True "
                                               r"or False, received: "
                                               r"cache_features='yes'$"),
        ({"mask_padded_frames": 1}, _EXPECTS + r"`mask_padded_frames` to be "
                                               r"True or False, received: "
                                               r"mask_padded_frames=1$"),
        ({"class_weight": {2: 1.0}}, r"^class_weight names class 2, which is "
                                     r"not a class index in \[0, 2\)$"),
        ({"class_weight": "inverse"}, r"^class_weight must be None, "
                                      r"'balanced' or a dict"),
    ],
)
def test_bad_arguments(kwargs, match):
    """Each wrong argument is named, by the class that received it."""
    arguments = {"num_classes": 2, "input_shape": CLIP_SHAPE, **kwargs}
    with pytest.raises(ValueError, match=match):
        VGG4DHyperModel(**arguments)


def test_every_trial_shares_one_backbone():
    hypermodel = VGG4DHyperModel(2, CLIP_SHAPE)
    first = hypermodel.build(keras_tuner.HyperParameters())
    second = hypermodel.build(keras_tuner.HyperParameters())
    for a, b in zip(first.backbone.weights, second.backbone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_random_search_with_feature_cache(tmp_path, clips):
    x_train, y_train, x_val, y_val = clips
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE)
    assert hypermodel.uses_feature_cache
    tuner = keras_tuner.RandomSearch(
        hypermodel,
        objective="val_accuracy",
        max_trials=3,
        directory=str(tmp_path),
        seed=1,
    )
    tuner.search(x_train, y_train, validation_data=(x_val, y_val),
                 epochs=2, batch_size=6, verbose=0)
    assert len(tuner.oracle.trials) == 3
    # Features of the training and the validation clips, computed once each.
    assert len(hypermodel.feature_cache) == 2
    best = tuner.get_best_models(1)[0]
    assert isinstance(best, VGG4DClassifier)
    # The whole model predicts on raw clips as its head did on the features.
    cached = hypermodel.feature_cache.get(best, x_val)
    np.testing.assert_allclose(
        best.predict(x_val, verbose=0),
        best.head_model().predict(cached.inputs, verbose=0),
        rtol=1e-4,
        atol=1e-5,
    )
    path = str(tmp_path / "best.keras")
    best.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(
        restored.predict(x_val, verbose=0), best.predict(x_val, verbose=0),
        rtol=1e-5, atol=1e-6,
    )
    score = tuner.oracle.get_best_trials(1)[0].score
    _, accuracy = best.evaluate(x_val, y_val, verbose=0)
    assert accuracy == pytest.approx(score, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("tuner_class", ["Hyperband", "BayesianOptimization"])
def test_other_tuners_with_datasets(tmp_path, clips, tuner_class):
    x_train, y_train, x_val, y_val = clips
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(6)
    validation = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(6)
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, heads=("framewise",))
    if tuner_class == "Hyperband":
        tuner = keras_tuner.Hyperband(
            hypermodel, objective="val_accuracy", max_epochs=2, factor=2,
            hyperband_iterations=1, directory=str(tmp_path), seed=1,
        )
        tuner.search(train, validation_data=validation, verbose=0)
    else:
        tuner = keras_tuner.BayesianOptimization(
            hypermodel, objective="val_accuracy", max_trials=2,
            directory=str(tmp_path), seed=1,
        )
        tuner.search(train, validation_data=validation, epochs=1, verbose=0)
    assert len(tuner.oracle.trials) >= 2
    assert len(hypermodel.feature_cache) == 2
    best = tuner.get_best_models(1)[0]
    assert best.predict(x_val, verbose=0).shape == (6, 3)


@pytest.mark.slow
def test_search_without_cache_when_backbone_trains(tmp_path, clips):
    x_train, y_train, x_val, y_val = clips
    hypermodel = VGG4DHyperModel(3, CLIP_SHAPE, heads=("framewise",),
                                 trainable_blocks=1)
    assert not hypermodel.uses_feature_cache
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_accuracy", max_trials=1,
        directory=str(tmp_path),
    )
    tuner.search(x_train, y_train, validation_data=(x_val, y_val),
                 epochs=1, batch_size=6, verbose=0)
    assert len(hypermodel.feature_cache) == 0
    best = tuner.get_best_models(1)[0]
    assert len(best.trainable_weights) > len(best.head.trainable_weights)
    assert best.predict(x_val, verbose=0).shape == (6, 3)


# `validation_split` with the cache: tests/test_cache_path.py checks that it
# trains and validates on the clips the plain path does.


# --- the search space: the documented one ------------------------------------


def _documented_space():
    """The table of hyperparameters in docs/search.md: name -> (values,
    default), values a list, or (low, high, "log" or step)."""
    import ast
    import pathlib
    import re

    text = (pathlib.Path(__file__).parents[1] / "docs" / "search.md").read_text()
    # The table under its header row, up to the blank line that ends it.
    table = text.split("| hyperparameter | values | default |\n", 1)[1]
    table = table.split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \| (.+?) \|$", table, re.M)

    def literal(item):
        return ast.literal_eval(item.strip().strip("`"))

    space = {}
    for name, values, default in rows:
        if name == "temporal_head":
            continue
        span = re.fullmatch(r"(\S+) to (\S+), (log scale|step (\S+))", values)
        if span:
            low, high, _, step = span.groups()
            values = (literal(low), literal(high),
                      "log" if step is None else literal(step))
        else:
            values = [literal(v) for v in values.split(", ")]
        space[name] = (values, literal(default))
    return space


def test_the_declared_search_space_is_the_documented_one():
    hp = keras_tuner.HyperParameters()
    VGG4DHyperModel(2, CLIP_SHAPE).build(hp)
    documented = _documented_space()
    declared = {}
    for p in hp.space[1:]:
        config = p.get_config()
        if isinstance(p, keras_tuner.engine.hyperparameters.Boolean):
            values = [False, True]
        elif isinstance(p, keras_tuner.engine.hyperparameters.Int):
            values = list(range(p.min_value, p.max_value + 1, p.step))
        elif isinstance(p, keras_tuner.engine.hyperparameters.Float):
            values = (p.min_value, p.max_value,
                      "log" if p.sampling == "log" else p.step)
            assert p.sampling in ("log", "linear")
        else:
            values = config["values"]
        declared[p.name] = (values, p.default)
    assert declared == documented
    assert hp.space[0].name == "temporal_head"


def test_heads_may_be_one_name_and_the_first_is_the_default():
    hypermodel = VGG4DHyperModel(2, CLIP_SHAPE, heads="lstm")
    assert hypermodel.heads == ("lstm",)
    hp = keras_tuner.HyperParameters()
    VGG4DHyperModel(2, CLIP_SHAPE, heads=["conv3d", "lstm"]).build(hp)
    assert hp.space[0].values == ["conv3d", "lstm"]
    assert hp.space[0].default == "conv3d" == hp.values["temporal_head"]


def test_an_unknown_head_names_the_known_ones_and_the_fix():
    hp = keras_tuner.HyperParameters()
    with pytest.raises(ValueError, match=(
            r"^VGG4DHyperModel has no search space for the head 'gru'; it "
            r"has spaces for \['conv3d', 'framewise', 'lstm'\]\. Override "
            r"`declare_head_hyperparameters` to add one\.$")):
        VGG4DHyperModel(2, CLIP_SHAPE).declare_head_hyperparameters(hp, "gru")


# --- what each argument reaches ------------------------------------------------


def test_the_arguments_reach_every_trial_model():
    """Time last, frames unmasked, two blocks trained, an augmentation:
    each trial's model has them (its own copy of the augmentation), and a
    trained backbone or an augmentation turns the cache off."""
    from keras_vgg4d.augment import ScipyAugment

    augment = ScipyAugment(flip="horizontal", seed=3)
    hypermodel = VGG4DHyperModel(
        2, (32, 32, 3, 2), heads=("framewise",), time_axis=-1,
        mask_padded_frames=False, trainable_blocks=2, augment=augment,
        precision="bfloat16", class_weight={1: 2.0})
    assert not hypermodel.uses_feature_cache
    assert hypermodel.precision == "bfloat16"
    assert hypermodel.feature_cache.dtype_policy == "mixed_bfloat16"
    assert hypermodel.class_weight == {1: 2.0}
    assert hypermodel.input_channels == 3
    first = hypermodel.build(keras_tuner.HyperParameters())
    second = hypermodel.build(keras_tuner.HyperParameters())
    reference = VGG4DClassifier(2, trainable_blocks=2)
    reference.build((None, 2, 32, 32, 3))
    for model in (first, second):
        assert model.time_axis == -1 and model.mask_padded_frames is False
        assert len(model.backbone.trainable_weights) == len(
            reference.backbone.trainable_weights) > 0
        assert type(model.augment) is ScipyAugment
        assert model.augment is not augment
        assert model.augment.get_config() == augment.get_config()
    assert first.augment is not second.augment
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3, 2))
    assert first.predict(x, verbose=0).shape == (1, 2)
    assert not VGG4DHyperModel(2, CLIP_SHAPE, trainable_blocks=1
                               ).uses_feature_cache
    assert not VGG4DHyperModel(2, CLIP_SHAPE, cache_features=False
                               ).uses_feature_cache


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    from vgg_testing import scaled_random_vgg

    vgg = scaled_random_vgg(keras.applications.VGG19)
    path = tmp_path_factory.mktemp("weights") / "vgg19_notop.weights.h5"
    vgg.save_weights(str(path))
    return str(path), vgg.get_layer("block5_conv4").get_weights()[0]


def test_a_weights_file_is_read_once_a_search(weights_file, tmp_path):
    """The first trial's backbone loads the file; later trials share its
    weights and do not read the file again (it may be gone). A backbone
    from a file is never copied into the cache directory."""
    import os
    import shutil

    path = str(tmp_path / "vgg19_notop.weights.h5")
    shutil.copy(weights_file[0], path)
    hypermodel = VGG4DHyperModel(2, CLIP_SHAPE, heads=("framewise",),
                                 weights=path,
                                 feature_cache_dir=str(tmp_path / "cache"))
    first = hypermodel.build(keras_tuner.HyperParameters())
    kernels = [w for w in first.backbone.get_weights() if w.ndim == 4]
    np.testing.assert_array_equal(kernels[-1], weights_file[1])
    os.remove(path)
    second = hypermodel.build(keras_tuner.HyperParameters())
    for a, b in zip(first.backbone.get_weights(),
                    second.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "cache").exists() or not any(
        (tmp_path / "cache").iterdir())


@pytest.mark.parametrize("kwargs", [{"trainable_blocks": 1},
                                    {"cache_features": False}])
def test_no_backbone_is_written_where_the_cache_does_not_apply(tmp_path,
                                                              kwargs):
    cache = tmp_path / "cache"
    hypermodel = VGG4DHyperModel(2, CLIP_SHAPE, heads=("framewise",),
                                 feature_cache_dir=str(cache), **kwargs)
    hypermodel.build(keras_tuner.HyperParameters())
    assert not cache.exists() or not any(cache.iterdir())


def test_the_backbone_is_written_into_a_new_or_existing_cache_folder(tmp_path):
    """`feature_cache_dir` may exist already or not (nested); either way a
    later search over it rebuilds the same backbone."""
    for folder in (tmp_path, tmp_path / "a" / "b"):
        first = VGG4DHyperModel(2, CLIP_SHAPE, heads=("framewise",),
                                feature_cache_dir=str(folder))
        model = first.build(keras_tuner.HyperParameters())
        keras.utils.set_random_seed(99)
        again = VGG4DHyperModel(2, CLIP_SHAPE, heads=("framewise",),
                                feature_cache_dir=str(folder)).build(
                                    keras_tuner.HyperParameters())
        for a, b in zip(model.backbone.get_weights(),
                        again.backbone.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_a_legacy_compile_override_still_compiles_with_a_warning():
    """Subclasses written for 0.1 override `_compile`: it still runs, on
    the classifier, and a DeprecationWarning points at the subclass."""
    with pytest.warns(DeprecationWarning) as record:
        class Legacy(VGG4DHyperModel):
            def _compile(self, model, hp):
                super()._compile(model, hp)
                self.compiled_by = (model, hp)

    hp = keras_tuner.HyperParameters()
    legacy = Legacy(2, CLIP_SHAPE, heads=("framewise",))
    model = legacy.build(hp)
    (warning,) = [w for w in record if w.category is DeprecationWarning]
    assert str(warning.message) == (
        "Overriding `VGG4DHyperModel._compile` is deprecated; override "
        "`compile_model(model, hp)` instead.")
    assert warning.filename == __file__
    assert legacy.compiled_by[0] is model and legacy.compiled_by[1] is hp
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        VGG4DHyperModel(2, CLIP_SHAPE, heads=("framewise",)).build(
            keras_tuner.HyperParameters())


# --- fit: what Keras is asked to train -----------------------------------------

SMALL = (2, 32, 32, 3)


@pytest.fixture
def keras_fit(monkeypatch):
    """Records each call of `keras.Model.fit`, and trains nothing.

    `VGG4DHyperModel.fit` ends in one call of Keras' `fit`: on the
    classifier (without the cache) or on its head model (with it). These
    tests check that call; tests/test_cache_path.py trains both ways.
    """
    import types

    calls = []

    def fit(self, x=None, y=None, **kwargs):
        calls.append(types.SimpleNamespace(model=self, x=x, y=y,
                                           kwargs=kwargs))
        return keras.callbacks.History()

    monkeypatch.setattr(keras.Model, "fit", fit)
    return calls


def _trial(num_classes=3, shape=SMALL, **kwargs):
    hypermodel = VGG4DHyperModel(num_classes, shape, heads=("framewise",),
                                 **kwargs)
    hp = keras_tuner.HyperParameters()
    return hypermodel, hypermodel.build(hp), hp


def _arrays(n, seed=0, shape=SMALL):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, *shape)).astype("float32")
    return x, rng.integers(0, 3, n)


def _assert_features(inputs, cached):
    np.testing.assert_array_equal(inputs[0], cached.features)
    np.testing.assert_array_equal(inputs[1], cached.mask)


def _batches(x, y=None, batch_size=None):
    """`(inputs, labels, batch sizes)` a head model's `fit` gets, from a
    dataset of `((features, mask), labels)` batches or from arrays."""
    if not isinstance(x, tf.data.Dataset):
        return list(x), y, [len(y[i:i + batch_size])
                            for i in range(0, len(y), batch_size)]
    batches = list(x.as_numpy_iterator())
    inputs = [np.concatenate([b[0][i] for b in batches]) for i in (0, 1)]
    return (inputs, np.concatenate([b[1] for b in batches]),
            [len(b[1]) for b in batches])


def _sorted(inputs, labels):
    """The clips ordered by their features: what a shuffled epoch holds."""
    order = np.argsort([row.tobytes() for row in
                        inputs[0].reshape(len(labels), -1)])
    return [a[order] for a in inputs], labels[order]


def _assert_same_clips(inputs, labels, cached, expected_labels):
    (features, mask), labels = _sorted(inputs, labels)
    (want, want_mask), want_labels = _sorted(cached.inputs, expected_labels)
    np.testing.assert_array_equal(features, want)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(labels, want_labels)


@pytest.mark.tensorflow  # reads the head's tf.data batches
@pytest.mark.parametrize(
    "pack", [tuple, list, lambda v: (*v, np.ones(len(v[1])))],
    ids=["tuple", "list", "with_sample_weights"])
def test_the_cached_fit_trains_the_head_on_the_same_clips(keras_fit, pack):
    from keras_vgg4d.feature_cache import OnWholeModel

    hypermodel, model, hp = _trial()
    x, y = _arrays(5)
    val_x, val_y = _arrays(3, seed=1)
    callback = keras.callbacks.Callback()
    hypermodel.fit(hp, model, x, y, validation_data=pack((val_x, val_y)),
                   batch_size=2, epochs=3, verbose=0, shuffle=False,
                   callbacks=[callback])
    (call,) = keras_fit
    # The head trains through the search's shared compiled step.
    assert call.model.name == "shared_head_model"
    assert isinstance(call.model.optimizer, keras.optimizers.Adam)
    assert float(call.model.optimizer.learning_rate) == pytest.approx(
        hp.get("learning_rate"))
    assert call.model.loss == "sparse_categorical_crossentropy"
    # In order (shuffle=False), in batches of 2, validated in batches of 2.
    inputs, labels, sizes = _batches(call.x)
    _assert_features(inputs, hypermodel.feature_cache.get(model, x))
    np.testing.assert_array_equal(labels, y)
    assert sizes == [2, 2, 1]
    val_inputs, labels, sizes = _batches(call.kwargs["validation_data"])
    _assert_features(val_inputs, hypermodel.feature_cache.get(model, val_x))
    np.testing.assert_array_equal(labels, val_y)
    assert sizes == [2, 1]
    assert len(hypermodel.feature_cache) == 2
    assert {k: call.kwargs[k] for k in ("epochs", "verbose",
                                         "class_weight")} == {
        "epochs": 3, "verbose": 0, "class_weight": None}
    # Between the shared step's two callbacks that move the trial's weights.
    (_, wrapped, _) = call.kwargs["callbacks"]
    assert type(wrapped) is OnWholeModel
    assert wrapped.callback is callback and wrapped.whole_model is model


@pytest.mark.parametrize("fit_kwargs, on_disk", [
    ({"sample_weight": np.arange(1.0, 6.0)}, False),
    ({"steps_per_epoch": 2}, False),
    ({"shuffle": "batch"}, False),
    ({}, True),
], ids=["sample_weight", "steps_per_epoch", "shuffle_batch", "on_disk"])
def test_what_a_dataset_cannot_say_keeps_the_arrays(keras_fit, tmp_path,
                                                     fit_kwargs, on_disk):
    """Features on disk stay memory-mapped, and `fit` arguments about
    samples or steps reach Keras' `fit` with the arrays they describe."""
    cache = {"feature_cache_dir": str(tmp_path), "memory_limit_bytes": 0}
    hypermodel, model, hp = _trial(**(cache if on_disk else {}))
    x, y = _arrays(5)
    hypermodel.fit(hp, model, x, y, batch_size=2, verbose=0, **fit_kwargs)
    (call,) = keras_fit
    cached = hypermodel.feature_cache.get(model, x)
    assert isinstance(cached.features, np.memmap) == on_disk
    _assert_features(call.x, cached)
    np.testing.assert_array_equal(call.y, y)
    assert call.kwargs["batch_size"] == 2
    for name, value in fit_kwargs.items():
        np.testing.assert_array_equal(call.kwargs[name], value)


def test_validation_features_on_disk_stay_arrays(keras_fit, tmp_path):
    """Six validation clips' features go to disk, two training clips' stay
    in memory: the head still gets arrays, not a dataset held in memory."""
    clip_bytes = SMALL[0] * 512 * 4  # (frames, 1, 1, 512) float32
    hypermodel, model, hp = _trial(feature_cache_dir=str(tmp_path),
                                   memory_limit_bytes=4 * clip_bytes)
    x, y = _arrays(2)
    val_x, val_y = _arrays(6, seed=1)
    hypermodel.fit(hp, model, x, y, validation_data=(val_x, val_y),
                   batch_size=2, verbose=0)
    (call,) = keras_fit
    val_inputs, val_labels = call.kwargs["validation_data"]
    assert isinstance(val_inputs[0], np.memmap)
    _assert_features(val_inputs, hypermodel.feature_cache.get(model, val_x))
    _assert_features(call.x, hypermodel.feature_cache.get(model, x))


@pytest.mark.tensorflow  # reads the head's tf.data batches
def test_validation_split_holds_out_the_last_clips(keras_fit):
    """As Keras' `fit`: the last 30% validate, the rest trains, in Keras'
    default batches of 32, and "balanced" weighs the clips that train."""
    from keras_vgg4d.class_weight import balanced_class_weight

    hypermodel, model, hp = _trial(class_weight="balanced")
    x, _ = _arrays(10)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 2, 2, 2])
    hypermodel.fit(hp, model, x, y, validation_split=0.3, verbose=0)
    (call,) = keras_fit
    training, validation = hypermodel.feature_cache.get(model, x).split(0.3)
    inputs, labels, sizes = _batches(call.x)
    _assert_same_clips(inputs, labels, training, y[:7])
    assert sizes == [7]
    # Shuffled anew every epoch, as Keras shuffles arrays.
    assert not np.array_equal(_batches(call.x)[0][0], _batches(call.x)[0][0])
    val_inputs, val_labels, _ = _batches(call.kwargs["validation_data"])
    _assert_features(val_inputs, validation)
    np.testing.assert_array_equal(val_labels, y[7:])
    assert "validation_split" not in call.kwargs
    assert call.kwargs["class_weight"] == pytest.approx(
        balanced_class_weight(y[:7], 3))


@pytest.mark.tensorflow  # reads the head's tf.data batches
def test_without_validation_every_clip_trains(keras_fit):
    """And a class_weight given to `fit` wins over the hypermodel's."""
    hypermodel, model, hp = _trial(class_weight={1: 3.0})
    x, y = _arrays(4)
    hypermodel.fit(hp, model, x, y, verbose=0)
    hypermodel.fit(hp, model, x, y, class_weight={2: 0.5}, verbose=0)
    hypermodel.fit(hp, model, x, y, class_weight=None, verbose=0)
    first, second, third = keras_fit
    inputs, labels, _ = _batches(first.x)
    _assert_same_clips(inputs, labels, hypermodel.feature_cache.get(model, x),
                       y)
    assert first.kwargs["validation_data"] is None
    assert first.kwargs["class_weight"] == {0: 1.0, 1: 3.0, 2: 1.0}
    assert second.kwargs["class_weight"] == {0: 1.0, 1: 1.0, 2: 0.5}
    assert third.kwargs["class_weight"] is None
    assert len(hypermodel.feature_cache) == 1


@pytest.mark.tensorflow  # reads the head's tf.data batches
def test_datasets_train_and_validate_in_their_own_batches(keras_fit):
    from keras_vgg4d.class_weight import balanced_class_weight

    hypermodel, model, hp = _trial(class_weight="balanced")
    x, _ = _arrays(7)
    y = np.array([0, 1, 2, 2, 1, 0, 2])
    val_x, val_y = _arrays(5, seed=1)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    validation = tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(2)
    hypermodel.fit(hp, model, train, validation_data=validation, epochs=2,
                   verbose=0)
    (call,) = keras_fit
    inputs, labels, sizes = _batches(call.x)
    _assert_same_clips(inputs, labels, hypermodel.feature_cache.get(model, x),
                       y)
    assert sizes == [4, 3]
    val_inputs, labels, sizes = _batches(call.kwargs["validation_data"])
    _assert_features(val_inputs, hypermodel.feature_cache.get(model, val_x))
    np.testing.assert_array_equal(labels, val_y)
    assert sizes == [2, 2, 1]
    assert call.kwargs["class_weight"] == pytest.approx(
        balanced_class_weight(y, 3))
    with pytest.raises(ValueError, match=(
            r"^`validation_split` is only supported for NumPy arrays, as in "
            r"Keras' `fit`; with a dataset, pass `validation_data`\.$")):
        hypermodel.fit(hp, model, train, validation_split=0.5, verbose=0)


def test_without_the_cache_the_classifier_trains_on_the_clips(keras_fit):
    from keras_vgg4d.class_weight import balanced_class_weight

    hypermodel, model, hp = _trial(cache_features=False,
                                   class_weight="balanced")
    x, _ = _arrays(6)
    y = np.array([0, 1, 2, 2, 1, 2])
    validation = _arrays(3, seed=1)
    callback = keras.callbacks.Callback()
    hypermodel.fit(hp, model, x, y, validation_data=validation, batch_size=2,
                   epochs=2, verbose=0, callbacks=[callback])
    # The labels of a dataset (here a column) are read for "balanced" too.
    dataset = tf.data.Dataset.from_tensor_slices((x, y[:, None])).batch(4)
    hypermodel.fit(hp, model, dataset, epochs=1, verbose=0)
    hypermodel.fit(hp, model, x, y, class_weight={0: 2.0}, verbose=0)
    arrays, from_dataset, overridden = keras_fit
    assert arrays.model is model
    assert arrays.x is x and arrays.y is y
    assert arrays.kwargs["validation_data"] is validation
    assert arrays.kwargs["callbacks"] == [callback]
    assert (arrays.kwargs["batch_size"], arrays.kwargs["epochs"]) == (2, 2)
    expected = pytest.approx(balanced_class_weight(y, 3))
    assert arrays.kwargs["class_weight"] == expected
    assert from_dataset.x is dataset and from_dataset.y is None
    assert from_dataset.kwargs["class_weight"] == expected
    assert overridden.kwargs["class_weight"] == {0: 2.0, 1: 1.0, 2: 1.0}
    assert len(hypermodel.feature_cache) == 0


def test_callbacks_see_the_whole_classifier_but_the_tuner_checkpoint(
        keras_fit, tmp_path):
    """Keras Tuner's best-epoch checkpoint saves what trains (the head);
    every other callback, even one of the same name, sees the classifier."""
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch as Tuners

    from keras_vgg4d.feature_cache import OnWholeModel

    class SaveBestEpoch(keras.callbacks.Callback):
        pass

    hypermodel, model, hp = _trial()
    checkpoint = Tuners(hypermodel.objective, str(tmp_path / "best"))
    mine, early = SaveBestEpoch(), keras.callbacks.EarlyStopping()
    x, y = _arrays(4)
    hypermodel.fit(hp, model, x, y, callbacks=[checkpoint, mine, early],
                   verbose=0)
    hypermodel.fit(hp, model, x, y, verbose=0)
    given, none_given = keras_fit
    # The shared step's first and last callbacks move the trial's weights.
    callbacks = given.kwargs["callbacks"][1:-1]
    # The tuner's checkpoint saves an uncompiled model of the trained head:
    # its weights without the optimizer's.
    assert callbacks[0].checkpoint is checkpoint
    assert callbacks[0].head.get_layer(model.head.name) is model.head
    assert getattr(callbacks[0].head, "optimizer", None) is None
    assert [type(c) for c in callbacks[1:]] == [OnWholeModel] * 2
    assert [c.callback for c in callbacks[1:]] == [mine, early]
    assert all(c.whole_model is model for c in callbacks[1:])
    assert len(none_given.kwargs["callbacks"]) == 2


@pytest.mark.tensorflow  # reads the head's tf.data batches
def test_time_last_clips_train_the_head_on_their_frames(keras_fit):
    hypermodel, model, hp = _trial(shape=(32, 32, 3, 2), time_axis=-1)
    x, y = _arrays(3, shape=(32, 32, 3, 2))
    hypermodel.fit(hp, model, x, y, verbose=0)
    (call,) = keras_fit
    time_major = hypermodel.feature_cache.get(model, x)
    assert time_major.features.shape == (3, 2, 1, 1, 512)
    inputs, labels, _ = _batches(call.x)
    _assert_same_clips(inputs, labels, time_major, y)


def _nan_clip(x, y, val):
    x[1, 0, 3, 3, 0] = np.nan


def _label_out_of_range(x, y, val):
    y[2] = 3


def _nan_validation_clip(x, y, val):
    val[0][0, 1, 0, 0, 2] = np.inf


def _validation_label_out_of_range(x, y, val):
    val[1][1] = -1


@pytest.mark.parametrize(
    "spoil, message",
    [
        (_nan_clip, r"^`x` passed to VGG4DHyperModel\.fit: 1 clip\(s\) hold "
                    r"NaN or infinite values"),
        (_label_out_of_range, r"^`y` passed to VGG4DHyperModel\.fit: Labels "
                              r"must be in \[0, 3\)"),
        (_nan_validation_clip, r"^`validation_data` passed to "
                               r"VGG4DHyperModel\.fit \(clips\): 1 clip\(s\) "
                               r"hold NaN or infinite values"),
        (_validation_label_out_of_range, r"^`validation_data` passed to "
                                         r"VGG4DHyperModel\.fit \(labels\): "
                                         r"Labels must be in \[0, 3\)"),
    ],
    ids=lambda value: getattr(value, "__name__", "message").strip("_"),
)
def test_bad_clips_or_labels_are_named_before_any_feature(keras_fit, spoil,
                                                          message):
    hypermodel, model, hp = _trial()
    x, y = _arrays(4)
    val = _arrays(2, seed=1)
    spoil(x, y, val)
    with pytest.raises(ValueError, match=message):
        hypermodel.fit(hp, model, x, y, validation_data=val, verbose=0)
    assert len(hypermodel.feature_cache) == 0 and keras_fit == []


@pytest.mark.tensorflow  # reads the head's tf.data batches
def test_clips_of_another_channel_count_are_named(keras_fit):
    hypermodel, model, hp = _trial()
    gray, y = _arrays(2, shape=(2, 32, 32, 1))
    with pytest.raises(ValueError, match=(
            r"^`x` passed to VGG4DHyperModel\.fit has 1 channels .* but the "
            r"model was built for 3")):
        hypermodel.fit(hp, model, gray, y, verbose=0)
    # Four frames of three channels: the channels are read off the right
    # axis of `input_shape`.
    hypermodel, model, hp = _trial(shape=(4, 32, 32, 3))
    hypermodel.fit(hp, model, *_arrays(2, shape=(4, 32, 32, 3)), verbose=0)
    assert _batches(keras_fit[0].x)[0][0].shape == (2, 4, 1, 1, 512)


@pytest.mark.parametrize(
    "validation_data, received",
    [
        (np.zeros((2, *SMALL), "float32"), "ndarray of length 2"),
        ((np.zeros((2, *SMALL), "float32"),), "tuple of length 1"),
        (5, r"int of length \?"),
    ],
    ids=["array", "one-tuple", "number"],
)
def test_validation_data_must_be_a_pair_or_a_dataset(keras_fit,
                                                     validation_data,
                                                     received):
    hypermodel, model, hp = _trial()
    with pytest.raises(ValueError, match=(
            r"^VGG4DHyperModel\.fit expects `validation_data` to be a "
            r"dataset or a tuple `\(x_val, y_val\)`, received: " + received
            + "$")):
        hypermodel.fit(hp, model, *_arrays(2), validation_data=validation_data,
                       verbose=0)


def test_the_cached_fit_is_quiet_with_verbose_0(keras_fit, capsys):
    hypermodel, model, hp = _trial()
    x, y = _arrays(3)
    hypermodel.fit(hp, model, x, y, verbose=0)
    assert capsys.readouterr().out == ""
    hypermodel.fit(hp, model, *_arrays(3, seed=1))
    out = capsys.readouterr().out
    assert "3/3" in out and "/clip" in out


def test_balanced_weights_come_from_the_clips_that_train_without_cache_too(
        keras_fit):
    from keras_vgg4d.class_weight import balanced_class_weight

    hypermodel, model, hp = _trial(cache_features=False,
                                   class_weight="balanced")
    x, _ = _arrays(10)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 2, 2, 2])
    hypermodel.fit(hp, model, x, y, validation_split=0.3, verbose=0)
    assert keras_fit[0].kwargs["class_weight"] == pytest.approx(
        balanced_class_weight(y[:7], 3))
