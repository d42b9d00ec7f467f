"""The one backbone every trial of a search shares.

A frozen, cached search trains every trial's head on features the first
trial's backbone computed, so every trial must get that backbone's weights.
Weights from a file or ImageNet are read once and handed on. A random
backbone (`weights=None`) is drawn from a seed with seeded copies of its
layers' own initializers; only the seed is written (`backbone_seed.json`, a
few bytes instead of VGG19's 77 MiB), and a search resumed in a new process
draws the very same backbone from it again.
"""

from __future__ import annotations

import hashlib
import json
import os

import keras
import numpy as np

SEED_FILE = "backbone_seed.json"


def seeded_random_weights(backbone: keras.layers.Layer, seed: int) -> list:
    """Draws `backbone`'s weights afresh from `seed`.

    Every weight is drawn by its layer's own initializer (VGG19's Glorot
    uniform kernels, zero biases), the `i`-th of `backbone.weights` with the
    seed `seed + i`, so the same `seed` gives the same weights in any
    process.

    Args:
        backbone: A built layer whose weights are kernels and biases.
        seed: An integer.

    Returns:
        NumPy arrays in the order of `backbone.get_weights()`.
    """
    initializers = {}
    for layer in backbone._flatten_layers():
        for kind in ("kernel", "bias"):
            variable = getattr(layer, kind, None)
            if variable is not None and hasattr(layer, f"{kind}_initializer"):
                initializers[id(variable)] = getattr(layer, f"{kind}_initializer")
    missing = [v.path for v in backbone.weights if id(v) not in initializers]
    if missing:
        raise ValueError(
            "seeded_random_weights draws kernels and biases only; the "
            f"backbone also has {missing}."
        )
    return [
        keras.ops.convert_to_numpy(
            _seeded(initializers[id(v)], seed + i)(v.shape, dtype=v.dtype)
        )
        for i, v in enumerate(backbone.weights)
    ]


def _seeded(initializer, seed: int):
    """A copy of `initializer` with `seed`, if it draws at random."""
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    return initializer.__class__.from_config({**config, "seed": seed})


def _digest(weights: list) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for array in weights:
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


class SharedBackbone:
    """Gives every model of a search the same backbone weights.

    Args:
        random: Whether the backbone is random (`weights=None`); then it is
            drawn from a seed.
        directory: Where to keep a random backbone's seed, or `None` to keep
            it in this process only.
    """

    def __init__(self, random: bool, directory: str | None):
        self.random = random
        self.directory = directory
        self.weights = None

    @property
    def seed_file(self) -> str | None:
        if not (self.random and self.directory):
            return None
        return os.path.join(self.directory, SEED_FILE)

    @property
    def holds_weights(self) -> bool:
        """Whether a model may be built without reading its weights again."""
        return self.weights is not None

    def share(self, model) -> None:
        """Sets `model.backbone`'s weights to the search's backbone.

        The first call takes them: from a random backbone's seed file if one
        exists, else a new seed (drawn with NumPy, so
        `keras.utils.set_random_seed` fixes it), else what `model` read.
        """
        if self.weights is None:
            self.weights = self._first(model.backbone)
        model.backbone.set_weights(self.weights)

    def _first(self, backbone) -> list:
        if not self.random:
            return backbone.get_weights()
        path = self.seed_file
        if path and os.path.exists(path):
            with open(path) as file:
                stored = json.load(file)
            weights = seeded_random_weights(backbone, stored["seed"])
            if _digest(weights) != stored["digest"]:
                raise RuntimeError(
                    f"The random backbone drawn from the seed in {path} is "
                    "not the one this search's features were computed with "
                    f"(written by Keras {stored['keras']}, this is Keras "
                    f"{keras.__version__}). Start the search in a new "
                    "directory, or give the backbone a weights file."
                )
            return weights
        seed = int(np.random.randint(0, 2**31 - 2**12))
        weights = seeded_random_weights(backbone, seed)
        if path:
            # Written whole or not at all: workers of a distributed search
            # may read it while another writes it.
            os.makedirs(self.directory, exist_ok=True)
            partial = f"{path}.{os.getpid()}.tmp"
            with open(partial, "w") as file:
                json.dump({"seed": seed, "digest": _digest(weights),
                           "keras": keras.__version__}, file)
            os.replace(partial, path)
        return weights
