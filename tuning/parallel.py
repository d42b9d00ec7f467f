"""`vgg4d-tune --parallel-trials N`: N trials at once on one machine.

Keras Tuner's own distributed mode, on localhost: the process the user
started becomes the launcher. It starts the same command N + 1 times, with
`KERASTUNER_ORACLE_IP=127.0.0.1`, a free `KERASTUNER_ORACLE_PORT` and
`KERASTUNER_TUNER_ID` set to `chief` (the oracle, which hands out trials)
and `tuner0` ... `tuner{N-1}` (the workers, which train them), relays the
workers' progress lines, fails naming the process if one fails, and stops
the chief when every worker is done. The launcher then reads the search
back from its folder and writes the report as a search in one process
does.

Backbone features are computed once for all the workers
(`SharedFeatureCache`): the first worker to need them computes and writes
them, under a file lock; the others wait for the lock and read them,
memory-mapped read-only where they exceed the hypermodel's
`memory_limit_bytes`, else into memory.

Each worker also records its finished trials: `worker.json` in the trial's
folder names the worker, and `trial_times.json` (which every worker updates)
is written under a lock.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence

import numpy as np

from keras_vgg4d.feature_cache import CachedFeatures
from keras_vgg4d.feature_cache import FeatureCache
from keras_vgg4d.feature_cache import _array_key
from keras_vgg4d.feature_cache import _backbone_key
from keras_vgg4d.feature_cache import is_dataset
from keras_vgg4d.frame_features import FrameFeatures
from keras_vgg4d.frame_features import is_clip_dataset

# Set by the launcher in its chief's and workers' environment: the time
# (`time.time()`) the parallel search started.
STARTED_VARIABLE = "VGG4D_PARALLEL_STARTED"
#: The command each process of a parallel search runs, followed by the
#: arguments: `vgg4d-tune` as its console script runs it.
TUNE_COMMAND = (
    "-c", "import sys, keras_vgg4d_cli; sys.exit(keras_vgg4d_cli.tune())")
#: Where, in the search's folder, each process's stderr is kept.
LOG_FOLDER = "parallel"
#: Where, in the feature cache's folder, the workers share features.
SHARED_FOLDER = "shared"
#: The file, in a trial's folder, naming the worker that ran it.
WORKER_FILE = "worker.json"
# Lines of a failed process's stderr shown.
_TAIL_LINES = 15
# Seconds a process gets to stop before it is killed.
_STOP_SECONDS = 10.0


def role() -> str | None:
    """This process's part in a distributed search: `"chief"`, `"worker"`,
    or `None` outside one (no `KERASTUNER_ORACLE_IP`), as Keras Tuner reads
    the `KERASTUNER_*` environment variables."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    return ("chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "")
            else "worker")


def launched() -> bool:
    """Whether a `--parallel-trials` launcher started this process."""
    return role() is not None and STARTED_VARIABLE in os.environ


