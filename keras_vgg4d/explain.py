"""Explain a prediction of a `VGG4DClassifier`: which frames, and where.

Two questions, answered for the class a model predicts (or a named one):

- **Which frames** move the class probability: `explain(...).importance`,
  `(batch, time)`, by one of `METHODS`:

  - `"occlusion"`: the class probability of the clip minus its probability
    with frame `t` deleted, for every `t`: exact for the model, in units
    of probability, positive when the frame supports the class. The head
    reruns on the backbone features, computed once (the backbone never
    reruns), one clip shorter by one frame a row. For the framewise and
    LSTM heads this equals setting the head's frame mask false at `t`,
    which is what they do with a padded frame; the Conv3D head would see a
    masked frame as a zeroed hole inside the clip, which it never meets in
    training (padding comes at the end), so the frame is deleted instead.
  - `"gradient"`: gradient x (input - baseline) on the per-frame backbone
    features (the head's input), summed over each frame's feature map, the
    baseline being the clip's mean frame (its real frames' mean features):
    the first-order estimate of how the class probability would change if
    frame `t` looked like the clip's average frame. Free (it reuses
    Grad-CAM's backward pass through the head), but only first order: it
    fades where the probability saturates. (A zero baseline would not do:
    the heads standardize their features, so zero features are far from
    anything they were trained on.)
  - `"integrated_gradients"` (Sundararajan et al., 2017): the same, with
    the gradient averaged along the straight path from the baseline to the
    clip (`steps` points, midpoint rule) instead of taken at the clip: the
    importances add up to the probability of the clip minus that of a clip
    of mean frames, and saturation does not hide a frame. `steps` more
    forward and backward passes of the head.

- **Where in each frame**: Grad-CAM (Selvaraju et al., 2017) on the output
  of a convolution layer of the backbone, by default `block5_conv4`, the
  last one (`block5_pool`, the head's input, has half its resolution: one
  cell for 32x32 frames). Each frame's map is `relu(sum_k w_k A_k)`, `A_k`
  the layer's channels on that frame and `w_k` the spatial mean of the
  class probability's gradient on them, upsampled (bilinear) to the frame
  size: `explain(...).heatmaps`, `(batch, time, height, width)`. A map is
  all zero when no place of the frame holds positive evidence for the
  class at that layer. Its resolution is the layer's: 1/16 of the frame at
  `block5_conv4`, 1/8 at `block4_conv4`, 1/4 at `block3_conv4`.

The backbone runs once, up to the Grad-CAM layer, with no backward pass
through it (only through the layers after the cut and the head), so an
explanation costs about one forward pass of the model. `save_explanation`
draws one: the frames under their heatmaps, a bar chart of frame
importance. The `vgg4d-explain` command (`keras_vgg4d.explain_cli`) does
both for a saved model and a `.npy` file of clips.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops

from keras_vgg4d import validation
from keras_vgg4d.backend import value_and_gradients
from keras_vgg4d.layout import LAYOUTS
from keras_vgg4d.layout import to_time_major_shape
from keras_vgg4d.layout import validate_time_axis
from keras_vgg4d.model import VGG4DClassifier
from keras_vgg4d.pictures import draw_frame
from keras_vgg4d.pictures import matplotlib_classes
# `METHODS` and `DEFAULT_LAYER` are defined where vgg4d-explain's command
# line is read, without Keras.
from keras_vgg4d_cli import EXPLAIN_LAYER as DEFAULT_LAYER
from keras_vgg4d_cli import EXPLAIN_METHODS as METHODS

# Frames per call of the backbone, and per call of the head when it reruns
# on many variants of a clip (occlusion, integrated gradients): bounds
# memory on long clips and big batches.
_FRAMES_PER_CALL = 64
_HEAD_FRAMES_PER_CALL = 1024


@dataclasses.dataclass
class Explanation:
    """What `explain` found for a batch of clips.

    All arrays are time-major whatever the clips' layout: frame `t` of clip
    `b` is `importance[b, t]` and `heatmaps[b, t]`.

    Attributes:
        probabilities: float32 `(batch, num_classes)`, the model's output.
        class_index: int32 `(batch,)`, the class explained for each clip.
        importance: float32 `(batch, time)`, how much each frame moves that
            class's probability (see `method`); 0 for padded frames.
        heatmaps: float32 `(batch, time, height, width)`, Grad-CAM maps,
            non-negative, not normalized (divide by the max to draw them);
            0 for padded frames.
        frame_mask: bool `(batch, time)`, true for the frames the model
            reads (false for all-zero padding frames, unless the model was
            built with `mask_padded_frames=False`).
        method: How `importance` was measured, one of `METHODS`.
        layer_name: The backbone layer the heatmaps come from.
        time_axis: Where time was in the clips explained (`1` or `-1`).
    """

    probabilities: np.ndarray
    class_index: np.ndarray
    importance: np.ndarray
    heatmaps: np.ndarray
    frame_mask: np.ndarray
    method: str
    layer_name: str
    time_axis: int

    @property
    def top_frame(self) -> np.ndarray:
        """int `(batch,)`: each clip's most important real frame."""
        masked = np.where(self.frame_mask, self.importance, -np.inf)
        return np.argmax(masked, axis=1)


