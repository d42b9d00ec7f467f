"""Padding never changes an answer: masked frames are invisible to every head.

The loaders pad short clips with frames the heads mask out. Whatever those
frames hold (zeros, or any values when the mask is passed explicitly), the
output for the real frames must be the one of the unpadded clip: in
inference and in training (batch-normalization statistics of a training
batch leave the padded frames out), for every head and option.
"""

import keras
import keras_tuner
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_vgg4d.heads import get_head
from keras_vgg4d.hypermodel import VGG4DHyperModel
from keras_vgg4d.model import VGG4DClassifier

pytestmark = pytest.mark.backends

# Every head and option whose masking differs.
HEAD_CONFIGS = [
    ("framewise", {"pooling": "avg", "units": 0}),
    ("framewise", {"pooling": "max", "units": 0}),
    ("framewise", {"pooling": "avg", "units": 5}),
    ("framewise", {"pooling": "max", "units": 5}),
    ("conv3d", {"filters": 4, "num_layers": 1}),
    ("conv3d", {"filters": 4, "num_layers": 2}),
    ("conv3d", {"filters": 4, "num_layers": 2, "pooling": "max"}),
    ("conv3d", {"filters": 4, "num_layers": 2, "temporal_kernel": 2}),
    ("lstm", {"units": 4, "num_layers": 1, "bidirectional": False}),
    ("lstm", {"units": 4, "num_layers": 1, "bidirectional": True}),
    ("lstm", {"units": 4, "num_layers": 2, "bidirectional": False}),
    ("lstm", {"units": 4, "num_layers": 2, "bidirectional": True}),
]
CHANNELS = 6


@st.composite
def padded_cases(draw):
    """A head config, clips, and the same clips padded at the end."""
    head, options = draw(st.sampled_from(HEAD_CONFIGS))
    normalize = draw(st.booleans())
    training = draw(st.booleans())
    batch = draw(st.integers(1, 3))
    time = draw(st.integers(1, 4))
    pad = draw(st.integers(1, 3))
    side = draw(st.integers(1, 2))
    fill = draw(st.sampled_from(["zeros", "random"]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(batch, time, side, side, CHANNELS)).astype("float32")
    padding = np.zeros((batch, pad, side, side, CHANNELS), "float32")
    if fill == "random":
        padding = rng.normal(scale=5.0, size=padding.shape).astype("float32")
    padded = np.concatenate([real, padding], axis=1)
    mask = np.concatenate(
        [np.ones((batch, time), bool), np.zeros((batch, pad), bool)], axis=1
    )
    return head, dict(options, normalize=normalize), training, real, padded, mask


@settings(max_examples=60, deadline=None)
@given(padded_cases())
def test_masked_padding_never_changes_a_head_output(case):
    head_name, options, training, real, padded, mask = case
    head = get_head(head_name, 3, **options)
    unpadded_mask = np.ones(real.shape[:2], bool)
    expected = head(real, mask=unpadded_mask, training=training)
    got = head(padded, mask=mask, training=training)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("head_name, options", HEAD_CONFIGS[3:7] + HEAD_CONFIGS[-2:])
def test_padding_with_values_changes_the_output_when_unmasked(head_name, options):
    """The padded values used above do reach an unmasked head: the test
    above compares clips that really differ."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(2, 3, 1, 1, CHANNELS)).astype("float32")
    padded = np.concatenate(
        [real, rng.normal(scale=5.0, size=(2, 2, 1, 1, CHANNELS))], axis=1
    ).astype("float32")
    head = get_head(head_name, 3, **options)
    unmasked = head(padded, mask=np.ones(padded.shape[:2], bool))
    assert np.abs(unmasked - head(real)).max() > 1e-3


def _clips(n, frames, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, frames, 32, 32, 3)).astype("float32")


@pytest.mark.parametrize("head", ["framewise", "conv3d", "lstm"])
@pytest.mark.parametrize("training", [False, True])
def test_classifier_end_to_end_ignores_zero_padded_frames(head, training):
    head_options = {"conv3d": {"filters": 4, "num_layers": 2},
                    "lstm": {"units": 4, "num_layers": 2},
                    "framewise": {"units": 4}}[head]
    model = VGG4DClassifier(2, head, head_options=head_options)
    x = _clips(2, 3)
    padded = np.concatenate([x, np.zeros_like(x[:, :2])], axis=1)
    np.testing.assert_allclose(
        model(padded, training=training), model(x, training=training),
        rtol=1e-4, atol=1e-5,
    )


@pytest.mark.parametrize("head", ["framewise", "conv3d", "lstm"])
def test_cached_features_of_padded_clips_give_the_unpadded_answer(head):
    hypermodel = VGG4DHyperModel(2, (None, 32, 32, 3), heads=(head,))
    model = hypermodel.build(keras_tuner.HyperParameters())
    x = _clips(3, 3)
    padded = np.concatenate([x, np.zeros_like(x[:, :2])], axis=1)
    cached = hypermodel.feature_cache.get(model, padded, batch_size=2)
    np.testing.assert_array_equal(
        cached.mask, np.repeat([[1, 1, 1, 0, 0]], 3, axis=0).astype(bool)
    )
    head_model = model.head_model()
    np.testing.assert_allclose(
        head_model.predict_on_batch(cached.inputs),
        model.predict(x, verbose=0),
        rtol=1e-4, atol=1e-5,
    )
