"""Fixed queries in growing nested galleries: one pass equals separate searches at every size."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from core.alignment import fixed_query_sweep
from core.cli import main
from core.features import FeatureSet
from core.knn import knn_graph, nested_knn
from tests import reference


def unit_rows(n, dim, seed):
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(40, 300), queries=st.integers(5, 30), k=st.integers(1, 4), block=st.integers(3, 500),
       seed=st.integers(0, 10_000))
def test_one_pass_equals_a_search_per_size(n, queries, k, block, seed):
    x = unit_rows(n, 6, seed)
    order = np.random.default_rng(seed).permutation(n)
    sizes = sorted({queries + k, (queries + n) // 2, n})
    swept = nested_knn(x[order[:queries]], x, k, sizes, query_ids=np.arange(queries), order=order, block_size=block)
    for m, (ids, sims) in zip(sizes, swept):
        expected, expected_sims = knn_graph(x[order[:queries]], x[order[:m]], k, query_ids=np.arange(queries))
        np.testing.assert_array_equal(ids, expected)
        np.testing.assert_allclose(sims, expected_sims, atol=1e-6)


def test_sweep_scores_match_the_dense_reference():
    rng = np.random.default_rng(2)
    latent = rng.normal(size=(600, 4))
    a = [latent @ rng.normal(size=(4, 16)) + s * rng.normal(size=(600, 16)) for s in (4.0, 0.7)]
    b = [latent @ rng.normal(size=(4, 8)) + 0.7 * rng.normal(size=(600, 8))]
    fa = FeatureSet("a", "A", "image", ["0", "1"], a)
    fb = FeatureSet("b", "B", "text", ["0"], b)
    sweep = fixed_query_sweep(fa, fb, k=5, queries=64, gallery_sizes=[64, 200, 600], seed=7, clamp_quantile=None)
    assert sweep.layer_pair == (1, 0)
    order = np.random.default_rng(7).permutation(600)
    xa, xb = reference.normalise(a[1], None), reference.normalise(b[0], None)
    for point in sweep.curve:
        gallery = order[:point.gallery_size]
        na = reference.query_neighbours(xa, order[:64], gallery, 5)
        nb = reference.query_neighbours(xb, order[:64], gallery, 5)
        expected = np.mean([len(set(x) & set(y)) / 5 for x, y in zip(na, nb)])
        assert point.score == pytest.approx(expected, abs=1e-12)
        assert point.chance == pytest.approx(5 / (point.gallery_size - 1))
        assert point.ci_low <= point.score <= point.ci_high
    assert sweep.curve[0].score > sweep.curve[-1].score, "alignment falls as the gallery grows"


@pytest.mark.parametrize("sizes, k, message", [
    ([40, 100], 5, "between the query count"),
    ([64, 100], 64, "k=64 is out of range for the smallest gallery of 64"),
])
def test_bad_sweeps_are_rejected(sizes, k, message):
    x = unit_rows(100, 4, 0)
    fs = FeatureSet("x", "X", "image", ["0"], [x])
    with pytest.raises(ValueError, match=message):
        fixed_query_sweep(fs, fs, k=k, queries=64, gallery_sizes=sizes)


def test_align_cli_curve_contract(tmp_path, capsys):
    x = unit_rows(400, 8, 3)
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x + 0.05 * unit_rows(400, 8, 4))
    code = main(["align", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--k", "10", "--queries", "100",
                 "--gallery-sizes", "100,250,400", "--seed", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [p["gallery_size"] for p in out["curve"]] == [100, 250, 400]
    assert set(out["curve"][0]) == {"gallery_size", "score", "ci_low", "ci_high", "chance"}
    assert out["score"] == out["curve"][-1]["score"] and out["queries"] == 100 and out["layer_pair"] is None
    assert out["score"] > 0.5