def explain(
    model: VGG4DClassifier,
    clips,
    class_index=None,
    method: str = "occlusion",
    layer_name: str = DEFAULT_LAYER,
    time_axis: int | None = None,
    batch_size: int = 8,
    steps: int = 16,
) -> Explanation:
    """Which frames of each clip, and where in them, made its prediction.

    For every head, any clip length and either layout. What each method
    measures is in the `keras_vgg4d.explain` module docstring; in short,
    `"occlusion"` deletes one frame at a time and reruns the head (exact),
    `"gradient"` and `"integrated_gradients"` attribute the class
    probability to each frame's backbone features against the clip's mean
    frame (first order, and path-integrated), and the heatmaps are Grad-CAM
    on `layer_name`. The backbone runs once; the head reruns.

    Args:
        model: A `VGG4DClassifier`, trained (an unbuilt one is built for
            the clips, with the weights it was made with).
        clips: NumPy clips laid out as `time_axis` says, raw pixel values
            as the model takes them.
        class_index: `None` explains each clip's predicted class; an integer
            names the class to explain in every clip; a sequence of
            integers, one a clip, names each clip's (e.g. its label).
        method: How frame importance is measured: `"occlusion"`,
            `"gradient"` or `"integrated_gradients"`.
        layer_name: The backbone convolution layer for Grad-CAM, e.g.
            `"block5_conv4"` (the last, the default) or `"block4_conv4"`
            (twice the resolution, less specific to the class).
        time_axis: `1` or `-1`, where time is in `clips`; `None` takes the
            model's own `time_axis`.
        batch_size: Clips explained per pass.
        steps: Points on the path, for `"integrated_gradients"`.

    Returns:
        An `Explanation`.

    Raises:
        ValueError: naming the argument, if `model` is not a
            `VGG4DClassifier`, `layer_name` is not one of its backbone's
            convolution layers, `class_index` is out of range, `method`
            is unknown, or `clips` are not clips of the layout `time_axis`
            says (rank 5, frames of at least 32x32, the model's channels,
            no NaN).

    Example:

    >>> import numpy as np
    >>> from keras_vgg4d import VGG4DClassifier
    >>> from keras_vgg4d.explain import explain
    >>> model = VGG4DClassifier(num_classes=2, temporal_head="lstm")
    >>> clips = np.random.uniform(0, 255, (2, 3, 32, 32, 3))
    >>> found = explain(model, clips)
    >>> found.importance.shape, found.heatmaps.shape
    ((2, 3), (2, 3, 32, 32))
    >>> explain(model, clips, class_index=1, method="gradient").class_index
    array([1, 1], dtype=int32)
    """
    clips, time_axis = _check_explain_arguments(
        model, clips, method, layer_name, time_axis, batch_size
    )
    validation.check_integer("explain", "steps", steps, 1)
    classes = _check_class_index(class_index, model.num_classes, len(clips))
    lower, upper = _split_backbone(model, layer_name)
    parts = []
    for start in range(0, len(clips), batch_size):
        chosen = slice(start, start + batch_size)
        parts.append(_explain_batch(
            model, lower, upper, _to_time_major(clips[chosen], time_axis),
            None if classes is None else classes[chosen], method, steps,
        ))
    fields = {
        name: np.concatenate([part[name] for part in parts])
        for name in parts[0]
    }
    return Explanation(
        method=method, layer_name=layer_name, time_axis=time_axis, **fields
    )


