"""What a search leaves to look at: leaderboard, curves, confusion matrix.

`write_report` writes, into the search's folder:

- `results.csv`, `results.json`: one row per trial, best first;
- `scores_by_head.png`: every trial's score, by temporal head;
- `learning_curves.png`: every trial's objective per epoch, coloured by head;
- `confusion_matrix.png` / `.csv` and `per_class.csv` (precision, recall,
  F1 and support of each class): the best model on the validation clips;
- `report.md`, which links them with the leaderboard, and records the
  seed, the feature precision and the library versions the scores came
  from.
"""

from __future__ import annotations

import csv
import importlib
import json
import os

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def best_epoch(history: dict, objective) -> int | None:
    """The 0-based epoch of the best `objective` in a trial's history."""
    values = history.get(objective.name)
    if not values:
        return None
    return int(np.argmin(values) if objective.direction == "min"
               else np.argmax(values))


def leaderboard(tuner) -> list[dict]:
    """One row per finished trial, best first.

    Each row holds the trial's objective (`score`), its validation accuracy
    at the epoch of that score, and the number of epochs to reach it
    (from the per-epoch history `tuner.trial_history` keeps).
    """
    objective = tuner.oracle.objective
    times = tuner.trial_times()
    trials = tuner.oracle.get_best_trials(num_trials=len(tuner.oracle.trials))
    rows = []
    for rank, trial in enumerate(trials, start=1):
        values = dict(trial.hyperparameters.values)
        history = tuner.trial_history(trial.trial_id)
        epoch = best_epoch(history, objective)
        accuracy = history.get("val_accuracy")
        rows.append({
            "rank": rank,
            "trial": trial.trial_id,
            "head": values.pop("temporal_head"),
            "objective": objective.name,
            "score": trial.score,
            "val_accuracy": None if epoch is None or not accuracy
            else accuracy[epoch],
            "best_epochs": None if epoch is None else epoch + 1,
            "seconds": times.get(trial.trial_id),
            "hyperparameters": values,
        })
    return rows


