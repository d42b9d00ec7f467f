"""Benchmark Keras' backends against each other on this CPU, side by side.

The same measurements on each backend (TensorFlow and JAX by default,
PyTorch if asked and installed), in one run:

1. Bare `keras.applications.VGG19(weights=None, include_top=False)`,
   `predict_on_batch` on `--frames` frames of `--size`x`--size`x3, in float32
   and under `mixed_bfloat16`: frames/s.
2. `VGG4DClassifier(num_classes=3, temporal_head=h, weights=None)`,
   `predict_on_batch` on clips `(frames // clip_length, clip_length, size,
   size, 3)` (the same frames), for each head: frames/s, and the ratio to
   bare float32 VGG19 on the same backend.
3. A frozen-backbone train step (`train_on_batch`, Adam) of the same
   classifier, for each head: frames/s.

Keras reads `KERAS_BACKEND` once per process, so every backend runs in its
own worker process (this script with `--worker BACKEND`), and the workers
take turns in alternating rounds (tf, jax, then jax, tf, ...) so that load
on the shared machine hits every backend alike. Within a worker every
measurement is warmed up first (JAX compiles on its first call; the first
call's seconds are reported too), then the measurements take turns and the
median is kept; the table shows the median over the rounds. A measurement
that fails prints `failed: <error>` in its cell and the others still run.

    python benchmarks/bench_backends.py
    python benchmarks/bench_backends.py --backends tensorflow,jax,torch
    python benchmarks/bench_backends.py --rounds 1 --size 64 --frames 8
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from _timing import alternate
from _timing import machine

BACKENDS = ("tensorflow", "jax", "torch")
SHORT = {"tensorflow": "tf", "jax": "jax", "torch": "torch"}
HEADS = ("framewise", "conv3d", "lstm")
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")
RESULT_PREFIX = "BENCH_BACKENDS_RESULT "


# --- the measurements, run inside a worker process -------------------------


def measurement_names() -> list[str]:
    """Every measurement, in the order of the table's rows."""
    names = ["bare VGG19 float32", "bare VGG19 mixed_bfloat16"]
    names += [f"{head} predict" for head in HEADS]
    names += [f"{head} train step" for head in HEADS]
    return names


def error_text(error: BaseException) -> str:
    """One short line describing `error`, safe inside a Markdown cell."""
    # Keras colours parts of its messages: drop the terminal escapes.
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    lines = lines or [""]
    # Keras wraps a layer's error: "Exception encountered when calling
    # X.call().", then the error itself on the next line.
    text = " ".join(lines[:2] if lines[0].startswith("Exception enc") else
                    lines[:1])
    text = f"{type(error).__name__}: {text}".replace("|", "/")
    return text if len(text) <= 240 else text[:237] + "..."


def bare_vgg19(keras, size, policy):
    keras.config.set_dtype_policy(policy)
    try:
        return keras.applications.VGG19(
            weights=None, include_top=False, input_shape=(size, size, 3)
        )
    finally:
        keras.config.set_dtype_policy("float32")


