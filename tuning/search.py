"""`vgg4d-tune`: a Keras Tuner search across the three temporal heads.

With no arguments it searches frame-wise, Conv3D and LSTM heads on the
built-in demo clips (the "order" task, where the class is the order of the
frames), prints one line per trial and a leaderboard, and writes a report
(`report.md` with the leaderboard, learning curves, the best model's
confusion matrix and per-class scores; see `keras_vgg4d.tuning.report`) and
the best model as `.keras` under `--directory/--project-name`.

Distributed search (Keras Tuner's own mode): start the same command once per
process with these environment variables set; the chief runs the oracle and
writes the report, the workers run trials:

    KERASTUNER_TUNER_ID=chief   KERASTUNER_ORACLE_IP=127.0.0.1 \\
        KERASTUNER_ORACLE_PORT=8000 vgg4d-tune ...
    KERASTUNER_TUNER_ID=tuner0  KERASTUNER_ORACLE_IP=127.0.0.1 \\
        KERASTUNER_ORACLE_PORT=8000 vgg4d-tune ...

`--parallel-trials N` does this on one machine: this process starts a chief
and N workers, and writes the report (`keras_vgg4d.tuning.parallel`).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import importlib.util
import io
import os
import shutil
import sys
import time

# The command line, its defaults and the names it offers live in
# `keras_vgg4d_cli`, which the `vgg4d-tune` command runs first: it parses
# before Keras is imported. Imported back here for `python -m` and callers.
from keras_vgg4d_cli import EXPORT_FORMATS
from keras_vgg4d_cli import build_tune_parser as build_parser  # noqa: F401
from keras_vgg4d_cli import tune as main

from keras_vgg4d.tuning.search_data import load_search_data


def check_args(args) -> None:
    """Raises `ValueError` naming an argument that cannot work."""
    parallel_trials = getattr(args, "parallel_trials", 1)
    if not isinstance(parallel_trials, int) or parallel_trials < 1:
        raise ValueError(
            f"--parallel-trials must be an integer >= 1 (1: trials one after "
            f"another); received {parallel_trials!r}"
        )
    if args.patience < 0:
        raise ValueError(
            f"--patience must be >= 0 (0 turns early stopping off); "
            f"received {args.patience}"
        )
    for name in args.export:
        # Before the search, not after it: a missing extra is named now.
        from keras_vgg4d.export import require

        require(EXPORT_FORMATS[name])
    if args.refit and not args.validation_fraction > 0:
        raise ValueError(
            "--refit retrains for the best epoch count the validation clips "
            "showed, so it needs validation data: pass --validation-fraction "
            "> 0"
        )


def make_hypermodel(args, input_shape, num_classes, time_axis):
    """The `VGG4DHyperModel` the arguments describe."""
    from keras_vgg4d import ScipyAugment
    from keras_vgg4d import VGG4DHyperModel

    augment = (
        ScipyAugment(rotation=10, zoom=(0.9, 1.1), shift=0.05, seed=args.seed)
        if args.augment
        else None
    )
    return VGG4DHyperModel(
        num_classes=num_classes,
        input_shape=input_shape,
        heads=tuple(h.strip() for h in args.heads.split(",") if h.strip()),
        weights=None if args.weights.lower() == "none" else args.weights,
        trainable_blocks=args.trainable_blocks,
        augment=augment,
        cache_features=not args.no_cache,
        time_axis=time_axis,
        feature_cache_dir=os.path.join(_project_dir(args), "feature_cache"),
        objective=args.objective,
        class_weight=None if args.class_weight == "none" else "balanced",
        precision=args.precision,
        seed=args.seed,
    )


def _project_dir(args) -> str:
    return os.path.join(args.directory, args.project_name)


def _callbacks(args, hypermodel) -> list:
    import keras

    if not args.patience:
        return []
    objective = hypermodel.objective
    return [keras.callbacks.EarlyStopping(
        monitor=objective.name, mode=objective.direction,
        patience=args.patience, restore_best_weights=True,
    )]


def _make_tuner(args, hypermodel, overwrite: bool, progress: bool):
    from keras_vgg4d.tuning.configs import make_tuner

    return make_tuner(
        args.tuner,
        hypermodel,
        max_trials=args.max_trials,
        epochs=args.epochs,
        directory=args.directory,
        project_name=args.project_name,
        overwrite=overwrite,
        seed=args.seed,
        progress=progress,
    )


def search(args, hypermodel, data):
    """Runs the search; returns the tuner.

    In a distributed search (the `KERASTUNER_*` environment variables set),
    the chief serves the oracle until the workers are done, and the workers
    run trials; a worker never removes the search's folder, which the chief
    and the other workers write into.
    """
    from keras_vgg4d.tuning import parallel

    role = parallel.role()
    progress = not args.quiet and not args.verbose
    tuner = _make_tuner(args, hypermodel,
                        overwrite=not args.resume and role != "worker",
                        progress=progress and role is None)
    if role == "worker":
        parallel.join_as_worker(tuner, progress)
    validation = (data.validation if data.streams
                  else (data.validation, data.validation_labels))
    tuner.search(
        data.train,
        data.train_labels,
        validation_data=validation,
        epochs=args.epochs,
        batch_size=args.batch_size,
        callbacks=_callbacks(args, hypermodel),
        verbose=1 if args.verbose else 0,
    )
    return tuner


def refit(args, tuner, hypermodel, data, best_epochs):
    """The best configuration trained on training + validation clips."""
    best_hp = tuner.get_best_hyperparameters(1)[0]
    model = hypermodel.build(best_hp)
    clips, labels = data.everything()
    hypermodel.fit(
        best_hp, model, clips, labels,
        epochs=best_epochs, batch_size=args.batch_size,
        verbose=1 if args.verbose else 0,
    )
    return model


def report(args, tuner, data, best) -> tuple[list[dict], list[str], list]:
    """Prints the leaderboard, writes the report, calibrates `best` on the
    validation clips; returns rows, paths and report.md's lines on
    calibration and multi-view answers."""
    import numpy as np

    from keras_vgg4d.tuning import report as reports

    rows = reports.leaderboard(tuner)
    if not rows:
        raise RuntimeError("The search finished no trial.")
    print(reports.format_leaderboard(rows))
    directory = _project_dir(args)
    written = reports.write_results(rows, directory)
    written.append(reports.plot_scores_by_head(
        rows, os.path.join(directory, "scores_by_head.png")))
    written.append(reports.plot_learning_curves(
        tuner, rows, os.path.join(directory, "learning_curves.png")))
    class_names = data.class_names
    y_val = data.validation_targets()
    probabilities = best.predict(data.validation, verbose=0)
    predicted = probabilities.argmax(axis=-1)
    _print_study_accuracy(data, probabilities, y_val)
    written += reports.write_confusion(y_val, predicted, class_names, directory)
    written += write_explanations(best, data, predicted, y_val, directory)
    accuracy = float(np.mean(predicted == y_val)) if len(y_val) else 0.0
    print(
        f"best: trial {rows[0]['trial']}, {rows[0]['head']} head, "
        f"{rows[0]['objective']} {rows[0]['score']:.3f}, validation accuracy "
        f"{accuracy:.3f} (chance {1 / len(class_names):.3f})"
    )
    from keras_vgg4d.tuning import answers

    paths, lines = answers.calibrate_best(best, probabilities, y_val,
                                          class_names, directory)
    written += paths
    lines += answers.multiview_report(best, data, y_val)
    return rows, written, lines


def write_explanations(best, data, predicted, labels, directory,
                       count: int = 4) -> list[str]:
    """Pictures of why the best model answered as it did, on a few
    validation clips: wrong ones first, then right ones."""
    import numpy as np

    from keras_vgg4d.explain import explain
    from keras_vgg4d.explain import save_explanation

    if data.streams:
        return []  # the clips are streamed; vgg4d-explain reads saved ones
    wrong = np.flatnonzero(predicted != labels)
    right = np.flatnonzero(predicted == labels)
    chosen = np.concatenate([wrong[: count // 2], right])[:count]
    if not len(chosen):
        return []
    clips = np.asarray(data.validation)[chosen]
    found = explain(best, clips, time_axis=data.time_axis)
    paths = []
    for i, clip in enumerate(chosen):
        verdict = "right" if predicted[clip] == labels[clip] else "wrong"
        path = os.path.join(directory, f"explain_clip{clip}_{verdict}.png")
        paths.append(save_explanation(clips, found, path, index=i,
                                      class_names=data.class_names))
    return paths


def export_best(args, best, data, directory, written) -> list[str]:
    """Exports the best model in each `--export` format, adding the paths
    to `written`; returns report.md's lines on loading each artifact."""
    from keras_vgg4d.export import export_classifier
    from keras_vgg4d.export import usage

    lines = ["## Deploy", ""] if args.export else []
    for name in args.export:
        paths = export_classifier(best, os.path.join(directory, "best_model"),
                                  EXPORT_FORMATS[name])
        written += paths
        lines += [f"`{os.path.basename(paths[0])}` ({name}):", "", "```python",
                  usage(paths[0], EXPORT_FORMATS[name],
                        (None, *data.input_shape)),
                  "```", ""]
    return lines


