"""The result store: one DuckDB file that the engine writes and the dashboard reads.

This module is the only place that opens the database. A run is written in one transaction,
so readers see either all of it or none of it.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np
import pandas as pd

from core.config import LOCK_WAIT_ENV, lock_wait, results_db_path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, created_at TIMESTAMP, dataset VARCHAR, dataset_fingerprint VARCHAR, media VARCHAR,
    model_a VARCHAR, model_b VARCHAR, modality_a VARCHAR, modality_b VARCHAR,
    features_a VARCHAR, features_b VARCHAR, n INTEGER, metric VARCHAR, config JSON);
CREATE TABLE IF NOT EXISTS layers (run_id VARCHAR, side VARCHAR, layer INTEGER, name VARCHAR, dim INTEGER);
CREATE TABLE IF NOT EXISTS samples (run_id VARCHAR, idx INTEGER, sample_id VARCHAR, caption VARCHAR,
    category VARCHAR, media_path VARCHAR, thumb_path VARCHAR);
CREATE TABLE IF NOT EXISTS skipped (run_id VARCHAR, sample_id VARCHAR, path VARCHAR, reason VARCHAR);
CREATE TABLE IF NOT EXISTS layer_scores (run_id VARCHAR, k INTEGER, layer_a INTEGER, layer_b INTEGER, score DOUBLE);
CREATE TABLE IF NOT EXISTS best_pairs (run_id VARCHAR, k INTEGER, layer_a INTEGER, layer_b INTEGER, score DOUBLE);
CREATE TABLE IF NOT EXISTS curve (run_id VARCHAR, k INTEGER, gallery_size INTEGER, score DOUBLE, ci_low DOUBLE,
    ci_high DOUBLE, chance DOUBLE, shuffled DOUBLE, shuffled_low DOUBLE, shuffled_high DOUBLE, draws INTEGER);
CREATE TABLE IF NOT EXISTS sample_scores (run_id VARCHAR, k INTEGER, idx INTEGER, overlap DOUBLE);
CREATE TABLE IF NOT EXISTS neighbours (run_id VARCHAR, side VARCHAR, layer INTEGER, idx INTEGER, rank INTEGER,
    neighbour INTEGER, similarity REAL);
CREATE TABLE IF NOT EXISTS model_quality (model VARCHAR, model_fingerprint VARCHAR, corpus VARCHAR,
    corpus_sha256 VARCHAR, corpus_bytes BIGINT, bits_per_byte DOUBLE, max_length INTEGER, stride INTEGER,
    created_at TIMESTAMP);
"""
# stores written by earlier versions: (table, column that tells, statement that brings it up to date)
MIGRATIONS = [
    ("runs", "media", "ALTER TABLE runs ADD COLUMN media VARCHAR DEFAULT 'image'"),
    ("samples", "media_path", "ALTER TABLE samples RENAME COLUMN image_path TO media_path"),
]
RUN_TABLES = ["layers", "samples", "skipped", "layer_scores", "best_pairs", "curve", "sample_scores", "neighbours", "runs"]


class StoreBusy(RuntimeError):
    """Another process held the result store for longer than we were willing to wait."""


def _open(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, waiting (with backoff) while another process holds the file.

    DuckDB lets one process write a file, or several read it, never both at once. Every connection
    here lives for one query or one transaction, so a job writing a run and a dashboard reading it
    only ever wait for each other briefly.
    """
    deadline, pause = time.monotonic() + wait, 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() + pause > deadline:
                holder = re.search(r"\(PID (\d+)\)", str(exc))
                raise StoreBusy(f"{path}: the result store is busy; process {holder.group(1) if holder else '?'} "
                                f"held it for over {wait:g} s. Wait for that job to finish (or raise "
                                f"{LOCK_WAIT_ENV}) and try again") from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


@contextmanager
def connect(path: Path | None = None, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the result store (creating the schema when writing) and close it afterwards.

    While another process holds the file (a job writing a run as the dashboard reads), this waits
    up to $PLATO_DB_LOCK_WAIT seconds (default 60), then raises StoreBusy naming that process.
    """
    path = Path(path or results_db_path())
    if read_only and not path.exists():
        raise FileNotFoundError(f"{path}: no results yet; run `python -m core demo` first")
    con = _open(path, read_only, lock_wait())
    try:
        if not read_only:
            con.execute(SCHEMA)
            for table, column, statement in MIGRATIONS:
                if column not in [c[0] for c in con.execute(f"SELECT * FROM {table} LIMIT 0").description]:
                    con.execute(statement)
        yield con
    finally:
        con.close()


def has_run(run_id: str, path: Path | None = None) -> bool:
    with connect(path) as con:
        return con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0] > 0


