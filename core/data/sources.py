"""Where a loader's bytes come from: local files, or http(s) URLs fetched once into the cache."""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

from core.config import cache_dir

DOWNLOAD_TIMEOUT_S = 60
USER_AGENT = "platoscope/0.1 (python urllib)"  # some hosts refuse the default agent


class FetchError(OSError):
    """A URL that could not be downloaded; the message says why (HTTP status, network error)."""


def is_url(source: str | os.PathLike) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_url(url: str, cache: str | Path | None = None) -> Path:
    """The local copy of `url` at `<cache>/downloads/<sha256 of url>`, downloaded on first use.

    Failures are not cached, so a later load retries them; raises FetchError.
    """
    target = cache_dir(cache) / "downloads" / hashlib.sha256(url.encode()).hexdigest()
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, open(partial, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise FetchError(f"download failed ({exc})") from exc
    partial.replace(target)  # atomic: a reader never sees half a file
    return target
