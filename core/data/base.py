"""The paired-data model shared by every loader, and the loader registry."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One image-caption pair. `sample_id` is stable across runs (a relative path, a row id).

    `image_key` and `text_key` name the unique image and text behind the pair (default: the
    image's sha256 and the caption itself), so several captions of one image, or one caption of
    several images, share a key. `label` is the image's class where the data set has one.
    """

    sample_id: str
    image_path: Path
    caption: str
    category: str
    image_sha256: str
    image_key: str = ""
    text_key: str = ""
    label: str | None = None

    def __post_init__(self) -> None:
        if not self.image_key:
            object.__setattr__(self, "image_key", self.image_sha256)
        if not self.text_key:
            object.__setattr__(self, "text_key", self.caption)


@dataclass(frozen=True)
class Skipped:
    """A candidate that was left out, with the file and the reason."""

    sample_id: str
    path: str
    reason: str


@dataclass
class PairedDataset:
    """Rows are paired: `samples[i]` holds image i and caption i.

    Many-to-many data repeats keys: `unique_images()`, `unique_texts()` and `pair_index()` let a
    stage embed each distinct image and text once, then gather the rows.
    """

    name: str
    root: Path
    samples: list[Sample]
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def captions(self) -> list[str]:
        return [s.caption for s in self.samples]

    def unique_images(self) -> list[Sample]:
        """The first pair of each distinct image (`image_key`), in order of first appearance: [n_images]."""
        firsts, _ = first_occurrences([s.image_key for s in self.samples])
        return [self.samples[i] for i in firsts]

    def unique_texts(self) -> list[Sample]:
        """The first pair of each distinct text (`text_key`), in order of first appearance: [n_texts]."""
        firsts, _ = first_occurrences([s.text_key for s in self.samples])
        return [self.samples[i] for i in firsts]

    def pair_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(image_index, text_index), int64 [n_pairs] each: pair i is unique_images()[image_index[i]]
        with unique_texts()[text_index[i]]."""
        _, image_index = first_occurrences([s.image_key for s in self.samples])
        _, text_index = first_occurrences([s.text_key for s in self.samples])
        return image_index, text_index

    def fingerprint(self) -> str:
        """Content hash of the pairs (ids, captions, keys, labels, image bytes): changes whenever the data does."""
        digest = hashlib.sha256(self.name.encode())
        for s in self.samples:
            digest.update(json.dumps([s.sample_id, s.caption, s.category, s.image_sha256,
                                      s.image_key, s.text_key, s.label]).encode())
        return digest.hexdigest()

    def skip_summary(self) -> dict[str, int]:
        """How many candidates were skipped, by reason."""
        return dict(Counter(s.reason for s in self.skipped))


def first_occurrences(keys: list[str]) -> tuple[list[int], np.ndarray]:
    """(row of each distinct key's first occurrence, in that order; int64 [n] index of each row's key in it)."""
    position: dict[str, int] = {}
    firsts: list[int] = []
    index = np.empty(len(keys), dtype=np.int64)
    for row, key in enumerate(keys):
        if key not in position:
            position[key] = len(firsts)
            firsts.append(row)
        index[row] = position[key]
    return firsts, index


DATASETS: dict[str, Callable[..., PairedDataset]] = {}


def register_dataset(name: str):
    def wrap(fn: Callable[..., PairedDataset]) -> Callable[..., PairedDataset]:
        DATASETS[name] = fn
        return fn

    return wrap


def available_datasets() -> list[str]:
    # importing a loader module registers it
    import core.data.coco  # noqa: F401
    import core.data.hf_datasets  # noqa: F401
    import core.data.image_folder  # noqa: F401
    import core.data.manifest  # noqa: F401
    import core.data.openclipart  # noqa: F401
    import core.data.tuxpaint  # noqa: F401
    import core.data.webdataset  # noqa: F401

    return sorted(DATASETS)


def load_dataset(name: str, source: str | None = None, **kwargs) -> PairedDataset:
    """Load a registered data set by name (see `available_datasets()`).

    `source` is the loader's first argument, whatever it is called (a manifest path, a folder,
    COCO annotations, tar shards); None keeps the loader's default.
    """
    if name not in available_datasets():
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    loader = DATASETS[name]
    if source is not None:
        kwargs[next(iter(inspect.signature(loader).parameters))] = source
    return loader(**kwargs)


def evenly_spaced(items: list, limit: int | None) -> list:
    """At most `limit` items spread evenly over the list (so a small demo still covers every category)."""
    if limit is None or limit >= len(items):
        return items
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]
