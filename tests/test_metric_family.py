"""The reference metric family (Huh et al. 2024) against dense brute-force references, plus the claims
of core/metrics.py: per-sample kNN scores, invariances, chance levels, the biased-CKA pitfall, no n x n."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from core import metrics
from core.metrics import METRICS, chance_level, cka, cknna, jaccard_chance_level, mutual_knn, score, svcca, unbiased_cka
from tests import reference_metrics as ref
from tests.reference import neighbours, normalise

KNN_NAMES = ["mutual_knn", "jaccard_knn", "cycle_knn", "lcs_knn", "edit_distance_knn"]
ALL_NAMES = KNN_NAMES + ["cka", "unbiased_cka", "cknna", "svcca"]
KERNEL_CASES = [("linear", False), ("linear", True), ("rbf", False), ("rbf", True)]


def paired(n: int, seed: int, noise: float | None = 0.8, dims: tuple[int, int] = (24, 12)) -> tuple[np.ndarray, np.ndarray]:
    """Two unit-row spaces [n, 24] and [n, 12] sharing a 6-d latent plus noise; noise=None: independent spaces."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n, 6))

    def space(dim: int) -> np.ndarray:
        if noise is None:
            return normalise(rng.normal(size=(n, dim)), None)
        return normalise(shared @ rng.normal(size=(6, dim)) + noise * rng.normal(size=(n, dim)), None)

    return space(dims[0]), space(dims[1])


def reference_score(name: str, a: np.ndarray, b: np.ndarray, k: int) -> float:
    if name in KNN_NAMES:
        return ref.knn_metric(name, a, b, k)
    if name == "cknna":
        return ref.cknna(a, b, k)
    if name == "svcca":
        return ref.svcca(a, b)
    return ref.cka(a, b, unbiased=name == "unbiased_cka")


def tie_free(x: np.ndarray, k: int, margin: float = 1e-5) -> bool:
    """True if no row has two of its k + 1 best similarities within `margin` (float32 search sees the same order)."""
    sims = normalise(x, None) @ normalise(x, None).T
    np.fill_diagonal(sims, -np.inf)
    best = -np.sort(-sims, axis=1)[:, :k + 1]
    return bool((-np.diff(best, axis=1) > margin).all())


# --- against the references ----------------------------------------------------------------------

@pytest.mark.parametrize("name", KNN_NAMES)
@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("block", [None, 7])
def test_knn_metric_per_sample_equals_reference_on_the_same_graphs(name, k, block):
    a, b = paired(90, seed=k)
    na, nb = neighbours(a, k), neighbours(b, k)
    ours = METRICS[name].fn(np.array(na), np.array(nb), block=block)
    assert ours.shape == (90,) and ours.dtype == np.float64
    np.testing.assert_array_equal(ours, ref.KNN_METRICS[name](na, nb))


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("n, k, noise", [(40, 1, 0.8), (120, 5, 0.8), (150, 10, 0.3), (100, 10, None)])
def test_every_metric_equals_reference(name, n, k, noise):
    a, b = paired(n, seed=n + k, noise=noise)
    tolerance = dict(abs=1e-5) if name == "svcca" else dict(rel=1e-8, abs=1e-12)  # sklearn's CCA iterates to 1e-6
    assert score(name, a, b, k) == pytest.approx(reference_score(name, a, b, k), **tolerance)


@pytest.mark.parametrize("kernel, unbiased", KERNEL_CASES)
@pytest.mark.parametrize("n, sigma, noise", [(5, 1.0, 0.8), (60, 0.5, 0.8), (130, 2.0, 0.2), (80, 1.0, None)])
def test_cka_equals_reference(kernel, unbiased, n, sigma, noise):
    a, b = paired(n, seed=n, noise=noise)
    ours = (unbiased_cka if unbiased else cka)(a, b, kernel=kernel, sigma=sigma)
    assert ours == pytest.approx(ref.cka(a, b, kernel, sigma, unbiased), rel=1e-8, abs=1e-12)


def test_cka_of_uncentred_float32_features_equals_reference():
    """Features far from the origin, in float32: the centring and float64 accumulation keep 1e-8."""
    a, b = paired(200, seed=3, noise=0.5)
    a, b = (a + 5.0).astype(np.float32), (b - 3.0).astype(np.float32)
    for kernel, unbiased in KERNEL_CASES:
        ours = (unbiased_cka if unbiased else cka)(a, b, kernel=kernel, sigma=3.0)
        assert ours == pytest.approx(ref.cka(a, b, kernel, 3.0, unbiased), rel=1e-8)


@pytest.mark.parametrize("k", [1, 2, 7])
def test_cknna_equals_reference_with_given_graphs(k):
    a, b = paired(70, seed=k, noise=0.5)
    given_graphs = cknna(a, b, neighbours_a=np.array(neighbours(a, k)), neighbours_b=np.array(neighbours(b, k)))
    assert given_graphs == pytest.approx(ref.cknna(a, b, k), rel=1e-8)


