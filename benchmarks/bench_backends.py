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

And the search (`--no-search` skips it; it makes a default run of two
rounds about 9.5 minutes on this 2-core CPU, idle, from about 3.5: per
round about 35 s of TensorFlow's default search, 100 s of JAX's, 50 s of
backbone at its frames):

4. The backbone at the search's own frames: bare VGG19 in float32 and in
   `mixed_bfloat16` (the search's feature cache runs this, in the precision
   `--precision auto` picks on this CPU) on `--search-backbone-frames`
   frames of 32x32 (default 96: one batch of 16 clips of 6 frames; the
   search's `--image-size`, `--frames` and `--batch-size` if
   `--search-args` set them); 0 skips it.
5. The `vgg4d-tune` search on the built-in demo data, one fresh process per
   backend (`python -m keras_vgg4d.tuning.search --backend B --directory
   <tmp> --quiet`, `KERAS_BACKEND=B` set so that it does not start itself
   again), taking turns like the workers: the default arguments, or
   `--search-args "..."` added to them. Per backend: the wall seconds of
   the whole command, the seconds of all trials and of each (from the
   search's `trial_times.json`, as benchmarks/bench_search_speed.py reads
   them, with each trial's head and epochs run from `results.json` and its
   `history.json`), the rest (start-up, data, report, saving), the best
   trial's head and score, and the ratio of the seconds to the first
   backend's.

    python benchmarks/bench_backends.py
    python benchmarks/bench_backends.py --backends tensorflow,jax,torch
    python benchmarks/bench_backends.py --rounds 1 --size 64 --frames 8 \\
        --no-search
    python benchmarks/bench_backends.py --no-backbone \\
        --search-args "--max-trials 3 --epochs 5"
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from _timing import alternate
from _timing import error_text
from _timing import machine

BACKENDS = ("tensorflow", "jax", "torch")
SHORT = {"tensorflow": "tf", "jax": "jax", "torch": "torch"}
HEADS = ("framewise", "conv3d", "lstm")
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")
RESULT_PREFIX = "BENCH_BACKENDS_RESULT "
# The search's defaults: frame size, frames per clip, clips per batch.
SEARCH_SIZE, SEARCH_CLIP_LENGTH, SEARCH_BATCH = 32, 6, 16
SEARCH_MODULE = "keras_vgg4d.tuning.search"


# --- the measurements, run inside a worker process -------------------------


def measurement_names() -> list[str]:
    """Every measurement, in the order of the table's rows."""
    names = ["bare VGG19 float32", "bare VGG19 mixed_bfloat16"]
    names += [f"{head} predict" for head in HEADS]
    names += [f"{head} train step" for head in HEADS]
    return names


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
    variants = make_variants(args, keras, np)
    if args.measurements:
        wanted = args.measurements.split(",")
        variants = {name: variants[name] for name in wanted}
    results, calls = {}, {}
    for name, build in variants.items():
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