def format_leaderboard(rows: list[dict]) -> str:
    """The leaderboard as a text table."""
    name = rows[0]["objective"] if rows else "score"
    lines = [f"{'rank':>4}  {'trial':<6}{'head':<11}{name:>13}{'val_acc':>8}"
             f"{'epochs':>7}{'time s':>8}  hyperparameters"]
    for row in rows:
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        accuracy = ("" if row["val_accuracy"] is None
                    else f"{row['val_accuracy']:.3f}")
        hps = ", ".join(
            f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(row["hyperparameters"].items())
        )
        lines.append(
            f"{row['rank']:>4}  {row['trial']:<6}{row['head']:<11}"
            f"{row['score']:>13.4f}{accuracy:>8}{row['best_epochs'] or '':>7}"
            f"{seconds:>8}  {hps}"
        )
    return "\n".join(lines)


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_results(rows: list[dict], directory: str) -> list[str]:
    """Writes `results.json` and `results.csv`; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "results.json")
    with open(path, "w") as file:
        json.dump(rows, file, indent=2)
    keys = ["rank", "trial", "head", "objective", "score", "val_accuracy",
            "best_epochs", "seconds"]
    table = [[row[k] for k in keys]
             + [json.dumps(row["hyperparameters"], sort_keys=True)]
             for row in rows]
    return [path, _write_csv(os.path.join(directory, "results.csv"),
                             keys + ["hyperparameters"], table)]


def _save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def plot_scores_by_head(rows: list[dict], path: str) -> str:
    """Every trial's score as a dot above its head's name."""
    heads = sorted({row["head"] for row in rows})
    figure = Figure(figsize=(5, 3.5))
    axes = figure.subplots()
    for i, head in enumerate(heads):
        scores = [r["score"] for r in rows if r["head"] == head]
        axes.scatter([i] * len(scores), scores, alpha=0.7, label=head)
    axes.set_xticks(range(len(heads)), heads)
    axes.set_ylabel(rows[0]["objective"] if rows else "score")
    axes.set_title("Trials by temporal head")
    return _save(figure, path)


def plot_learning_curves(tuner, rows: list[dict], path: str) -> str:
    """The objective of every trial per epoch, one colour per head."""
    objective = tuner.oracle.objective.name
    heads = sorted({row["head"] for row in rows})
    colours = {h: f"C{i}" for i, h in enumerate(heads)}
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for row in rows:
        values = tuner.trial_history(row["trial"]).get(objective, [])
        axes.plot(range(1, len(values) + 1), values,
                  color=colours[row["head"]], alpha=0.6, marker=".")
    for head in heads:
        axes.plot([], [], color=colours[head], label=head)
    axes.set_xlabel("epoch")
    axes.set_ylabel(objective)
    axes.legend(title="head")
    axes.set_title("Learning curves of every trial")
    return _save(figure, path)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """`counts[i, j]`: clips of class `i` predicted as class `j`."""
    counts = np.zeros((num_classes, num_classes), "int64")
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return counts


def per_class_scores(counts: np.ndarray) -> list[dict]:
    """Precision, recall, F1 and support of each class of a confusion matrix."""
    scores = []
    for c in range(len(counts)):
        true_positive = counts[c, c]
        predicted, support = counts[:, c].sum(), counts[c].sum()
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = (2 * precision * recall / (precision + recall)
              if precision + recall else 0.0)
        scores.append({"precision": float(precision), "recall": float(recall),
                       "f1": float(f1), "support": int(support)})
    return scores


def plot_confusion_matrix(counts, class_names, path: str) -> str:
    """The confusion matrix as a picture, counts written in the cells."""
    size = 2.5 + 0.5 * len(class_names)
    figure = Figure(figsize=(size, size))
    axes = figure.subplots()
    axes.imshow(counts, cmap="Blues")
    ticks = range(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    high = counts.max() / 2 if counts.size else 0
    for (i, j), count in np.ndenumerate(counts):
        axes.text(j, i, str(count), ha="center", va="center",
                  color="white" if count > high else "black")
    axes.set_title("Best model on the validation clips")
    return _save(figure, path)


def write_confusion(y_true, y_pred, class_names, directory: str) -> list[str]:
    """Confusion matrix (PNG, CSV) and per-class scores (CSV)."""
    counts = confusion_matrix(y_true, y_pred, len(class_names))
    matrix_csv = _write_csv(
        os.path.join(directory, "confusion_matrix.csv"),
        ["true \\ predicted", *class_names],
        [[name, *row] for name, row in zip(class_names, counts.tolist())],
    )
    scores = per_class_scores(counts)
    per_class = _write_csv(
        os.path.join(directory, "per_class.csv"),
        ["class", "precision", "recall", "f1", "support"],
        [[n, s["precision"], s["recall"], s["f1"], s["support"]]
         for n, s in zip(class_names, scores)],
    )
    picture = plot_confusion_matrix(
        counts, class_names, os.path.join(directory, "confusion_matrix.png"))
    return [picture, matrix_csv, per_class]


def run_settings(seed: int, precision: str,
                 deterministic: bool = False) -> dict[str, str]:
    """What a search's scores depend on besides its data and arguments.

    Args:
        seed: The search's seed.
        precision: The precision of the cached backbone features (the
            hypermodel's `feature_cache.dtype_policy`).
        deterministic: Whether ops ran deterministically (`--deterministic`).

    Returns:
        The seed, op determinism, precision and the versions of
        keras_vgg4d, Keras, the Keras backend, Keras Tuner and NumPy.
    """
    import keras
    import keras_tuner

    import keras_vgg4d

    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "jax": "jax",
              "torch": "torch"}.get(backend)
    version = (getattr(importlib.import_module(module), "__version__", "?")
               if module else "")
    return {
        "seed": str(seed),
        "deterministic ops": "on" if deterministic else "off",
        "feature precision": precision,
        "keras_vgg4d": keras_vgg4d.__version__,
        "keras": keras.__version__,
        "backend": f"{backend} {version}".strip(),
        "keras_tuner": keras_tuner.__version__,
        "numpy": np.__version__,
    }


def write_markdown(rows, written, directory, extra_lines=(),
                   settings: dict | None = None) -> str:
    """`report.md`: the leaderboard, the `settings` it was found with
    (see `run_settings`), links to every file, and `extra_lines`."""
    names = [os.path.relpath(p, directory) for p in written]
    lines = ["# Search report", "", "## Leaderboard", "", "```",
             format_leaderboard(rows), "```", ""]
    if settings:
        lines += ["## Settings", "", "| setting | value |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in settings.items()] + [""]
    for name in names:
        if name.endswith(".png"):
            lines += [f"![{name}]({name})", ""]
    lines += ["## Files", ""] + [f"- [{n}]({n})" for n in names] + [""]
    lines += list(extra_lines)
    path = os.path.join(directory, "report.md")
    with open(path, "w") as file:
        file.write("\n".join(lines) + "\n")
    return path