def _print_study_accuracy(data, probabilities, labels) -> None:
    """One answer per patient, where a patient's study gave several clips
    of its one class. Groups that mix classes (the source videos of
    UCF101's `gNN` groups) get no line: they are not studies."""
    from keras_vgg4d.studies import study_accuracy
    from keras_vgg4d.studies import study_ids

    sources = getattr(data.validation, "clip_sources", None)
    if sources is None:
        return
    ids = study_ids(sources)
    if len(set(ids)) == len(ids):
        return
    if len(set(zip(ids, labels.tolist()))) != len(set(ids)):
        return
    scores = study_accuracy(probabilities, labels, ids)
    print(f"per patient: accuracy {scores['study_accuracy']:.3f} over "
          f"{scores['studies']} patients (per clip "
          f"{scores['clip_accuracy']:.3f})")


def _count(clips) -> int:
    return len(getattr(clips, "clip_sources", clips))


def run(args) -> int:
    """Runs the search the parsed `args` describe.

    With `--parallel-trials N` (N > 1), this process starts a chief and N
    workers on localhost, waits for them, then writes the report from the
    search they leave in the folder (`keras_vgg4d.tuning.parallel`).
    """
    from keras_vgg4d.tuning import parallel

    check_args(args)
    role = parallel.role()
    if role is None and getattr(args, "parallel_trials", 1) > 1:
        return run_parallel(args)
    data, hypermodel, deterministic = _prepare(args, announce=role is None)
    if parallel.launched() and role == "worker":
        parallel.share_features(hypermodel)
    # Keras Tuner collects garbage twice a trial; each full collection
    # walked TensorFlow's ~360,000 long-lived objects (0.7 s here). Frozen,
    # they are not walked again; what trials leave is collected as before.
    gc.collect()
    gc.freeze()
    tuner = search(args, hypermodel, data)
    if role == "worker" or parallel.launched():
        return 0  # the chief (or the launcher that started it) reports
    return _finish(args, tuner, hypermodel, data, deterministic)