def run_worker(backend, args, part) -> dict:
    """One worker process on `backend` measuring `part` (a dict: size,
    frames, clip_length, names): its JSON result, or its failure."""
    command = [
        sys.executable, os.path.abspath(__file__), "--worker", backend,
        "--size", str(part["size"]), "--frames", str(part["frames"]),
        "--clip-length", str(part["clip_length"]),
        "--repeats", str(args.repeats), "--warmup", str(part["warmup"]),
        "--seed", str(args.seed), "--measurements", ",".join(part["names"]),
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


def print_tables(args, part, backends, summaries, runs):
    """The frames/s table, the first-call table and the workers' lines of
    one backbone `part`."""
    size, frames, clip_length = part["size"], part["frames"], part["clip_length"]
    names = part["names"]
    batch = max(1, frames // clip_length)
    reference = backends[0]
    others = backends[1:]
    print(
        f"\n## {part['title']}: frames/s, median of {args.rounds} round(s) "
        f"(± half the range over rounds); each round the median of "
        f"{args.repeats} alternating call(s) after {part['warmup']} warm-up "
        f"call(s)\n"
    )
    described = [f"bare: {frames} frames of {size}x{size}x3"]
    if any(not name.startswith("bare") for name in names):
        described.append(
            f"classifier: clips ({batch}, {clip_length}, {size}, {size}, 3), "
            f"float32, weights=None; train step: frozen backbone "
            f"(trainable_blocks=0), Adam, `train_on_batch`. \"x bare\": "
            f"frames/s over bare float32 VGG19's on the same backend"
        )
    print("; ".join(described) + ".\n")
    header = ["measurement"] + [f"{b} frames/s" for b in backends]
    header += [f"{SHORT[b]}/{SHORT[reference]}" for b in others]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for name in names:
        is_model = not name.startswith("bare")
        cells = [name]
        for backend in backends:
            bare = (summaries[backend].get("bare VGG19 float32") if is_model
                    else None)
            cells.append(rate_cell(summaries[backend][name], bare))
        for backend in others:
            cells.append(ratio_cell(
                summaries[backend][name], summaries[reference][name]
            ))
        print("| " + " | ".join(cells) + " |")

    print(f"\n## {part['title']}: first call, seconds (after construction: "
          f"subclassed models build and JAX compiles here), median over "
          f"rounds\n")
    print("| measurement | " + " | ".join(backends) + " |")
    print("|" + " --- |" * (len(backends) + 1))
    for name in names:
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


# --- the search ------------------------------------------------------------


def search_options(search_args: list[str]) -> argparse.Namespace:
    """The few `vgg4d-tune` options the driver reads from `--search-args`."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--project-name", default="search")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--directory")
    parser.add_argument("--backend")
    parser.add_argument("--image-size", type=int, default=SEARCH_SIZE)
    parser.add_argument("--frames", type=int, default=SEARCH_CLIP_LENGTH)
    parser.add_argument("--batch-size", type=int, default=SEARCH_BATCH)
    known, _ = parser.parse_known_args(search_args)
    return known


def search_precision(precision: str) -> str:
    """The features' dtype policy `vgg4d-tune --precision` gives on this
    CPU, from the package's own `precision.py` (loaded alone: importing
    `keras_vgg4d` would import Keras, and a backend, here)."""
    try:
        package = importlib.util.find_spec("keras_vgg4d")
        path = os.path.join(
            os.path.dirname(package.origin), "precision.py"
        )
        spec = importlib.util.spec_from_file_location("_precision", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.resolve_precision(precision)
    except Exception as error:  # only a label: never stop the benchmark
        return f"unknown ({error_text(error)})"


def read_json(path, default):
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, ValueError):
        return default


def search_trials(project: str) -> list[dict]:
    """Each finished trial in the order it ran: id, head, score, seconds,
    epochs run. Seconds from `trial_times.json` (the search's own clock, as
    bench_search_speed.py reads it), else `results.json`'s."""
    rows = read_json(os.path.join(project, "results.json"), [])
    by_id = {row["trial"]: row for row in rows}
    times = read_json(os.path.join(project, "trial_times.json"), {})
    ids = list(times) or sorted(by_id)
    trials = []
    for trial_id in ids:
        row = by_id.get(trial_id, {})
        history = read_json(os.path.join(
            project, f"trial_{trial_id}", "history.json"), {})
        epochs = max((len(v) for v in history.values()), default=None)
        trials.append({
            "trial": trial_id,
            "head": row.get("head", "?"),
            "score": row.get("score"),
            "seconds": times.get(trial_id, row.get("seconds")),
            "epochs": epochs,
        })
    return trials


def run_search(backend, args) -> dict:
    """`vgg4d-tune` on `backend` in a fresh process, in a fresh folder."""
    search_args = shlex.split(args.search_args)
    project_name = search_options(search_args).project_name
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    with tempfile.TemporaryDirectory(prefix="bench_backends_") as directory:
        command = [
            sys.executable, "-m", SEARCH_MODULE, "--backend", backend,
            "--directory", directory, "--quiet", *search_args,
        ]
        start = time.perf_counter()
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, env=env,
                timeout=args.search_timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"search ran over {args.search_timeout} s"}
        wall = time.perf_counter() - start
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return {"error": f"search exited {done.returncode}: {last}"[:200]}
        project = os.path.join(directory, project_name)
        trials = search_trials(project)
        rows = read_json(os.path.join(project, "results.json"), [])
    if not trials:
        return {"error": "the search left no trial_times.json or results.json"}
    best_line = next((line for line in done.stdout.splitlines()
                      if line.startswith("best:")), "")
    best = rows[0] if rows else {}
    return {
        "wall_s": wall,
        "trials": trials,
        "best": {key: best.get(key) for key in
                 ("trial", "head", "objective", "score", "val_accuracy")},
        "best_line": best_line,
    }


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize_search(runs: list[dict]) -> dict:
    """Medians over the rounds of the wall, the trials and each trial."""
    done = [run for run in runs if "error" not in run]
    if not done:
        return {"error": runs[0]["error"] if runs else "not run"}
    count = max(len(run["trials"]) for run in done)
    trials = []
    for i in range(count):
        cells = [run["trials"][i] for run in done if i < len(run["trials"])]
        trials.append({
            "trial": cells[0]["trial"],
            "head": "/".join(sorted({c["head"] for c in cells})),
            "seconds": median_or_none([c["seconds"] for c in cells]),
            "epochs": median_or_none([c["epochs"] for c in cells]),
        })
    in_trials = [sum(t["seconds"] or 0 for t in run["trials"]) for run in done]
    walls = [run["wall_s"] for run in done]
    return {
        "wall": statistics.median(walls),
        "wall_spread": (max(walls) - min(walls)) / 2 / statistics.median(walls),
        "in_trials": statistics.median(in_trials),
        "outside": statistics.median(
            [w - t for w, t in zip(walls, in_trials)]),
        "trials": trials,
        "best": [run["best"] for run in done],
        "best_lines": [run["best_line"] for run in done],
        "failed_rounds": len(runs) - len(done),
    }


