"""Benchmark keras_vgg4d.explain: its cost, and whether it means something.

Two parts, each printed as a table:

1. `cost`: explaining one clip (16 frames of 112x112 by default) with each
   method, against a forward pass and a forward + backward pass (the
   gradient of the predicted class's probability with respect to the
   clip, through the whole model) of the same model on the same clip,
   for every head. The references run as compiled `tf.function`s, their
   fastest form; the variants take turns (A, B, C, A, B, C, ...) after a
   warm-up, and medians are compared. Target: explaining <= 3x forward +
   backward.
2. `sanity`: on the demo `"event"` task (the class is what one single
   frame shows), with a frozen random backbone and each head trained on
   cached features: validation accuracy; how often each method's most
   important frame is the event frame (correctly classified clips); how
   often occlusion and each gradient method give the event frame the same
   rank (and how often occlusion by the head's frame mask, instead of
   deleting the frame, finds it); how often Grad-CAM's peak (the centre of
   its above-half-maximum region) lies inside the drawn object, per layer,
   against the object's share of the frame (what a random point would score); the share of
   all-zero maps; and the model randomisation check (Adebayo et al.,
   2018): the mean Spearman rank correlation between the trained head's
   frame importances and those of the same model with its head
   re-initialised.

    python benchmarks/bench_explain.py
    python benchmarks/bench_explain.py --skip cost --size 64
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from _timing import alternate  # noqa: E402
from _timing import machine  # noqa: E402
from keras_vgg4d import VGG4DClassifier  # noqa: E402
from keras_vgg4d.data import demo_clips  # noqa: E402
from keras_vgg4d.explain import METHODS  # noqa: E402
from keras_vgg4d.explain import explain  # noqa: E402

HEADS = ("framewise", "conv3d", "lstm")


# --- cost ------------------------------------------------------------------


def reference_functions(model):
    """Compiled forward, and forward + backward to the clip."""

    @tf.function
    def forward(clip):
        return model(clip, training=False)

    @tf.function
    def forward_backward(clip):
        with tf.GradientTape() as tape:
            tape.watch(clip)
            probabilities = model(clip, training=False)
            score = tf.reduce_max(probabilities, axis=1)
        return tape.gradient(score, clip)

    return forward, forward_backward


def bench_cost(args):
    shape = (1, args.frames, args.cost_size, args.cost_size, 3)
    clip = np.random.default_rng(args.seed).uniform(0, 255, shape)
    clip = clip.astype("float32")
    tensor = tf.constant(clip)
    print(f"\n## Cost: one clip of {args.frames} frames of {args.cost_size}x"
          f"{args.cost_size}, float32; {args.rounds} alternating rounds x "
          f"{args.repeats} calls, medians\n")
    print("| head | forward s | forward + backward s | method | explain s "
          "| explain / (forward + backward) | explain / forward |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for head in args.heads:
        keras.utils.set_random_seed(args.seed)
        model = VGG4DClassifier(3, temporal_head=head)
        model.build(shape)
        forward, forward_backward = reference_functions(model)
        variants = {
            "forward": lambda: forward(tensor).numpy(),
            "forward_backward": lambda: forward_backward(tensor).numpy(),
        }
        for method in METHODS:
            variants[method] = (
                lambda m=method: explain(model, clip, method=m)
            )
        for fn in variants.values():  # warm-up: traces and first calls
            fn()
        seconds = alternate(variants, args.rounds, args.repeats)
        for method in METHODS:
            print(
                f"| {head} | {seconds['forward']:.3f} "
                f"| {seconds['forward_backward']:.3f} | {method} "
                f"| {seconds[method]:.3f} "
                f"| {seconds[method] / seconds['forward_backward']:.2f} "
                f"| {seconds[method] / seconds['forward']:.2f} |"
            )


# --- sanity ----------------------------------------------------------------


def train_heads(args, x, y):
    """One classifier a head, sharing one frozen random backbone, each head
    trained on the backbone's features of the training clips."""
    keras.utils.set_random_seed(args.seed)
    base = VGG4DClassifier(3)
    base.build((None, *x.shape[1:]))
    backbone_weights = base.backbone.get_weights()
    features, mask = base.feature_extractor(x.shape[1:]).predict(
        x[:args.train], batch_size=32, verbose=0
    )
    models = {}
    for head in args.heads:
        keras.utils.set_random_seed(args.seed)
        model = VGG4DClassifier(3, temporal_head=head)
        model.build((None, *x.shape[1:]))
        model.backbone.set_weights(backbone_weights)
        head_model = model.head_model()
        head_model.compile(
            keras.optimizers.Adam(args.learning_rate),
            "sparse_categorical_crossentropy",
        )
        head_model.fit([features, mask], y[:args.train], batch_size=16,
                       epochs=args.epochs, verbose=0)
        models[head] = model
    return models, backbone_weights


def heatmap_peak(heatmap):
    """(row, column) centre of the region at least half the maximum; None
    for an all-zero map."""
    if heatmap.max() <= 0:
        return None
    rows, columns = np.nonzero(heatmap >= 0.5 * heatmap.max())
    return int(round(rows.mean())), int(round(columns.mean()))


