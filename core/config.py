"""Where the engine keeps its caches. One place, so every stage agrees."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_ENV = "PLATO_CACHE_DIR"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache root: `override`, else $PLATO_CACHE_DIR, else `<repo>/cache`. Created if missing."""
    root = Path(override or os.environ.get(CACHE_ENV) or REPO_ROOT / "cache").expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def results_db_path(root: Path | None = None) -> Path:
    return (root or cache_dir()) / "results.duckdb"