def seconds_ratio(value, reference) -> str:
    if value is None or not reference:
        return "-"
    return f"{value / reference:.2f}"


def print_search_table(args, backends, summaries, runs):
    reference = backends[0]
    others = backends[1:]
    search_args = shlex.split(args.search_args)
    precision = search_options(search_args).precision
    described = " ".join(search_args) if search_args else "(defaults)"
    print(
        f"\n## vgg4d-tune search, seconds, median of {args.rounds} round(s) "
        f"(one fresh process per backend per round, alternating)\n"
    )
    print(
        f"`python -m {SEARCH_MODULE} --backend B --directory <tmp> --quiet "
        f"{described}`; features in {search_precision(precision)} "
        f"(`--precision {precision}` on this CPU). A trial's cell: its "
        f"seconds (head, epochs run; the first trial also fills the "
        f"feature cache). Ratios: seconds over {reference}'s "
        f"(> 1: slower).\n"
    )
    header = ["search"] + [f"{b} s" for b in backends]
    header += [f"{SHORT[b]}/{SHORT[reference]}" for b in others]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))

    # The numbers behind each row, per backend, for the ratios.
    numbers = {b: {} for b in backends}
    for b in backends:
        summary = summaries[b]
        if "error" in summary:
            continue
        numbers[b]["whole command (wall)"] = summary["wall"]
        numbers[b]["trials in all"] = summary["in_trials"]
        numbers[b]["outside the trials"] = summary["outside"]
        for i, trial in enumerate(summary["trials"]):
            numbers[b][f"trial {i + 1}"] = trial["seconds"]

    def cell(backend, label):
        summary = summaries[backend]
        if "error" in summary:
            return f"failed: {summary['error']}"
        value = numbers[backend].get(label)
        if value is None:
            return "-"
        text = f"{value:.1f}"
        if label == "whole command (wall)":
            if summary["wall_spread"] >= 0.0005:
                text += f" ±{100 * summary['wall_spread']:.0f}%"
            if summary["failed_rounds"]:
                text += f" ({summary['failed_rounds']} round(s) failed)"
        if label.startswith("trial "):
            trial = summary["trials"][int(label.split()[1]) - 1]
            epochs = ("?" if trial["epochs"] is None
                      else f"{trial['epochs']:g}")
            text += f" ({trial['head']}, {epochs} ep)"
        return text

    labels = ["whole command (wall)", "trials in all", "outside the trials"]
    count = max((len(summaries[b].get("trials", [])) for b in backends),
                default=0)
    labels += [f"trial {i + 1}" for i in range(count)]
    ids = {}
    for b in reversed(backends):
        for i, trial in enumerate(summaries[b].get("trials", [])):
            ids[f"trial {i + 1}"] = trial["trial"]
    for label in labels:
        shown = f"{label} (id {ids[label]})" if label in ids else label
        cells = [shown] + [cell(b, label) for b in backends]
        for b in others:
            cells.append(seconds_ratio(numbers[b].get(label),
                                       numbers[reference].get(label)))
        print("| " + " | ".join(cells) + " |")
    cells = ["best trial: head, score"]
    for b in backends:
        bests = summaries[b].get("best", [])
        texts = []
        for best in bests:
            score = ("-" if best.get("score") is None
                     else f"{best['score']:.4f}")
            texts.append(f"{best.get('trial')} {best.get('head')}, "
                         f"{best.get('objective')} {score}")
        cells.append("; ".join(texts) if texts else "-")
    cells += ["-" for _ in others]
    print("| " + " | ".join(cells) + " |")
    print()
    for b in backends:
        for line in summaries[b].get("best_lines", []):
            print(f"{b}: {line}")
        for run in runs[b]:
            if "error" in run:
                print(f"{b}: a search failed: {run['error']}")


