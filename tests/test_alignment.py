"""The layer-pair matrix and the nested-subset sweep against brute-force recomputation."""

from __future__ import annotations

import numpy as np
import pytest

from core.alignment import AlignmentConfig, align
from core.features import FeatureSet
from tests import reference


def feature_set(name, layers):
    return FeatureSet(name, name, "test", [f"l{i}" for i in range(len(layers))], layers)


@pytest.fixture(scope="module")
def paired_layers():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(140, 5))
    a = [latent @ rng.normal(size=(5, 12)) + s * rng.normal(size=(140, 12)) for s in (3.0, 0.5)]
    b = [latent @ rng.normal(size=(5, 9)) + s * rng.normal(size=(140, 9)) for s in (2.0, 1.0, 0.3)]
    return a, b


def test_layer_matrix_and_best_pair_match_reference(paired_layers):
    a, b = paired_layers
    config = AlignmentConfig(ks=(1, 5), subset_sizes=(40,), draws=2, bootstrap=100)
    result = align(feature_set("A", a), feature_set("B", b), config)
    for k in config.ks:
        expected = np.array([[reference.mutual_knn(x, y, k) for y in b] for x in a])
        np.testing.assert_allclose(result.layer_scores[k], expected, atol=1e-12)
        assert result.best_pairs[k] == np.unravel_index(np.argmax(expected), expected.shape)
    assert result.best_pairs[5] == (1, 2), "the least noisy layers align best"


def test_sweep_points_equal_separate_computations_on_each_subset(paired_layers):
    a, b = paired_layers
    # clamp off: with it on, the clamp bound comes from the whole set, not recomputed per subset
    config = AlignmentConfig(ks=(3,), subset_sizes=(30, 70), draws=3, seed=11, bootstrap=200, clamp_quantile=None)
    result = align(feature_set("A", a), feature_set("B", b), config)
    la, lb = result.best_pairs[3]
    by_size = {p.gallery_size: p for p in result.curve}
    assert sorted(by_size) == [30, 70, 140]
    for m in (30, 70):
        expected = np.mean([reference.mutual_knn(a[la][order[:m]], b[lb][order[:m]], 3, None)
                            for order in (np.random.default_rng(11 + d).permutation(140) for d in range(3))])
        assert by_size[m].score == pytest.approx(expected, abs=1e-12)
        assert by_size[m].draws == 3
    full = by_size[140]
    assert full.score == pytest.approx(reference.mutual_knn(a[la], b[lb], 3, None), abs=1e-12)
    for point in result.curve:
        assert point.ci_low <= point.score <= point.ci_high
        assert point.chance == pytest.approx(3 / (point.gallery_size - 1))
        assert point.shuffled_low <= point.shuffled <= point.shuffled_high
        assert point.shuffled < point.score, "real pairs beat shuffled pairs on correlated data"


def test_shuffled_null_sits_at_chance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 16))
    result = align(feature_set("A", [x]), feature_set("B", [x + 0.1 * rng.normal(size=x.shape)]),
                   AlignmentConfig(ks=(10,), subset_sizes=(), draws=20, bootstrap=200))
    full = result.curve[-1]
    assert full.score > 0.8
    assert abs(full.shuffled - full.chance) < 0.01


def test_unpaired_or_too_small_sets_are_rejected():
    x = np.random.default_rng(0).normal(size=(10, 4))
    with pytest.raises(ValueError, match="not paired"):
        align(feature_set("A", [x]), feature_set("B", [x[:9]]))
    with pytest.raises(ValueError, match="k=10 is too large for 10 samples"):
        align(feature_set("A", [x]), feature_set("B", [x]))


def test_full_set_graphs_are_kept_beside_stored_features_and_reused(tmp_path, monkeypatch):
    from core import alignment
    from core.features import FeatureSet, load_feature_set

    rng = np.random.default_rng(3)
    folder = tmp_path / "features" / "abc"
    folder.mkdir(parents=True)
    for i in range(2):
        np.save(folder / f"layer_{i:02d}.npy", rng.standard_normal((120, 16)).astype(np.float32))
    (folder / "manifest.json").write_text('{"fingerprint": "abc", "model": "m", "modality": "image", "layer_names": ["l0", "l1"]}')
    stored = load_feature_set(folder)
    other = FeatureSet("b", "t", "text", ["t0"], [rng.standard_normal((120, 8)).astype(np.float32)])  # in memory: no cache
    searches = []
    real = alignment.knn_graph
    monkeypatch.setattr(alignment, "knn_graph", lambda *a, **kw: searches.append(1) or real(*a, **kw))
    config = AlignmentConfig(ks=(1, 5), draws=2, subset_sizes=(32,))
    first = align(stored, other, config)
    assert len(searches) == 3 and sorted(p.name for p in (folder / "graphs").iterdir()) == [
        "v1_layer00_clamp0.95_k5.npz", "v1_layer01_clamp0.95_k5.npz"]
    searches.clear()
    again = align(stored, other, AlignmentConfig(ks=(1, 5), draws=3, subset_sizes=(64,)))  # other settings, same graphs
    assert len(searches) == 1, "only the in-memory set is searched again"
    for k in (1, 5):
        np.testing.assert_array_equal(first.layer_scores[k], again.layer_scores[k])
    smaller = align(stored, other, AlignmentConfig(ks=(3,), draws=2, subset_sizes=(32,)))  # k=3: a prefix of the k=5 graph
    direct = align(FeatureSet("abc", "m", "image", ["l0", "l1"], [np.asarray(x) for x in stored.layers]), other,
                   AlignmentConfig(ks=(3,), draws=2, subset_sizes=(32,)))
    np.testing.assert_array_equal(smaller.layer_scores[3], direct.layer_scores[3])
    for a, b in zip(smaller.neighbours_a, direct.neighbours_a):
        np.testing.assert_array_equal(a[0], b[0])
    align(stored, other, AlignmentConfig(ks=(8,), draws=2, subset_sizes=(32,)))  # a larger k is searched and stored
    assert {p.name for p in (folder / "graphs").iterdir()} >= {"v1_layer00_clamp0.95_k8.npz"}
    assert stored.subset(np.arange(100)).path is None, "a subset is not the stored set: it must not use its graphs"
