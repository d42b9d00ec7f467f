"""Benchmark deployment: Keras `predict` against every export runtime.

Three comparisons, each measured side by side in one run:

1. `runtimes`: clips/s of Keras `predict` (and `predict_on_batch`) against
   the same classifier exported and run by TensorFlow (SavedModel), ONNX
   Runtime, OpenVINO (float32, and bfloat16, its default on CPUs with
   bfloat16 units) and LiteRT (built-in ops, XNNPACK), for the `lstm` and
   `conv3d` heads, on 4 clips x 8 frames of 64x64 (one padded frame), with
   how far each runtime's answers are from `predict`'s. Target: the fastest
   runtime at least 1.2x Keras `predict`.
2. `overhead`: the exported classifier against the bare VGG19 base
   (`keras.applications.VGG19(include_top=False)`, the same weights),
   both in ONNX Runtime, on the same frames. Target: the classifier within
   5% of the bare base (its preprocessing, mask and head cost little).
3. `onednn`: Keras `predict` with `TF_ENABLE_ONEDNN_OPTS=1` against `=0`,
   each in its own process (the variable is read when TensorFlow is
   imported), the processes alternating; and whether TensorFlow turns
   oneDNN on by itself here (its "oneDNN custom operations are on" line).
4. `cache`: filling the feature cache (`FeatureCache.get`: the backbone
   features and masks of 64 clips x 6 frames of 64x64, batches of 32, by
   `feature_extractor(...).predict_on_batch`) against the same extractor
   exported to ONNX and run by ONNX Runtime in the same loop, with the
   extractor's `predict` alongside, and the one-off cost of the export and
   the session. Target: ONNX Runtime at least 1.15x the cache fill.

Timings warm up first, then alternate the compared variants (A, B, A, B,
..., the order reversed every other round) and report medians; each speed-up
is the median of the speed-ups measured within a round, so load bursts on
the shared machine cancel out. The weights are random but scaled so that
the answers are far from uniform: the differences to `predict` mean
something.

    python benchmarks/bench_deploy.py
    python benchmarks/bench_deploy.py --skip onednn --heads lstm
    python benchmarks/bench_deploy.py --skip runtimes overhead onednn
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from _timing import alternate  # noqa: E402
from keras_vgg4d import VGG4DClassifier  # noqa: E402
from keras_vgg4d.export import export_classifier  # noqa: E402
from keras_vgg4d.export import load_artifact  # noqa: E402

FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16",
         "amx_tile", "amx_int8")
RUNTIMES = ("tf_saved_model", "onnx", "openvino", "litert")
ONEDNN_LINE = "oneDNN custom operations are on"


def machine() -> str:
    """CPU model and flags (from /proc/cpuinfo), CPU count and load."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    present = ", ".join(f"{f}={'yes' if f in flags else 'no'}" for f in FLAGS)
    load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (f"{model}, {os.cpu_count()} CPU(s), load average {load}\n"
            f"flags: {present}")


def clips(args, seed=0):
    rng = np.random.default_rng(seed)
    shape = (args.batch, args.frames, args.size, args.size, 3)
    x = rng.uniform(0, 255, shape).astype("float32")
    x[0, -1] = 0.0  # a padded frame
    return x


def excite(model, x, seed=0):
    """He-scaled backbone, LeCun-scaled head, and the head's normalization
    set to the statistics of the features of `x`: answers far from uniform."""
    rng = np.random.default_rng(seed)
    backbone = {id(weight) for weight in model.backbone.weights}
    for weight in model.backbone.weights + model.head.trainable_weights:
        shape = tuple(weight.shape)
        if len(shape) > 1:
            scale = 2.0 if id(weight) in backbone else 1.0
            value = rng.normal(0, np.sqrt(scale / np.prod(shape[:-1])), shape)
        else:
            value = rng.normal(1.0 if "gamma" in weight.path else 0.0, 0.1,
                               shape)
        weight.assign(value.astype("float32"))
    maps, mask = model.feature_extractor(x.shape[1:])(x)
    real = np.asarray(maps)[np.asarray(mask)]
    if model.temporal_head != "conv3d":
        real = real.mean(axis=(1, 2))
    real = real.reshape(-1, real.shape[-1])
    model.head.normalization.moving_mean.assign(real.mean(axis=0))
    model.head.normalization.moving_variance.assign(real.var(axis=0))


