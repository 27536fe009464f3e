"""The encoder interface and its registry (after timm's create_model)."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ENCODERS: dict[str, Callable[..., "Encoder"]] = {}


def register_encoder(name: str):
    """Class or factory decorator: makes `create_encoder(name)` build it."""

    def wrap(factory):
        ENCODERS[name] = factory
        return factory

    return wrap


def available_encoders() -> list[str]:
    import core.encoders.hf_text  # noqa: F401  (registers)
    import core.encoders.timm_vision  # noqa: F401

    return sorted(ENCODERS)


def create_encoder(name: str, **kwargs) -> "Encoder":
    """Build a registered encoder by name (see `available_encoders()`)."""
    if name not in available_encoders():
        raise KeyError(f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name](**kwargs)


@lru_cache(maxsize=None)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """Content hash of a weights file (memoised per size and mtime)."""
    stat = Path(path).stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)


class Encoder(ABC):
    """Per-layer pooled features for one modality.

    Subclasses set `name`, `modality` ("image" or "text"), `layer_names`, and describe their
    weights and preprocessing in `config()`; `fingerprint()` hashes that config so cached
    features are keyed by exactly what produced them.
    """

    name: str
    modality: str
    layer_names: list[str]
    batch_size: int = 32

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything that determines the features: weights hash, pooling, preprocessing."""

    @abstractmethod
    def encode(self, batch: Sequence[Any]) -> list[np.ndarray]:
        """Features of one batch: one float32 array [len(batch), dim_l] per layer."""

    def fingerprint(self) -> str:
        blob = json.dumps({"name": self.name, **self.config()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()
