"""Benchmark TemporalVGG19: speed against bare VGG19, bfloat16, memory.

Three comparisons, each measured side by side in one run:

1. Clips/s of `TemporalVGG19` against bare `keras.applications.VGG19` on the
   same frames (the clips folded to `(batch * time, h, w, 3)`), same
   weights, at each frame size.
2. Clips/s of `TemporalVGG19` under `mixed_bfloat16` against float32, with
   how far the bfloat16 features are from the float32 ones; bare VGG19's
   ratio alongside for reference.
3. Peak resident memory (Linux `VmHWM`) of inference with `frame_chunk` on
   a long clip against a short one, each case in its own process.

Timings warm up first, then alternate the compared variants (A, B, A, B, ...)
and report medians, so that load on the machine hits all variants alike.

    python benchmarks/bench_backbone.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_vgg4d.backbone import TemporalVGG19  # noqa: E402


def write_vgg19_weights(path, seed):
    """Saves VGG19 no-top weights, He-scaled random so features stay O(1+)."""
    model = keras.applications.VGG19(weights=None, include_top=False)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            std = np.sqrt(2.0 / np.prod(kernel.shape[:3]))
            layer.set_weights(
                [
                    rng.normal(0, std, kernel.shape).astype("float32"),
                    rng.normal(0, 0.1, bias.shape).astype("float32"),
                ]
            )
    model.save_weights(path)


def temporal_model(clip_shape, weights, policy="float32", **kwargs):
    keras.config.set_dtype_policy(policy)
    try:
        inputs = keras.Input(clip_shape)
        outputs = TemporalVGG19(weights=weights, **kwargs)(inputs)
        return keras.Model(inputs, outputs)
    finally:
        keras.config.set_dtype_policy("float32")


def bare_vgg19(frame_shape, weights, policy="float32"):
    keras.config.set_dtype_policy(policy)
    try:
        return keras.applications.VGG19(
            weights=weights, include_top=False, input_shape=frame_shape
        )
    finally:
        keras.config.set_dtype_policy("float32")


def alternate(variants, repeats, warmup):
    """Median seconds per call of each `{name: (model, input)}`.

    The variants take turns (A, B, C, A, B, C, ...), and the order rotates
    every round (B, C, A, ...) so that no variant always runs first.
    """
    for model, x in variants.values():
        for _ in range(warmup):
            model.predict_on_batch(x)
    names = list(variants)
    seconds = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            model, x = variants[name]
            start = time.perf_counter()
            model.predict_on_batch(x)
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in seconds.items()}


def feature_agreement(reference, other):
    """(max |a - b| / max |a|, mean cosine similarity per frame)."""
    a = np.asarray(reference, "float64").reshape(-1, reference[0, 0].size)
    b = np.asarray(other, "float64").reshape(a.shape)
    relative = np.abs(a - b).max() / np.abs(a).max()
    cosine = np.sum(a * b, 1) / (
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12
    )
    return relative, float(cosine.mean())


def preprocessed_clips(rng, batch, frames, size):
    raw = rng.uniform(0, 255, (batch, frames, size, size, 3)).astype("float32")
    flat = raw.reshape(-1, size, size, 3).copy()
    ready = keras.applications.vgg19.preprocess_input(flat).reshape(raw.shape)
    return raw, ready


def bench_against_bare(args, weights, rng):
    print(
        f"\n## TemporalVGG19 vs bare keras.applications.VGG19 "
        f"(batch {args.batch} x {args.frames} frames, float32, median of "
        f"{args.repeats})\n"
    )
    print("| frames | bare VGG19 clips/s | TemporalVGG19 clips/s | ratio "
          "| TemporalVGG19 + preprocess clips/s | ratio | max abs diff |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        raw, ready = preprocessed_clips(rng, args.batch, args.frames, size)
        clip_shape = ready.shape[1:]
        folded = ready.reshape(-1, size, size, 3)
        bare = bare_vgg19((size, size, 3), weights)
        plain = temporal_model(clip_shape, weights, preprocess=False)
        inside = temporal_model(clip_shape, weights, preprocess=True)
        # Same weights, same frames: the features agree.
        diff = np.abs(
            plain.predict_on_batch(ready).reshape(-1)
            - bare.predict_on_batch(folded).reshape(-1)
        ).max()
        seconds = alternate(
            {
                "bare": (bare, folded),
                "temporal": (plain, ready),
                "inside": (inside, raw),
            },
            args.repeats,
            args.warmup,
        )
        rate = {name: args.batch / s for name, s in seconds.items()}
        print(
            f"| {size}x{size} | {rate['bare']:.2f} | {rate['temporal']:.2f} "
            f"| {rate['temporal'] / rate['bare']:.3f} | {rate['inside']:.2f} "
            f"| {rate['inside'] / rate['bare']:.3f} | {diff:.2e} |"
        )


def bench_bfloat16(args, weights, rng):
    size = max(args.sizes)
    print(
        f"\n## mixed_bfloat16 vs float32 ({size}x{size}, batch {args.batch} x "
        f"{args.frames} frames, median of {args.repeats})\n"
    )
    _, ready = preprocessed_clips(rng, args.batch, args.frames, size)
    folded = ready.reshape(-1, size, size, 3)
    clip_shape = ready.shape[1:]
    models = {
        "temporal_f32": (
            temporal_model(clip_shape, weights, preprocess=False), ready
        ),
        "temporal_bf16": (
            temporal_model(
                clip_shape, weights, "mixed_bfloat16", preprocess=False
            ),
            ready,
        ),
        "bare_f32": (bare_vgg19((size, size, 3), weights), folded),
        "bare_bf16": (
            bare_vgg19((size, size, 3), weights, "mixed_bfloat16"),
            folded,
        ),
    }
    seconds = alternate(models, args.repeats, args.warmup)
    rate = {name: args.batch / s for name, s in seconds.items()}
    f32 = models["temporal_f32"][0].predict_on_batch(ready)
    bf16 = models["temporal_bf16"][0].predict_on_batch(ready)
    relative, cosine = feature_agreement(f32, bf16)
    dtypes = {w.dtype for w in models["temporal_bf16"][0].weights}
    print("| model | float32 clips/s | mixed_bfloat16 clips/s | ratio |")
    print("| --- | --- | --- | --- |")
    for name in ("temporal", "bare"):
        f, b = rate[f"{name}_f32"], rate[f"{name}_bf16"]
        label = "TemporalVGG19" if name == "temporal" else "bare VGG19"
        print(f"| {label} | {f:.2f} | {b:.2f} | {b / f:.3f} |")
    print(
        f"\nbfloat16 vs float32 features: max |diff| / max |f32| = "
        f"{relative:.4f}, mean per-frame cosine similarity = {cosine:.5f}; "
        f"bfloat16 model weight dtypes: {sorted(dtypes)}"
    )


def reset_peak_rss():
    """Resets the process' peak RSS (Linux >= 4.0: /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def status_mb(field):
    """`VmRSS` (resident now) or `VmHWM` (peak resident) of this process.

    Read from /proc rather than `getrusage`: `ru_maxrss` survives `exec`, so
    a child would report its parent's peak at the fork.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def memory_child(frames, chunk, size, seed):
    """Runs in its own process: peak RSS of one inference, as JSON.

    The model is built and called once (tracing) first; the peak RSS is then
    reset so the building's own peak does not hide the inference's.
    """
    keras.utils.set_random_seed(seed)
    model = temporal_model(
        (frames, size, size, 3), None, frame_chunk=chunk, preprocess=False
    )
    x = np.random.default_rng(seed).normal(
        size=(1, frames, size, size, 3)
    ).astype("float32")
    built = status_mb("VmRSS")
    model.predict_on_batch(x)
    reset_peak_rss()
    model.predict_on_batch(x)
    peak = status_mb("VmHWM")
    print(json.dumps({"built_mb": built, "peak_mb": peak}))


def bench_memory(args):
    size, chunk = 112, args.frame_chunk
    print(
        f"\n## Peak memory of inference, one clip of {size}x{size} frames "
        "(each case in its own process; peak RSS of a call after a warm-up "
        "call)\n"
    )
    cases = [(8, chunk), (64, chunk), (8, None), (64, None)]
    results = {}
    for frames, frame_chunk in cases:
        command = [
            sys.executable, os.path.abspath(__file__), "--memory-child",
            str(frames), str(frame_chunk or 0), "--seed", str(args.seed),
        ]
        output = subprocess.run(
            command, check=True, capture_output=True, text=True
        ).stdout
        last_line = output.strip().splitlines()[-1]
        results[(frames, frame_chunk)] = json.loads(last_line)
    print("| frames | frame_chunk | RSS once built (MB) "
          "| peak RSS of inference (MB) | ratio to 8 frames "
          "| inference's own (peak - built, MB) | ratio to 8 frames |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (frames, frame_chunk), r in results.items():
        base = results[(8, frame_chunk)]
        own = r["peak_mb"] - r["built_mb"]
        base_own = base["peak_mb"] - base["built_mb"]
        print(
            f"| {frames} | {frame_chunk} | {r['built_mb']:.0f} "
            f"| {r['peak_mb']:.0f} | {r['peak_mb'] / base['peak_mb']:.3f} "
            f"| {own:.0f} | {own / base_own:.2f} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 112])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--frame-chunk", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["bare", "bf16", "memory"],
        help="comparisons to leave out",
    )
    parser.add_argument(
        "--memory-child", nargs=2, type=int, metavar=("FRAMES", "CHUNK"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if args.memory_child:
        frames, chunk = args.memory_child
        memory_child(frames, chunk or None, 112, args.seed)
        return
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        weights = os.path.join(folder, "vgg19_notop.weights.h5")
        write_vgg19_weights(weights, args.seed)
        if "bare" not in args.skip:
            bench_against_bare(args, weights, rng)
        if "bf16" not in args.skip:
            bench_bfloat16(args, weights, rng)
    if "memory" not in args.skip:
        bench_memory(args)


if __name__ == "__main__":
    main()
