"""Which float precision computes backbone features on this machine.

bfloat16 halves the cost of VGG19 on CPUs with AVX-512 BF16 or AMX
instructions and gains nothing elsewhere (measured in
benchmarks/RESULTS.md), so `"auto"` reads the CPU's flags.
"""

from __future__ import annotations

PRECISIONS = ("auto", "float32", "bfloat16")
# The CPU flags (from /proc/cpuinfo) that run bfloat16 matrix products.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The flags of the first CPU listed in `path` (empty if unreadable)."""
    try:
        with open(path) as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_precision(precision: str, flags: set[str] | None = None) -> str:
    """The dtype policy name `precision` stands for on this CPU.

    Args:
        precision: `"auto"`, `"float32"` or `"bfloat16"`.
        flags: CPU flags; read from `/proc/cpuinfo` by default.

    Returns:
        `"mixed_bfloat16"` or `"float32"`.

    Example:

    >>> from keras_vgg4d.precision import resolve_precision
    >>> resolve_precision("auto", flags={"avx2", "avx512_bf16"})
    'mixed_bfloat16'
    >>> resolve_precision("auto", flags={"avx2"})
    'float32'
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"`precision` must be one of {list(PRECISIONS)}, received: "
            f"precision={precision!r}"
        )
    if precision == "auto":
        flags = cpu_flags() if flags is None else flags
        precision = "bfloat16" if flags & set(BF16_FLAGS) else "float32"
    return "mixed_bfloat16" if precision == "bfloat16" else "float32"
