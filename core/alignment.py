"""Alignment of two feature sets: every layer pair on the full set, then a sweep over nested subsets.

The kNN graph of each layer is searched once (at the largest k); scoring any layer pair or any
smaller k reuses it. In the sweep the layer pair is the one chosen on the full set, held fixed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from core.features import FeatureSet
from core.metrics import DEFAULT_CLAMP_QUANTILE, chance_level, knn_overlap, prepare, repair_graph, self_knn
from core.knn import knn_graph, nested_knn
from core.progress import ProgressFn, track


@dataclass(frozen=True)
class AlignmentConfig:
    """What to compute; its fingerprint keys the stored results."""

    ks: tuple[int, ...] = (1, 10)
    subset_sizes: tuple[int, ...] = (64, 128, 256, 512)  # the full set is always added
    draws: int = 10  # random nested subsets (and shuffled pairings) per size
    seed: int = 0
    clamp_quantile: float | None = DEFAULT_CLAMP_QUANTILE
    bootstrap: int = 1000
    metric: str = "mutual_knn"

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    @property
    def k_max(self) -> int:
        return max(self.ks)


@dataclass
class CurvePoint:
    k: int
    gallery_size: int
    score: float
    ci_low: float
    ci_high: float
    chance: float
    shuffled: float
    shuffled_low: float
    shuffled_high: float
    draws: int


@dataclass
class AlignmentResult:
    """Everything the dashboard reads about one (vision, text) pair of feature sets."""

    n: int
    layer_scores: dict[int, np.ndarray]  # k -> [layers_a, layers_b] scores on the full set
    best_pairs: dict[int, tuple[int, int]]  # k -> (layer_a, layer_b)
    curve: list[CurvePoint]
    sample_scores: dict[int, np.ndarray]  # k -> [n] per-sample overlap at the best pair
    neighbours_a: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # per layer: ids, sims [n, k_max]
    neighbours_b: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


def bootstrap_interval(per_draw: list[np.ndarray], resamples: int, rng: np.random.Generator,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean score, resampling both the random draw and the queries within it."""
    draws = np.stack(per_draw)  # [draws, m]
    which = rng.integers(0, draws.shape[0], size=resamples)
    rows = rng.integers(0, draws.shape[1], size=(resamples, draws.shape[1]))
    means = draws[which[:, None], rows].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def layer_pair_scores(graphs_a: list[np.ndarray], graphs_b: list[np.ndarray]) -> tuple[np.ndarray, tuple[int, int]]:
    """Mean overlap for every (layer of A, layer of B) from per-layer graphs [n, k]; and the best pair."""
    matrix = np.array([[knn_overlap(ga, gb).mean() for gb in graphs_b] for ga in graphs_a])
    la, lb = np.unravel_index(int(np.argmax(matrix)), matrix.shape)
    return matrix, (int(la), int(lb))


def align(features_a: FeatureSet, features_b: FeatureSet, config: AlignmentConfig = AlignmentConfig(),
          progress: ProgressFn | None = None) -> AlignmentResult:
    """Mutual-kNN alignment of paired feature sets: layer-pair matrix, best pair, sweep with nulls."""
    if features_a.n != features_b.n:
        raise ValueError(f"feature sets are not paired: {features_a.model} has {features_a.n} rows, "
                         f"{features_b.model} has {features_b.n}")
    n, k_max = features_a.n, config.k_max
    if k_max >= n:
        raise ValueError(f"k={k_max} is too large for {n} samples (need k <= {n - 1})")
    prepared_a = [prepare(x, config.clamp_quantile, f"{features_a.model}/{name}") for x, name in zip(features_a.layers, features_a.layer_names)]
    prepared_b = [prepare(x, config.clamp_quantile, f"{features_b.model}/{name}") for x, name in zip(features_b.layers, features_b.layer_names)]

    layers = [*prepared_a, *prepared_b]
    graphs = [knn_graph(x, x, k_max, query_ids=np.arange(n)) for x in track(layers, "kNN graphs, full set", len(layers), progress)]
    graphs_a, graphs_b = graphs[:len(prepared_a)], graphs[len(prepared_a):]

    layer_scores, best_pairs, sample_scores = {}, {}, {}
    for k in config.ks:
        matrix, (la, lb) = layer_pair_scores([ids[:, :k] for ids, _ in graphs_a], [ids[:, :k] for ids, _ in graphs_b])
        layer_scores[k], best_pairs[k] = matrix, (la, lb)
        sample_scores[k] = knn_overlap(graphs_a[la][0][:, :k], graphs_b[lb][0][:, :k])

    curve = _sweep(prepared_a, prepared_b, graphs_a, graphs_b, best_pairs, config, progress)
    return AlignmentResult(n, layer_scores, best_pairs, curve, sample_scores, graphs_a, graphs_b)