def paired(variants, reference, rounds, repeats):
    """Median seconds of each variant, and its median speed-up over
    `reference` within a round (paired, so load bursts cancel out).

    Each round is one `alternate` round; the order is reversed every
    other round so that no variant always runs first.
    """
    names = list(variants)
    seconds = {name: [] for name in names}
    for round_ in range(rounds):
        order = names if round_ % 2 == 0 else names[::-1]
        timed = alternate({n: variants[n] for n in order}, 1, repeats)
        for name in names:
            seconds[name].append(timed[name])
    speedups = {
        name: statistics.median(
            r / t for r, t in zip(seconds[reference], seconds[name])
        )
        for name in names
    }
    return {n: statistics.median(s) for n, s in seconds.items()}, speedups


def classifier(args, head, x):
    model = VGG4DClassifier(3, head)
    model.build((None, args.frames, args.size, args.size, 3))
    excite(model, x)
    return model


def runners(args, model, folder):
    """name -> callable on clips: Keras and every runtime's artifact."""
    variants = {
        "keras predict": lambda x: model.predict(x, verbose=0),
        "keras predict_on_batch": model.predict_on_batch,
    }
    for format in RUNTIMES:
        path = export_classifier(model, os.path.join(folder, "clf"), format)[0]
        variants[format] = load_artifact(path)
        if format == "openvino":
            variants["openvino bf16"] = load_artifact(
                path, openvino_precision="bf16"
            )
    return variants


def bench_runtimes(args, folder):
    print(f"\n## Keras predict vs the runtimes ({args.batch} clips x "
          f"{args.frames} frames of {args.size}x{args.size}, medians of "
          f"{args.rounds} alternating rounds x {args.repeats} calls)\n")
    print("| head | variant | clips/s | vs keras predict (paired) | "
          "max abs diff |")
    print("| --- | --- | --- | --- | --- |")
    x = clips(args)
    for head in args.heads:
        model = classifier(args, head, x)
        variants = runners(args, model, os.path.join(folder, head))
        expected = model.predict(x, verbose=0)
        diffs = {n: np.abs(np.asarray(f(x)) - expected).max()
                 for n, f in variants.items()}  # also the warm-up
        for f in variants.values():
            f(x)
        seconds, speedups = paired(
            {n: (lambda f=f: f(x)) for n, f in variants.items()},
            "keras predict", args.rounds, args.repeats,
        )
        for name, time in seconds.items():
            print(f"| {head} | {name} | {args.batch / time:.2f} | "
                  f"{speedups[name]:.2f}x | {diffs[name]:.1e} |")
        fastest = max(RUNTIMES + ("openvino bf16",), key=speedups.get)
        print(f"| {head} | fastest runtime: {fastest} | | "
              f"{speedups[fastest]:.2f}x | |")


def bare_vgg19_onnx(args, model, path):
    """The bare VGG19 base with `model`'s backbone weights, in ONNX."""
    import tensorflow as tf

    bare = keras.applications.VGG19(
        weights=None, include_top=False, input_shape=(args.size, args.size, 3)
    )
    frame_model = model.backbone.frame_model
    for layer in bare.layers:
        if layer.weights:
            layer.set_weights(frame_model.get_layer(layer.name).get_weights())
    spec = tf.TensorSpec((None, args.size, args.size, 3), tf.float32)
    bare.export(path, format="onnx", verbose=False, input_signature=[spec])
    return load_artifact(path)