def event_rank(importance, event):
    """Rank (0 = most important) of each clip's event frame."""
    order = np.argsort(np.argsort(-importance, axis=1), axis=1)
    return order[np.arange(len(event)), event]


def masking_importance(model, x, classes):
    """Occlusion by the head's frame mask instead of deletion: the drop in
    p(class) with frame t's mask set false, through `head_model()`."""
    features, mask = model.feature_extractor(x.shape[1:]).predict(
        x, batch_size=32, verbose=0
    )
    head_model = model.head_model()
    rows = np.arange(len(x))
    full = head_model.predict([features, mask], verbose=0)[rows, classes]
    drops = []
    for t in range(mask.shape[1]):
        masked = mask.copy()
        masked[:, t] = False
        without = head_model.predict([features, masked], verbose=0)
        drops.append(full - without[rows, classes])
    return np.stack(drops, axis=1)


def randomised(model, backbone_weights, shape, seed):
    """The same classifier with a freshly initialised head."""
    keras.utils.set_random_seed(seed + 1)
    clone = VGG4DClassifier.from_config(model.get_config())
    clone.build(shape)
    clone.backbone.set_weights(backbone_weights)
    return clone


def sanity_row(args, head, model, backbone_weights, val, info):
    """The printed figures of one head."""
    x, y = val
    event, objects = info["event_frame"], info["object_mask"]
    found = {m: explain(model, x, method=m) for m in METHODS}
    right = found["occlusion"].class_index == y
    row = {"accuracy": right.mean(), "correct": int(right.sum())}
    for method, explanation in found.items():
        row[f"hit {method}"] = (explanation.top_frame == event)[right].mean()
    masked = masking_importance(model, x, found["occlusion"].class_index)
    row["hit occlusion by mask"] = (masked.argmax(1) == event)[right].mean()
    rank = event_rank(found["occlusion"].importance, event)
    for method in METHODS[1:]:
        same = event_rank(found[method].importance, event) == rank
        row[f"rank agrees {method}"] = same[right].mean()
    for layer in args.layers:
        heat = explain(model, x, method="gradient", layer_name=layer).heatmaps
        heat = heat[np.arange(len(y)), event][right]
        peaks = [heatmap_peak(h) for h in heat]
        inside = [p is not None and m[p]
                  for p, m in zip(peaks, objects[right])]
        row[f"cam {layer}"] = np.mean(inside)
        row[f"zero {layer}"] = np.mean([p is None for p in peaks])
    row["object share"] = objects[right].mean()
    clone = randomised(model, backbone_weights, (None, *x.shape[1:]),
                       args.seed)
    again = explain(clone, x, class_index=found["occlusion"].class_index)
    rho = [spearmanr(a, b)[0] for a, b in
           zip(found["occlusion"].importance, again.importance)]
    row["randomised spearman"] = np.nanmean(rho)
    return row


def bench_sanity(args):
    x, y, info = demo_clips(
        n=args.train + args.val, frames=args.sanity_frames, size=args.size,
        task="event", seed=args.seed, return_info=True,
    )
    models, backbone_weights = train_heads(args, x, y)
    val = (x[args.train:], y[args.train:])
    val_info = {k: v[args.train:] for k, v in info.items()}
    print(f"\n## Sanity: demo 'event' task, {args.sanity_frames} frames of "
          f"{args.size}x{args.size}, frozen random backbone, heads trained "
          f"{args.epochs} epochs on {args.train} clips' cached features; "
          f"{args.val} validation clips\n")
    rows = {}
    for head, model in models.items():
        rows[head] = sanity_row(args, head, model, backbone_weights, val,
                                val_info)
        print(f"({head} done)", file=sys.stderr, flush=True)
    print("| figure | " + " | ".join(rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    for name in next(iter(rows.values())):
        cells = " | ".join(
            f"{row[name]:.3f}" if isinstance(row[name], float)
            else str(row[name]) for row in rows.values()
        )
        print(f"| {name} | {cells} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    add("--frames", type=int, default=16, help="frames of the cost clip")
    add("--cost-size", type=int, default=112)
    add("--rounds", type=int, default=5)
    add("--repeats", type=int, default=1)
    add("--size", type=int, default=32, help="frame size of the sanity part")
    add("--sanity-frames", type=int, default=4)
    add("--train", type=int, default=240)
    add("--val", type=int, default=96)
    add("--epochs", type=int, default=30)
    add("--learning-rate", type=float, default=3e-3)
    add("--layers", nargs="+",
        default=["block5_conv4", "block4_conv4", "block3_conv4"])
    add("--seed", type=int, default=0)
    add("--skip", nargs="*", default=[], choices=["cost", "sanity"])
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    print(machine())
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    if "cost" not in args.skip:
        bench_cost(args)
    if "sanity" not in args.skip:
        bench_sanity(args)
    print("\nload average at the end: {:.2f} {:.2f} {:.2f}".format(
        *os.getloadavg()))


if __name__ == "__main__":
    main()