def check_supported() -> None:
    """Raises `ValueError` where parallel trials cannot run: the workers
    share files under POSIX file locks (`fcntl`)."""
    if importlib.util.find_spec("fcntl") is None:
        raise ValueError(
            "--parallel-trials needs POSIX file locks (Linux, macOS), which "
            "this system lacks; run with --parallel-trials 1"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def command_line(args: argparse.Namespace,
                 parser: argparse.ArgumentParser) -> list[str]:
    """The options that make `parser` parse to `args` again.

    Args:
        args: Parsed arguments.
        parser: The parser that parsed them.

    Returns:
        The arguments, without the program's name: each option with a
        value other than `None` (a flag only when true).
    """
    argv = []
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = getattr(args, action.dest, None)
        option = action.option_strings[0]
        if action.nargs == 0:  # a flag
            if value is True:
                argv.append(option)
        elif isinstance(value, (list, tuple)):
            if value:
                argv += [option, *map(str, value)]
        elif value is not None:
            argv += [option, str(value)]
    return argv


def child_environment(
    tuner_id: str,
    port: int,
    workers: int,
    started: float,
    environ: dict | None = None,
    cpus: int | None = None,
) -> dict[str, str]:
    """The environment of one process of a parallel search.

    Args:
        tuner_id: `"chief"` or a worker's id, `"tuner0"`, `"tuner1"`, ...
        port: The chief's port on 127.0.0.1.
        workers: How many workers share the cores.
        started: `time.time()` when the search started.
        environ: The environment to start from (default: this process's).
        cpus: CPU cores to share (default: `os.cpu_count()`).

    Returns:
        `environ` with the `KERASTUNER_*` variables, unbuffered output and,
        where the user set none, each worker's share of the cores as its
        thread count (`OMP_NUM_THREADS`, `TF_NUM_INTRAOP_THREADS`): N
        processes that each use every core only get in each other's way.
    """
    env = dict(os.environ if environ is None else environ)
    env.update(
        KERASTUNER_TUNER_ID=tuner_id,
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    env[STARTED_VARIABLE] = repr(started)
    threads = str(max(1, (cpus or os.cpu_count() or 1) // workers))
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        env.setdefault(name, threads)
    return env


def prepare_project(project_dir: str, resume: bool) -> str:
    """Readies a search's folder before its processes start.

    Without `resume`, the folder is removed here, as a tuner with
    `overwrite=True` would remove it: the processes themselves all keep
    what is there, since one of them removing the folder would remove what
    the others wrote into it. With
    `resume`, a search that one process ran is made one the chief reloads:
    Keras Tuner reloads a search when the tuner's own file
    (`<tuner id>.json`, whose state is empty) exists beside `oracle.json`.
    Features shared by an earlier parallel search are removed either way.

    Returns:
        The folder for each process's stderr, emptied.
    """
    if not resume and os.path.exists(project_dir):
        shutil.rmtree(project_dir)
    if os.path.exists(os.path.join(project_dir, "oracle.json")):
        mark_reloadable(project_dir, "chief")
    shutil.rmtree(shared_directory(os.path.join(project_dir, "feature_cache")),
                  ignore_errors=True)
    logs = os.path.join(project_dir, LOG_FOLDER)
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    return logs


def mark_reloadable(project_dir: str, tuner_id: str = "tuner0") -> None:
    """Makes a tuner with id `tuner_id` reload the search in `project_dir`
    (one that another tuner id ran), by writing the tuner's own file: its
    state is empty, its presence is what makes Keras Tuner reload."""
    path = os.path.join(project_dir, f"{tuner_id}.json")
    if not os.path.exists(path):
        with open(path, "w") as file:
            file.write("{}")


def shared_directory(feature_cache_dir: str) -> str:
    """Where the workers of a parallel search share features."""
    return os.path.join(feature_cache_dir, SHARED_FOLDER)


@contextlib.contextmanager
def file_lock(path: str):
    """Holds an exclusive POSIX lock on the file `path` (made if missing):
    one holder at a time, across processes and threads."""
    import fcntl

    with open(path, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _write_atomically(path: str, text: str) -> None:
    partial = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(partial, "w") as file:
        file.write(text)
    os.replace(partial, path)


# --- the launcher ------------------------------------------------------------


@dataclasses.dataclass
class _Process:
    name: str
    popen: subprocess.Popen
    log: str
    relay: threading.Thread | None = None


class ParallelTrials:
    """The chief and `workers` workers of one parallel search, on localhost.

    Args:
        argv: The arguments each process runs the command with.
        workers: How many workers (trials at once), >= 1.
        log_directory: Where each process's stderr is kept, as
            `<name>.log`.
        command: The program and arguments that come before `argv`
            (default: this Python running `vgg4d-tune`).
        show: Called with each line a process writes to stdout that
            `keep` keeps, prefixed with the process's name
            (`tuner0: ...`); `None` shows nothing. Every line is also kept
            in `log_directory/<name>.out`.
        keep: Which lines to show (default: all).
        report: Called with each line of a failed process's stderr
            (default: printed to stderr).
        environ: The environment the processes start from (default: this
            process's); see `child_environment`.
        poll_seconds: How often the processes are looked at.

    Example:

    >>> import sys, tempfile
    >>> from keras_vgg4d.tuning.parallel import ParallelTrials
    >>> code = ("import os; print('I am', os.environ['KERASTUNER_TUNER_ID']) "
    ...         "if 'tuner' in os.environ['KERASTUNER_TUNER_ID'] "
    ...         "else __import__('time').sleep(60)")
    >>> lines = []
    >>> ParallelTrials([], 2, tempfile.mkdtemp(), (sys.executable, "-c", code),
    ...                show=lines.append).run()
    >>> sorted(lines)
    ['tuner0: I am tuner0', 'tuner1: I am tuner1']
    """

    def __init__(
        self,
        argv: Sequence[str],
        workers: int,
        log_directory: str,
        command: Sequence[str] | None = None,
        show: Callable[[str], None] | None = print,
        keep: Callable[[str], bool] | None = None,
        report: Callable[[str], None] | None = None,
        environ: dict | None = None,
        poll_seconds: float = 0.2,
    ):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(
                f"ParallelTrials expects workers >= 1, received {workers!r}")
        self.argv = list(argv)
        self.workers = workers
        self.log_directory = log_directory
        self.command = list(command or (sys.executable, *TUNE_COMMAND))
        self.show = show
        self.keep = keep or (lambda line: True)
        self.report = report or (lambda line: print(line, file=sys.stderr))
        self.environ = dict(os.environ if environ is None else environ)
        self.poll_seconds = poll_seconds
        self.port = None
        self.processes: list[_Process] = []
        self._show_lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """The chief's and the workers' `KERASTUNER_TUNER_ID`s."""
        return ["chief", *(f"tuner{i}" for i in range(self.workers))]

    def run(self) -> None:
        """Starts the processes and waits for the workers to finish; then
        stops the chief.

        Raises:
            RuntimeError: naming the process that failed (its last stderr
                lines go to `report` first); the others are stopped.
        """
        # `kill` of this process stops the chief and the workers too.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if main else None
        if main:
            signal.signal(signal.SIGTERM, _exit_on_signal)
        try:
            self.start()
            self.wait()
        finally:
            self.stop()
            if main:
                signal.signal(signal.SIGTERM, previous)

    def start(self) -> None:
        """Starts the chief and the workers."""
        self.port = free_port()
        started = time.time()
        for name in self.names:
            env = child_environment(name, self.port, self.workers, started,
                                    self.environ)
            log = os.path.join(self.log_directory, f"{name}.log")
            with open(log, "w") as stderr:
                popen = subprocess.Popen(
                    [*self.command, *self.argv], env=env,
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=stderr, text=True, errors="replace",
                )
            process = _Process(name, popen, log)
            process.relay = threading.Thread(
                target=self._relay, args=(process,), daemon=True)
            process.relay.start()
            self.processes.append(process)

    def wait(self) -> None:
        """Waits until every worker exits 0; raises at the first failure."""
        workers = self.processes[1:]
        while True:
            for process in self.processes:
                code = process.popen.poll()
                if code not in (None, 0):
                    self._fail(process, code)
            if all(p.popen.poll() == 0 for p in workers):
                return
            time.sleep(self.poll_seconds)

    def stop(self) -> None:
        """Stops what still runs (the chief, which Keras Tuner keeps
        waiting up to 20 s after the last trial), and the relays."""
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.terminate()
        deadline = time.monotonic() + _STOP_SECONDS
        for process in self.processes:
            try:
                process.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
        for process in self.processes:
            process.relay.join(_STOP_SECONDS)

    def _relay(self, process: _Process) -> None:
        path = os.path.join(self.log_directory, f"{process.name}.out")
        with open(path, "w") as kept:
            for line in process.popen.stdout:
                kept.write(line)
                line = line.rstrip()
                if self.show is not None and self.keep(line):
                    with self._show_lock:
                        self.show(f"{process.name}: {line}")
        process.popen.stdout.close()

    def _fail(self, process: _Process, code: int) -> None:
        self.stop()
        with open(process.log, errors="replace") as file:
            lines = [line.rstrip() for line in file if line.strip()]
        for line in lines[-_TAIL_LINES:]:
            self.report(f"{process.name}: {line}")
        kind = "the chief (the oracle)" if process.name == "chief" else (
            f"worker {process.name}")
        how = f"exited with code {code}"
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
            if code == -signal.SIGKILL:
                how += " (out of memory? try fewer --parallel-trials)"
        raise RuntimeError(
            f"--parallel-trials: {kind} {how}; "
            + (f"the last lines of its stderr are above, all of it in "
               f"{process.log}" if lines else f"it wrote nothing to stderr "
               f"({process.log})")
        )


# --- the workers -------------------------------------------------------------


def join_as_worker(tuner, progress: bool) -> None:
    """Makes a worker's `tuner` record its trials, and print them.

    After each trial, under a lock shared by the workers, the tuner's own
    bookkeeping runs (`trial_times.json`, which every worker reads and
    rewrites) and `worker.json` names the worker in the trial's folder;
    then, with `progress`, one line tells the trial's score, the best
    score and the time, as a search in one process prints it.

    Args:
        tuner: A `TrialTimer` tuner, in a worker of a distributed search.
        progress: Whether to print a line after each trial.
    """
    # `TrialTimer.progress_line` counts the oracle's trials, which a
    # worker's `OracleClient` does not hold: this line asks the chief.
    tuner.progress = False
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", tuner.tuner_id)
    started = float(os.environ.get(STARTED_VARIABLE, time.time()))
    lock = os.path.join(tuner.project_dir, "trials.lock")
    on_trial_end = tuner.on_trial_end

    def recorded_on_trial_end(trial):
        with file_lock(lock):
            on_trial_end(trial)
            _write_atomically(
                os.path.join(tuner.get_trial_dir(trial.trial_id), WORKER_FILE),
                json.dumps({"worker": tuner_id}))
        if progress:
            print(progress_line(tuner.oracle, trial, time.time() - started),
                  flush=True)

    tuner.on_trial_end = recorded_on_trial_end
    create_trial = tuner.oracle.create_trial

    def active_trial(tuner_id):
        trial = create_trial(tuner_id)
        active_values_only(trial.hyperparameters)
        return trial

    tuner.oracle.create_trial = active_trial


def active_values_only(hyperparameters) -> None:
    """Drops the values of `hyperparameters`' inactive hyperparameters.

    A trial that reaches a worker has been through Keras Tuner's protocol
    buffers, whose `HyperParameters.from_proto` also sets the defaults of
    the hyperparameters active under the parent's *default* value
    (keras-team/keras-tuner#342): an `lstm` trial arrives with
    `framewise_units` and `framewise_pooling`. The hypermodel seeds each
    trial from its values, so without this a worker would train a trial
    from other initial weights than a search in one process does, and the
    report would list values the trial never used.
    """
    # Values that are not declared hyperparameters stay: Hyperband's
    # `tuner/epochs`, `tuner/initial_epoch`, `tuner/trial_id`, ...
    declared = {hp.name for hp in hyperparameters.space}
    hyperparameters.values = {
        name: value for name, value in hyperparameters.values.items()
        if name not in declared or hyperparameters.is_active(name)
    }


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def is_progress_line(line: str) -> bool:
    """Whether `line` is a worker's line on a finished trial
    (`progress_line`)."""
    return re.match(r"trial \S+ \(\d+(/\d+)?\)  ", line) is not None


def progress_line(oracle, trial, elapsed: float) -> str:
    """`trial ID (i/N)  head  objective score  best B  elapsed, left`: the
    line `TrialTimer` prints, from what a worker's oracle client answers.

    Args:
        oracle: The oracle, or a worker's client of it.
        trial: The trial that ended.
        elapsed: Seconds since the search started.
    """
    from keras_vgg4d.tuning.configs import format_progress_line

    # The oracle scored it; a worker's copy holds no score.
    trial = oracle.get_trial(trial.trial_id)
    total = getattr(oracle, "max_trials", None)
    done = oracle.get_best_trials(total or 10**6)
    best = done[0].score if done else None
    return format_progress_line(trial, oracle.objective.name, len(done),
                                total, best, elapsed)


def trial_workers(project_dir: str) -> dict[str, str]:
    """Which worker ran each trial of a parallel search: trial id -> id."""
    found = {}
    for entry in sorted(os.listdir(project_dir)):
        path = os.path.join(project_dir, entry, WORKER_FILE)
        if entry.startswith("trial_") and os.path.exists(path):
            with open(path) as file:
                found[entry[len("trial_"):]] = json.load(file)["worker"]
    return found


# --- shared features ---------------------------------------------------------


def share_features(hypermodel) -> None:
    """Makes a worker's `VGG4DHyperModel` share its backbone features with
    the other workers, in its feature cache's folder (see
    `SharedFeatureCache`). Without a folder it keeps its own."""
    cache = hypermodel.feature_cache
    if cache.directory is None or isinstance(cache, SharedFeatureCache):
        return
    hypermodel.feature_cache = SharedFeatureCache(
        cache.directory, cache.memory_limit_bytes, cache.dtype_policy)


class SharedFeatureCache(FeatureCache):
    """A `FeatureCache` whose features one process computes for all.

    For clips given as arrays, and datasets from
    `clip_dataset_from_directory`, the first process to ask computes the
    features, under a lock on a file of `directory/shared`, and writes
    them there (features it memory-mapped stay in their file); the others
    wait for the lock, then read them: memory-mapped read-only when larger
    than `memory_limit_bytes`, else into memory, as the process that
    computed them holds them. Other datasets are computed by each process.

    Args: those of `FeatureCache`; `directory` is required.
    """

    def __init__(self, directory: str, memory_limit_bytes: int = 2**30,
                 dtype_policy: str | None = None):
        if directory is None:
            raise ValueError(
                "SharedFeatureCache shares features through files: give it "
                "a `directory`.")
        super().__init__(directory, memory_limit_bytes, dtype_policy)
        self.shared_directory = shared_directory(directory)
        self._shared = {}

    def get(self, model, x, y=None, batch_size=None, verbose="auto"):
        name = self._shared_name(model, x)
        if name is None:
            return super().get(model, x, y, batch_size, verbose)
        if name not in self._shared:
            self._shared[name] = self._computed_once(
                name, lambda: super(SharedFeatureCache, self).get(
                    model, x, None, batch_size, verbose))
        arrays = self._shared[name]
        if is_clip_dataset(x):
            return FrameFeatures(**arrays)
        return CachedFeatures(arrays["features"], arrays["mask"],
                              None if y is None else np.asarray(y),
                              batch_size)

    def _shared_name(self, model, x) -> str | None:
        """The name of `x`'s features for `model`, the same in every
        process; `None` for a dataset they cannot be shared for."""
        if is_clip_dataset(x):
            data = "clips:" + repr((x.clip_sources, x.clip_spec))
        elif is_dataset(x):
            return None
        else:
            data = "array:" + _array_key(np.asarray(x))
        key = f"{data}|{_backbone_key(model)}|{self.dtype_policy}"
        return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()

    def _computed_once(self, name: str, compute: Callable) -> dict:
        """The arrays of features `name`: computed here by `compute` if no
        process did, else read."""
        os.makedirs(self.shared_directory, exist_ok=True)
        manifest = os.path.join(self.shared_directory, f"{name}.json")
        with file_lock(os.path.join(self.shared_directory, f"{name}.lock")):
            if os.path.exists(manifest):
                return self._read(manifest)
            features = compute()
            arrays = {field.name: getattr(features, field.name)
                      for field in dataclasses.fields(features)
                      if field.name in ("features", "mask", "frame_mask",
                                        "offsets", "labels")
                      and getattr(features, field.name) is not None}
            paths = {field: self._write(name, field, array)
                     for field, array in arrays.items()}
            # Last, whole or not at all: its presence says the arrays are.
            _write_atomically(manifest, json.dumps(paths))
            return arrays

    def _write(self, name: str, field: str, array) -> str:
        filename = getattr(array, "filename", None)
        if (isinstance(array, np.memmap) and filename
                and str(filename).endswith(".npy")):
            array.flush()  # a .npy file already: read where it is
            return str(filename)
        path = os.path.join(self.shared_directory, f"{name}-{field}.npy")
        handle, partial = tempfile.mkstemp(suffix=".npy",
                                           dir=self.shared_directory)
        with os.fdopen(handle, "wb") as file:
            np.save(file, np.asarray(array))
        os.replace(partial, path)
        return path

    def _read(self, manifest: str) -> dict:
        with open(manifest) as file:
            paths = json.load(file)
        return {
            field: np.load(path, mmap_mode="r"
                           if os.path.getsize(path) > self.memory_limit_bytes
                           else None)
            for field, path in paths.items()
        }
