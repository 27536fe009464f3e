"""What every page needs: the result store (cached reads), the run being viewed, and engine jobs with progress.

Pages only read; when there are no results yet they ask the engine for the demo job here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import streamlit as st

from core import results
from core.config import cache_dir, results_db_path

MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|$~<>:])")


SPACE_NAMES = {"image": "Vision", "audio": "Audio", "video": "Video", "text": "Text"}  # a model's space, by modality


def space_name(modality: str) -> str:
    return SPACE_NAMES.get(modality, str(modality).title())


def linked_index(param: str, options: list, default: int = 0) -> int:
    """The position of the option the address names (?param=value, compared as text), else `default`:
    the index for a widget, so a link reproduces the view and a stale link falls back quietly."""
    requested = st.query_params.get(param)
    return next((i for i, option in enumerate(options) if str(option) == requested), default)


def escape_md(text: str) -> str:
    """Caption text made safe for st.markdown: no formatting, links, LaTeX or HTML from the data."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


def db_path() -> Path:
    return results_db_path(cache_dir())


def _db_version() -> float:
    path = db_path()
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_data(show_spinner=False)
def _runs(path: str, version: float) -> pd.DataFrame:
    return results.list_runs(Path(path)) if version else pd.DataFrame()


def runs() -> pd.DataFrame:
    return _runs(str(db_path()), _db_version())


@st.cache_data(show_spinner=False)
def run_info(run_id: str, path: str, version: float) -> dict:
    return results.run_info(run_id, Path(path))


@st.cache_data(show_spinner=False)
def curve(run_id: str, path: str, version: float) -> pd.DataFrame:
    return results.curve(run_id, Path(path))


@st.cache_data(show_spinner=False)
def layer_scores(run_id: str, k: int, path: str, version: float) -> pd.DataFrame:
    return results.layer_scores(run_id, k, Path(path))


@st.cache_data(show_spinner=False)
def run_summaries(path: str, version: float) -> pd.DataFrame:
    return results.run_summaries(Path(path))


@st.cache_data(show_spinner=False)
def model_quality(path: str, version: float) -> pd.DataFrame:
    return results.model_quality_rows(Path(path))


@st.cache_data(show_spinner=False)
def samples(run_id: str, path: str, version: float) -> pd.DataFrame:
    return results.samples(run_id, Path(path))


@st.cache_data(show_spinner=False)
def sample_view(run_id: str, idx: int, k: int, path: str, version: float) -> dict:
    return results.sample_view(run_id, idx, k, path=Path(path))


def store_key() -> tuple[str, float]:
    """(db path, version): pass to the cached readers so a rewritten store is read afresh."""
    return str(db_path()), _db_version()


class StreamlitProgress:
    """A core.progress.ProgressFn that drives one st.progress bar per stage."""

    def __init__(self) -> None:
        self.bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = st.progress(0.0, text=stage)
        bar.progress(min(done / max(total, 1), 1.0), text=f"{stage}: {done}/{total}")


def compute_demo() -> None:
    """Run the demo job in this process, with progress, then reload the page.

    $PLATO_DEMO_LIMIT caps the number of stamps (for slow machines and tests).
    """
    from core.jobs import run_alignment

    limit = int(os.environ["PLATO_DEMO_LIMIT"]) if os.environ.get("PLATO_DEMO_LIMIT") else None
    with st.status("Computing the demo: embedding stamps with both models, then aligning…", expanded=True) as status:
        run_alignment(limit=limit, progress=StreamlitProgress())
        status.update(label="Demo computed", state="complete")
    st.cache_data.clear()
    st.rerun()


def current_run() -> dict | None:
    """The run this view shows (?run=ID, else the newest), or None after offering to compute the demo."""
    available = runs()
    if available.empty:
        st.info("No results yet. Compute the bundled demo (Tux Paint stamps, EfficientNet-Lite0 x MiniLM-L6, "
                "about a minute on a laptop), or run `python -m core demo` in a terminal.")
        if st.button("Compute the demo now", type="primary"):
            compute_demo()
        return None
    ids = list(available.run_id)
    labels = {r.run_id: f"{r.dataset} · {r.model_a} × {r.model_b} · n={r.n} · {r.run_id[:8]}" for r in available.itertuples()}
    run_id = st.sidebar.selectbox("Run", ids, index=linked_index("run", ids), format_func=labels.get) if len(ids) > 1 else ids[0]
    if len(ids) > 1 or "run" in st.query_params:
        st.query_params["run"] = run_id
    return run_info(run_id, *store_key())
