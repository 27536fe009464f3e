"""kNN graphs and mutual kNN against a brute-force reference, plus the properties the README claims."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from core.knn import knn_graph
from core.metrics import chance_level, knn_overlap, mutual_knn, prepare, repair_graph, self_knn
from tests import reference


def random_features(n, dim, seed):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.mark.parametrize("backend", ["faiss", "torch", "numpy"])
@pytest.mark.parametrize("n, dim, k, block", [(50, 8, 1, 4096), (200, 16, 10, 4096), (300, 32, 7, 64)])
def test_knn_graph_matches_brute_force(backend, n, dim, k, block):
    x = reference.normalise(random_features(n, dim, seed=n), None).astype(np.float32)
    ids, sims = knn_graph(x, x, k, query_ids=np.arange(n), query_block=block, backend=backend)
    assert [list(row) for row in ids] == reference.neighbours(x.astype(np.float64), k)
    np.testing.assert_allclose(sims, np.take_along_axis(x @ x.T, ids, axis=1), rtol=1e-5, atol=1e-5)
    assert (np.diff(sims, axis=1) <= 1e-6).all(), "neighbours come best first"
    assert not (ids == np.arange(n)[:, None]).any(), "a sample is never its own neighbour"


def test_self_is_excluded_even_among_duplicates():
    x = np.repeat(reference.normalise(random_features(5, 4, 1), None), 3, axis=0).astype(np.float32)
    ids, _ = knn_graph(x, x, 2, query_ids=np.arange(len(x)))
    assert not (ids == np.arange(len(x))[:, None]).any()
    for i, row in enumerate(ids):  # the two neighbours are the sample's twins
        assert set(row) == {j for j in range(3 * (i // 3), 3 * (i // 3) + 3)} - {i}


@pytest.mark.parametrize("k", [0, 20])
def test_k_out_of_range_says_so(k):
    x = random_features(20, 4, 0)
    with pytest.raises(ValueError, match=f"k={k} is out of range.*between 1 and 19"):
        knn_graph(x, x, k, query_ids=np.arange(20))


@pytest.mark.parametrize("clamp", [0.95, None])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_mutual_knn_matches_reference(k, clamp):
    rng = np.random.default_rng(k)
    shared = rng.normal(size=(150, 6))
    a = shared @ rng.normal(size=(6, 24)) + 0.8 * rng.normal(size=(150, 24))
    b = shared @ rng.normal(size=(6, 12)) + 0.8 * rng.normal(size=(150, 12))
    assert mutual_knn(a, b, k, clamp) == pytest.approx(reference.mutual_knn(a, b, k, clamp), abs=1e-12)


def has_ties(x: np.ndarray) -> bool:
    """True if some row has two equally similar neighbours (then neighbour order is arbitrary)."""
    sims = np.round(reference.normalise(x, None) @ reference.normalise(x, None).T, 9)
    return any(len(np.unique(row)) < len(row) for row in sims)


@settings(max_examples=25, deadline=None)
@given(data=arrays(np.float64, st.tuples(st.integers(12, 40), st.integers(2, 6)),
                   elements=st.one_of(st.floats(1e-3, 10), st.floats(-10, -1e-3))),  # no zero rows, no filtering
       k=st.integers(1, 5), seed=st.integers(0, 1000))
def test_mutual_knn_matches_reference_on_arbitrary_inputs(data, k, seed):
    rng = np.random.default_rng(seed)
    other = data @ rng.normal(size=(data.shape[1], 5)) + rng.normal(size=(len(data), 5))
    ours = mutual_knn(data, other, k, None)
    assert 0.0 <= ours <= 1.0
    if not has_ties(data) and not has_ties(other):
        assert ours == pytest.approx(reference.mutual_knn(data, other, k, None), abs=1e-12)


def test_identical_spaces_score_one_and_rotation_changes_nothing():
    a = random_features(120, 16, 3)
    rotation, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(16, 16)))
    assert mutual_knn(a, a, 10, None) == 1.0
    assert mutual_knn(a, a @ rotation, 10, None) == pytest.approx(1.0)


def test_independent_spaces_score_about_chance():
    n, k = 2000, 10
    score = mutual_knn(random_features(n, 32, 5), random_features(n, 32, 6), k)
    assert abs(score - chance_level(k, n)) < 3 * np.sqrt(chance_level(k, n) / (n * k)) + 0.002


def test_permuting_the_sample_order_changes_nothing():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(100, 8)), rng.normal(size=(100, 8))
    b = 0.7 * a + 0.3 * b
    order = rng.permutation(100)
    assert mutual_knn(a, b, 5) == pytest.approx(mutual_knn(a[order], b[order], 5))


def test_repaired_graph_equals_searching_the_shuffled_features():
    x = reference.normalise(random_features(80, 8, 8), None).astype(np.float32)
    pairing = np.random.default_rng(9).permutation(80)
    np.testing.assert_array_equal(repair_graph(self_knn(x, 5), pairing), self_knn(x[pairing], 5))


def test_knn_overlap_per_sample():
    a = np.array([[1, 2, 3], [0, 2, 3]])
    b = np.array([[3, 2, 0], [1, 4, 5]])
    np.testing.assert_allclose(knn_overlap(a, b), [2 / 3, 0.0])


@pytest.mark.parametrize("bad, message", [
    (np.array([[1.0, np.nan], [1.0, 2.0]]), "NaN or inf.*row 0"),
    (np.array([[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]]), "2 rows are all zero.*row 1"),
    (np.ones((2, 2, 2)), "2-D"),
])
def test_bad_features_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        prepare(bad, None, name="vision")


def test_mismatched_rows_are_rejected():
    with pytest.raises(ValueError, match="10 rows vs 9 rows"):
        mutual_knn(np.ones((10, 3)), np.ones((9, 3)))
