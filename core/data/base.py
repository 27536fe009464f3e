"""The paired-data model shared by every loader, and the loader registry."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Sample:
    """One image-caption pair. `sample_id` is stable across runs (a relative path)."""

    sample_id: str
    image_path: Path
    caption: str
    category: str
    image_sha256: str


@dataclass(frozen=True)
class Skipped:
    """A candidate that was left out, with the file and the reason."""

    sample_id: str
    path: str
    reason: str


@dataclass
class PairedDataset:
    """Rows are paired: `samples[i]` holds image i and caption i."""

    name: str
    root: Path
    samples: list[Sample]
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def captions(self) -> list[str]:
        return [s.caption for s in self.samples]

    def fingerprint(self) -> str:
        """Content hash of the pairs (ids, captions, image bytes): changes whenever the data does."""
        digest = hashlib.sha256(self.name.encode())
        for s in self.samples:
            digest.update(json.dumps([s.sample_id, s.caption, s.category, s.image_sha256]).encode())
        return digest.hexdigest()

    def skip_summary(self) -> dict[str, int]:
        """How many candidates were skipped, by reason."""
        return dict(Counter(s.reason for s in self.skipped))


DATASETS: dict[str, Callable[..., PairedDataset]] = {}


def register_dataset(name: str):
    def wrap(fn: Callable[..., PairedDataset]) -> Callable[..., PairedDataset]:
        DATASETS[name] = fn
        return fn

    return wrap


def available_datasets() -> list[str]:
    import core.data.tuxpaint  # noqa: F401  (registers the loader)

    return sorted(DATASETS)


def load_dataset(name: str, **kwargs) -> PairedDataset:
    """Load a registered data set by name (see `available_datasets()`)."""
    if name not in available_datasets():
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](**kwargs)


def evenly_spaced(items: list, limit: int | None) -> list:
    """At most `limit` items spread evenly over the list (so a small demo still covers every category)."""
    if limit is None or limit >= len(items):
        return items
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]
