"""Search configurations for `vgg4d-tune`: tuners and the default run."""

from __future__ import annotations

import json
import os
import time

import keras_tuner

#: The default `vgg4d-tune` run: the built-in demo data, all three heads.
DEFAULTS = {
    "data": "demo",
    "task": "order",
    "num_clips": 192,
    "validation_fraction": 0.25,
    "frames": 6,
    "image_size": 32,
    "tuner": "random",
    "max_trials": 9,
    "epochs": 15,
    "batch_size": 16,
    "weights": "none",
    "trainable_blocks": 0,
    "directory": "vgg4d_runs",
    "project_name": "search",
    "seed": 0,
}

OBJECTIVE = "val_accuracy"


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
    """The Keras Tuner tuner named `name`, maximizing validation accuracy.

    Args:
        name: `"random"`, `"hyperband"` or `"bayesian"`.
        hypermodel: The hypermodel to search.
        max_trials: Trials for random and Bayesian search. Hyperband sizes
            its brackets from `epochs` (its `max_epochs`) instead.
        epochs: Epochs per trial (Hyperband's `max_epochs`).
        directory: Where the tuner keeps its trials and checkpoints.
        project_name: Sub-folder of `directory` for this search.
        overwrite: Start afresh (`True`) or resume what is there.
        seed: The tuner's random seed.
        **kwargs: Passed on to the tuner (e.g. `executions_per_trial`).

    Returns:
        A tuner.
    """
    common = dict(
        hypermodel=hypermodel,
        objective=OBJECTIVE,
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
    """Tuner mixin: keeps each trial's wall time in `trial_times.json`.

    The file lives in the tuner's project directory, so the times of the
    trials a resumed search kept are still there.
    """

    def trial_times(self) -> dict[str, float]:
        """Seconds each finished trial took, by trial id."""
        path = os.path.join(self.project_dir, "trial_times.json")
        if not os.path.exists(path):
            return {}
        with open(path) as file:
            return json.load(file)

    def on_trial_begin(self, trial):
        self._trial_started = time.perf_counter()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        times = self.trial_times()
        times[trial.trial_id] = time.perf_counter() - self._trial_started
        with open(os.path.join(self.project_dir, "trial_times.json"), "w") as f:
            json.dump(times, f)
        super().on_trial_end(trial)


class TimedRandomSearch(TrialTimer, keras_tuner.RandomSearch):
    """`keras_tuner.RandomSearch` that records trial times."""


class TimedBayesianOptimization(TrialTimer, keras_tuner.BayesianOptimization):
    """`keras_tuner.BayesianOptimization` that records trial times."""


class TimedHyperband(TrialTimer, keras_tuner.Hyperband):
    """`keras_tuner.Hyperband` that records trial times."""


TUNERS = ("random", "hyperband", "bayesian")