def bench_overhead(args, folder):
    print(f"\n## Exported classifier vs bare VGG19, both in ONNX Runtime "
          f"(same {args.batch * args.frames} frames of "
          f"{args.size}x{args.size})\n")
    print("| head | bare VGG19 clips/s | classifier clips/s | classifier / "
          "bare (paired) |")
    print("| --- | --- | --- | --- |")
    x = clips(args)
    frames = keras.applications.vgg19.preprocess_input(
        x.reshape(-1, args.size, args.size, 3).copy()
    )
    for head in args.heads:
        model = classifier(args, head, x)
        bare = bare_vgg19_onnx(args, model, os.path.join(folder, "bare.onnx"))
        path = export_classifier(model, os.path.join(folder, head), "onnx")[0]
        exported = load_artifact(path)
        for f, arg in ((bare, frames), (exported, x)):
            f(arg)
        seconds, speedups = paired(
            {"bare": lambda: bare(frames), "classifier": lambda: exported(x)},
            "bare", args.rounds, args.repeats,
        )
        print(f"| {head} | {args.batch / seconds['bare']:.2f} | "
              f"{args.batch / seconds['classifier']:.2f} | "
              f"{speedups['classifier']:.3f} |")


def onnx_extractor(extractor, clip_shape, path):
    """`extractor` exported to ONNX; returns (run, seconds to export and
    open the session). `run(batch)` gives the features and the mask."""
    import time

    import onnxruntime as ort
    import tensorflow as tf

    start = time.perf_counter()
    spec = tf.TensorSpec((None, *clip_shape), tf.float32)
    extractor.export(path, format="onnx", verbose=False,
                     input_signature=[spec])
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    seconds = time.perf_counter() - start
    name = session.get_inputs()[0].name
    return (lambda batch: session.run(None, {name: batch})), seconds


def fill(run, x, batch_size):
    """`FeatureCache._from_array`'s loop with `run` as the extractor."""
    features = masks = None
    for start in range(0, len(x), batch_size):
        batch_features, batch_mask = run(x[start:start + batch_size])
        if features is None:
            features = np.empty((len(x), *batch_features.shape[1:]),
                                batch_features.dtype)
            masks = np.empty((len(x), *batch_mask.shape[1:]), bool)
        features[start:start + len(batch_features)] = batch_features
        masks[start:start + len(batch_mask)] = batch_mask
    return features, masks