def _check_explain_arguments(
    model, clips, method, layer_name, time_axis, batch_size
):
    """Validates `explain`'s arguments; returns the clips and time axis."""
    if not isinstance(model, VGG4DClassifier):
        raise ValueError(
            "explain expects `model` to be a keras_vgg4d VGG4DClassifier "
            f"(trained, or loaded from a .keras file), received: model of "
            f"type {type(model).__name__}"
        )
    time_axis = validate_time_axis(
        model.time_axis if time_axis is None else time_axis
    )
    validation.check_choice("explain", "method", method, METHODS)
    validation.check_integer("explain", "batch_size", batch_size, 1)
    clips = np.asarray(clips)
    validation.check_clips(
        "`clips` passed to explain",
        clips,
        time_axis,
        channels=getattr(model, "input_channels", None),
    )
    if not model.built:
        # As `predict` would: built for these clips, in the model's layout.
        shape = to_time_major_shape((None, *clips.shape[1:]), time_axis)
        if model.time_axis == -1:
            shape = (shape[0], *shape[2:], shape[1])
        model.build(shape)
    convolutions = [
        layer.name for layer in model.backbone.frame_model.layers
        if isinstance(layer, keras.layers.Conv2D)
    ]
    validation.check_choice("explain", "layer_name", layer_name, convolutions)
    return clips, time_axis


def _check_class_index(class_index, num_classes: int, count: int):
    """`None`, or the class to explain of each of `count` clips, int32."""
    if class_index is None:
        return None
    if validation.is_integer(class_index):
        validation.check_integer(
            "explain", "class_index", class_index, 0, num_classes - 1
        )
        return np.full(count, class_index, "int32")
    values = np.asarray(class_index)
    if (
        values.shape != (count,)
        or not np.issubdtype(values.dtype, np.integer)
        or values.min() < 0
        or values.max() >= num_classes
    ):
        raise ValueError(
            "explain expects `class_index` to be None, an integer from 0 to "
            f"{num_classes - 1}, or one such integer for each of the {count} "
            f"clips; received: class_index={class_index!r}"
        )
    return values.astype("int32")


def _to_time_major(clips: np.ndarray, time_axis: int) -> np.ndarray:
    """NumPy clips moved to `(batch, time, height, width, channels)`."""
    clips = clips if time_axis == 1 else np.moveaxis(clips, -1, 1)
    return np.ascontiguousarray(clips, dtype="float32")


def _split_backbone(model, layer_name):
    """The per-frame backbone cut after `layer_name`, as two models.

    `lower` maps frames to the layer's output, `upper` maps that to the
    backbone's per-frame features. Both share the backbone's layers and
    weights; VGG19 is a chain, so `upper` is the layers after the cut.
    """
    frame_model = model.backbone.frame_model
    names = [layer.name for layer in frame_model.layers]
    cut = names.index(layer_name)
    layer_output = frame_model.layers[cut].output
    lower = keras.Model(frame_model.input, layer_output, name="lower")
    inputs = keras.Input(layer_output.shape[1:], dtype=layer_output.dtype)
    x = inputs
    for layer in frame_model.layers[cut + 1:]:
        x = layer(x)
    return lower, keras.Model(inputs, x, name="upper")


def _frame_mask(model, time_major: np.ndarray) -> np.ndarray:
    """The `(batch, time)` mask the head reads; all true without masking."""
    mask = model.frame_mask(time_major)
    if mask is None:
        return np.ones(time_major.shape[:2], bool)
    return ops.convert_to_numpy(mask).astype(bool)


def _layer_activations(lower, time_major: np.ndarray) -> np.ndarray:
    """`lower` on every frame, `_FRAMES_PER_CALL` at a time."""
    frames = time_major.reshape(-1, *time_major.shape[2:])
    outputs = [
        ops.convert_to_numpy(
            lower(frames[i:i + _FRAMES_PER_CALL], training=False)
        )
        for i in range(0, len(frames), _FRAMES_PER_CALL)
    ]
    return np.concatenate(outputs)


