"""Groups of clips that must stay on one side of a validation split.

Clips cut from one recording, of one actor or one patient, look alike: if
some train and others validate, the validation score measures memory, not
generalization. A group names such clips; `group_split` keeps every group
whole on one side of the split and every class on both sides.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np

from keras_vgg4d.validation import list_some

# UCF101's file names, `v_ApplyEyeMakeup_g08_c01.avi`: group "g08".
UCF101_GROUP_PATTERN = r"_(g\d+)_"
# Passes of the local search in `group_split`.
_MAX_SWEEPS = 10


def group_ids(
    relative_paths: list[str],
    groups: str | Callable[[str], object] | Mapping[str, object] | None,
    fallback: list[str],
    owner: str = "clip_dataset_from_directory",
) -> list[str]:
    """The group of each clip, as `clip_dataset_from_directory` reads it.

    Args:
        relative_paths: Each clip's path relative to the root, with `/`.
        groups: `None` (UCF101's pattern, else `fallback`), a regex
            string, a callable `path -> group`, or a mapping from a path
            (relative, with `/` or the system's separator) or a file name
            to a group.
        fallback: The group of a clip that the default pattern does not
            match: its own file.
        owner: The function that received `groups`, for messages.

    Returns:
        One group (a string) a clip.
    """
    if groups is None or isinstance(groups, str):
        try:
            pattern = re.compile(groups or UCF101_GROUP_PATTERN)
        except re.error as error:
            raise ValueError(
                f"{owner}: groups={groups!r} is not a valid regular "
                f"expression: {error}."
            ) from None
        ids, matched = [], 0
        for path, own in zip(relative_paths, fallback):
            match = pattern.search(path)
            matched += match is not None
            ids.append(_matched_group(match) if match else own)
        if groups is not None and relative_paths and not matched:
            raise ValueError(
                f"{owner}: groups={groups!r} matches none of the "
                f"{len(relative_paths)} clip paths, e.g. "
                f"{relative_paths[0]!r}. The pattern is searched in each "
                "path relative to the directory; its first capturing group "
                "(or the whole match) names the group."
            )
        return ids
    if isinstance(groups, Mapping):
        return _groups_from_mapping(relative_paths, groups, owner)
    if callable(groups):
        return [str(groups(path)) for path in relative_paths]
    raise ValueError(
        f"{owner} expects `groups` to be None, a regular expression, a "
        "callable path -> group, or a mapping path -> group; received "
        f"groups={groups!r}."
    )


def _matched_group(match: re.Match) -> str:
    return match.group(1) if match.re.groups else match.group(0)


def _groups_from_mapping(relative_paths, groups: Mapping, owner):
    ids, missing = [], []
    for path in relative_paths:
        for key in (path, path.replace("/", os.sep), os.path.basename(path)):
            if key in groups:
                ids.append(str(groups[key]))
                break
        else:
            missing.append(path)
    if missing:
        raise ValueError(
            f"{owner}: the `groups` mapping names no group for "
            f"{len(missing)} clip(s): {list_some(missing)}. Key it by the "
            "path relative to the directory or by the file name."
        )
    return ids


def group_split(
    labels: Sequence[int] | np.ndarray,
    groups: Sequence[object] | np.ndarray,
    validation_split: float,
    seed: int | None = 0,
    class_names: list[str] | None = None,
) -> np.ndarray:
    """Which clips validate: whole groups, every class on both sides.

    Groups are visited in a random order (by `seed`) and each joins the
    validation side if that brings every class's share there closer to
    `validation_split` (squared error relative to each class's size, so
    small classes count as much as large ones, and a class left on one
    side costs more than any imbalance); then single groups change sides
    while that helps. Where no split keeps groups whole and puts every
    class on both sides, a warning names the classes left on one side.

    Args:
        labels: Integer class of each clip, `(n,)`.
        groups: Group id of each clip, `(n,)`: strings or integers.
        validation_split: Target fraction of each class to validate, in
            `(0, 1)`.
        seed: Seed of the order in which groups are tried.
        class_names: Optional names of the classes, for messages.

    Returns:
        bool `(n,)`, true for validation clips.

    Raises:
        ValueError: when a class has all its clips in one group (no split
            can put it on both sides), naming the class and the group.

    Example:

    >>> from keras_vgg4d.data import group_split
    >>> labels = [0, 0, 0, 0, 1, 1, 1, 1]
    >>> actors = ["g1", "g2", "g3", "g4", "g1", "g2", "g3", "g4"]
    >>> validating = group_split(labels, actors, 0.25, seed=0)
    >>> validating.astype(int).tolist()
    [0, 0, 1, 0, 0, 0, 1, 0]
    """
    labels = np.asarray(labels)
    if len(np.asarray(groups)) != len(labels):
        raise ValueError(
            f"group_split expects one group a clip: {len(labels)} labels but "
            f"{len(np.asarray(groups))} groups."
        )
    group_names, group_of = np.unique(
        np.asarray(groups).astype(str), return_inverse=True
    )
    classes, label_of = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(group_names), len(classes)))
    np.add.at(counts, (group_of, label_of), 1)
    _check_splittable(counts, classes, group_names, class_names)
    totals = counts.sum(axis=0)
    target = validation_split * totals

    def cost(validating):
        # A class on one side only costs more than any imbalance.
        one_sided = (validating == 0) | (validating == totals)
        error = (((validating - target) / totals) ** 2).sum()
        return float(error + len(classes) * one_sided.sum())

    chosen = np.zeros(len(group_names), bool)
    validating = np.zeros(len(classes))
    order = np.random.default_rng(seed).permutation(len(group_names))
    # Greedy, then flips of single groups while they help (a local search).
    for _ in range(_MAX_SWEEPS):
        improved = False
        for g in order:
            sign = -1 if chosen[g] else 1
            if cost(validating + sign * counts[g]) < cost(validating):
                chosen[g] = not chosen[g]
                validating += sign * counts[g]
                improved = True
        if not improved:
            break
    _warn_one_sided(counts, chosen, classes, class_names)
    return chosen[group_of]


def _check_splittable(counts, classes, group_names, class_names):
    lonely = []
    for c in range(len(classes)):
        holders = np.flatnonzero(counts[:, c])
        if len(holders) == 1:
            name = _class_name(classes, c, class_names)
            lonely.append(
                f"class {name!r} ({int(counts[holders[0], c])} clip(s), "
                f"all in group {str(group_names[holders[0]])!r})"
            )
    if lonely:
        raise ValueError(
            "A validation split keeps each group on one side, so a class "
            "needs clips in at least 2 groups to appear on both sides; "
            f"{list_some(lonely)} cannot be split. Add clips of other "
            "groups, check the `groups` argument, or split without "
            "validation_split."
        )


def _class_name(classes, c, class_names):
    if class_names is None:
        return classes[c].item()
    return class_names[int(classes[c])]


def _warn_one_sided(counts, chosen, classes, class_names):
    validating = counts[chosen].sum(axis=0)
    training = counts[~chosen].sum(axis=0)
    one_sided = np.flatnonzero((validating == 0) | (training == 0))
    if len(one_sided):
        names = [_class_name(classes, c, class_names) for c in one_sided]
        warnings.warn(
            "No split that keeps groups whole puts every class on both "
            f"sides: class(es) {list_some(names)} are only on one side. "
            "Regroup the clips or try another seed.",
            stacklevel=3,
        )