def make_variants(args, keras, np):
    """name -> a function building the measurement: () -> (call, frames)."""
    rng = np.random.default_rng(args.seed)
    size, clip_length = args.size, args.clip_length
    batch = max(1, args.frames // clip_length)
    frames = rng.uniform(
        0, 255, (args.frames, size, size, 3)
    ).astype("float32")
    frames = keras.applications.vgg19.preprocess_input(frames)
    clips = rng.uniform(
        0, 255, (batch, clip_length, size, size, 3)
    ).astype("float32")
    labels = (np.arange(batch) % 3).astype("int32")
    clip_frames = batch * clip_length

    def bare(policy):
        def build():
            model = bare_vgg19(keras, size, policy)
            return (lambda: model.predict_on_batch(frames)), len(frames)
        return build

    def predict(head):
        def build():
            from keras_vgg4d import VGG4DClassifier

            model = VGG4DClassifier(
                num_classes=3, temporal_head=head, weights=None
            )
            return (lambda: model.predict_on_batch(clips)), clip_frames
        return build

    def train(head):
        def build():
            from keras_vgg4d import VGG4DClassifier

            model = VGG4DClassifier(
                num_classes=3, temporal_head=head, weights=None,
                trainable_blocks=0,
            )
            model.compile(
                optimizer="adam", loss="sparse_categorical_crossentropy"
            )
            return (lambda: model.train_on_batch(clips, labels)), clip_frames
        return build

    builders = [bare("float32"), bare("mixed_bfloat16")]
    builders += [predict(head) for head in HEADS]
    builders += [train(head) for head in HEADS]
    return dict(zip(measurement_names(), builders))


def worker(args) -> None:
    """Runs every measurement on `args.worker`; prints one JSON result line."""
    os.environ["KERAS_BACKEND"] = args.worker
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    if keras.backend.backend() != args.worker:
        raise RuntimeError(
            f"asked for the {args.worker} backend, Keras runs "
            f"{keras.backend.backend()}"
        )
    keras.utils.set_random_seed(args.seed)
    results, calls = {}, {}
    for name, build in make_variants(args, keras, np).items():
        try:
            call, frames = build()
            start = time.perf_counter()
            call()
            first = time.perf_counter() - start
            for _ in range(args.warmup - 1):
                call()
        except Exception as error:  # one failure must not stop the others
            results[name] = {"error": error_text(error)}
            continue
        results[name] = {"frames": frames, "first_call_s": first}
        calls[name] = call
    try:
        seconds = alternate(calls, args.repeats, 1)
    except Exception:  # a failure while timing: time the others alone
        seconds = {}
        for name, call in calls.items():
            try:
                seconds.update(alternate({name: call}, args.repeats, 1))
            except Exception as error:
                results[name] = {"error": error_text(error)}
    for name, s in seconds.items():
        results[name]["seconds"] = s
        results[name]["frames_per_s"] = results[name]["frames"] / s
    print(RESULT_PREFIX + json.dumps({
        "backend": args.worker,
        "keras": keras.__version__,
        "backend_version": backend_version(args.worker),
        "results": results,
    }), flush=True)


def backend_version(backend: str) -> str:
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
    return __import__(module[backend]).__version__


# --- the driver ------------------------------------------------------------


def run_worker(backend, args) -> dict:
    """One worker process on `backend`: its JSON result, or its failure."""
    command = [
        sys.executable, os.path.abspath(__file__), "--worker", backend,
        "--size", str(args.size), "--frames", str(args.frames),
        "--clip-length", str(args.clip_length), "--repeats", str(args.repeats),
        "--warmup", str(args.warmup), "--seed", str(args.seed),
    ]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env,
            timeout=args.worker_timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"worker ran over {args.worker_timeout} s"}
    seconds = time.perf_counter() - start
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            result["process_s"] = seconds
            return result
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"worker exited {done.returncode}: {last}"[:160]}


def cpu_flags_line() -> str:
    flags = set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    found = [flag for flag in BF16_FLAGS if flag in flags]
    return "bfloat16 CPU flags: " + (", ".join(found) if found else "none")


def summarize(runs: list[dict], names: list[str]) -> dict:
    """name -> {"fps": median, "spread": +-fraction, "first": s} or error."""
    summary = {}
    for name in names:
        rates, firsts, errors = [], [], []
        for run in runs:
            if "error" in run:
                errors.append(run["error"])
                continue
            cell = run["results"].get(name, {"error": "not measured"})
            if "frames_per_s" in cell:
                rates.append(cell["frames_per_s"])
                firsts.append(cell["first_call_s"])
            else:
                errors.append(cell["error"])
        if not rates:
            summary[name] = {"error": errors[0] if errors else "not run"}
            continue
        median = statistics.median(rates)
        summary[name] = {
            "fps": median,
            "spread": (max(rates) - min(rates)) / 2 / median,
            "first": statistics.median(firsts),
            "failed_rounds": len(errors),
        }
    return summary


def rate_cell(cell: dict, bare: dict | None = None) -> str:
    if "error" in cell:
        return f"failed: {cell['error']}"
    text = f"{cell['fps']:.2f}"
    if cell["spread"] >= 0.0005:
        text += f" ±{100 * cell['spread']:.0f}%"
    if bare is not None and "fps" in bare:
        text += f" ({cell['fps'] / bare['fps']:.2f}x bare)"
    if cell["failed_rounds"]:
        text += f" ({cell['failed_rounds']} round(s) failed)"
    return text