def _explain_batch(model, lower, upper, time_major, class_index, method,
                   steps):
    """The arrays of an `Explanation` for one batch of time-major clips."""
    batch, time, height, width = time_major.shape[:4]
    mask = _frame_mask(model, time_major)
    activations = _layer_activations(lower, time_major)

    def from_activations(activations):
        features = upper(activations, training=False)
        features = ops.reshape(features, (batch, time, *features.shape[1:]))
        probabilities = model.head(features, mask=mask, training=False)
        classes = _classes(probabilities, class_index)
        return _class_score(probabilities, classes), (
            features, probabilities, classes
        )

    def from_features(features):
        probabilities = model.head(features, mask=mask, training=False)
        return _class_score(probabilities, classes), None

    _, (features, probabilities, classes), (activation_grads,) = (
        value_and_gradients(from_activations, [activations])
    )
    heatmaps = _grad_cam(activations, activation_grads, (height, width))
    heatmaps = heatmaps.reshape(batch, time, height, width)
    features = ops.convert_to_numpy(ops.cast(features, "float32"))
    probabilities = ops.convert_to_numpy(probabilities).astype("float32")
    classes = ops.convert_to_numpy(classes).astype("int32")
    if method == "occlusion":
        importance = _occlusion(model, features, mask, probabilities, classes)
    elif method == "gradient":
        _, _, (feature_grads,) = value_and_gradients(from_features, [features])
        gradients = ops.convert_to_numpy(ops.cast(feature_grads, "float32"))
        difference = features - _mean_frame(features, mask)
        importance = np.sum(difference * gradients, axis=(2, 3, 4))
    else:
        importance = _integrated_gradients(
            model, features, mask, classes, steps
        )
    return {
        "probabilities": probabilities,
        "class_index": classes,
        "importance": np.where(mask, importance, 0.0).astype("float32"),
        "heatmaps": np.where(mask[..., None, None], heatmaps, 0.0),
        "frame_mask": mask,
    }


def _class_score(probabilities, classes):
    """The sum over clips of each clip's probability of its class."""
    return ops.sum(ops.take_along_axis(
        ops.cast(probabilities, "float32"), classes[:, None], axis=1
    ))