@pytest.mark.parametrize("cca_dim", [1, 4, 10])
def test_svcca_equals_exact_canonical_correlations(cca_dim):
    a, b = paired(150, seed=cca_dim, noise=0.5)
    assert svcca(a, b, cca_dim) == pytest.approx(ref.svcca(a, b, cca_dim), abs=1e-5)


def test_streaming_in_tiny_blocks_changes_nothing(monkeypatch):
    a, b = paired(60, seed=11)
    whole = {name: score(name, a, b, 5) for name in ALL_NAMES} | {"rbf": cka(a, b, "rbf"), "rbf_u": unbiased_cka(a, b, "rbf")}
    monkeypatch.setattr(metrics, "_WORK_ELEMENTS", 50)  # a handful of rows per block
    blocked = {name: score(name, a, b, 5) for name in ALL_NAMES} | {"rbf": cka(a, b, "rbf"), "rbf_u": unbiased_cka(a, b, "rbf")}
    assert blocked == pytest.approx(whole, rel=1e-10)


# --- property tests --------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 30), k=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_knn_metrics_equal_reference_on_arbitrary_graphs(n, k, seed):
    """Any two graphs of distinct ids (not only real kNN graphs), including ids in different orders."""
    k = min(k, n - 1) or 1
    rng = np.random.default_rng(seed)
    graph_a = np.array([rng.choice(n, k, replace=False) for _ in range(n)])
    graph_b = np.array([rng.permutation(row) if rng.random() < 0.3 else rng.choice(n, k, replace=False) for row in graph_a])
    for name in KNN_NAMES:
        np.testing.assert_array_equal(METRICS[name].fn(graph_a, graph_b), ref.KNN_METRICS[name](graph_a.tolist(), graph_b.tolist()))


@settings(max_examples=25, deadline=None)
@given(data=arrays(np.float64, st.tuples(st.integers(12, 40), st.integers(2, 6)), elements=st.floats(-10, 10)),
       k=st.integers(1, 5), seed=st.integers(0, 1000))
def test_knn_metrics_equal_reference_on_arbitrary_features(data, k, seed):
    """Hypothesis picks the structure (repeats, scales, zeros); a little jitter breaks exact ties."""
    rng = np.random.default_rng(seed)
    data = data + 1e-2 * rng.normal(size=data.shape)
    other = data @ rng.normal(size=(data.shape[1], 5)) + rng.normal(size=(len(data), 5))
    if not (tie_free(data, k) and tie_free(other, k)):
        return
    a, b = normalise(data, None), normalise(other, None)
    for name in KNN_NAMES:
        assert score(name, a, b, k) == pytest.approx(ref.knn_metric(name, a, b, k), abs=1e-12)


# --- what the scores mean ----------------------------------------------------------------------------

def test_identical_spaces_score_one_and_lcs_scores_k():
    a, _ = paired(100, seed=5)
    for name in ALL_NAMES:
        expected = 10.0 if name == "lcs_knn" else 1.0
        assert score(name, a, a, 10) == pytest.approx(expected, abs=1e-4), name
    assert score("cka", a, a, kernel="rbf") == pytest.approx(1.0)
    assert score("unbiased_cka", a, a, kernel="rbf") == pytest.approx(1.0)
    assert cknna(a, a, 10, epsilon=0.0) == pytest.approx(1.0, rel=1e-12)


def test_independent_spaces_score_chance_and_biased_cka_does_not():
    n, k = 1500, 10
    a, b = paired(n, seed=21, noise=None, dims=(32, 32))
    expected = chance_level(k, n)
    assert abs(score("mutual_knn", a, b, k) - expected) < 3 * np.sqrt(expected / (n * k)) + 0.002
    assert abs(score("jaccard_knn", a, b, k) - jaccard_chance_level(k, n)) < 0.003
    small_a, small_b = paired(50, seed=22, noise=None, dims=(100, 100))
    assert abs(unbiased_cka(small_a, small_b)) < 0.15
    assert cka(small_a, small_b) > 0.5, "the known pitfall: biased CKA is far from 0 at small n"


@pytest.mark.parametrize("k, gallery_size", [(1, 5), (2, 6), (3, 8)])
def test_jaccard_chance_level_equals_enumeration(k, gallery_size):
    assert jaccard_chance_level(k, gallery_size) == pytest.approx(ref.jaccard_chance(k, gallery_size), rel=1e-12)
    assert jaccard_chance_level(gallery_size - 1, gallery_size) == pytest.approx(1.0)


def test_rotating_one_space_changes_nothing():
    a, b = paired(100, seed=8, noise=0.5)
    rotation, _ = np.linalg.qr(np.random.default_rng(9).normal(size=(b.shape[1],) * 2))
    for name in ALL_NAMES:
        assert score(name, a, b @ rotation, 5) == pytest.approx(score(name, a, b, 5), rel=1e-6), name
    for unbiased in (False, True):
        metric = unbiased_cka if unbiased else cka
        assert metric(a, b @ rotation, "rbf") == pytest.approx(metric(a, b, "rbf"), rel=1e-9)


