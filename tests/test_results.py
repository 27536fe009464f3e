"""DuckDB result store: a run round-trips, rewrites replace, a failed write leaves nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import results
from core.config import results_db_path


def test_demo_run_round_trips(demo_run):
    cache, run_id = demo_run
    db = results_db_path(cache)
    info = results.run_info(run_id, db)
    assert info["model_a"] == "efficientnet_lite0" and info["model_b"] == "minilm_l6" and info["n"] == 60
    assert len(info["layer_names"]["a"]) == 9 and len(info["layer_names"]["b"]) == 7
    curve = results.curve(run_id, db)
    assert sorted(curve.gallery_size.unique()) == [16, 32, 60]
    assert set(curve.k) == {1, 10}
    table = results.samples(run_id, db)
    assert list(table.idx) == list(range(60))
    assert {"overlap_k1", "overlap_k10"} <= set(table.columns)
    best = results.best_pairs(run_id, db)
    assert best.set_index("k").score.to_dict() == pytest.approx(table[["overlap_k1", "overlap_k10"]].mean().set_axis([1, 10]).to_dict())


def test_sample_view_lists_neighbours_and_shared_ones(demo_run):
    cache, run_id = demo_run
    db = results_db_path(cache)
    view = results.sample_view(run_id, 5, 10, path=db)
    a, b = view["a"], view["b"]
    assert list(a["rank"]) == list(range(10)) and list(b["rank"]) == list(range(10))
    assert 5 not in set(a.neighbour) | set(b.neighbour)
    assert set(view["shared"]) == set(a.neighbour) & set(b.neighbour)
    assert view["overlap"] == len(view["shared"]) / 10
    assert view["overlap"] == pytest.approx(results.samples(run_id, db).overlap_k10[5])
    assert (np.diff(a.similarity) <= 1e-6).all()
    assert a.shared.sum() == b.shared.sum() == len(view["shared"])


def small_run(run_id="r1"):
    run = {"run_id": run_id, "dataset": "toy", "dataset_fingerprint": "d", "media": "image", "model_a": "A", "model_b": "B",
           "modality_a": "image", "modality_b": "text", "features_a": "fa", "features_b": "fb", "n": 3,
           "metric": "mutual_knn", "config": {"ks": [1]}}
    tables = {"curve": pd.DataFrame([{"k": 1, "gallery_size": 3, "score": 0.5, "ci_low": 0.4, "ci_high": 0.6, "chance": 0.5,
                                      "shuffled": 0.5, "shuffled_low": 0.4, "shuffled_high": 0.6, "draws": 1}])}
    return run, tables


def test_rewriting_a_run_replaces_it(tmp_path):
    db = tmp_path / "r.duckdb"
    run, tables = small_run()
    results.write_run(run, tables, db)
    results.write_run(run, tables, db)
    assert len(results.list_runs(db)) == 1 and len(results.curve("r1", db)) == 1


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    db = tmp_path / "r.duckdb"
    run, tables = small_run()
    tables["curve"] = tables["curve"].drop(columns=["score"])  # a malformed table fails mid-write
    with pytest.raises(KeyError):
        results.write_run(run, tables, db)
    assert not results.has_run("r1", db)


def test_reading_before_any_run_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m core demo"):
        results.list_runs(tmp_path / "none.duckdb")


HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS hold (a INTEGER)")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def hold_store(path, seconds: float):
    """Another process that opens the store for writing and keeps it for `seconds` (as a job writing a run does)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_readers_and_writers_wait_for_another_process_holding_the_store(tmp_path, monkeypatch):
    import time

    db = tmp_path / "results.duckdb"
    run, tables = small_run()
    results.write_run(run, tables, db)
    holder = hold_store(db, 1.5)
    started = time.monotonic()
    assert list(results.list_runs(db).run_id) == ["r1"]  # read-only: waits for the writer to let go
    assert time.monotonic() - started > 0.5
    holder.wait()
    holder = hold_store(db, 1.5)
    results.write_run(*small_run("r2"), db)  # and a write waits too
    holder.wait()
    assert sorted(results.list_runs(db).run_id) == ["r1", "r2"]

    monkeypatch.setenv("PLATO_DB_LOCK_WAIT", "0.3")
    holder = hold_store(db, 5)
    try:
        with pytest.raises(results.StoreBusy, match=rf"result store is busy; process {holder.pid} held it for over 0.3 s"):
            results.list_runs(db)
    finally:
        holder.kill()
