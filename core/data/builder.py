"""From a loader's candidate rows to a PairedDataset: one pair per caption, each image checked once.

Loaders list candidates cheaply (ids, image paths or URLs, captions); `limit` picks the pairs
before any image is fetched, decoded or hashed, so a small demo of a million-row manifest reads
a few images, not a million.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from core.data.base import PairedDataset, Sample, Skipped, evenly_spaced
from core.data.images import check_image
from core.data.sources import FetchError, fetch_url, file_sha256, is_url

IMAGE_WORKERS = 16  # downloads and checks wait on I/O, so threads overlap them


@dataclass(frozen=True)
class Candidate:
    """One pair before its image is checked; `where` is the place that messages name (file, line)."""

    sample_id: str
    image: str | Path
    caption: str
    category: str
    label: str | None
    where: str


def resolve_image(image: str | Path, cache: str | Path | None) -> tuple[Path, str] | str:
    """(local path, sha256) of a readable image (a URL is fetched into the cache first), else why not."""
    if is_url(image):
        try:
            path = fetch_url(str(image), cache)
        except FetchError as exc:
            return str(exc)
    else:
        path = Path(image)
        if not path.is_file():
            return "missing image file"
    return check_image(path) or (path, file_sha256(path))


class PairBuilder:
    """Collects a loader's candidates and skips, then checks the images that `limit` keeps.

    With `strict`, the first bad candidate raises a ValueError naming its file and line instead
    of being skipped.
    """

    def __init__(self, name: str, root: Path, strict: bool = False, cache: str | Path | None = None):
        self.name, self.root, self.strict, self.cache = name, Path(root), strict, cache
        self.candidates: list[Candidate] = []
        self.skipped: list[Skipped] = []
        self._first_seen: dict[str, str] = {}
        self._images: dict[str | Path, tuple[Path, str] | str] = {}

    def skip(self, sample_id: str, path: str | Path, reason: str, where: str | None = None) -> None:
        """Leave a candidate out, with the reason; with `strict`, stop instead."""
        if self.strict:
            place = where or str(path)
            detail = f" ({path})" if str(path) != place else ""
            raise ValueError(f"{place}: {reason}{detail}; fix or remove it, or load without strict to skip it")
        self.skipped.append(Skipped(sample_id, str(path), reason))

    def add(self, sample_id: str, image: str | Path, captions: Sequence[str], category: str = "",
            label: str | None = None, where: str | None = None) -> None:
        """One pair per non-empty caption of `image`; with several, ids get `#k` (k: the caption's position)."""
        where = where or str(image)
        if sample_id in self._first_seen:
            self.skip(sample_id, where, f"duplicate id (first at {self._first_seen[sample_id]})", where)
            return
        self._first_seen[sample_id] = where
        kept = [(k, caption.strip()) for k, caption in enumerate(captions) if caption.strip()]
        if not kept:
            self.skip(sample_id, where, "empty caption" if captions else "no caption", where)
        for k, caption in kept:
            pair_id = sample_id if len(kept) == 1 else f"{sample_id}#{k}"
            self.candidates.append(Candidate(pair_id, image, caption, category, label, where))

    def build(self, limit: int | None = None) -> PairedDataset:
        """The pairs whose image is readable: at most `limit`, spread evenly over the candidates.

        A pair lost to a bad image is replaced from the candidates not yet tried, so `limit` pairs
        come back whenever that many are usable.
        """
        if limit is not None and limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        target = len(self.candidates) if limit is None else limit
        untried = list(range(len(self.candidates)))
        kept: dict[int, Sample] = {}
        while untried and len(kept) < target:
            batch = evenly_spaced(untried, target - len(kept))
            self._resolve([self.candidates[i].image for i in batch])
            for i in batch:
                c = self.candidates[i]
                resolved = self._images[c.image]
                if isinstance(resolved, str):
                    self.skip(c.sample_id, c.image, resolved, c.where)
                    continue
                path, sha = resolved
                kept[i] = Sample(c.sample_id, path, c.caption, c.category, sha, label=c.label)
            tried = set(batch)
            untried = [i for i in untried if i not in tried]
        if not kept:
            reasons = ", ".join(f"{n} {why}" for why, n in Counter(s.reason for s in self.skipped).items())
            raise ValueError(f"{self.root}: no usable image-caption pair for {self.name} (skipped: {reasons or 'nothing found'})")
        return PairedDataset(self.name, self.root, [kept[i] for i in sorted(kept)], self.skipped)

    def _resolve(self, images: list[str | Path]) -> None:
        todo = list(dict.fromkeys(image for image in images if image not in self._images))
        with ThreadPoolExecutor(IMAGE_WORKERS) as pool:
            for image, resolved in zip(todo, pool.map(lambda im: resolve_image(im, self.cache), todo)):
                self._images[image] = resolved