def bench_cache(args, folder):
    from keras_vgg4d.feature_cache import FeatureCache

    shape = (args.cache_frames, args.cache_size, args.cache_size, 3)
    sized = argparse.Namespace(**{**vars(args), "batch": args.cache_clips,
                                  "frames": args.cache_frames,
                                  "size": args.cache_size})
    print(f"\n## Feature cache fill: Keras against ONNX Runtime "
          f"({args.cache_clips} clips x {args.cache_frames} frames of "
          f"{args.cache_size}x{args.cache_size}, batches of "
          f"{args.cache_batch}, medians of {args.rounds} alternating "
          f"rounds)\n")
    x = clips(sized)
    model = classifier(sized, args.heads[0], x)
    extractor = model.feature_extractor(shape)
    run_onnx, setup = onnx_extractor(
        extractor, shape, os.path.join(folder, "extractor.onnx")
    )
    variants = {
        "FeatureCache.get (Keras predict_on_batch)": lambda: FeatureCache()
        .get(model, x, batch_size=args.cache_batch, verbose=0).inputs,
        "extractor.predict": lambda: extractor.predict(
            x, batch_size=args.cache_batch, verbose=0),
        "ONNX Runtime, same loop": lambda: fill(run_onnx, x,
                                                args.cache_batch),
    }
    reference = "FeatureCache.get (Keras predict_on_batch)"
    results = {n: f() for n, f in variants.items()}  # also the warm-up
    features, mask = results[reference]
    diffs = {n: (np.abs(np.asarray(r[0]) - features).max(),
                 bool((np.asarray(r[1]) == mask).all()))
             for n, r in results.items()}
    seconds, speedups = paired(variants, reference, args.rounds, 1)
    print("| variant | clips/s | s per fill | vs FeatureCache.get (paired) "
          "| max abs diff of features | same masks |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, time_ in seconds.items():
        diff, same = diffs[name]
        print(f"| {name} | {args.cache_clips / time_:.2f} | {time_:.2f} | "
              f"{speedups[name]:.2f}x | {diff:.1e} | "
              f"{'yes' if same else 'no'} |")
    onnx = seconds["ONNX Runtime, same loop"]
    once = (seconds[reference]) / (setup + onnx)
    print(f"\nONNX export + session (once): {setup:.1f} s; one fill with "
          f"it included: {once:.2f}x FeatureCache.get; features max "
          f"|value| {np.abs(features).max():.2e}")


def child_predict(args):
    """In a child process: Keras `predict` clips/s (median), as JSON."""
    import time

    keras.utils.set_random_seed(args.seed)
    x = clips(args)
    model = classifier(args, args.heads[0], x)
    for _ in range(2):
        model.predict(x, verbose=0)
    times = []
    for _ in range(args.rounds * args.repeats):
        start = time.perf_counter()
        model.predict(x, verbose=0)
        times.append(time.perf_counter() - start)
    print(json.dumps({"clips_per_s": args.batch / statistics.median(times)}))


def run_child(args, onednn):
    """Runs `child_predict` with `TF_ENABLE_ONEDNN_OPTS=onednn` (or unset
    for `None`); returns its clips/s and whether oneDNN said it was on."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    command = [sys.executable, os.path.abspath(__file__), "--child",
               "--heads", args.heads[0], "--batch", str(args.batch),
               "--frames", str(args.frames), "--size", str(args.size),
               "--rounds", str(args.rounds), "--repeats", str(args.repeats),
               "--seed", str(args.seed)]
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["clips_per_s"], ONEDNN_LINE in done.stderr


def bench_onednn(args):
    print(f"\n## Keras predict, TF_ENABLE_ONEDNN_OPTS=1 vs 0 ({args.heads[0]} "
          f"head, one process each, {args.onednn_pairs} alternating pairs)\n")
    rates = {"1": [], "0": []}
    said_on = {}
    for pair in range(args.onednn_pairs):
        for flag in ("1", "0") if pair % 2 == 0 else ("0", "1"):
            rate, on = run_child(args, flag)
            rates[flag].append(rate)
            said_on[flag] = on
    _, default_on = run_child(args, None)
    print("| TF_ENABLE_ONEDNN_OPTS | clips/s (median) | log says oneDNN on |")
    print("| --- | --- | --- |")
    for flag in ("1", "0"):
        print(f"| {flag} | {statistics.median(rates[flag]):.2f} | "
              f"{'yes' if said_on[flag] else 'no'} |")
    print(f"| unset (TensorFlow's default) | | "
          f"{'yes' if default_on else 'no'} |")
    ratio = statistics.median(rates["1"]) / statistics.median(rates["0"])
    print(f"\noneDNN on / off: {ratio:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", nargs="+", default=["lstm", "conv3d"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--onednn-pairs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-clips", type=int, default=64)
    parser.add_argument("--cache-frames", type=int, default=6)
    parser.add_argument("--cache-size", type=int, default=64)
    parser.add_argument("--cache-batch", type=int, default=32)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["runtimes", "overhead", "onednn", "cache"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_predict(args)
    keras.utils.set_random_seed(args.seed)
    print("# bench_deploy\n")
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        if "runtimes" not in args.skip:
            bench_runtimes(args, folder)
        if "overhead" not in args.skip:
            bench_overhead(args, folder)
        if "cache" not in args.skip:
            bench_cache(args, folder)
    if "onednn" not in args.skip:
        bench_onednn(args)
    load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print(f"\nload average after: {load}")


if __name__ == "__main__":
    main()
