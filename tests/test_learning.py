"""Evidence that each temporal head learns what it claims.

From a frozen, randomly initialised backbone: on the demo "order" task (the
same frames in both classes, in another order) the order-aware heads learn
and the frame-wise head cannot; on the "appearance" task all three learn.
Heads train on backbone features computed once (as `VGG4DHyperModel` does);
accuracy is then measured with the whole classifier on raw clips.
"""

import numpy as np
import pytest
import keras

from keras_vgg4d.data import demo_clips
from keras_vgg4d.feature_cache import FeatureCache
from keras_vgg4d.model import VGG4DClassifier

pytestmark = pytest.mark.slow

FRAMES, SIZE, TRAIN, VALIDATION = 6, 32, 180, 60


@pytest.fixture(scope="module")
def backbone_weights():
    keras.utils.set_random_seed(7)
    model = VGG4DClassifier(2)
    model.build((None, FRAMES, SIZE, SIZE, 3))
    return model.backbone.get_weights()


def validation_accuracy(task, head, backbone_weights, cache):
    x, y = demo_clips(
        n=TRAIN + VALIDATION, frames=FRAMES, size=SIZE, task=task, seed=3
    )
    num_classes = int(y.max()) + 1
    keras.utils.set_random_seed(0)
    model = VGG4DClassifier(num_classes, temporal_head=head)
    model.build((None, *x.shape[1:]))
    model.backbone.set_weights(backbone_weights)
    train = cache.get(model, x[:TRAIN], y[:TRAIN], batch_size=60, verbose=0)
    head_model = model.head_model()
    head_model.compile(
        keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy"
    )
    head_model.fit(
        train.inputs, train.labels, batch_size=16, epochs=20, verbose=0
    )
    predicted = model.predict(x[TRAIN:], verbose=0).argmax(axis=1)
    return float(np.mean(predicted == y[TRAIN:])), 1.0 / num_classes


@pytest.fixture(scope="module")
def cache():
    return FeatureCache()


@pytest.mark.parametrize("head", ["lstm", "conv3d"])
def test_order_aware_heads_learn_the_order_task(head, backbone_weights, cache):
    accuracy, _ = validation_accuracy("order", head, backbone_weights, cache)
    assert accuracy >= 0.85


def test_framewise_head_cannot_learn_the_order_task(backbone_weights, cache):
    accuracy, chance = validation_accuracy(
        "order", "framewise", backbone_weights, cache
    )
    assert abs(accuracy - chance) <= 0.2


@pytest.mark.parametrize("head", ["framewise", "conv3d", "lstm"])
def test_every_head_learns_the_appearance_task(head, backbone_weights, cache):
    accuracy, chance = validation_accuracy(
        "appearance", head, backbone_weights, cache
    )
    assert accuracy >= chance + 0.25