def _sweep(prepared_a, prepared_b, graphs_a, graphs_b, best_pairs, config: AlignmentConfig,
           progress: ProgressFn | None) -> list[CurvePoint]:
    n, k_max = len(prepared_a[0]), config.k_max
    sizes = sorted({m for m in config.subset_sizes if k_max < m < n}) + [n]
    needed_a = sorted({la for la, _ in best_pairs.values()})
    needed_b = sorted({lb for _, lb in best_pairs.values()})
    real: dict[tuple[int, int], list[np.ndarray]] = {}
    null: dict[tuple[int, int], list[np.ndarray]] = {}
    for draw in track(range(config.draws), "nested subsets", config.draws, progress):
        order = np.random.default_rng(config.seed + draw).permutation(n)
        pairing_rng = np.random.default_rng([config.seed, draw, 1])
        for m in sizes:
            if m == n:  # the full set: one real score, but a fresh shuffled pairing per draw
                sub_a = {la: graphs_a[la][0] for la in needed_a}
                sub_b = {lb: graphs_b[lb][0] for lb in needed_b}
            else:
                subset = order[:m]
                sub_a = {la: self_knn(prepared_a[la][subset], k_max) for la in needed_a}
                sub_b = {lb: self_knn(prepared_b[lb][subset], k_max) for lb in needed_b}
            pairing = pairing_rng.permutation(m)
            for k, (la, lb) in best_pairs.items():
                if m < n or draw == 0:
                    real.setdefault((k, m), []).append(knn_overlap(sub_a[la][:, :k], sub_b[lb][:, :k]))
                null.setdefault((k, m), []).append(knn_overlap(sub_a[la][:, :k], repair_graph(sub_b[lb], pairing)[:, :k]))
    rng = np.random.default_rng([config.seed, 2])
    curve = []
    for k in config.ks:
        for m in sizes:
            scores, nulls = real[(k, m)], null[(k, m)]
            low, high = bootstrap_interval(scores, config.bootstrap, rng)
            null_low, null_high = bootstrap_interval(nulls, config.bootstrap, rng)
            curve.append(CurvePoint(k, m, float(np.mean([s.mean() for s in scores])), low, high, chance_level(k, m),
                                    float(np.mean([s.mean() for s in nulls])), null_low, null_high, len(scores)))
    return curve


@dataclass
class QuerySweep:
    """Fixed queries searched in nested galleries of growing size (the 2026 paper's protocol)."""

    n: int
    queries: int
    layer_pair: tuple[int, int]  # chosen at the smallest gallery, then held fixed
    layer_scores: np.ndarray  # [layers_a, layers_b] at the smallest gallery
    curve: list[CurvePoint]


def fixed_query_sweep(features_a: FeatureSet, features_b: FeatureSet, k: int, queries: int,
                      gallery_sizes: list[int], seed: int = 0, clamp_quantile: float | None = DEFAULT_CLAMP_QUANTILE,
                      bootstrap: int = 1000, progress: ProgressFn | None = None) -> QuerySweep:
    """Mutual kNN of `queries` query pairs in galleries `p[:m]`, p = default_rng(seed).permutation(n).

    The queries are p[:queries] and never count themselves. Each layer's neighbours are searched
    once for the whole sweep (one pass over the largest gallery); layer pairs are then scored from
    those graphs. The curve's interval is a bootstrap over queries.
    """
    if features_a.n != features_b.n:
        raise ValueError(f"feature sets are not paired: {features_a.n} vs {features_b.n} rows")
    n = features_a.n
    queries = min(queries, n)
    sizes = sorted(set(gallery_sizes) | {queries}) if gallery_sizes else [queries, n]
    if sizes[0] < queries or sizes[-1] > n:
        raise ValueError(f"gallery sizes must lie between the query count ({queries}) and n ({n}); got {gallery_sizes}")
    order = np.random.default_rng(seed).permutation(n)
    query_pos = np.arange(queries)

    def sweep_layers(fs: FeatureSet) -> list[list[np.ndarray]]:
        graphs = []
        for x, name in track(list(zip(fs.layers, fs.layer_names)), f"nested kNN ({fs.model})", len(fs.layers), progress):
            prepared = prepare(x, clamp_quantile, f"{fs.model}/{name}")
            graphs.append([ids for ids, _ in nested_knn(prepared[order[:queries]], prepared, k, sizes, query_pos, order)])
        return graphs

    graphs_a, graphs_b = sweep_layers(features_a), sweep_layers(features_b)
    at_smallest, (la, lb) = layer_pair_scores([g[0] for g in graphs_a], [g[0] for g in graphs_b])
    rng = np.random.default_rng([seed, 3])
    curve = []
    for i, m in enumerate(sizes):
        overlap = knn_overlap(graphs_a[la][i], graphs_b[lb][i])
        low, high = bootstrap_interval([overlap], bootstrap, rng)
        # no shuffled-pairs null in this protocol yet: those fields are NaN
        curve.append(CurvePoint(k, m, float(overlap.mean()), low, high, chance_level(k, m),
                                float("nan"), float("nan"), float("nan"), 1))
    return QuerySweep(n, queries, (la, lb), at_smallest, curve)