def _mean_frame(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`(batch, 1, ...)` mean of each clip's real frames' features: the
    baseline of the gradient methods."""
    weights = mask.reshape(*mask.shape, *([1] * (features.ndim - 2)))
    total = np.sum(features * weights, axis=1, keepdims=True)
    return total / np.maximum(weights.sum(axis=1, keepdims=True), 1)


def _integrated_gradients(model, features, mask, classes, steps):
    """`(batch, time)` integrated gradients on the features, from the clip's
    mean frame, by the midpoint rule with `steps` points, summed a frame."""
    baseline = _mean_frame(features, mask)
    difference = features - baseline
    batch, time = mask.shape
    # Row s * batch + b is clip b at point s of the path.
    alphas = np.repeat((np.arange(steps) + 0.5) / steps, batch)
    rows = np.tile(np.arange(batch), steps)
    per_call = max(1, _HEAD_FRAMES_PER_CALL // time)
    total = np.zeros_like(features)
    for start in range(0, len(rows), per_call):
        chosen = rows[start:start + per_call]
        alpha = alphas[start:start + per_call].reshape(
            -1, *([1] * (features.ndim - 1))
        )
        point = baseline[chosen] + alpha * difference[chosen]

        def score(point, chosen=chosen):
            probabilities = model.head(point, mask=mask[chosen],
                                       training=False)
            return _class_score(probabilities, classes[chosen]), None

        _, _, (gradients,) = value_and_gradients(score, [point])
        gradients = ops.convert_to_numpy(ops.cast(gradients, "float32"))
        np.add.at(total, chosen, gradients)
    return np.sum(difference * total / steps, axis=(2, 3, 4))


def _classes(probabilities, class_index):
    """The class explained for each clip: `class_index`, or the argmax."""
    if class_index is None:
        return ops.cast(ops.argmax(probabilities, axis=1), "int32")
    return ops.convert_to_tensor(class_index, "int32")


def _grad_cam(activations, gradients, frame_size) -> np.ndarray:
    """Grad-CAM maps `(frames, height, width)` from a layer's output and its
    gradient, both `(frames, h, w, channels)`, upsampled to `frame_size`."""
    activations = ops.cast(activations, "float32")
    weights = ops.mean(ops.cast(gradients, "float32"), axis=(1, 2))
    maps = ops.relu(ops.einsum("fhwc,fc->fhw", activations, weights))
    maps = ops.image.resize(
        maps[..., None], frame_size, interpolation="bilinear",
        data_format="channels_last",
    )
    return ops.convert_to_numpy(maps[..., 0]).astype("float32")


def _occlusion(model, features, mask, probabilities, classes) -> np.ndarray:
    """`(batch, time)` drop in the class probability when each frame alone
    is deleted from its clip; the head reruns on `features`, never the
    backbone. A clip of one frame has it masked out instead."""
    batch, time = mask.shape
    if time == 1:
        without = _head_probabilities(model, features, np.zeros_like(mask))
    else:
        # Row b * time + t is clip b without frame t.
        keep = ~np.eye(time, dtype=bool)
        rows = np.repeat(np.arange(batch), time)
        kept = np.tile(keep, (batch, 1))
        shorter = features[rows][kept].reshape(
            batch * time, time - 1, *features.shape[2:]
        )
        shorter_mask = mask[rows][kept].reshape(batch * time, time - 1)
        without = _head_probabilities(model, shorter, shorter_mask)
    without = without[np.arange(len(without)), np.repeat(classes, time)]
    with_all = probabilities[np.arange(batch), classes]
    return with_all[:, None] - without.reshape(batch, time)


def _head_probabilities(model, features, mask) -> np.ndarray:
    """The head on `(n, time, ...)` features, about `_HEAD_FRAMES_PER_CALL`
    frames at a time."""
    per_call = max(1, _HEAD_FRAMES_PER_CALL // features.shape[1])
    outputs = [
        model.head(features[i:i + per_call], mask=mask[i:i + per_call],
                   training=False)
        for i in range(0, len(features), per_call)
    ]
    return np.concatenate(
        [ops.convert_to_numpy(o).astype("float32") for o in outputs]
    )


def save_explanation(
    clip,
    explanation: Explanation,
    path: str,
    class_names=None,
    index: int = 0,
    max_frames: int = 16,
    dpi: int = 100,
) -> str:
    """Writes a PNG of one explained clip: where, and which frames.

    A strip of the clip's frames with the Grad-CAM heatmap overlaid (one
    colour scale for the whole clip; the overlay fades out where the heat
    does, so frames without evidence show as they are), a bar chart of
    every frame's importance under it (the most important frame outlined,
    its label in bold), and in the title the explained class with its
    probability and the model's top classes.
    Drawn off-screen (matplotlib's Agg canvas); needs matplotlib, the
    `plot` extra.

    Args:
        clip: The clip explained, laid out as `explanation.time_axis`
            says; or the whole batch passed to `explain`, of which clip
            `index` is drawn.
        explanation: What `explain` returned for it.
        path: Where to write the PNG.
        class_names: Optional names of the classes, in label order.
        index: Which clip of `explanation` to draw.
        max_frames: Longer clips show only their `max_frames` most
            important frames (in time order); the bar chart shows all.
        dpi: Resolution; a frame takes about `1.4 * dpi` pixels a side.

    Returns:
        `path`.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from keras_vgg4d import VGG4DClassifier
    >>> from keras_vgg4d.explain import explain, save_explanation
    >>> model = VGG4DClassifier(num_classes=2)
    >>> clips = np.random.uniform(0, 255, (1, 4, 32, 32, 3))
    >>> path = os.path.join(tempfile.mkdtemp(), "explained.png")
    >>> save_explanation(clips, explain(model, clips), path) == path
    True
    """
    figure_class, canvas_class = matplotlib_classes("save_explanation")
    frames, shown = _check_picture_arguments(
        clip, explanation, class_names, index, max_frames
    )
    figure = figure_class(
        figsize=(max(1.4 * len(shown), 7.0), 4.6), dpi=dpi,
        layout="constrained",
    )
    canvas_class(figure)
    grid = figure.add_gridspec(2, len(shown), height_ratios=(1.0, 0.9))
    heat = explanation.heatmaps[index]
    top = int(explanation.top_frame[index])
    scale = float(heat.max()) if heat.max() > 0 else 1.0
    for column, t in enumerate(shown):
        ax = figure.add_subplot(grid[0, column])
        draw_frame(ax, frames[t])
        # Opaque where hot, clear where cold: cold frames stay readable.
        ax.imshow(heat[t] / scale, cmap="inferno", vmin=0.0, vmax=1.0,
                  alpha=0.55 * heat[t] / scale, interpolation="bilinear")
        ax.set_title(f"t={t}", fontsize=9,
                     fontweight="bold" if t == top else "normal")
    _draw_importance(figure.add_subplot(grid[1, :]), explanation, index)
    figure.suptitle(_title(explanation, index, class_names), fontsize=9)
    figure.savefig(path)
    return path


def _check_picture_arguments(clip, explanation, class_names, index,
                             max_frames):
    """Validates `save_explanation`'s arguments.

    Returns the clip's frames, time-major `(time, height, width, channels)`,
    and the indices of the frames to draw.
    """
    owner = "save_explanation"
    if not isinstance(explanation, Explanation):
        raise ValueError(
            f"{owner} expects `explanation` to be what explain() returns, "
            f"received: explanation of type {type(explanation).__name__}"
        )
    count, time, height, width = explanation.heatmaps.shape
    validation.check_integer(owner, "index", index, 0, count - 1)
    validation.check_integer(owner, "max_frames", max_frames, 1)
    frames = np.asarray(clip, "float32")
    frames = frames[index] if frames.ndim == 5 else frames
    if frames.ndim == 4 and explanation.time_axis == -1:
        frames = np.moveaxis(frames, -1, 0)
    if frames.ndim != 4 or frames.shape[:3] != (time, height, width):
        raise ValueError(
            f"{owner} expects `clip` to be the clip explained, "
            f"{LAYOUTS[explanation.time_axis]} without the batch axis (or "
            f"the batch explained), with {time} frames of {height}x{width}; "
            f"received shape {np.shape(clip)}"
        )
    num_classes = explanation.probabilities.shape[1]
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"{owner} expects `class_names` to name the model's "
            f"{num_classes} classes, received {len(class_names)} names: "
            f"{list(class_names)}"
        )
    real = np.flatnonzero(explanation.frame_mask[index])
    ranked = real[np.argsort(-explanation.importance[index, real],
                             kind="stable")]
    shown = np.sort(ranked[:max_frames])
    return frames, shown if len(shown) else np.arange(min(time, max_frames))


_IMPORTANCE_LABELS = {
    "occlusion": "drop in p(class)\nwithout the frame",
    "gradient": "gradient x (features\n- clip's mean)",
    "integrated_gradients": "integrated gradients\nfrom clip's mean",
}


def _draw_importance(ax, explanation, index):
    """Bars of every frame's importance; padded frames shaded grey."""
    importance = explanation.importance[index]
    mask = explanation.frame_mask[index]
    time = len(importance)
    for t in np.flatnonzero(~mask):
        ax.axvspan(t - 0.5, t + 0.5, color="0.9", linewidth=0)
    colours = np.where(importance >= 0, "tab:red", "tab:blue")
    bars = ax.bar(np.arange(time), importance, color=colours)
    top = int(explanation.top_frame[index])
    bars[top].set_edgecolor("black")
    bars[top].set_linewidth(1.5)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ticks = np.arange(time) if time <= 32 else np.unique(
        np.linspace(0, time - 1, 9).round().astype(int)
    )
    ax.set_xticks(ticks)
    ax.set_xlim(-0.6, time - 0.4)
    ax.set_xlabel("frame", fontsize=9)
    ax.set_ylabel(_IMPORTANCE_LABELS[explanation.method], fontsize=8)
    ax.tick_params(labelsize=8)


def _title(explanation, index, class_names) -> str:
    """The explained class and the model's top classes, on two lines."""
    probabilities = explanation.probabilities[index]

    def name(k):
        return class_names[k] if class_names is not None else f"class {k}"

    explained = int(explanation.class_index[index])
    ranked = np.argsort(-probabilities, kind="stable")[:3]
    top = ", ".join(f"{name(k)} {probabilities[k]:.2f}" for k in ranked)
    return (
        f"explained: {name(explained)} (p={probabilities[explained]:.2f})\n"
        f"model: {top}\n"
        f"heat: Grad-CAM on {explanation.layer_name}; "
        f"bars: {explanation.method.replace('_', ' ')}"
    )