def run_parallel(args) -> int:
    """`run` with `--parallel-trials N`: a chief and N workers on localhost.

    This process starts them (the same command, in Keras Tuner's
    distributed mode), shows the workers' progress lines, and fails naming
    the process if one fails. When the workers are done, it reads the
    search back from its folder and writes the report, the best model and
    what `--refit` and `--export` ask for, as `run` does.
    """
    import keras

    from keras_vgg4d.tuning import parallel

    parallel.check_supported()
    data, hypermodel, deterministic = _prepare(args, announce=not args.quiet)
    directory = _project_dir(args)
    logs = parallel.prepare_project(directory, resume=args.resume)
    # Each process is this command; `--resume`: they keep what
    # `prepare_project` left, and none removes what another wrote.
    argv = parallel.command_line(args, build_parser())
    argv += [] if args.resume else ["--resume"]
    processes = parallel.ParallelTrials(
        argv, args.parallel_trials, logs, show=None if args.quiet else print,
        keep=None if args.verbose else parallel.is_progress_line,
        environ=dict(os.environ, KERAS_BACKEND=keras.backend.backend()),
    )
    if not args.quiet:
        print(f"vgg4d-tune: {args.parallel_trials} trials at once: a chief "
              f"(the oracle) and workers "
              f"{', '.join(processes.names[1:])} on 127.0.0.1; their stderr "
              f"in {logs}", flush=True)
    started = time.perf_counter()
    try:
        processes.run()
    finally:
        shutil.rmtree(parallel.shared_directory(
            hypermodel.feature_cache.directory), ignore_errors=True)
    seconds = time.perf_counter() - started
    parallel.mark_reloadable(directory)
    with contextlib.redirect_stdout(io.StringIO()):  # "Reloading Tuner"
        tuner = _make_tuner(args, hypermodel, overwrite=False, progress=False)
    for trial in tuner.oracle.trials.values():
        parallel.active_values_only(trial.hyperparameters)
    if not args.quiet:
        ran = collections.Counter(parallel.trial_workers(directory).values())
        print(f"vgg4d-tune: {sum(ran.values())} trials in {seconds:.0f} s; "
              + ", ".join(f"{name} ran {ran[name]}"
                          for name in processes.names[1:]))
    return _finish(args, tuner, hypermodel, data, deterministic)