def ratio_cell(cell: dict, reference: dict) -> str:
    if "fps" not in cell or "fps" not in reference:
        return "-"
    return f"{cell['fps'] / reference['fps']:.2f}"


def print_tables(args, backends, summaries, runs):
    batch = max(1, args.frames // args.clip_length)
    reference = backends[0]
    others = backends[1:]
    print(
        f"\n## frames/s, median of {args.rounds} round(s) "
        f"(± half the range over rounds); each round the median of "
        f"{args.repeats} alternating call(s) after {args.warmup} warm-up "
        f"call(s)\n"
    )
    print(
        f"bare: {args.frames} frames of {args.size}x{args.size}x3; "
        f"classifier: clips ({batch}, {args.clip_length}, {args.size}, "
        f"{args.size}, 3), float32, weights=None; train step: frozen "
        f"backbone (trainable_blocks=0), Adam, `train_on_batch`. "
        f"\"x bare\": frames/s over bare float32 VGG19's on the same "
        f"backend.\n"
    )
    header = ["measurement"] + [f"{b} frames/s" for b in backends]
    header += [f"{SHORT[b]}/{SHORT[reference]}" for b in others]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for name in measurement_names():
        is_model = not name.startswith("bare")
        cells = [name]
        for backend in backends:
            bare = (summaries[backend]["bare VGG19 float32"] if is_model
                    else None)
            cells.append(rate_cell(summaries[backend][name], bare))
        for backend in others:
            cells.append(ratio_cell(
                summaries[backend][name], summaries[reference][name]
            ))
        print("| " + " | ".join(cells) + " |")

    print("\n## first call, seconds (after construction: subclassed "
          "models build and JAX compiles here), median over rounds\n")
    print("| measurement | " + " | ".join(backends) + " |")
    print("|" + " --- |" * (len(backends) + 1))
    for name in measurement_names():
        cells = [name]
        for backend in backends:
            cell = summaries[backend][name]
            cells.append(f"{cell['first']:.2f}" if "first" in cell else "-")
        print("| " + " | ".join(cells) + " |")

    print()
    for backend in backends:
        done = [run for run in runs[backend] if "error" not in run]
        if done:
            seconds = ", ".join(f"{run['process_s']:.0f}" for run in done)
            print(
                f"{backend}: {done[0]['backend']} {done[0]['backend_version']}"
                f", Keras {done[0]['keras']}; worker process seconds per "
                f"round: {seconds}"
            )
        for run in runs[backend]:
            if "error" in run:
                print(f"{backend}: a worker failed: {run['error']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--backends", default="tensorflow,jax",
        help="comma-separated, from tensorflow, jax, torch; the first is "
             "the reference of the ratios")
    add("--rounds", type=int, default=2,
        help="alternating rounds: one worker process per backend per round")
    add("--size", type=int, default=112, help="frame height and width")
    add("--frames", type=int, default=16, help="frames per call")
    add("--clip-length", type=int, default=4,
        help="frames per clip of the classifier's clips")
    add("--repeats", type=int, default=3,
        help="timed calls of each measurement per round")
    add("--warmup", type=int, default=2,
        help="untimed calls first (at least 1)")
    add("--seed", type=int, default=0)
    add("--worker-timeout", type=int, default=1800,
        help="seconds a worker process may take")
    add("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.warmup = max(1, args.warmup)
    if args.worker:
        worker(args)
        return

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends or len(set(backends)) != len(backends):
        parser.error(
            f"--backends expects distinct names from {list(BACKENDS)}, "
            f"received: {args.backends!r}"
        )
    print(machine())
    print(cpu_flags_line())
    start = time.perf_counter()
    runs = {backend: [] for backend in backends}
    for round_ in range(args.rounds):
        # Alternate, and rotate the order each round: no backend always
        # runs first.
        shift = round_ % len(backends)
        for backend in backends[shift:] + backends[:shift]:
            result = run_worker(backend, args)
            runs[backend].append(result)
            state = result.get("error", "done")
            print(f"(round {round_ + 1}: {backend} {state})", flush=True)
    names = measurement_names()
    summaries = {b: summarize(runs[b], names) for b in backends}
    print_tables(args, backends, summaries, runs)
    print(f"\ntotal {time.perf_counter() - start:.0f} s; {machine()}")


if __name__ == "__main__":
    main()
