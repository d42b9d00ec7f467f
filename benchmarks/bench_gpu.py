"""Benchmark keras_vgg4d on one GPU: Keras' JAX and PyTorch backends.

One run on the same GPU, in bfloat16 (`mixed_bfloat16`) and float32, each
piece in its own process (Keras reads `KERAS_BACKEND` once per process):

1. `jax` and `torch`: bare `keras.applications.VGG19(weights=None,
   include_top=False)` on `--frames` frames of `--size`x`--size`x3, frames/s
   and TFLOP/s, as `predict_on_batch` (input already on the GPU; Keras
   copies the output to the host) and as a plain call on the GPU (JAX: a
   jitted `stateless_call`; PyTorch: `model(x)` under `no_grad`).
   `VGG4DClassifier.predict_on_batch` for each head on the same frames as
   clips `(frames // clip_length, clip_length, size, size, 3)`, and its
   ratio to bare VGG19 on the same backend; a frozen-backbone train step
   (`train_on_batch`) for each head. Then what might close a gap, as the
   budget allows: `--batch-sizes`, `--data-formats`, NumPy input, and
   Keras' `jit_compile=True` (`torch.compile`) on the PyTorch backend.
   `--xla-flags` go to the JAX processes.
2. `reference`: VGG19's conv base in plain `torch.nn`, from the same layer
   table as the FLOP count, channels_last, eager and `torch.compile`d, so
   the report gives "best Keras / compiled PyTorch".
3. `search`: the default `VGG4DHyperModel` search (the `"order"` demo task,
   192 clips of 6 frames of 32x32, 15 epochs, batch 16) with
   `keras_tuner.RandomSearch`, 3 trials, on JAX; NumPy clips of the same
   task if `keras_vgg4d.data.demo_clips` cannot be imported.

FLOPs are counted from VGG19's layer table, 2 * H * W * Cin * Cout * 9 for
each 3x3 convolution, and checked against the Keras model's own `Conv2D`
layers. Every piece has a time budget: a measurement that would run past it
is skipped with a note, and a process still running at its budget's end is
stopped (what it measured by then is kept). A measurement that fails prints
`failed: <error>` in its cell and the rest still runs. The report is a
Markdown table on stdout, and `$OUT/bench_gpu.md` (with each process's log
beside it) when `$OUT` is set. The whole run takes at most
`--total-budget-s` (450 s) plus a few seconds.

Setup on a GPU machine whose Python has JAX and PyTorch with CUDA but no
TensorFlow and no network. This project needs no install: run from the
repository root and the script puts it on `sys.path` when `keras_vgg4d`
is not installed (`pip install --no-deps --no-build-isolation -e .` should
work offline too; keep `--no-deps`, the project's dependencies name
TensorFlow).
Keras and Keras Tuner travel as wheels, fetched where there is a network
for the GPU machine's Python (3.12 on x86-64 here):

    pip download -d wheels --only-binary=:all: --python-version 3.12 \\
        --platform manylinux2014_x86_64 keras==3.15.1 keras-tuner==1.4.8

and installed there (dependencies already present are kept):

    pip install --no-index --find-links wheels keras keras-tuner
    python benchmarks/bench_gpu.py
    python benchmarks/bench_gpu.py --batch-sizes 64,128,256,512 \\
        --xla-flags=--xla_gpu_autotune_level=4 --pieces jax,reference

Smoke test on a CPU, tiny shapes, as if TensorFlow were not installed (each
piece reports `tensorflow_loaded False`):

    python benchmarks/bench_gpu.py --quick --hide-tensorflow
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from _timing import alternate
from _timing import error_text
from _timing import machine

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIECES = ("jax", "torch", "reference", "search")
HEADS = ("framewise", "conv3d", "lstm")
PRECISIONS = {"bfloat16": "mixed_bfloat16", "float32": "float32"}
# VGG19's conv base as keras.applications builds it: (3x3 convolutions,
# filters) per block, each block ending in a 2x2 max pooling of stride 2.
VGG19_CONV_TABLE = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))

# Settings that differ between a full run and `--quick`: (full, quick).
SETTINGS = {
    "frames": (256, 4),
    "size": (224, 32),
    "batch_sizes": ("64,128,256", "2,4"),
    "repeats": (10, 2),
    "warmup": (2, 1),
    "keras_budget_s": (135, 120),
    "reference_budget_s": (90, 90),
    "search_budget_s": (55, 90),
    "total_budget_s": (450, 420),
    "search_clips": (192, 24),
    "search_frames": (6, 4),
    "search_size": (32, 32),
    "search_epochs": (15, 1),
}


# --- shared by the driver and the workers ----------------------------------


def conv_shapes(size, channels=3):
    """`(h, w, cin, cout)` of each 3x3 convolution of VGG19's conv base."""
    shapes, height = [], size
    for convs, filters in VGG19_CONV_TABLE:
        for _ in range(convs):
            shapes.append((height, height, channels, filters))
            channels = filters
        height //= 2
    return shapes