def _prepare(args, announce: bool):
    """Seeds, loads the data and makes the hypermodel; returns
    `(data, hypermodel, deterministic)`. With `announce`, prints what the
    search will run on."""
    import keras

    deterministic = getattr(args, "deterministic", False)
    if deterministic:
        enable_determinism()
    keras.utils.set_random_seed(args.seed)
    data = load_search_data(args)
    hypermodel = make_hypermodel(args, data.input_shape, len(data.class_names),
                                 data.time_axis)
    if announce and not args.quiet:
        print(
            f"vgg4d-tune: {_count(data.train)} training and "
            f"{_count(data.validation)} validation clips of shape "
            f"{data.input_shape}, {len(data.class_names)} classes; "
            f"heads {', '.join(hypermodel.heads)}; {args.tuner} search for "
            f"{hypermodel.objective.name}; feature cache "
            + (f"on, features in {hypermodel.feature_cache.dtype_policy}"
               if hypermodel.uses_feature_cache else "off")
            + f"; Keras backend {keras.backend.backend()}"
        )
    return data, hypermodel, deterministic


def _finish(args, tuner, hypermodel, data, deterministic) -> int:
    """After the search: the best model, the report, `--refit`, `--export`."""
    import keras

    best = tuner.get_best_models(num_models=1)[0]
    rows, written, answer_lines = report(args, tuner, data, best)
    directory = _project_dir(args)
    written.append(os.path.join(directory, "best_model.keras"))
    best.save(written[-1])
    if args.refit:
        final = refit(args, tuner, hypermodel, data, rows[0]["best_epochs"])
        written.append(os.path.join(directory, "final_model.keras"))
        final.save(written[-1])
    deploy = answer_lines + export_best(args, best, data, directory, written)
    from keras_vgg4d.tuning import report as reports

    precision = (hypermodel.feature_cache.dtype_policy
                 if hypermodel.uses_feature_cache
                 else f"{keras.config.dtype_policy().name} (no feature cache)")
    settings = reports.run_settings(args.seed, precision, deterministic)
    written.append(reports.write_markdown(rows, written, directory, deploy,
                                          settings))
    print("wrote " + ", ".join(written))
    return 0


def enable_determinism() -> None:
    """Deterministic ops in the libraries a search runs on (`--deterministic`).

    TensorFlow: `tf.config.experimental.enable_op_determinism()`, for its
    ops and for `tf.data` pipelines (which feed every backend). JAX: XLA's
    deterministic GPU kernels (`--xla_gpu_deterministic_ops=true` in
    `XLA_FLAGS`, read when JAX starts, so call this before JAX computes);
    XLA on a CPU is deterministic already. PyTorch:
    `torch.use_deterministic_algorithms(True)`.
    """
    import keras

    if importlib.util.find_spec("tensorflow") is not None:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    backend = keras.backend.backend()
    if backend == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = (
                f"{flags} --xla_gpu_deterministic_ops=true".strip())
    elif backend == "torch":
        import torch

        # cuBLAS is deterministic only with a fixed workspace.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


if __name__ == "__main__":
    sys.exit(main())