def write_run(run: dict, tables: dict[str, pd.DataFrame], path: Path | None = None) -> None:
    """Replace run `run['run_id']` with `run` (a row of `runs`) and its per-table frames, atomically."""
    run_id = run["run_id"]
    row = {**run, "created_at": datetime.now(timezone.utc).replace(tzinfo=None), "config": json.dumps(run["config"])}
    with connect(path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            for table in RUN_TABLES:
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            frames = {"runs": pd.DataFrame([row]), **tables}
            for table, frame in frames.items():
                frame = frame.assign(run_id=run_id)
                columns = [c[0] for c in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
                con.register("incoming", frame[columns])
                con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
                con.unregister("incoming")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def write_model_quality(row: dict, path: Path | None = None) -> None:
    """Store one language model's bits per byte on one corpus (replacing an earlier measurement of the same pair)."""
    row = {**row, "created_at": datetime.now(timezone.utc).replace(tzinfo=None)}
    with connect(path) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM model_quality WHERE model_fingerprint = ? AND corpus_sha256 = ?",
                    [row["model_fingerprint"], row["corpus_sha256"]])
        columns = [c[0] for c in con.execute("SELECT * FROM model_quality LIMIT 0").description]
        con.execute(f"INSERT INTO model_quality VALUES ({', '.join('?' for _ in columns)})", [row[c] for c in columns])
        con.execute("COMMIT")


def model_quality(path: Path | None = None) -> pd.DataFrame:
    """Every stored language-model quality measurement (1 - bits per byte is the original paper's axis)."""
    with connect(path) as con:  # read-write: creates the table in stores made before it existed
        return con.execute("SELECT * FROM model_quality ORDER BY model, corpus").df()


def _query(sql: str, params: list | None = None, path: Path | None = None) -> pd.DataFrame:
    with connect(path, read_only=True) as con:
        return con.execute(sql, params or []).df()


def list_runs(path: Path | None = None) -> pd.DataFrame:
    """Every stored run, newest first."""
    return _query("SELECT * FROM runs ORDER BY created_at DESC", path=path)


def run_summaries(path: Path | None = None) -> pd.DataFrame:
    """One row per (run, k): the run's models and data, and its full-set score with interval, chance and null.

    Columns: run_id, created_at, dataset, dataset_fingerprint, media, model_a, model_b, n, metric, k,
    score, ci_low, ci_high, chance, shuffled; newest runs first.
    """
    return _query("""SELECT r.run_id, r.created_at, r.dataset, r.dataset_fingerprint, r.* LIKE 'media', r.model_a,
                            r.model_b, r.n, r.metric, c.k, c.score, c.ci_low, c.ci_high, c.chance, c.shuffled
                     FROM runs r JOIN curve c ON c.run_id = r.run_id AND c.gallery_size = r.n
                     ORDER BY r.created_at DESC, c.k""", path=path)


def model_quality_rows(path: Path | None = None) -> pd.DataFrame:
    """Stored language-model quality measurements, read-only (empty in a store that has none)."""
    try:
        return _query("SELECT * FROM model_quality ORDER BY model, corpus", path=path)
    except duckdb.CatalogException:  # a store written before the table existed
        return pd.DataFrame(columns=["model", "model_fingerprint", "corpus", "corpus_sha256", "corpus_bytes",
                                     "bits_per_byte", "max_length", "stride", "created_at"])


def latest_run_id(path: Path | None = None) -> str | None:
    runs = list_runs(path)
    return None if runs.empty else str(runs.run_id.iloc[0])


def run_info(run_id: str, path: Path | None = None) -> dict:
    runs = _query("SELECT * FROM runs WHERE run_id = ?", [run_id], path)
    if runs.empty:
        raise KeyError(f"no run {run_id!r} in the result store")
    info = {"media": "image", **runs.iloc[0].to_dict()}  # stores from before audio and video: images
    info["config"] = json.loads(info["config"])
    layers = _query("SELECT side, layer, name, dim FROM layers WHERE run_id = ? ORDER BY side, layer", [run_id], path)
    info["layer_names"] = {side: list(group.name) for side, group in layers.groupby("side")}
    info["skipped"] = _query("SELECT reason, count(*) AS count FROM skipped WHERE run_id = ? GROUP BY reason ORDER BY count DESC", [run_id], path)
    return info


def curve(run_id: str, path: Path | None = None) -> pd.DataFrame:
    return _query("SELECT * EXCLUDE (run_id) FROM curve WHERE run_id = ? ORDER BY k, gallery_size", [run_id], path)


def layer_scores(run_id: str, k: int, path: Path | None = None) -> pd.DataFrame:
    return _query("SELECT layer_a, layer_b, score FROM layer_scores WHERE run_id = ? AND k = ? ORDER BY layer_a, layer_b", [run_id, k], path)


def best_pairs(run_id: str, path: Path | None = None) -> pd.DataFrame:
    return _query("SELECT k, layer_a, layer_b, score FROM best_pairs WHERE run_id = ? ORDER BY k", [run_id], path)


def samples(run_id: str, path: Path | None = None) -> pd.DataFrame:
    """idx, sample_id, caption, category, media_path, thumb_path, and the overlap at each stored k."""
    frame = _query("SELECT * EXCLUDE (run_id) FROM samples WHERE run_id = ? ORDER BY idx", [run_id], path)
    frame = frame.rename(columns={"image_path": "media_path"})  # a store not yet written by this version
    scores = _query("SELECT k, idx, overlap FROM sample_scores WHERE run_id = ?", [run_id], path)
    wide = scores.pivot(index="idx", columns="k", values="overlap")
    wide.columns = [f"overlap_k{k}" for k in wide.columns]
    return frame.merge(wide, left_on="idx", right_index=True, how="left")


def sample_view(run_id: str, idx: int, k: int, layer_pair: tuple[int, int] | None = None,
                path: Path | None = None) -> dict:
    """One sample's k nearest neighbours in each space (at the best layer pair for k unless given).

    Returns {"layer_pair", "overlap", "shared": [ids], "a": frame, "b": frame}; each frame holds
    rank, neighbour, similarity, caption, category, thumb_path, sample_id, media_path and `shared` (in both lists).
    """
    if layer_pair is None:
        best = best_pairs(run_id, path)
        row = best[best.k == k]
        if row.empty:
            raise KeyError(f"run {run_id} has no results for k={k}; stored: {sorted(best.k)}")
        layer_pair = (int(row.layer_a.iloc[0]), int(row.layer_b.iloc[0]))
    sql = """SELECT n.rank, n.neighbour, n.similarity, s.caption, s.category, s.thumb_path, s.sample_id, s.media_path
             FROM neighbours n JOIN samples s ON s.run_id = n.run_id AND s.idx = n.neighbour
             WHERE n.run_id = ? AND n.side = ? AND n.layer = ? AND n.idx = ? AND n.rank < ? ORDER BY n.rank"""
    a = _query(sql, [run_id, "a", layer_pair[0], idx, k], path)
    b = _query(sql, [run_id, "b", layer_pair[1], idx, k], path)
    if len(a) < k or len(b) < k:
        raise KeyError(f"run {run_id} stores fewer than k={k} neighbours for sample {idx}")
    shared = sorted(set(a.neighbour) & set(b.neighbour))
    a["shared"], b["shared"] = a.neighbour.isin(shared), b.neighbour.isin(shared)
    return {"layer_pair": layer_pair, "overlap": len(shared) / k, "shared": shared, "a": a, "b": b}


def neighbour_frame(side: str, graphs: list[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Long table (side, layer, idx, rank, neighbour, similarity) from per-layer graphs [n, k]."""
    frames = []
    for layer, (ids, sims) in enumerate(graphs):
        n, k = ids.shape
        frames.append(pd.DataFrame({
            "side": side, "layer": layer,
            "idx": np.repeat(np.arange(n), k), "rank": np.tile(np.arange(k), n),
            "neighbour": ids.ravel(), "similarity": sims.ravel().astype(np.float32),
        }))
    return pd.concat(frames, ignore_index=True)
