"""Where the engine keeps its caches. One place, so every stage agrees."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_ENV = "PLATO_CACHE_DIR"
LOCK_WAIT_ENV = "PLATO_DB_LOCK_WAIT"  # seconds to wait for another process's hold on the result store


def lock_wait() -> float:
    """How long to wait for the result store when another process holds it ($PLATO_DB_LOCK_WAIT, default 60 s)."""
    text = os.environ.get(LOCK_WAIT_ENV, "60")
    try:
        return max(0.0, float(text))
    except ValueError:
        raise ValueError(f"{LOCK_WAIT_ENV} must be a number of seconds, got {text!r}") from None


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache root: `override`, else $PLATO_CACHE_DIR, else `<repo>/cache`. Created if missing."""
    root = Path(override or os.environ.get(CACHE_ENV) or REPO_ROOT / "cache").expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def results_db_path(root: Path | None = None) -> Path:
    return (root or cache_dir()) / "results.duckdb"
