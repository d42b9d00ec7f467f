"""Search configurations for `vgg4d-tune`: tuners and the default run."""

from __future__ import annotations

import json
import os
import time

import keras_tuner

# Defined where the command line is read, without Keras.
from keras_vgg4d_cli import DEFAULTS  # noqa: F401
from keras_vgg4d_cli import TUNERS


def make_tuner(
    name: str,
    hypermodel: keras_tuner.HyperModel,
    max_trials: int,
    epochs: int,
    directory: str,
    project_name: str,
    overwrite: bool,
    seed: int,
    **kwargs,
) -> keras_tuner.Tuner:
    """The Keras Tuner tuner named `name`, for the hypermodel's objective.

    Args:
        name: `"random"`, `"hyperband"` or `"bayesian"`.
        hypermodel: The hypermodel to search.
        max_trials: Trials for random and Bayesian search. Hyperband sizes
            its brackets from `epochs` (its `max_epochs`) instead.
        epochs: Epochs per trial (Hyperband's `max_epochs`).
        directory: Where the tuner keeps its trials and checkpoints.
        project_name: Sub-folder of `directory` for this search.
        overwrite: Start afresh (`True`) or resume what is there.
        seed: The seed of the tuner's hyperparameter draws. Keras Tuner
            reads 0 as none and draws one from Python's `random`, which
            `vgg4d-tune` seeds first (`keras.utils.set_random_seed`).
        **kwargs: Passed on to the tuner (e.g. `executions_per_trial`).

    Returns:
        A tuner.
    """
    common = dict(
        hypermodel=hypermodel,
        objective=getattr(hypermodel, "objective", "val_accuracy"),
        directory=directory,
        project_name=project_name,
        overwrite=overwrite,
        seed=seed,
        **kwargs,
    )
    if name == "random":
        return TimedRandomSearch(max_trials=max_trials, **common)
    if name == "bayesian":
        return TimedBayesianOptimization(max_trials=max_trials, **common)
    if name == "hyperband":
        return TimedHyperband(max_epochs=epochs, factor=3, **common)
    raise ValueError(
        f"Unknown tuner {name!r}; valid names: {list(TUNERS)}"
    )


class TrialTimer:
    """Tuner mixin: trial times in `trial_times.json`, one line per trial.

    The file lives in the tuner's project directory, so the times of the
    trials a resumed search kept are still there. With `progress=True`,
    each finished trial prints one line: its number, head and score, the
    best score so far, the time spent and an estimate of the time left.
    """

    def __init__(self, *args, progress: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.progress = progress
        self._search_started = None

    def trial_times(self) -> dict[str, float]:
        """Seconds each finished trial took, by trial id."""
        path = os.path.join(self.project_dir, "trial_times.json")
        if not os.path.exists(path):
            return {}
        with open(path) as file:
            return json.load(file)

    def run_trial(self, trial, *args, **kwargs):
        results = super().run_trial(trial, *args, **kwargs)
        # Each epoch's logs, for learning curves and the best epoch count.
        histories = [r.history for r in results if hasattr(r, "history")]
        path = os.path.join(self.get_trial_dir(trial.trial_id), "history.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as file:
            json.dump(histories[0] if histories else {}, file, default=float)
        return results

    def trial_history(self, trial_id: str) -> dict[str, list[float]]:
        """The per-epoch logs of a finished trial (its first execution)."""
        path = os.path.join(self.get_trial_dir(trial_id), "history.json")
        if not os.path.exists(path):
            return {}
        with open(path) as file:
            return json.load(file)

    def on_trial_begin(self, trial):
        self._trial_started = time.perf_counter()
        if self._search_started is None:
            self._search_started = self._trial_started
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        times = self.trial_times()
        times[trial.trial_id] = time.perf_counter() - self._trial_started
        with open(os.path.join(self.project_dir, "trial_times.json"), "w") as f:
            json.dump(times, f)
        super().on_trial_end(trial)
        if self.progress:
            print(self.progress_line(trial), flush=True)

    def progress_line(self, trial) -> str:
        """`trial ID (i/N)  head  objective score  best ...  elapsed, left`.

        `ID` is Keras Tuner's trial id, the one the leaderboard, the report
        and the trial's folder show; `i/N` counts the trials done.
        """
        done = sum(t.status == "COMPLETED" for t in self.oracle.trials.values())
        best = [t.score for t in self.oracle.get_best_trials(1)]
        return format_progress_line(
            trial, self.oracle.objective.name, done,
            getattr(self.oracle, "max_trials", None),
            best[0] if best else None,
            time.perf_counter() - self._search_started,
        )


def format_progress_line(trial, objective: str, done: int, total: int | None,
                         best: float | None, elapsed: float) -> str:
    """`trial ID (done/total)  head  objective score  best B  elapsed, left`.

    Args:
        trial: The trial that ended, with its score (`None`: failed).
        objective: The objective's name.
        done: Trials finished so far.
        total: The search's number of trials, or `None` (Hyperband).
        best: The best score so far, or `None`.
        elapsed: Seconds since the search started.
    """
    score = "failed" if trial.score is None else f"{trial.score:.4f}"
    line = (
        f"trial {trial.trial_id} ({done}"
        f"{'' if total is None else f'/{total}'})  "
        f"{trial.hyperparameters.values.get('temporal_head', ''):<9}  "
        f"{objective} {score}  "
        f"best {'-' if best is None else f'{best:.4f}'}  {elapsed:.0f} s"
    )
    if total and done:
        line += f", about {elapsed / done * (total - done):.0f} s left"
    return line


class TimedRandomSearch(TrialTimer, keras_tuner.RandomSearch):
    """`keras_tuner.RandomSearch` that records trial times."""


class TimedBayesianOptimization(TrialTimer, keras_tuner.BayesianOptimization):
    """`keras_tuner.BayesianOptimization` that records trial times."""


class TimedHyperband(TrialTimer, keras_tuner.Hyperband):
    """`keras_tuner.Hyperband` that records trial times."""

