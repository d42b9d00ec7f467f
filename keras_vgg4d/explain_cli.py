"""`vgg4d-explain`: which frames, and where, made a saved model's predictions.

    vgg4d-explain MODEL.keras CLIPS.npy [--out DIR] [--class-index K]
        [--method occlusion|gradient|integrated_gradients]
        [--time-axis {1,-1}] [--layer block5_conv4] [--class-names a,b,c]

`MODEL.keras` is a saved `VGG4DClassifier`; `CLIPS.npy` holds clips
`(n, time, height, width, channels)` (or `(n, height, width, channels,
time)` with `--time-axis -1`; by default the model's own layout). It writes,
under `--out`:

- `clip_0000.png`, ...: one picture a clip (`save_explanation`): its frames
  under their Grad-CAM heatmaps and a bar chart of frame importance;
- `importance.csv`: one row a clip: the class explained, its probability,
  the most important frame and every frame's importance.

Classes are named by `--class-names`, or else by the `per_class.csv` that
`vgg4d-tune` writes beside the models it saves.

Errors are one line on stderr: exit code 2 for a wrong command line, 1 for
a file, model or array that cannot be used.
"""

from __future__ import annotations

import csv
import os
import sys

# The command line is read in `keras_vgg4d_cli`, which the `vgg4d-explain`
# command runs first: it parses before Keras is imported.
from keras_vgg4d_cli import build_explain_parser as build_parser  # noqa: F401
from keras_vgg4d_cli import explain as main


def load_inputs(args):
    """The model and clips the arguments name, or `ValueError`/`OSError`."""
    import keras
    import numpy as np

    import keras_vgg4d  # noqa: F401 (registers the classes for loading)

    for what, path in (("MODEL.keras", args.model), ("CLIPS.npy", args.clips)):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{what}: no such file: {path}")
    model = keras.saving.load_model(args.model)
    clips = np.load(args.clips, allow_pickle=False)
    if not isinstance(clips, np.ndarray):
        raise ValueError(
            f"CLIPS.npy must hold one array of clips (a .npy file); "
            f"{args.clips} holds several arrays"
        )
    return model, clips


def run(args) -> int:
    """Explains the clips in batches; writes the pictures and the CSV."""
    from keras_vgg4d.explain import explain
    from keras_vgg4d.explain import save_explanation

    for flag, value in (("--batch-size", args.batch_size),
                        ("--max-frames", args.max_frames)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1; received {value}")
    model, clips = load_inputs(args)
    if clips.ndim != 5 or len(clips) == 0:
        # explain() says what is wrong with the clips' shape.
        explain(model, clips, time_axis=args.time_axis)
    names = class_names(args, getattr(model, "num_classes", None))
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for start in range(0, len(clips), args.batch_size):
        batch = clips[start:start + args.batch_size]
        found = explain(
            model, batch, class_index=args.class_index, method=args.method,
            layer_name=args.layer, time_axis=args.time_axis,
            batch_size=args.batch_size,
        )
        for i in range(len(batch)):
            path = os.path.join(args.out, f"clip_{start + i:04d}.png")
            save_explanation(batch, found, path, class_names=names, index=i,
                             max_frames=args.max_frames)
            rows.append(_csv_row(start + i, found, i, names))
            print(_summary(rows[-1]))
    write_csv(os.path.join(args.out, "importance.csv"), rows)
    print(f"wrote {len(rows)} picture(s) and importance.csv to {args.out}")
    return 0


def class_names(args, num_classes: int | None) -> list[str] | None:
    """The class names, in label order: `--class-names`, else the classes
    of the `per_class.csv` that vgg4d-tune wrote beside the model, else
    `None` (classes are shown by index).

    Raises:
        ValueError: `per_class.csv` names another number of classes than
            the model's `num_classes`.
    """
    if args.class_names:
        return [name.strip() for name in args.class_names.split(",")]
    path = os.path.join(os.path.dirname(os.path.abspath(args.model)),
                        "per_class.csv")
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        if "class" not in (reader.fieldnames or ()):
            return None
        names = [row["class"] for row in reader]
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(
            f"{path} names {len(names)} classes, the model has "
            f"{num_classes}: it was written for another model. Name the "
            f"classes with --class-names a,b,..."
        )
    return names


def _csv_row(number, found, i, names) -> dict:
    """One clip's row of `importance.csv`."""
    k = int(found.class_index[i])
    row = {
        "clip": number,
        "class_index": k,
        "class_name": names[k] if names else "",
        "probability": f"{found.probabilities[i, k]:.6f}",
        "top_frame": int(found.top_frame[i]),
    }
    for t, value in enumerate(found.importance[i]):
        row[f"frame_{t}"] = f"{value:.6g}"
    return row


def _summary(row) -> str:
    name = f" ({row['class_name']})" if row["class_name"] else ""
    return (
        f"clip {row['clip']}: class {row['class_index']}{name} "
        f"p={float(row['probability']):.3f}, most important frame "
        f"{row['top_frame']}"
    )


def write_csv(path: str, rows: list[dict]) -> None:
    """Writes `rows` (dicts with the same keys) as a CSV with a header."""
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
