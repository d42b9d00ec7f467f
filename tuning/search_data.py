"""The clips a `vgg4d-tune` search trains and validates on.

`--data demo` and `--data FILE.npz` are arrays in memory, split with
`split_balanced`; their classes are named by `demo_class_names`, or by the
file's optional `class_names` array. `--data DIR` streams:
`clip_dataset_from_directory` lists the folder (videos, frame folders,
`.npy`, NIfTI), splits it by group, and decodes clips batch by batch; the
search caches every frame's features once, so the raw clips are never all
in memory.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass
class SearchData:
    """Training and validation data of a search.

    Attributes:
        train: Training clips (array) or a streaming dataset.
        train_labels: Labels of array clips; `None` for a dataset.
        validation: Validation clips (array) or a streaming dataset.
        validation_labels: Labels of array clips; `None` for a dataset.
        class_names: Names of the classes, by label.
        time_axis: Where time is in the clips.
        input_shape: The shape of one clip.
        everything: Returns `(clips, labels)` of all clips, for `--refit`.
    """

    train: object
    train_labels: np.ndarray | None
    validation: object
    validation_labels: np.ndarray | None
    class_names: list[str]
    time_axis: int
    input_shape: tuple
    everything: Callable[[], tuple]

    @property
    def streams(self) -> bool:
        return self.train_labels is None

    def validation_targets(self) -> np.ndarray:
        """The validation labels (read from the dataset when it streams)."""
        if not self.streams:
            return self.validation_labels
        return np.concatenate([np.asarray(y).reshape(-1)
                               for _, y in self.validation])


def load_search_data(args) -> SearchData:
    """The data `args.data` names: 'demo', a `.npz` file or a folder."""
    from keras_vgg4d import data

    if os.path.isdir(args.data):
        return _stream_folder(args)
    time_axis = -1 if args.time_last else 1
    if args.data == "demo":
        x, y = data.demo_clips(
            n=args.num_clips, frames=args.frames, size=args.image_size,
            channels=3, task=args.task, seed=args.seed,
        )
        class_names = data.demo_class_names(args.task, int(y.max()) + 1)
        time_axis = 1
    elif args.data.endswith(".npz"):
        x, y = data.load_npz(args.data, time_axis=time_axis)
        class_names = _npz_class_names(args.data, int(y.max()) + 1)
        time_axis = 1
    else:
        raise FileNotFoundError(
            f"--data {args.data!r} is neither 'demo', a .npz file nor a "
            "folder of clips"
        )
    (x_train, y_train), (x_val, y_val) = data.split_balanced(
        x, y, validation_fraction=args.validation_fraction, seed=args.seed
    )
    return SearchData(x_train, y_train, x_val, y_val, class_names, time_axis,
                      x_train.shape[1:], lambda: (x, y))


def _npz_class_names(path: str, num_classes: int) -> list[str]:
    """The `class_names` array of an `.npz` file, in label order, or the
    labels' numbers where it has none."""
    with np.load(path, allow_pickle=False) as archive:
        if "class_names" not in archive:
            return [str(c) for c in range(num_classes)]
        names = [str(name) for name in archive["class_names"].reshape(-1)]
    if len(names) < num_classes:
        raise ValueError(
            f"{path!r}: class_names names {len(names)} classes, but its "
            f"labels go up to {num_classes - 1}; name every class, in label "
            f"order"
        )
    return names


def _stream_folder(args) -> SearchData:
    from keras_vgg4d.data import clip_dataset_from_directory

    time_axis = -1 if args.time_last else 1
    options = dict(
        frames=args.frames, image_size=(args.image_size, args.image_size),
        sampling=args.sampling, batch_size=args.batch_size, seed=args.seed,
        groups=args.groups, time_axis=time_axis, verbose=not args.quiet,
        intensity=args.intensity,
    )
    train, validation = clip_dataset_from_directory(
        args.data, validation_split=args.validation_fraction, subset="both",
        **options,
    )
    shape = tuple(train.element_spec[0].shape[1:])

    def everything():
        return clip_dataset_from_directory(args.data, **options), None

    return SearchData(train, None, validation, None, list(train.class_names),
                      time_axis, shape, everything)
