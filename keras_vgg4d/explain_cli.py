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

Errors are one line on stderr: exit code 2 for a wrong command line, 1 for
a file, model or array that cannot be used.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROG = "vgg4d-explain"


class _OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line of `vgg4d-explain`."""
    from keras_vgg4d.explain import DEFAULT_LAYER
    from keras_vgg4d.explain import METHODS

    parser = _OneLineErrorParser(
        prog=PROG,
        description="Explain a saved VGG4DClassifier's predictions: "
                    "frame importance and per-frame Grad-CAM, as pictures "
                    "and a CSV.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("model", metavar="MODEL.keras", help="a saved VGG4DClassifier")
    add("clips", metavar="CLIPS.npy", help="clips, (n, time, h, w, channels)")
    add("--out", default="explanations", help="folder to write into")
    add("--class-index", type=int, default=None,
        help="class to explain in every clip (default: the predicted one)")
    add("--method", choices=METHODS, default="occlusion",
        help="how frame importance is measured")
    add("--time-axis", type=int, choices=(1, -1), default=None,
        help="1: clips are (n, time, h, w, c); -1: (n, h, w, c, time); "
             "default: the model's own time_axis")
    add("--layer", default=DEFAULT_LAYER,
        help="backbone convolution layer for Grad-CAM")
    add("--class-names", default=None,
        help="comma-separated class names, in label order")
    add("--batch-size", type=int, default=8, help="clips explained at once")
    add("--max-frames", type=int, default=16,
        help="frames drawn a picture (the most important ones)")
    return parser


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
    names = (
        [name.strip() for name in args.class_names.split(",")]
        if args.class_names else None
    )
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vgg4d-explain` console script."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ValueError, OSError, ImportError, zipfile.BadZipFile) as error:
        message = str(error).strip().splitlines()[0] if str(error) else ""
        print(f"{PROG}: error: {type(error).__name__}: {message}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
