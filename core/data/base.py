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

MEDIA = ("image", "audio", "video")  # what the non-text side of a pair can be

@dataclass(frozen=True)
class Sample:
    """One pair of a media file (image, audio clip or video; the data set's `media`) and a caption.

    `sample_id` is stable across runs (a relative path, a row id). `media_key` and `text_key` name
    the unique media item and text behind the pair (default: the file's sha256 and the caption
    itself), so several captions of one image, or one caption of several images, share a key.
    `label` is the item's class where the data set has one.
    """

    sample_id: str
    media_path: Path
    caption: str
    category: str
    media_sha256: str
    media_key: str = ""
    text_key: str = ""
    label: str | None = None

    def __post_init__(self) -> None:
        if not self.media_key:
            object.__setattr__(self, "media_key", self.media_sha256)
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
    """Rows are paired: `samples[i]` holds media item i (an image, audio clip or video, as `media`
    says) and caption i.

    Many-to-many data repeats keys: `unique_media()`, `unique_texts()` and `pair_index()` let a
    stage embed each distinct item and text once, then gather the rows.
    """

    name: str
    root: Path
    samples: list[Sample]
    skipped: list[Skipped] = field(default_factory=list)
    media: str = "image"

    def __post_init__(self) -> None:
        if self.media not in MEDIA:
            raise ValueError(f"{self.name}: media must be one of {list(MEDIA)}, got {self.media!r}")

    def subset(self, rows, skipped: list[Skipped] = ()) -> "PairedDataset":
        """The pairs at `rows`, in that order; `skipped` are added to the list of skipped candidates."""
        return PairedDataset(self.name, self.root, [self.samples[i] for i in rows], [*self.skipped, *skipped], self.media)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def captions(self) -> list[str]:
        return [s.caption for s in self.samples]

    def unique_media(self) -> list[Sample]:
        """The first pair of each distinct media item (`media_key`), in order of first appearance: [n_items]."""
        firsts, _ = first_occurrences([s.media_key for s in self.samples])
        return [self.samples[i] for i in firsts]

    def unique_texts(self) -> list[Sample]:
        """The first pair of each distinct text (`text_key`), in order of first appearance: [n_texts]."""
        firsts, _ = first_occurrences([s.text_key for s in self.samples])
        return [self.samples[i] for i in firsts]

    def pair_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(media_index, text_index), int64 [n_pairs] each: pair i is unique_media()[media_index[i]]
        with unique_texts()[text_index[i]]."""
        _, media_index = first_occurrences([s.media_key for s in self.samples])
        _, text_index = first_occurrences([s.text_key for s in self.samples])
        return media_index, text_index

    def fingerprint(self) -> str:
        """Content hash of the pairs (ids, captions, keys, labels, media bytes): changes whenever the data does."""
        digest = hashlib.sha256(self.name.encode() if self.media == "image" else f"{self.name}:{self.media}".encode())
        for s in self.samples:
            digest.update(json.dumps([s.sample_id, s.caption, s.category, s.media_sha256,
                                      s.media_key, s.text_key, s.label]).encode())
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
    parameters = inspect.signature(loader).parameters
    if source is not None:
        kwargs[next(iter(parameters))] = source
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        takes = ", ".join(p for p in list(parameters)[1:])
        raise ValueError(f"data set {name!r} takes no option {', '.join(unknown)} (it takes: {takes})")
    return loader(**kwargs)


def evenly_spaced(items: list, limit: int | None) -> list:
    """At most `limit` items spread evenly over the list (so a small demo still covers every category)."""
    if limit is None or limit >= len(items):
        return items
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]