def test_permuting_the_sample_order_changes_nothing():
    a, b = paired(100, seed=10, noise=0.5)
    order = np.random.default_rng(11).permutation(100)
    for name in ALL_NAMES:
        assert score(name, a[order], b[order], 5) == pytest.approx(score(name, a, b, 5), rel=1e-6), name
    graph_a, graph_b = metrics.self_knn(a, 5), metrics.self_knn(b, 5)
    moved_a, moved_b = metrics.self_knn(a[order], 5), metrics.self_knn(b[order], 5)
    for name in KNN_NAMES:  # per-sample scores follow their samples
        np.testing.assert_array_equal(METRICS[name].fn(moved_a, moved_b), METRICS[name].fn(graph_a, graph_b)[order])


def test_linear_and_sparse_metrics_never_hold_an_n_by_n_matrix():
    n, k = 20_000, 10
    a, b = paired(n, seed=12, noise=0.5, dims=(16, 12))
    rng = np.random.default_rng(13)
    graph_a, graph_b = rng.integers(0, n, (n, k)), rng.integers(0, n, (n, k))
    tracemalloc.start()
    try:
        cka(a, b), unbiased_cka(a, b), svcca(a, b), cknna(a, b, neighbours_a=graph_a, neighbours_b=graph_b)
        for name in KNN_NAMES:
            METRICS[name].fn(graph_a, graph_b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < n * n * 8 / 20, f"peak {peak / 2**20:.0f} MiB is close to an n x n float64 matrix"


# --- the table and the errors ----------------------------------------------------------------------

def test_table_lists_every_metric_with_its_kind_and_chance():
    assert list(METRICS) == ALL_NAMES
    assert all(METRICS[name].kind == "knn" for name in KNN_NAMES)
    assert {METRICS[name].kind for name in ALL_NAMES[5:]} == {"features"}
    assert METRICS["mutual_knn"].chance(10, 1024) == chance_level(10, 1024)
    assert METRICS["jaccard_knn"].chance is jaccard_chance_level
    assert METRICS["cycle_knn"].chance is None and METRICS["cka"].chance is None
    a, b = paired(80, seed=2)
    assert score("mutual_knn", a, b, 7) == mutual_knn(a, b, 7, clamp_quantile=None), "the table and the CLI agree"


@pytest.mark.parametrize("name", ALL_NAMES)
def test_mismatched_rows_are_rejected(name):
    with pytest.raises(ValueError, match="not paired: 10 rows vs 9 rows"):
        score(name, np.ones((10, 3)), np.ones((9, 3)), 2)


@pytest.mark.parametrize("name", KNN_NAMES + ["cknna"])
def test_k_too_large_says_so(name):
    a, b = paired(8, seed=1)
    with pytest.raises(ValueError, match="k=8 is out of range.*between 1 and 7"):
        score(name, a, b, 8)


@pytest.mark.parametrize("call", [lambda a, b: unbiased_cka(a, b), lambda a, b: unbiased_cka(a, b, "rbf"),
                                  lambda a, b: cknna(a, b, 1)])
def test_unbiased_estimators_need_four_samples(call):
    a, b = paired(3, seed=1)
    with pytest.raises(ValueError, match="needs n >= 4 samples; got n=3"):
        call(a, b)


@pytest.mark.parametrize("cca_dim, limit", [(0, 12), (13, 12)])
def test_cca_dim_out_of_range_says_so(cca_dim, limit):
    a, b = paired(30, seed=1)
    with pytest.raises(ValueError, match=f"cca_dim={cca_dim} is out of range.*between 1 and {limit}.*dim B = 12"):
        svcca(a, b, cca_dim)


def test_bad_names_kernels_and_graphs_are_named():
    a, b = paired(10, seed=1)
    with pytest.raises(ValueError, match="unknown metric 'mutal_knn'; choose one of mutual_knn"):
        score("mutal_knn", a, b)
    with pytest.raises(ValueError, match="kernel='poly' is not supported; use 'linear' or 'rbf'"):
        cka(a, b, kernel="poly")
    with pytest.raises(ValueError, match="sigma must be positive"):
        unbiased_cka(a, b, kernel="rbf", sigma=0.0)
    with pytest.raises(ValueError, match=r"graphs differ in shape: \(10, 2\) vs \(10, 3\)"):
        METRICS["lcs_knn"].fn(np.zeros((10, 2), int), np.zeros((10, 3), int))
    with pytest.raises(ValueError, match="features A: expected a 2-D array"):
        cka(np.ones(10), b)


def test_a_space_without_variance_gives_nan():
    _, b = paired(10, seed=1)
    constant = np.tile([0.6, 0.8], (10, 1))
    assert all(np.isnan(metric(constant, b, kernel)) for metric in (cka, unbiased_cka) for kernel in ("linear", "rbf"))
