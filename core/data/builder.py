"""From a loader's candidate rows to a PairedDataset: one pair per caption, each media file checked once.

Loaders list candidates cheaply (ids, image, audio or video paths or URLs, captions); `limit`
picks the pairs before any file is fetched, decoded or hashed, so a small demo of a million-row
manifest reads a few files, not a million.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from core.data.base import PairedDataset, Sample, Skipped, evenly_spaced
from core.data.media import check_media, check_media_kind
from core.data.sources import FetchError, fetch_url, file_sha256, is_url

FETCH_WORKERS = 16  # downloads and checks wait on I/O, so threads overlap them


@dataclass(frozen=True)
class Candidate:
    """One pair before its media file is checked; `where` is the place that messages name (file, line)."""

    sample_id: str
    media: str | Path
    caption: str
    category: str
    label: str | None
    where: str


def resolve_media(source: str | Path, media: str, cache: str | Path | None) -> tuple[Path, str] | str:
    """(local path, sha256) of a readable `media` file (a URL is fetched into the cache first), else why not."""
    if is_url(source):
        try:
            path = fetch_url(str(source), cache)
        except FetchError as exc:
            return str(exc)
    else:
        path = Path(source)
        if not path.is_file():
            return f"missing {media} file"
    return check_media(path, media) or (path, file_sha256(path))


class PairBuilder:
    """Collects a loader's candidates and skips, then checks the media files that `limit` keeps.

    `media` is what the files are: "image", "audio" or "video". With `strict`, the first bad
    candidate raises a ValueError naming its file and line instead of being skipped.
    """

    def __init__(self, name: str, root: Path, strict: bool = False, cache: str | Path | None = None,
                 media: str = "image"):
        self.name, self.root, self.strict, self.cache = name, Path(root), strict, cache
        self.media = check_media_kind(media)
        self.candidates: list[Candidate] = []
        self.skipped: list[Skipped] = []
        self._first_seen: dict[str, str] = {}
        self._resolved: dict[str | Path, tuple[Path, str] | str] = {}

    def skip(self, sample_id: str, path: str | Path, reason: str, where: str | None = None) -> None:
        """Leave a candidate out, with the reason; with `strict`, stop instead."""
        if self.strict:
            place = where or str(path)
            detail = f" ({path})" if str(path) != place else ""
            raise ValueError(f"{place}: {reason}{detail}; fix or remove it, or load without strict to skip it")
        self.skipped.append(Skipped(sample_id, str(path), reason))

    def add(self, sample_id: str, media: str | Path, captions: Sequence[str], category: str = "",
            label: str | None = None, where: str | None = None) -> None:
        """One pair per non-empty caption of `media` (a path or URL); with several, ids get `#k` (k: the caption's position)."""
        where = where or str(media)
        if sample_id in self._first_seen:
            self.skip(sample_id, where, f"duplicate id (first at {self._first_seen[sample_id]})", where)
            return
        self._first_seen[sample_id] = where
        kept = [(k, caption.strip()) for k, caption in enumerate(captions) if caption.strip()]
        if not kept:
            self.skip(sample_id, where, "empty caption" if captions else "no caption", where)
        for k, caption in kept:
            pair_id = sample_id if len(kept) == 1 else f"{sample_id}#{k}"
            self.candidates.append(Candidate(pair_id, media, caption, category, label, where))

    def build(self, limit: int | None = None) -> PairedDataset:
        """The pairs whose media file is readable: at most `limit`, spread evenly over the candidates.

        A pair lost to a bad file is replaced from the candidates not yet tried, so `limit` pairs
        come back whenever that many are usable.
        """
        if limit is not None and limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        target = len(self.candidates) if limit is None else limit
        untried = list(range(len(self.candidates)))
        kept: dict[int, Sample] = {}
        while untried and len(kept) < target:
            batch = evenly_spaced(untried, target - len(kept))
            self._resolve([self.candidates[i].media for i in batch])
            for i in batch:
                c = self.candidates[i]
                resolved = self._resolved[c.media]
                if isinstance(resolved, str):
                    self.skip(c.sample_id, c.media, resolved, c.where)
                    continue
                path, sha = resolved
                kept[i] = Sample(c.sample_id, path, c.caption, c.category, sha, label=c.label)
            tried = set(batch)
            untried = [i for i in untried if i not in tried]
        if not kept:
            reasons = ", ".join(f"{n} {why}" for why, n in Counter(s.reason for s in self.skipped).items())
            raise ValueError(f"{self.root}: no usable {self.media}-caption pair for {self.name} "
                             f"(skipped: {reasons or 'nothing found'})")
        return PairedDataset(self.name, self.root, [kept[i] for i in sorted(kept)], self.skipped, self.media)

    def _resolve(self, sources: list[str | Path]) -> None:
        todo = list(dict.fromkeys(source for source in sources if source not in self._resolved))
        with ThreadPoolExecutor(FETCH_WORKERS) as pool:
            for source, resolved in zip(todo, pool.map(lambda src: resolve_media(src, self.media, self.cache), todo)):
                self._resolved[source] = resolved
