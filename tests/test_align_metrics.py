"""Every metric through the engine's protocols and the `align --metric` command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.alignment import AlignmentConfig, align, align_features, fixed_query_sweep
from core.cli import main
from core.features import FeatureSet
from core.metrics import METRICS, prepare, score
from tests import reference

KNN_METRICS = [m for m, s in METRICS.items() if s.kind == "knn"]
FEATURE_METRICS = [m for m, s in METRICS.items() if s.kind == "features"]


@pytest.fixture(scope="module")
def paired():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(300, 5))
    a = [latent @ rng.normal(size=(5, 20)) + s * rng.normal(size=(300, 20)) for s in (4.0, 0.5)]
    b = [latent @ rng.normal(size=(5, 12)) + 0.5 * rng.normal(size=(300, 12))]
    return FeatureSet("a", "A", "image", ["0", "1"], a), FeatureSet("b", "B", "text", ["0"], b)


@pytest.mark.parametrize("metric", KNN_METRICS)
def test_full_set_protocol_scores_any_knn_metric(paired, metric):
    fa, fb = paired
    result = align(fa, fb, AlignmentConfig(ks=(5,), subset_sizes=(100,), draws=3, bootstrap=100, metric=metric))
    expected = [[score(metric, prepare(x), prepare(y), k=5) for y in fb.layers] for x in fa.layers]
    np.testing.assert_allclose(result.layer_scores[5], expected, atol=1e-12)
    full = result.curve[-1]
    assert full.score == pytest.approx(max(max(row) for row in expected))
    assert full.score > full.shuffled_high, "real pairs beat re-paired ones"


@pytest.mark.parametrize("metric", [m for m in KNN_METRICS if not METRICS[m].follows_neighbours])
def test_nested_protocol_scores_any_knn_metric(paired, metric):
    fa, fb = paired
    sweep = fixed_query_sweep(fa, fb, 5, 50, [50, 300], seed=2, metric=metric, clamp_quantile=None)
    order = np.random.default_rng(2).permutation(300)
    # at the full gallery, query i's neighbours equal the full-set graph's for sample order[i]
    full_a = reference.neighbours(reference.normalise(fa.layers[sweep.layer_pair[0]], None), 5)
    full_b = reference.neighbours(reference.normalise(fb.layers[sweep.layer_pair[1]], None), 5)
    position = np.argsort(order)
    graph_a = np.array([[position[j] for j in full_a[order[i]]] for i in range(50)])
    graph_b = np.array([[position[j] for j in full_b[order[i]]] for i in range(50)])
    assert sweep.curve[-1].score == pytest.approx(METRICS[metric].fn(graph_a, graph_b).mean(), abs=1e-12)
    assert sweep.curve[-1].score > sweep.curve[-1].shuffled


@pytest.mark.parametrize("metric", FEATURE_METRICS)
def test_feature_metrics_get_the_best_pair_a_null_and_an_interval(paired, metric):
    fa, fb = paired
    result = align_features(fa, fb, metric, k=5, draws=5, jackknife_groups=10)
    assert result.layer_pair == (1, 0)
    point = result.point
    assert point.score == pytest.approx(score(metric, prepare(fa.layers[1]), prepare(fb.layers[0]), k=5))
    assert point.ci_low < point.score < point.ci_high and point.ci_high - point.ci_low < 0.5
    assert point.shuffled_high < point.ci_low, "the interval clears the null"
    assert point.calibrated > 0


def test_feature_metrics_refuse_the_nested_protocol(paired):
    with pytest.raises(ValueError, match="computed from features.*mutual_knn"):
        fixed_query_sweep(*paired, 5, 50, [50, 300], metric="cka")
    with pytest.raises(ValueError, match="cycle_knn follows each neighbour's own neighbours"):
        fixed_query_sweep(*paired, 5, 50, [50, 300], metric="cycle_knn")
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        align(*paired, AlignmentConfig(metric="nope"))


@pytest.mark.parametrize("metric", list(METRICS))
def test_align_cli_runs_every_metric_as_json(tmp_path, capsys, metric):
    x = np.random.default_rng(1).normal(size=(120, 3, 8))
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x[:, 1] + 0.3 * np.random.default_rng(2).normal(size=(120, 8)))
    assert main(["align", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--metric", metric, "--k", "5",
                 "--draws", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metric"] == metric and out["n"] == 120 and out["layer_pair"] == [1, 0]
    assert out["score"] is not None and out["null"] < out["score"]


def test_concatenated_layers_are_scored_as_one_more_layer(tmp_path, capsys):
    rng = np.random.default_rng(3)
    latent = rng.normal(size=(200, 4))
    a = np.stack([np.hstack([latent[:, :2], 0.1 * rng.normal(size=(200, 2))]),
                  np.hstack([latent[:, 2:], 0.1 * rng.normal(size=(200, 2))])], axis=1)  # each layer holds half
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", latent)
    assert main(["align", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--concat-layers", "--k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["layer_pair"] == [2, 0], "together the two halves align best"
    assert out["score"] == pytest.approx(reference.mutual_knn(a.reshape(200, 8), latent, 5), abs=1e-12)


def test_json_carries_the_whole_layer_pair_matrix(tmp_path, capsys):
    x = np.random.default_rng(4).normal(size=(100, 3, 6))
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x[:, :2])
    for extra in ([], ["--queries", "50", "--gallery-sizes", "50,100"]):
        assert main(["align", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--k", "5", "--json", *extra]) == 0
        out = json.loads(capsys.readouterr().out)
        matrix = np.array(out["layer_scores"])
        assert matrix.shape == (3, 2)
        assert tuple(np.unravel_index(matrix.argmax(), matrix.shape)) == tuple(out["layer_pair"])
        assert matrix[0, 0] == 1.0 and matrix[1, 1] == 1.0  # identical layers
