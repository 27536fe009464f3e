"""The Models page: a grid of every model pair run on one data set, and alignment against language-model quality."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import results
from core.config import CACHE_ENV, REPO_ROOT, results_db_path

VISION = ["dinov2_small", "dinov2_large"]
LANGUAGE = ["bloomz_560m", "bloomz_1b7", "llama_7b"]
BITS_PER_BYTE = {"bloomz_560m": 0.95, "bloomz_1b7": 0.85, "llama_7b": 0.70}  # llama is measured on a second corpus too


def score(a: str, b: str) -> float:
    return 0.1 + 0.05 * VISION.index(a) + 0.02 * LANGUAGE.index(b)


def write(db, run_id: str, a: str, b: str, value: float, data: str = "wit", n: int = 1024, ks=(1, 10)) -> None:
    run = {"run_id": run_id, "dataset": data, "dataset_fingerprint": f"{data}-fingerprint-0123", "media": "image",
           "model_a": a, "model_b": b, "modality_a": "image", "modality_b": "text", "features_a": "fa", "features_b": "fb",
           "n": n, "metric": "mutual_knn", "config": {"ks": list(ks)}}
    curve = pd.DataFrame([{"k": k, "gallery_size": size, "score": value * (2 if size < n else 1) / (1 if k == 10 else 2),
                           "ci_low": value - 0.01, "ci_high": value + 0.01, "chance": k / (n - 1), "shuffled": 0.01,
                           "shuffled_low": 0.0, "shuffled_high": 0.02, "draws": 3}
                          for k in ks for size in (n // 4, n)])
    results.write_run(run, {"curve": curve}, db)
    time.sleep(0.01)  # distinct created_at


@pytest.fixture
def grid_store(tmp_path, monkeypatch):
    db = results_db_path(tmp_path)
    write(db, "old", VISION[0], LANGUAGE[0], 0.9)  # an older run of a pair: the newer one is shown
    for a in VISION:
        for b in LANGUAGE:
            write(db, f"{a}-{b}", a, b, score(a, b))
    write(db, "other", VISION[0], LANGUAGE[0], 0.5, data="coco", n=5000)
    for model, bpb in BITS_PER_BYTE.items():
        results.write_model_quality({"model": model, "model_fingerprint": model, "corpus": "/data/wiki.txt",
                                     "corpus_sha256": "w", "corpus_bytes": 10, "bits_per_byte": bpb, "max_length": 8,
                                     "stride": 4}, db)
    results.write_model_quality({"model": "llama_7b", "model_fingerprint": "llama_7b", "corpus": "/data/code.txt",
                                 "corpus_sha256": "c", "corpus_bytes": 10, "bits_per_byte": 0.5, "max_length": 8,
                                 "stride": 4}, db)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    return db


def open_models(**query) -> AppTest:
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60)
    at.query_params.update(query)
    at.switch_page("dashboard/pages/models.py")
    return at.run()


def unpack(values) -> np.ndarray:
    """A plotly JSON array: a plain list, or numpy packed as {"dtype", "bdata"[, "shape"]}."""
    if isinstance(values, dict):
        array = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        return array.reshape([int(d) for d in str(values["shape"]).split(",")]) if "shape" in values else array
    return np.array(values, dtype=float)


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_the_grid_holds_the_newest_run_of_every_model_pair(grid_store):
    at = open_models(data="wit-fingerpr", k="10")
    assert not at.exception
    heat = figures(at)[0]["data"][0]
    assert heat["type"] == "heatmap" and heat["y"] == sorted(VISION) and heat["x"] == sorted(LANGUAGE)
    expected = [[score(a, b) for b in sorted(LANGUAGE)] for a in sorted(VISION)]
    np.testing.assert_allclose(unpack(heat["z"]), expected)  # full-set scores, not the old 0.9 run
    assert "95% CI" in heat["text"][0][0]
    links = at.dataframe[0].value
    assert len(links) == 6 and all(v.startswith("/scale?run=") and v.endswith("&k=10") for v in links.view)


def test_k_and_the_data_set_come_from_the_link(grid_store):
    at = open_models(data="wit-fingerpr", k="1")
    np.testing.assert_allclose(unpack(figures(at)[0]["data"][0]["z"])[0, 0], score(sorted(VISION)[0], sorted(LANGUAGE)[0]) / 2)
    other = open_models(data="coco-fingerp", k="10")
    heat = figures(other)[0]["data"][0]
    assert unpack(heat["z"]).tolist() == [[0.5]] and "5,000 pairs of coco" in "\n".join(c.value for c in other.caption)


def test_alignment_against_one_minus_bits_per_byte_per_vision_model(grid_store):
    at = open_models(data="wit-fingerpr", k="10")
    lines = figures(at)[1]["data"]
    assert [line["name"] for line in lines] == sorted(VISION)
    for line in lines:
        order = sorted(LANGUAGE, key=lambda b: 1 - BITS_PER_BYTE[b])
        np.testing.assert_allclose(unpack(line["x"]), [1 - BITS_PER_BYTE[b] for b in order])
        np.testing.assert_allclose(unpack(line["y"]), [score(line["name"], b) for b in order])
    code = open_models(data="wit-fingerpr", k="10", corpus="/data/code.txt")
    lines = figures(code)[1]["data"]
    assert [unpack(line["x"]).tolist() for line in lines] == [[0.5], [0.5]]  # only llama is measured there


def test_without_quality_measurements_the_page_says_how_to_make_them(demo_run, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(demo_run[0]))
    at = open_models()
    assert not at.exception and len(figures(at)) == 1
    assert "python -m core lm-quality" in at.info[0].value
