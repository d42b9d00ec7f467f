"""What the package's pictures share: matplotlib, loaded when a picture is
asked for, and one frame of raw pixels drawn."""

from __future__ import annotations

import numpy as np


def matplotlib_classes(purpose: str) -> tuple:
    """matplotlib's `Figure` and its Agg canvas class.

    Args:
        purpose: The function that draws, named in the error.

    Returns:
        `(Figure, FigureCanvasAgg)`: no pyplot, no global state.

    Raises:
        ImportError: matplotlib is not installed; names the `plot` extra.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs matplotlib, which is not installed. "
            "Install the plot extra: `pip install keras_vgg4d[plot]`."
        ) from error
    return Figure, FigureCanvasAgg


def draw_frame(ax, frame: np.ndarray) -> None:
    """Draws a frame of raw pixels (0..255) on `ax`, without ticks: RGB
    as it is, any other channel count as its first channel in gray."""
    frame = np.clip(frame, 0, 255) / 255.0
    if frame.shape[-1] == 3:
        ax.imshow(frame, interpolation="nearest")
    else:
        ax.imshow(frame[..., 0], cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
