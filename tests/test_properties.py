"""Property tests: FrameFold's fold/unfold loses and reorders nothing."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_vgg4d.frame_fold import FrameFold

pytestmark = pytest.mark.backends


@st.composite
def clips_and_settings(draw):
    """Random clips `(batch, time, height, width, channels)` in either
    layout, with a time axis and a frame chunk from None to time + 1."""
    batch = draw(st.integers(1, 3))
    time = draw(st.integers(1, 5))
    height = draw(st.integers(1, 6))
    width = draw(st.integers(1, 6))
    channels = draw(st.integers(1, 3))
    time_axis = draw(st.sampled_from([1, -1]))
    frame_chunk = draw(st.one_of(st.none(), st.integers(1, time + 1)))
    seed = draw(st.integers(0, 2**31 - 1))
    time_major = np.random.default_rng(seed).normal(
        size=(batch, time, height, width, channels)
    ).astype("float32")
    inputs = time_major if time_axis == 1 else np.moveaxis(time_major, 1, -1)
    return time_major, inputs, time_axis, frame_chunk


PROPERTY = settings(max_examples=25, deadline=None)


@PROPERTY
@given(clips_and_settings())
def test_fold_unfold_with_identity_returns_the_input_time_major(case):
    time_major, inputs, time_axis, frame_chunk = case
    layer = FrameFold(
        keras.layers.Identity(), time_axis=time_axis, frame_chunk=frame_chunk
    )
    outputs = keras.ops.convert_to_numpy(layer(inputs))
    np.testing.assert_array_equal(outputs, time_major)


@PROPERTY
@given(clips_and_settings())
def test_each_frame_is_pooled_on_its_own(case):
    time_major, inputs, time_axis, frame_chunk = case
    layer = FrameFold(
        keras.layers.GlobalAveragePooling2D(),
        time_axis=time_axis,
        frame_chunk=frame_chunk,
    )
    outputs = keras.ops.convert_to_numpy(layer(inputs))
    np.testing.assert_allclose(
        outputs, time_major.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6
    )