def table_flops(size) -> int:
    """Forward FLOPs of one frame (a multiply-add counts 2) from the table."""
    return sum(2 * h * w * cin * cout * 9 for h, w, cin, cout in
               conv_shapes(size))


# --- worker side: budget, timing, records ----------------------------------


class Recorder:
    """Appends one JSON line per record to the results file, at once."""

    def __init__(self, path, piece):
        self.path, self.piece = path, piece

    def __call__(self, **record):
        record.setdefault("piece", self.piece)
        with open(self.path, "a") as file:
            file.write(json.dumps(record) + "\n")


class Budget:
    """Skips a measurement that would end past the deadline.

    A measurement's cost is guessed from the last one of its kind, or the
    median of all so far.
    """

    def __init__(self, deadline):
        self.deadline = deadline
        self.costs = {}

    def shortfall(self, kind):
        """None if `kind` fits, else a note saying why it is skipped."""
        costs = sorted(self.costs.values()) or [0.0]
        guess = self.costs.get(kind, costs[len(costs) // 2])
        left = self.deadline - time.time()
        if guess < left and left > 1:
            return None
        return (f"skipped: over budget ({left:.0f} s left, ~{guess:.0f} s "
                "needed)")

    def spent(self, kind, seconds):
        self.costs[kind] = seconds


def measure(args, budget, record, kind, fields, build, cleanup=None):
    """Builds, warms up and times one measurement; records it.

    `build()` returns `(call, frames)`: `call()` does one unit of work and
    waits for the device, `frames` is how many frames it processes.
    """
    note = budget.shortfall(kind)
    if note:
        record(**fields, skipped=note)
        return
    record(type="started", **{k: v for k, v in fields.items() if k != "type"})
    start = time.time()
    try:
        call, frames = build()
        first_start = time.perf_counter()
        call()
        first = time.perf_counter() - first_start
        for _ in range(args.warmup - 1):
            call()
        seconds = alternate({"call": call}, args.repeats, 1)["call"]
        record(**fields, frames=frames, seconds=seconds,
               fps=frames / seconds, first_s=first)
    except Exception as error:  # one failure must not stop the others
        record(**fields, error=error_text(error))
    finally:
        call = build = None
        if cleanup is not None:
            cleanup()
        budget.spent(kind, time.time() - start)


class _HiddenTensorFlow:
    """Wraps an import finder so that it finds no `tensorflow` module."""

    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return None
        find = getattr(self._finder, "find_spec", None)
        return None if find is None else find(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self._finder, attribute)


def hide_tensorflow():
    """Makes this process act as if TensorFlow were not installed.

    `import tensorflow` raises ModuleNotFoundError and
    `importlib.util.find_spec("tensorflow")` returns None, as when it is
    absent (torch._dynamo and Keras probe both ways).
    """
    if "tensorflow" in sys.modules:
        raise RuntimeError("TensorFlow is already imported: too late to hide")
    sys.meta_path[:] = [_HiddenTensorFlow(finder) for finder in sys.meta_path]


def ensure_package_importable():
    """Puts the repository on `sys.path` if keras_vgg4d is not installed."""
    if importlib.util.find_spec("keras_vgg4d") is None:
        sys.path.insert(0, REPO)


# --- worker: Keras on JAX or PyTorch ---------------------------------------


class Device:
    """What differs between JAX and PyTorch: placement, waiting, a call."""

    def __init__(self, keras):
        self.keras = keras
        self.backend = keras.backend.backend()
        if self.backend == "jax":
            import jax

            self.jax = jax
        else:
            import torch

            self.torch = torch

    def put(self, array):
        """`array` on the default device (the GPU if there is one)."""
        return self.keras.ops.convert_to_tensor(array)

    def wait(self, value=None):
        if self.backend == "jax":
            self.jax.block_until_ready(value)
        elif self.torch.cuda.is_available():
            self.torch.cuda.synchronize()

    def plain_call(self, model):
        """`x -> model(x)` on the device, compiled as the backend would."""
        if self.backend == "jax":
            trainable = [v.value for v in model.trainable_variables]
            frozen = [v.value for v in model.non_trainable_variables]
            def forward(trainable, frozen, x):
                return model.stateless_call(
                    trainable, frozen, x, training=False
                )[0]

            jitted = self.jax.jit(forward)
            return lambda x: jitted(trainable, frozen, x)

        def call(x):
            with self.torch.no_grad():
                return model(x, training=False)

        return call

    def name(self):
        if self.backend == "jax":
            device = self.jax.devices()[0]
            return f"{device.platform}: {device.device_kind}"
        if self.torch.cuda.is_available():
            return f"cuda: {self.torch.cuda.get_device_name(0)}"
        return "cpu"

    def cleanup(self):
        self.keras.backend.clear_session()
        gc.collect()
        if self.backend == "torch" and self.torch.cuda.is_available():
            self.torch.cuda.empty_cache()


def keras_flops(model) -> int:
    """Forward FLOPs of one frame, from the model's own `Conv2D` layers."""
    total = 0
    for layer in model.layers:
        if layer.__class__.__name__ != "Conv2D":
            continue
        shape = layer.output.shape
        last = layer.data_format == "channels_last"
        h, w = shape[1:3] if last else shape[2:4]
        kh, kw, cin, cout = layer.kernel.shape
        total += 2 * h * w * kh * kw * cin * cout
    return total


def bare_vgg19(keras, size, policy, data_format="channels_last"):
    shape = (size, size, 3) if data_format == "channels_last" else (3, size,
                                                                    size)
    keras.config.set_dtype_policy(policy)
    keras.config.set_image_data_format(data_format)
    try:
        return keras.applications.VGG19(
            weights=None, include_top=False, input_shape=shape
        )
    finally:
        keras.config.set_dtype_policy("float32")
        keras.config.set_image_data_format("channels_last")


def keras_worker(args, record, budget):
    import keras
    import numpy as np

    device = Device(keras)
    keras.utils.set_random_seed(args.seed)
    info = {
        "device": device.name(),
        "keras": keras.__version__,
        "backend": device.backend,
    }
    if device.backend == "jax":
        import jax

        info["version"] = jax.__version__
        info["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") or "(none)"
        info["jax_default_matmul_precision"] = str(
            jax.config.jax_default_matmul_precision
        )
    else:
        torch = device.torch
        torch.backends.cudnn.benchmark = args.cudnn_benchmark == "on"
        info.update(torch_settings(torch))
    rng = np.random.default_rng(args.seed)
    size = args.size
    frames = keras.applications.vgg19.preprocess_input(
        rng.uniform(0, 255, (args.frames, size, size, 3)).astype("float32")
    )
    batch = max(1, args.frames // args.clip_length)
    clips = rng.uniform(
        0, 255, (batch, args.clip_length, size, size, 3)
    ).astype("float32")
    labels = (np.arange(batch) % 3).astype("int32")
    clip_frames = batch * args.clip_length
    try:
        info["keras_flops_per_frame"] = keras_flops(
            bare_vgg19(keras, size, "float32")
        )
    except Exception as error:
        info["keras_flops_error"] = error_text(error)
    device.cleanup()
    record(type="info", **info)

    def bare(precision, mode, count=args.frames, data_format="channels_last"):
        def build():
            model = bare_vgg19(keras, size, PRECISIONS[precision], data_format)
            x = frames[:count] if count <= len(frames) else np.resize(
                frames, (count, *frames.shape[1:])
            )
            if data_format == "channels_first":
                x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
            if mode == "predict_on_batch, NumPy input":
                return (lambda: model.predict_on_batch(x)), count
            x = device.put(x)
            if mode.startswith("predict_on_batch"):
                if "jit_compile" in mode:
                    model.compile(jit_compile=True)
                return (lambda: model.predict_on_batch(x)), count
            call = device.plain_call(model)
            return (lambda: device.wait(call(x))), count

        fields = dict(type="result", group="bare", precision=precision,
                      mode=mode, batch=count, data_format=data_format)
        kind = f"bare {mode}"
        measure(args, budget, record, kind, fields, build, device.cleanup)

    def classifier(precision, head, train):
        def build():
            from keras_vgg4d import VGG4DClassifier

            keras.config.set_dtype_policy(PRECISIONS[precision])
            try:
                model = VGG4DClassifier(
                    num_classes=3, temporal_head=head, weights=None,
                    trainable_blocks=0,
                )
            finally:
                keras.config.set_dtype_policy("float32")
            x = device.put(clips)
            if not train:
                return (lambda: model.predict_on_batch(x)), clip_frames
            model.compile(optimizer="adam",
                          loss="sparse_categorical_crossentropy")
            y = device.put(labels)
            return (lambda: model.train_on_batch(x, y)), clip_frames

        group = "train" if train else "predict"
        fields = dict(type="result", group=group, precision=precision,
                      head=head, batch=clip_frames)
        measure(args, budget, record, group, fields, build, device.cleanup)

    precisions = args.precision_list
    # In order of priority: a piece stopped at its budget loses the last.
    for precision in precisions:
        bare(precision, "predict_on_batch")
        bare(precision, "call on device")
    for train in (False, True):
        for precision in precisions:
            for head in args.head_list:
                classifier(precision, head, train)
    for precision in precisions:
        bare(precision, "predict_on_batch, NumPy input")
    if device.backend == "torch":
        for precision in precisions:
            bare(precision, "predict_on_batch, jit_compile=True")
    for count in args.batch_size_list:
        if count != args.frames:
            for precision in precisions:
                bare(precision, "call on device", count)
    for data_format in args.data_format_list:
        if data_format != "channels_last":
            for precision in precisions:
                bare(precision, "call on device", data_format=data_format)


# --- worker: VGG19's conv base in plain PyTorch ----------------------------


def torch_settings(torch):
    return {
        "version": torch.__version__,
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }


def torch_vgg19_conv_base(nn):
    """VGG19's conv base from `VGG19_CONV_TABLE`, as `keras.applications`."""
    layers, channels = [], 3
    for convs, filters in VGG19_CONV_TABLE:
        for _ in range(convs):
            layers += [nn.Conv2d(channels, filters, 3, padding=1),
                       nn.ReLU(inplace=True)]
            channels = filters
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


def reference_worker(args, record, budget):
    import torch

    torch.manual_seed(args.seed)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark == "on"
    cuda = torch.cuda.is_available()
    where = "cuda" if cuda else "cpu"
    record(type="info", device=(f"cuda: {torch.cuda.get_device_name(0)}"
                                if cuda else "cpu"), **torch_settings(torch))
    # The same FLOPs as the table, counted from the modules' own shapes.
    counted = []
    net = torch_vgg19_conv_base(torch.nn)
    hooks = [
        module.register_forward_hook(
            lambda m, i, o: counted.append(
                2 * o.shape[2] * o.shape[3] * m.in_channels * m.out_channels
                * m.kernel_size[0] * m.kernel_size[1]
            )
        )
        for module in net if isinstance(module, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        net(torch.zeros(1, 3, args.size, args.size))
    for hook in hooks:
        hook.remove()
    record(type="info", torch_flops_per_frame=sum(counted))

    def run(precision, compiled):
        def build():
            dtype = {"bfloat16": torch.bfloat16,
                     "float32": torch.float32}[precision]
            model = torch_vgg19_conv_base(torch.nn).eval().to(
                device=where, dtype=dtype, memory_format=torch.channels_last
            )
            if compiled:
                model = torch.compile(model, mode=args.compile_mode)
            x = torch.randn(args.frames, 3, args.size, args.size,
                            device=where, dtype=dtype).contiguous(
                memory_format=torch.channels_last)

            def call():
                with torch.inference_mode():
                    model(x)
                if cuda:
                    torch.cuda.synchronize()

            return call, args.frames

        def cleanup():
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()

        mode = "torch.compile" if compiled else "eager"
        if compiled and args.compile_mode:
            mode += f" ({args.compile_mode})"
        fields = dict(type="result", group="reference", precision=precision,
                      mode=f"{mode}, channels_last", batch=args.frames,
                      compiled=compiled)
        measure(args, budget, record,
                "compile" if compiled else "eager", fields, build, cleanup)

    for precision in args.precision_list:
        run(precision, False)
        run(precision, True)


# --- worker: the default search on JAX -------------------------------------


def numpy_order_clips(n, frames, size, seed):
    """The `"order"` task drawn with NumPy: brightness rising or falling.

    For machines where `keras_vgg4d.data` cannot be imported. Class 0's
    frames brighten over time, class 1's darken; the clip's brightness
    range, noise and a square's place vary.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype("int32")
    x = rng.normal(40, 8, (n, frames, size, size, 3))
    for i, label in enumerate(labels):
        levels = np.sort(rng.uniform(0, 1, frames))
        levels = levels if label == 0 else levels[::-1]
        top, left = rng.integers(0, size // 2, 2)
        x[i, :, top:top + size // 2, left:left + size // 2] += (
            60 + 150 * levels[:, None, None, None]
        )
    return np.clip(x, 1, 255).astype("float32"), labels


def search_worker(args, record, budget):
    import keras
    import keras_tuner

    keras.utils.set_random_seed(args.seed)
    try:
        from keras_vgg4d.data import demo_clips

        x, y = demo_clips(n=args.search_clips, frames=args.search_frames,
                          size=args.search_size, task="order", seed=args.seed)
        data = "demo_clips, order task"
    except ImportError as error:
        x, y = numpy_order_clips(args.search_clips, args.search_frames,
                                 args.search_size, args.seed)
        data = "NumPy order clips (no demo_clips: see notes)"
        record(type="info", fallback="keras_vgg4d.data.demo_clips could not "
               f"be imported, NumPy clips instead: {error_text(error)}")
    validation = max(2, len(x) // 4)
    data += (f", {len(x) - validation} + {validation} clips of "
             f"{'x'.join(map(str, x.shape[1:]))}")
    fields = dict(type="result", group="search", data=data,
                  trials=args.search_trials, epochs=args.search_epochs)
    import jax

    record(type="info", device=f"{jax.devices()[0].platform}: "
           f"{jax.devices()[0].device_kind}", keras=keras.__version__,
           keras_tuner=keras_tuner.__version__, version=jax.__version__)
    start = time.perf_counter()
    try:
        from keras_vgg4d import VGG4DHyperModel

        hypermodel = VGG4DHyperModel(int(y.max()) + 1, x.shape[1:])

        class RecordingSearch(keras_tuner.RandomSearch):
            def on_trial_end(self, trial):
                super().on_trial_end(trial)
                record(type="progress", group="search",
                       seconds=time.perf_counter() - start,
                       trial=trial.trial_id, score=trial.score,
                       head=trial.hyperparameters.values.get("temporal_head"))

        with tempfile.TemporaryDirectory() as directory:
            tuner = RecordingSearch(
                hypermodel, objective=hypermodel.objective,
                max_trials=args.search_trials, directory=directory,
                project_name="bench_gpu", seed=args.seed, overwrite=True,
            )
            tuner.search(
                x[:-validation], y[:-validation],
                validation_data=(x[-validation:], y[-validation:]),
                epochs=args.search_epochs, batch_size=16, verbose=0,
            )
            best = tuner.oracle.get_best_trials(1)[0]
            done = sum(1 for t in tuner.oracle.trials.values()
                       if t.status == "COMPLETED")
        record(**fields, seconds=time.perf_counter() - start, done=done,
               best=best.score,
               best_head=best.hyperparameters.values.get("temporal_head"))
    except Exception as error:
        record(**fields, seconds=time.perf_counter() - start,
               error=error_text(error))


def worker(args):
    if args.hide_tensorflow:
        hide_tensorflow()
    ensure_package_importable()
    record = Recorder(args.results, args.piece_name or args.worker)
    budget = Budget(args.deadline)
    {"keras": keras_worker, "reference": reference_worker,
     "search": search_worker}[args.worker](args, record, budget)
    # The proof that the piece ran without TensorFlow, where it is absent.
    record(type="info", tensorflow_loaded="tensorflow" in sys.modules)


# --- driver: run the pieces, then the report -------------------------------


def piece_command(piece):
    """(worker kind, KERAS_BACKEND) of a piece."""
    return {
        "jax": ("keras", "jax"), "torch": ("keras", "torch"),
        "reference": ("reference", None), "search": ("search", "jax"),
    }[piece]


def run_piece(piece, budget_s, hard_s, results, log_path, argv, args):
    """Runs one piece's worker; returns a note if it did not end well."""
    kind, backend = piece_command(piece)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.pop("KERAS_BACKEND", None)
    if backend:
        env["KERAS_BACKEND"] = backend
    if backend == "jax" and args.xla_flags:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " "
                            + args.xla_flags).strip()
    command = [
        sys.executable, os.path.abspath(__file__), *argv, "--worker", kind,
        "--piece-name", piece, "--deadline", str(time.time() + budget_s),
        "--results", results,
    ]
    start = time.perf_counter()
    with open(log_path, "w") as log:
        # Its own process group: a stop also ends the compilers it started.
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )
        try:
            process.wait(timeout=hard_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            seconds = time.perf_counter() - start
            return (f"{piece}: stopped after {seconds:.0f} s, its budget "
                    f"({budget_s:.0f} s) spent; what ran before is kept")
    if process.returncode:
        with open(log_path) as log:
            lines = [line.strip() for line in log if line.strip()]
        last = lines[-1] if lines else "no output"
        return f"{piece}: exited {process.returncode}: {last[:200]}"
    return None


def read_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return [json.loads(line) for line in file if line.strip()]


def mark_stopped(records):
    """Adds a result for each measurement a stopped piece left unfinished."""
    def key(record):
        fields = {k: v for k, v in record.items() if k in (
            "piece", "group", "precision", "mode", "head", "batch",
            "data_format", "compiled")}
        return json.dumps(fields, sort_keys=True)

    finished = {key(r) for r in records if r.get("type") == "result"}
    stopped = [
        dict(r, type="result",
             skipped="stopped: its piece's budget ran out during it")
        for r in records
        if r.get("type") == "started" and key(r) not in finished
    ]
    return records + stopped


def outcome(record, value, digits=2):
    """A cell: the value, or why there is none."""
    if record is None:
        return "not run"
    if "error" in record:
        return f"failed: {record['error']}"
    if "skipped" in record:
        return record["skipped"]
    return f"{record[value]:.{digits}f}"


def number(record, value, digits=2):
    """A secondary cell: the value, or "-" (the first cell says why)."""
    if record is None or value not in record:
        return "-"
    return f"{record[value]:.{digits}f}"


def report(args, records, notes, seconds) -> str:
    lines = []
    out = lines.append
    flops = table_flops(args.size)
    infos = {}
    for r in records:
        if r.get("type") == "info":
            infos.setdefault(r["piece"], {}).update(r)
    results = [r for r in records if r.get("type") == "result"]
    out("# bench_gpu: keras_vgg4d on Keras' JAX and PyTorch backends\n")
    out(f"- host: {machine()}")
    for piece, info in infos.items():
        shown = {k: v for k, v in info.items()
                 if k not in ("piece", "type", "fallback")}
        out(f"- {piece}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    out(f"- frames per call {args.frames} of {args.size}x{args.size}x3; "
        f"classifier clips ({max(1, args.frames // args.clip_length)}, "
        f"{args.clip_length}, {args.size}, {args.size}, 3); median of "
        f"{args.repeats} timed call(s) after {args.warmup} warm-up call(s)")
    checks = [f"from the layer table {flops / 1e9:.3f} GFLOP"]
    for piece, key in (("jax", "keras_flops_per_frame"),
                       ("torch", "keras_flops_per_frame"),
                       ("reference", "torch_flops_per_frame")):
        if key in infos.get(piece, {}):
            value = infos[piece][key]
            agree = "agrees" if value == flops else "DIFFERS"
            source = ("the Keras model's Conv2D layers" if "keras" in key
                      else "the torch.nn modules' output shapes")
            out_text = f"{piece}: {source} {value / 1e9:.3f} GFLOP ({agree})"
            checks.append(out_text)
    out(f"- forward FLOPs per frame (2*H*W*Cin*Cout*9 over the 16 "
        f"convolutions; a multiply-add counts 2, so {flops / 2e9:.2f} G "
        f"multiply-adds): " + "; ".join(checks))
    out(f"- whole run {seconds:.0f} s")

    def bare_rows():
        """Bare rows by precision, then piece, each in the order measured."""
        order = {"jax": 0, "torch": 1, "reference": 2}
        precision = {p: i for i, p in enumerate(args.precision_list)}
        return sorted(
            (r for r in results if r["group"] in ("bare", "reference")),
            key=lambda r: (precision.get(r["precision"], 9),
                           order[r["piece"]]),
        )

    out("\n## Bare VGG19 conv base\n")
    out("| runs on | precision | mode | frames per call | frames/s "
        "| TFLOP/s | first call s |")
    out("| --- | --- | --- | --- | --- | --- | --- |")
    for r in bare_rows():
        mode = r["mode"]
        if r.get("data_format", "channels_last") != "channels_last":
            mode += f", {r['data_format']}"
        on = "PyTorch" if r["piece"] == "reference" else f"Keras {r['piece']}"
        tflops = ("-" if "fps" not in r
                  else f"{r['fps'] * flops / 1e12:.3g}")
        out(f"| {on} | {r['precision']} | {mode} | {r['batch']} "
            f"| {outcome(r, 'fps', 1)} | {tflops} | {number(r, 'first_s')} |")

    out(f"\n## Best Keras backend / compiled PyTorch (PyTorch at "
        f"{args.frames} frames per call; Keras' fastest bare row, any mode "
        f"or frames per call)\n")
    out("| precision | best Keras: runs on, mode, frames per call | frames/s "
        "| compiled PyTorch frames/s | best Keras / compiled PyTorch "
        "| eager PyTorch frames/s | best Keras / eager PyTorch |")
    out("| --- | --- | --- | --- | --- | --- | --- |")
    for precision in args.precision_list:
        keras_rows = [r for r in results if r["group"] == "bare"
                      and r["precision"] == precision and "fps" in r]
        reference = {r["compiled"]: r for r in results
                     if r["group"] == "reference"
                     and r["precision"] == precision}
        best = max(keras_rows, key=lambda r: r["fps"], default=None)
        label = "-" if best is None else (
            f"{best['piece']}, {best['mode']}"
            + ("" if best.get("data_format") == "channels_last"
               else f", {best['data_format']}") + f", {best['batch']}")
        cells = [precision, label, outcome(best, "fps", 1)]
        for compiled in (True, False):
            ref = reference.get(compiled)
            cells.append(outcome(ref, "fps", 1))
            ratio = ("-" if best is None or ref is None or "fps" not in ref
                     else f"{best['fps'] / ref['fps']:.2f}")
            cells.append(ratio)
        out("| " + " | ".join(cells) + " |")

    out("\n## VGG4DClassifier: predict_on_batch and a frozen-backbone train "
        "step (x bare: over bare VGG19's predict_on_batch frames/s, same "
        "backend and precision)\n")
    out("| runs on | precision | head | predict frames/s | x bare "
        "| train step frames/s | x bare | first predict s | first train s |")
    out("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for piece in ("jax", "torch"):
        for precision in args.precision_list:
            bare = next((r for r in results if r["piece"] == piece
                         and r["group"] == "bare"
                         and r["mode"] == "predict_on_batch"
                         and r["batch"] == args.frames
                         and r["precision"] == precision), None)
            for head in args.head_list:
                found = {
                    g: next((r for r in results if r["piece"] == piece
                             and r["group"] == g and r["head"] == head
                             and r["precision"] == precision), None)
                    for g in ("predict", "train")
                }
                if not any(found.values()):
                    continue
                cells = [f"Keras {piece}", precision, head]
                for group in ("predict", "train"):
                    r = found[group]
                    cells.append(outcome(r, "fps", 1))
                    cells.append(
                        "-" if r is None or bare is None or "fps" not in r
                        or "fps" not in bare
                        else f"{r['fps'] / bare['fps']:.2f}"
                    )
                cells += [number(found["predict"], "first_s"),
                          number(found["train"], "first_s")]
                out("| " + " | ".join(cells) + " |")

    if "search" in args.piece_list:
        out("\n## Default search: VGG4DHyperModel, keras_tuner.RandomSearch,"
            " on JAX\n")
        out("| data | trials | epochs | trials done | seconds "
            "| best val_accuracy | best head | note |")
        out("| --- | --- | --- | --- | --- | --- | --- | --- |")
        progress = [r for r in records if r.get("type") == "progress"]
        for r in (r for r in results if r["group"] == "search"):
            note = ("-" if "error" not in r else f"failed: {r['error']}")
            best = "-" if r.get("best") is None else f"{r['best']:.3f}"
            done = r.get("done", len(progress))
            out(f"| {r['data']} | {r['trials']} | {r['epochs']} | {done} "
                f"| {r['seconds']:.1f} | {best} | {r.get('best_head', '-')} "
                f"| {note} |")
        if not any(r["group"] == "search" for r in results):
            out(f"| - | {args.search_trials} | {args.search_epochs} "
                f"| {len(progress)} | - | - | - | not finished (see notes) |")

    if notes:
        out("\n## Notes\n")
        for note in notes:
            out(f"- {note}")
    return "\n".join(lines) + "\n"


def resolve_settings(args):
    """Fills the settings left unset from the full run's or `--quick`'s."""
    for name, (full, quick) in SETTINGS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.batch_size_list = [int(b) for b in str(args.batch_sizes).split(",")
                            if b.strip()]
    args.precision_list = [p.strip() for p in args.precisions.split(",")
                           if p.strip()]
    args.head_list = [h.strip() for h in args.heads.split(",") if h.strip()]
    args.data_format_list = [d.strip() for d in args.data_formats.split(",")
                             if d.strip()]
    args.piece_list = [p.strip() for p in args.pieces.split(",") if p.strip()]
    for name, values, allowed in (
        ("--precisions", args.precision_list, PRECISIONS),
        ("--heads", args.head_list, HEADS),
        ("--data-formats", args.data_format_list,
         ("channels_last", "channels_first")),
        ("--pieces", args.piece_list, PIECES),
    ):
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            raise SystemExit(
                f"{name} expects names from {list(allowed)}, received: "
                f"{values}"
            )
    args.warmup = max(1, args.warmup)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true",
        help="tiny shapes and budgets: a smoke test that runs on a CPU")
    add("--pieces", default=",".join(PIECES),
        help=f"comma-separated, from {list(PIECES)}")
    add("--frames", type=int, help="frames per call (256; quick 4)")
    add("--size", type=int, help="frame height and width (224; quick 32)")
    add("--clip-length", type=int, default=4,
        help="frames per clip of the classifier's clips")
    add("--batch-sizes",
        help="frames per call also tried for bare VGG19 on the device, "
             "comma-separated (64,128,256)")
    add("--precisions", default="bfloat16,float32")
    add("--heads", default=",".join(HEADS))
    add("--data-formats", default="channels_last",
        help="Keras image data formats tried for bare VGG19, e.g. "
             "channels_last,channels_first")
    add("--xla-flags", default="",
        help="added to XLA_FLAGS in the JAX processes")
    add("--cudnn-benchmark", choices=("on", "off"), default="on",
        help="torch.backends.cudnn.benchmark in the PyTorch processes")
    add("--compile-mode", default=None,
        help="torch.compile's mode for the reference, e.g. max-autotune")
    add("--repeats", type=int, help="timed calls per measurement (10)")
    add("--warmup", type=int, help="untimed calls first, at least 1 (2)")
    add("--keras-budget-s", type=float,
        help="seconds for each Keras backend (135)")
    add("--reference-budget-s", type=float,
        help="seconds for the plain PyTorch reference (90)")
    add("--search-budget-s", type=float, help="seconds for the search (55)")
    add("--total-budget-s", type=float,
        help="seconds for the whole run; later pieces shrink to fit (450)")
    add("--search-trials", type=int, default=3)
    add("--search-clips", type=int)
    add("--search-frames", type=int)
    add("--search-size", type=int)
    add("--search-epochs", type=int)
    add("--hide-tensorflow", action="store_true",
        help="run the pieces as if TensorFlow were not installed (to check, "
             "where it is, that nothing imports it)")
    add("--seed", type=int, default=0)
    add("--worker", choices=("keras", "reference", "search"),
        help=argparse.SUPPRESS)
    add("--piece-name", help=argparse.SUPPRESS)
    add("--deadline", type=float, help=argparse.SUPPRESS)
    add("--results", help=argparse.SUPPRESS)
    args = parser.parse_args()
    resolve_settings(args)
    if args.worker:
        worker(args)
        return

    start = time.time()
    budgets = {"jax": args.keras_budget_s, "torch": args.keras_budget_s,
               "reference": args.reference_budget_s,
               "search": args.search_budget_s}
    argv = sys.argv[1:]
    out_dir = os.environ.get("OUT")
    notes = []
    with tempfile.TemporaryDirectory() as folder:
        results = os.path.join(folder, "results.jsonl")
        for piece in args.piece_list:
            left = args.total_budget_s - (time.time() - start)
            budget_s = min(budgets[piece], left - 5)
            if budget_s < 15:
                notes.append(f"{piece}: skipped, the run's total budget "
                             f"({args.total_budget_s:.0f} s) is spent")
                continue
            # A worker skips what would end past its budget; one still
            # running a little after it is stopped.
            hard_s = min(budget_s + 10, left)
            log = os.path.join(out_dir or folder, f"bench_gpu_{piece}.log")
            print(f"({piece}: up to {budget_s:.0f} s)", file=sys.stderr,
                  flush=True)
            note = run_piece(piece, budget_s, hard_s, results, log, argv, args)
            if note:
                notes.append(note)
        records = mark_stopped(read_records(results))
    problems = {}
    for r in records:
        if r.get("type") == "info" and "fallback" in r:
            notes.append(f"{r['piece']}: {r['fallback']}")
        if "skipped" in r or "error" in r:
            what = [str(r[k]) for k in ("group", "precision", "mode", "head")
                    if k in r and r[k] != r["piece"]]
            if "batch" in r:
                what.append(f"{r['batch']} frames per call")
            message = r.get("skipped") or "failed: " + r["error"]
            problems.setdefault((r["piece"], message), []).append(
                ", ".join(what) or r["piece"])
    for (piece, message), whats in problems.items():
        notes.append(f"{piece}: {message} ({len(whats)}: {'; '.join(whats)})")
    text = report(args, records, notes, time.time() - start)
    print(text)
    if out_dir:
        with open(os.path.join(out_dir, "bench_gpu.md"), "w") as file:
            file.write(text)


if __name__ == "__main__":
    main()
