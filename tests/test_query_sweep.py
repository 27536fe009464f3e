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
    swept = nested_knn(x[order[:queries]], x, k, sizes, query_ids=np.arange(queries), order=order, gallery_block=block)
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
    ([64, 100], 64, "k=64 is out of range: the smallest gallery has 64 items"),
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
    assert {"gallery_size", "score", "ci_low", "ci_high", "chance"} <= set(out["curve"][0])
    assert out["score"] == out["curve"][-1]["score"] and out["queries"] == 100 and out["layer_pair"] is None
    assert out["score"] > 0.5


@pytest.mark.parametrize("backend", ["faiss", "torch", "numpy"])
def test_memory_mapped_gallery_streams_with_every_backend(tmp_path, backend):
    from core.prepare import PreparedRows

    raw = np.random.default_rng(5).normal(size=(3000, 24)).astype(np.float32) * 3
    np.save(tmp_path / "g.npy", raw)
    mapped = np.load(tmp_path / "g.npy", mmap_mode="r")
    rows = PreparedRows(mapped, 0.95, "gallery")
    order = np.random.default_rng(6).permutation(3000)
    queries = rows.take(order[:50])
    swept = nested_knn(queries, rows, 7, [50, 1000, 3000], np.arange(50), order, backend=backend, gallery_block=256, query_block=16)
    in_memory = rows.all()
    for m, (ids, sims) in zip([50, 1000, 3000], swept):
        expected = reference.query_neighbours(in_memory.astype(np.float64), order[:50], order[:m], 7)
        assert [list(r) for r in ids] == expected
        np.testing.assert_allclose(sims, np.take_along_axis(queries @ in_memory[order[:m]].T, ids, axis=1), atol=1e-5)


def test_prepared_rows_match_the_in_memory_preparation_and_name_bad_rows(tmp_path):
    from core.metrics import prepare
    from core.prepare import PreparedRows, clamp_bound

    x = np.random.default_rng(0).normal(size=(500, 10)).astype(np.float32)
    np.testing.assert_allclose(PreparedRows(x).all(), prepare(x), atol=1e-7)
    # past the exact limit the bound comes from a row sample and stays close to the exact quantile
    assert clamp_bound(x, 0.95, sample=2000) == pytest.approx(clamp_bound(x, 0.95), rel=0.05)
    x[321, 4] = np.nan
    with pytest.raises(ValueError, match="vision: 1 rows hold NaN or inf.*row 321"):
        PreparedRows(x, 0.95, "vision")
    x[321, 4] = 0.0
    x[400] = 0.0
    rows = PreparedRows(x, 0.95, "vision")
    with pytest.raises(ValueError, match="all zero.*row 400"):
        rows.take(slice(384, 448))


def test_query_shuffle_null_equals_searching_the_repaired_features():
    from core.alignment import shuffle_queries

    x = unit_rows(400, 6, 8)
    order = np.random.default_rng(1).permutation(400)
    q, sizes = 40, [40, 150, 400]
    pairing = np.random.default_rng(2).permutation(q)
    graphs = nested_knn(x[order[:q]], x, 5, sizes, np.arange(q), order)
    repaired = x[order].copy()
    repaired[:q] = repaired[pairing]  # query i now carries query pairing[i]'s features
    fresh = nested_knn(repaired[:q], repaired, 5, sizes, np.arange(q))
    for (ids, _), (expected, _) in zip(graphs, fresh):
        np.testing.assert_array_equal(shuffle_queries(ids, pairing), expected)


def test_null_sits_at_chance_and_calibration_is_relative_to_it():
    x = unit_rows(2000, 16, 9)
    fs = FeatureSet("x", "X", "image", ["0"], [x])
    noisy = FeatureSet("y", "Y", "text", ["0"], [x + 0.3 * unit_rows(2000, 16, 10)])
    sweep = fixed_query_sweep(fs, noisy, k=10, queries=200, gallery_sizes=[200, 2000], null_draws=20)
    for point in sweep.curve:
        assert abs(point.shuffled - point.chance) < 3 * np.sqrt(point.chance / (200 * 20)) + 0.01
        assert point.calibrated == pytest.approx((point.score - point.shuffled) / (1 - point.shuffled))
        assert point.score > point.shuffled_high


def test_k_as_a_fraction_of_each_gallery():
    from core.alignment import k_for_size

    x = unit_rows(1000, 8, 11)
    y = x + 0.5 * unit_rows(1000, 8, 12)
    fx, fy = FeatureSet("x", "X", "image", ["0"], [x]), FeatureSet("y", "Y", "text", ["0"], [y])
    sweep = fixed_query_sweep(fx, fy, k=0.01, queries=100, gallery_sizes=[100, 500, 1000], seed=3, clamp_quantile=None)
    assert [p.k for p in sweep.curve] == [1, 5, 10]
    order = np.random.default_rng(3).permutation(1000)
    for point in sweep.curve:
        na = reference.query_neighbours(x.astype(np.float64), order[:100], order[:point.gallery_size], point.k)
        nb = reference.query_neighbours(reference.normalise(y, None), order[:100], order[:point.gallery_size], point.k)
        expected = np.mean([len(set(a) & set(b)) / point.k for a, b in zip(na, nb)])
        assert point.score == pytest.approx(expected, abs=1e-12)
    assert k_for_size(10, 50) == 10 and k_for_size(0.001, 100) == 1
    with pytest.raises(ValueError, match="fraction"):
        k_for_size(1.5, 100)


def test_cli_accepts_k_as_n_over_100(tmp_path, capsys):
    x = unit_rows(500, 8, 13)
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x + 0.2 * unit_rows(500, 8, 14))
    assert main(["align", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--k", "n/100", "--queries", "100",
                 "--gallery-sizes", "100,500", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["k"] for p in out["curve"]] == [1, 5]
    assert all(p["null"] < p["score"] and 0 < p["calibrated"] <= 1 for p in out["curve"])


def test_approximate_index_reports_its_recall_against_exact_search():
    from core.knn import ivf_nested_knn, recall_at_k

    x = unit_rows(5000, 16, 15)
    order = np.random.default_rng(0).permutation(5000)
    exact = nested_knn(x[order[:100]], x, 10, [100, 1000, 5000], np.arange(100), order)
    full_probe = ivf_nested_knn(x[order[:100]], x, 10, [100, 1000, 5000], np.arange(100), order, nlist=50, nprobe=50)
    for (a, _), (e, _) in zip(full_probe, exact):  # probing every list is exact search
        assert recall_at_k(a, e) == 1.0
    few = ivf_nested_knn(x[order[:100]], x, 10, [5000], np.arange(100), order, nlist=50, nprobe=2)[0][0]
    assert 0.2 < recall_at_k(few, exact[-1][0]) < 1.0
    assert not (few == np.arange(100)[:, None]).any(), "a query is never its own neighbour"

    fs = FeatureSet("x", "X", "image", ["0"], [x])
    fy = FeatureSet("y", "Y", "text", ["0"], [x + 0.2 * unit_rows(5000, 16, 16)])
    exact_sweep = fixed_query_sweep(fs, fy, 10, 200, [200, 5000])
    approx_sweep = fixed_query_sweep(fs, fy, 10, 200, [200, 5000], approximate_above=1000)
    assert exact_sweep.recall is None and len(approx_sweep.recall) == 2
    assert all(0.5 < r <= 1.0 for r in approx_sweep.recall)
    assert abs(approx_sweep.curve[-1].score - exact_sweep.curve[-1].score) < 0.1
