"""Timing helpers shared by the benchmark scripts, and the machine line
they print.

The machines are shared and noisy, so compared variants are timed in
alternating rounds (A, B, A, B, ...) after a warm-up, and medians are reported.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from typing import Callable


def alternate(
    variants: dict[str, Callable[[], object]], rounds: int, repeats: int
) -> dict[str, float]:
    """Median seconds per call of each variant, timed in alternating rounds.

    Args:
        variants: name -> a callable doing one unit of work (already warm).
        rounds: how many alternating rounds.
        repeats: calls per variant per round (the round's time is divided
            by it).

    Returns:
        name -> median seconds per call.
    """
    samples = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            samples[name].append((time.perf_counter() - start) / repeats)
    return {name: statistics.median(s) for name, s in samples.items()}


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine() -> str:
    """CPU model (from /proc/cpuinfo), core count and load average."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as file:
            names = [line.split(":", 1)[1].strip() for line in file
                     if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return f"{model}, {os.cpu_count()} CPU(s), load average {load}"


def error_text(error: BaseException) -> str:
    """One short line describing `error`, safe inside a Markdown cell."""
    # Keras colours parts of its messages: drop the terminal escapes.
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    lines = lines or [""]
    # Keras wraps a layer's error: "Exception encountered when calling
    # X.call().", then the error itself on the next line.
    text = " ".join(lines[:2] if lines[0].startswith("Exception enc") else
                    lines[:1])
    text = f"{type(error).__name__}: {text}".replace("|", "/")
    return text if len(text) <= 240 else text[:237] + "..."