def backbone_parts(args) -> list[dict]:
    """The backbone measurements this run makes: the main one, and with
    `--search` the bare backbone at the search's frames."""
    parts = []
    if not args.no_backbone:
        parts.append({
            "title": "backbone", "size": args.size, "frames": args.frames,
            "clip_length": args.clip_length, "warmup": args.warmup,
            "names": measurement_names(),
        })
    search = search_options(shlex.split(args.search_args))
    frames = args.search_backbone_frames
    if frames is None:  # one batch of the search's clips
        frames = search.batch_size * search.frames
    if args.search and frames > 0:
        size = search.image_size
        parts.append({
            "title": f"backbone at the search's {size}x{size} frames",
            "size": size, "frames": frames,
            "clip_length": search.frames, "warmup": 1,
            "names": ["bare VGG19 float32", "bare VGG19 mixed_bfloat16"],
        })
    return parts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--backends", default="tensorflow,jax",
        help="comma-separated, from tensorflow, jax, torch; the first is "
             "the reference of the ratios")
    add("--rounds", type=int, default=2,
        help="alternating rounds: one worker process (and search) per "
             "backend per round")
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
    add("--search", action=argparse.BooleanOptionalAction, default=True,
        help="time the vgg4d-tune search on the demo data per backend "
             "(minutes per backend), and the bare backbone at its frames")
    add("--search-args", default="",
        help="arguments added to the search's command, e.g. "
             "\"--max-trials 3 --epochs 5\" (default: none: the default "
             "search)")
    add("--search-backbone-frames", type=int, default=None,
        help="frames per call of the bare backbone at the search's frame "
             "size (default: one batch of the search's clips, 16 clips of "
             "6 frames of 32x32 unless --search-args change them); 0 skips "
             "it")
    add("--search-timeout", type=int, default=3600,
        help="seconds a search may take")
    add("--no-backbone", action="store_true",
        help="skip the main backbone measurements (only the search and "
             "the backbone at its frames)")
    add("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    add("--measurements", default="", help=argparse.SUPPRESS)
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
    try:
        options = search_options(shlex.split(args.search_args))
    except ValueError as error:
        parser.error(f"--search-args: {error}")
    if options.directory or options.backend:
        parser.error("--search-args sets --directory and --backend itself")
    parts = backbone_parts(args)
    if not parts and not args.search:
        parser.error("--no-backbone with --no-search measures nothing")
    print(machine())
    print(cpu_flags_line())
    start = time.perf_counter()
    runs = [{backend: [] for backend in backends} for _ in parts]
    search_runs = {backend: [] for backend in backends}
    for round_ in range(args.rounds):
        # Alternate, and rotate the order each round: no backend always
        # runs first.
        shift = round_ % len(backends)
        order = backends[shift:] + backends[:shift]
        for part, part_runs in zip(parts, runs):
            for backend in order:
                result = run_worker(backend, args, part)
                part_runs[backend].append(result)
                state = result.get("error", "done")
                print(f"(round {round_ + 1}: {part['title']}, {backend} "
                      f"{state})", flush=True)
        if args.search:
            for backend in order:
                result = run_search(backend, args)
                search_runs[backend].append(result)
                state = result.get("error")
                state = state or f"done in {result['wall_s']:.0f} s"
                print(f"(round {round_ + 1}: search, {backend} {state})",
                      flush=True)
    for part, part_runs in zip(parts, runs):
        summaries = {b: summarize(part_runs[b], part["names"])
                     for b in backends}
        print_tables(args, part, backends, summaries, part_runs)
    if args.search:
        summaries = {b: summarize_search(search_runs[b]) for b in backends}
        print_search_table(args, backends, summaries, search_runs)
    print(f"\ntotal {time.perf_counter() - start:.0f} s; {machine()}")


if __name__ == "__main__":
    main()
