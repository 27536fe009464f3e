"""Alignment of two feature sets: every layer pair on the full set, then a sweep over nested subsets.

The kNN graph of each layer is searched once (at the largest k); scoring any layer pair or any
smaller k reuses it, and graphs of stored feature sets are kept beside them for later runs. In the sweep the layer pair is the one chosen on the full set, held fixed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.features import FeatureSet
from core.metrics import DEFAULT_CLAMP_QUANTILE, METRICS, MetricSpec, knn_overlap, prepare, repair_graph, self_knn
from core.knn import ivf_nested_knn, knn_graph, nested_knn, recall_at_k
from core.prepare import PreparedRows
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
    calibrated: float = float("nan")  # (score - null) / (1 - null): 0 at the null, 1 for identical neighbours


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


def metric_spec(name: str, kind: str | None = None) -> MetricSpec:
    """The metric called `name`; with `kind`, it must be of that kind ('knn' or 'features')."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}")
    spec = METRICS[name]
    if kind is not None and spec.kind != kind:
        raise ValueError(f"metric {name!r} is computed from features, not from kNN graphs; this protocol needs one of "
                         f"{', '.join(m for m, s in METRICS.items() if s.kind == kind)}")
    return spec


def chance_of(spec: MetricSpec, k: int, gallery_size: int) -> float:
    return spec.chance(k, gallery_size) if spec.chance is not None else float("nan")


def layer_pair_scores(graphs_a: list[np.ndarray], graphs_b: list[np.ndarray],
                      per_sample=knn_overlap) -> tuple[np.ndarray, tuple[int, int]]:
    """Mean per-sample score for every (layer of A, layer of B) from per-layer graphs [n, k]; and the best pair."""
    matrix = np.array([[per_sample(ga, gb).mean() for gb in graphs_b] for ga in graphs_a])
    la, lb = np.unravel_index(int(np.argmax(matrix)), matrix.shape)
    return matrix, (int(la), int(lb))


def align(features_a: FeatureSet, features_b: FeatureSet, config: AlignmentConfig = AlignmentConfig(),
          progress: ProgressFn | None = None) -> AlignmentResult:
    """Mutual-kNN alignment of paired feature sets: layer-pair matrix, best pair, sweep with nulls."""
    if features_a.n != features_b.n:
        raise ValueError(f"feature sets are not paired: {features_a.model} has {features_a.n} rows, "
                         f"{features_b.model} has {features_b.n}")
    spec = metric_spec(config.metric, "knn")
    n, k_max = features_a.n, config.k_max
    if k_max >= n:
        raise ValueError(f"k={k_max} is too large for {n} samples (need k <= {n - 1})")
    prepared_a = [prepare(x, config.clamp_quantile, f"{features_a.model}/{name}") for x, name in zip(features_a.layers, features_a.layer_names)]
    prepared_b = [prepare(x, config.clamp_quantile, f"{features_b.model}/{name}") for x, name in zip(features_b.layers, features_b.layer_names)]

    layers = [(fs, i, x) for fs, prepared in ((features_a, prepared_a), (features_b, prepared_b)) for i, x in enumerate(prepared)]
    graphs = [full_set_graph(fs, i, x, k_max, config.clamp_quantile)
              for fs, i, x in track(layers, "kNN graphs, full set", len(layers), progress)]
    graphs_a, graphs_b = graphs[:len(prepared_a)], graphs[len(prepared_a):]

    layer_scores, best_pairs, sample_scores = {}, {}, {}
    for k in config.ks:
        matrix, (la, lb) = layer_pair_scores([ids[:, :k] for ids, _ in graphs_a], [ids[:, :k] for ids, _ in graphs_b], spec.fn)
        layer_scores[k], best_pairs[k] = matrix, (la, lb)
        sample_scores[k] = spec.fn(graphs_a[la][0][:, :k], graphs_b[lb][0][:, :k])

    curve = _sweep(prepared_a, prepared_b, graphs_a, graphs_b, best_pairs, config, spec, progress)
    return AlignmentResult(n, layer_scores, best_pairs, curve, sample_scores, graphs_a, graphs_b)


GRAPH_FORMAT = 1


def full_set_graph(features: FeatureSet, layer: int, prepared, k: int,
                   clamp_quantile: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Layer `layer`'s k-nearest-neighbour graph over the whole set (self excluded): (ids [n, k], sims [n, k]).

    Feature sets from the store keep their graphs beside them (`<features>/graphs/`), so a new run
    on the same features (another metric, other subsets or draws) does not search again. A stored
    graph with more neighbours serves a smaller k: exact search with ties to the earlier row makes
    the top k a prefix of the top K.
    """
    folder = None if features.path is None else Path(features.path) / "graphs"
    stem = f"v{GRAPH_FORMAT}_layer{layer:02d}_clamp{clamp_quantile}"
    if folder is not None and folder.is_dir():
        stored = sorted((int(f.stem.rsplit("_k", 1)[1]), f) for f in folder.glob(f"{stem}_k*.npz"))
        usable = [f for cached_k, f in stored if cached_k >= k]
        if usable:
            with np.load(usable[0]) as graph:
                return graph["ids"][:, :k].astype(np.int64), graph["sims"][:, :k]
    n = len(prepared)
    ids, sims = knn_graph(prepared, prepared, k, query_ids=np.arange(n))
    if folder is not None:
        folder.mkdir(exist_ok=True)
        staging = folder / f".{stem}_k{k}.{os.getpid()}.npz"
        np.savez(staging, ids=ids.astype(np.int32 if n < 2**31 else np.int64), sims=sims)
        staging.replace(folder / f"{stem}_k{k}.npz")  # atomic: a reader never sees half a graph
    return ids, sims


def _sweep(prepared_a, prepared_b, graphs_a, graphs_b, best_pairs, config: AlignmentConfig, spec: MetricSpec,
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
                    real.setdefault((k, m), []).append(spec.fn(sub_a[la][:, :k], sub_b[lb][:, :k]))
                null.setdefault((k, m), []).append(spec.fn(sub_a[la][:, :k], repair_graph(sub_b[lb], pairing)[:, :k]))
    rng = np.random.default_rng([config.seed, 2])
    curve = []
    for k in config.ks:
        for m in sizes:
            scores, nulls = real[(k, m)], null[(k, m)]
            low, high = bootstrap_interval(scores, config.bootstrap, rng)
            null_low, null_high = bootstrap_interval(nulls, config.bootstrap, rng)
            score, null_mean = float(np.mean([s.mean() for s in scores])), float(np.mean([s.mean() for s in nulls]))
            curve.append(CurvePoint(k, m, score, low, high, chance_of(spec, k, m), null_mean, null_low, null_high,
                                    len(scores), calibrated(score, null_mean, spec, k)))
    return curve


@dataclass
class QuerySweep:
    """Fixed queries searched in nested galleries of growing size (the 2026 paper's protocol)."""

    n: int
    queries: int
    layer_pair: tuple[int, int]  # chosen at the smallest gallery, then held fixed
    layer_scores: np.ndarray  # [layers_a, layers_b] at the smallest gallery
    curve: list[CurvePoint]
    recall: list[float] | None = None  # per size, when the approximate index was used: recall@k vs exact


def k_for_size(k: int | float, gallery_size: int) -> int:
    """k as a count (int), or as a fraction of the gallery (float in (0, 1): k = round(k * n), at least 1)."""
    if isinstance(k, (int, np.integer)):
        return int(k)
    if not 0 < k < 1:
        raise ValueError(f"a fractional k must lie in (0, 1), got {k}")
    return max(1, int(round(k * gallery_size)))


def calibrated(score: float, null: float, spec: MetricSpec | None = None, k: int | None = None) -> float:
    """Score relative to its null: 0 at the null, 1 at perfect agreement (k for lcs_knn, whose scale is 0..k)."""
    top = float(k) if spec is not None and spec.name == "lcs_knn" and k else 1.0
    return (score - null) / (top - null) if null < top else float("nan")


def shuffle_queries(graph: np.ndarray, pairing: np.ndarray) -> np.ndarray:
    """The graph seen by query i when it is paired with query pairing[i] (ids in scan order).

    Only query positions (the first len(pairing)) are permuted; gallery items keep their pairs,
    so every nested prefix is preserved and this is the exact kNN of the re-paired features.
    """
    q = len(pairing)
    mapped = graph[pairing].copy()
    is_query = mapped < q
    query_inverse = np.empty(q, dtype=np.int64)
    query_inverse[pairing] = np.arange(q)
    mapped[is_query] = query_inverse[mapped[is_query]]
    return mapped


def fixed_query_sweep(features_a: FeatureSet, features_b: FeatureSet, k: int | float, queries: int,
                      gallery_sizes: list[int], seed: int = 0, clamp_quantile: float | None = DEFAULT_CLAMP_QUANTILE,
                      bootstrap: int = 1000, progress: ProgressFn | None = None, backend: str = "auto",
                      null_draws: int = 10, approximate_above: int | None = None, recall_queries: int = 64,
                      metric: str = "mutual_knn") -> QuerySweep:
    """Mutual kNN of `queries` query pairs in galleries `p[:m]`, p = default_rng(seed).permutation(n).

    The queries are p[:queries] and never count themselves. Each layer's neighbours are searched
    once for the whole sweep (one pass over the largest gallery); layer pairs are then scored from
    those graphs. Features are prepared block by block as they are read, so memory-mapped layers
    larger than RAM stream from disk. The curve's interval is a bootstrap over queries. The null
    re-pairs the queries at random (`null_draws` times), exact and free from the same graphs.
    `k` may be a fraction of each gallery (see `k_for_size`). Past `approximate_above` gallery
    items an IVF index replaces exact search, and its recall@k against exact search is measured
    on `recall_queries` queries at every size and returned.
    """
    if features_a.n != features_b.n:
        raise ValueError(f"feature sets are not paired: {features_a.n} vs {features_b.n} rows")
    spec = metric_spec(metric, "knn")
    if spec.follows_neighbours:
        raise ValueError(f"{metric} follows each neighbour's own neighbours, which only the full-set protocol "
                         "computes; drop --queries/--gallery-sizes")
    n = features_a.n
    queries = min(queries, n)
    sizes = sorted(set(gallery_sizes) | {queries}) if gallery_sizes else [queries, n]
    if sizes[0] < queries or sizes[-1] > n:
        raise ValueError(f"gallery sizes must lie between the query count ({queries}) and n ({n}); got {gallery_sizes}")
    order = np.random.default_rng(seed).permutation(n)
    query_pos = np.arange(queries)
    ks = [k_for_size(k, m) for m in sizes]

    approximate = approximate_above is not None and sizes[-1] > approximate_above
    recalls: list[list[float]] = []

    def sweep_layers(fs: FeatureSet) -> list[list[np.ndarray]]:
        graphs = []
        for x, name in track(list(zip(fs.layers, fs.layer_names)), f"nested kNN ({fs.model})", len(fs.layers), progress):
            rows = PreparedRows(x, clamp_quantile, f"{fs.model}/{name}")
            query_rows = rows.take(order[:queries])
            if approximate:
                swept = ivf_nested_knn(query_rows, rows, ks, sizes, query_pos, order, seed=seed)
                probe = slice(0, min(recall_queries, queries))
                exact = nested_knn(query_rows[probe], rows, ks, sizes, query_pos[probe], order, backend=backend)
                recalls.append([recall_at_k(a[probe], e) for (a, _), (e, _) in zip(swept, exact)])
            else:
                swept = nested_knn(query_rows, rows, ks, sizes, query_pos, order, backend=backend)
            graphs.append([ids for ids, _ in swept])
        return graphs

    graphs_a, graphs_b = sweep_layers(features_a), sweep_layers(features_b)
    at_smallest, (la, lb) = layer_pair_scores([g[0] for g in graphs_a], [g[0] for g in graphs_b], spec.fn)
    rng = np.random.default_rng([seed, 3])
    pairings = [np.random.default_rng([seed, 4, d]).permutation(queries) for d in range(null_draws)]
    curve = []
    for i, (m, k_m) in enumerate(zip(sizes, ks)):
        overlap = spec.fn(graphs_a[la][i], graphs_b[lb][i])
        low, high = bootstrap_interval([overlap], bootstrap, rng)
        nulls = [spec.fn(graphs_a[la][i], shuffle_queries(graphs_b[lb][i], p)) for p in pairings]
        null_low, null_high = bootstrap_interval(nulls, bootstrap, rng) if nulls else (float("nan"),) * 2
        null = float(np.mean([v.mean() for v in nulls])) if nulls else float("nan")
        curve.append(CurvePoint(k_m, m, float(overlap.mean()), low, high, chance_of(spec, k_m, m), null, null_low, null_high,
                                1, calibrated(float(overlap.mean()), null, spec, k_m)))
    recall = [float(min(r[i] for r in recalls)) for i in range(len(sizes))] if recalls else None  # worst layer
    return QuerySweep(n, queries, (la, lb), at_smallest, curve, recall)


@dataclass
class FeatureAlignment:
    """A feature metric (CKA family, CKNNA, SVCCA) on the full set: every layer pair, the best, its null and CI."""

    n: int
    metric: str
    layer_scores: np.ndarray  # [layers_a, layers_b]
    layer_pair: tuple[int, int]
    point: CurvePoint


def align_features(features_a: FeatureSet, features_b: FeatureSet, metric: str, k: int = 10, draws: int = 10,
                   jackknife_groups: int = 20, seed: int = 0, clamp_quantile: float | None = DEFAULT_CLAMP_QUANTILE,
                   **params) -> FeatureAlignment:
    """Score every layer pair with a feature metric; at the best pair, a permutation null (rows of B
    re-paired at random, `draws` times) and a 95% interval from a grouped jackknife.

    Why a jackknife: a row bootstrap duplicates samples, and duplicates become each other's nearest
    neighbours and inflate kernel sums, so it biases CKNNA and CKA upward. Leaving out one of
    `jackknife_groups` random groups at a time never duplicates a row. These metrics read whole
    feature matrices, so layers are prepared in memory.
    """
    spec = metric_spec(metric, "features")
    if features_a.n != features_b.n:
        raise ValueError(f"feature sets are not paired: {features_a.n} vs {features_b.n} rows")
    run = (lambda a, b: spec.fn(a, b, k=k, **params)) if spec.uses_k else (lambda a, b: spec.fn(a, b, **params))
    prepared_a = [prepare(x, clamp_quantile, f"{features_a.model}/{name}") for x, name in zip(features_a.layers, features_a.layer_names)]
    prepared_b = [prepare(x, clamp_quantile, f"{features_b.model}/{name}") for x, name in zip(features_b.layers, features_b.layer_names)]
    matrix = np.array([[run(a, b) for b in prepared_b] for a in prepared_a])
    if np.isnan(matrix).all():
        raise ValueError(f"{metric} is undefined for every layer pair (a space without variance?)")
    la, lb = (int(v) for v in np.unravel_index(int(np.nanargmax(matrix)), matrix.shape))
    a, b = prepared_a[la], prepared_b[lb]
    n = len(a)
    rng = np.random.default_rng([seed, 5])
    nulls = np.array([run(a, b[rng.permutation(n)]) for _ in range(draws)])
    score = float(matrix[la, lb])
    groups = np.array_split(rng.permutation(n), min(jackknife_groups, n)) if jackknife_groups > 1 else []
    held_out = np.array([run(np.delete(a, g, axis=0), np.delete(b, g, axis=0)) for g in groups])
    if len(held_out) > 1:
        spread = 1.96 * np.sqrt((len(held_out) - 1) / len(held_out) * np.sum((held_out - held_out.mean()) ** 2))
        low, high = score - spread, score + spread
    else:
        low = high = float("nan")
    null = float(nulls.mean()) if draws else float("nan")
    null_low, null_high = (float(v) for v in np.percentile(nulls, [2.5, 97.5])) if draws else (float("nan"),) * 2
    point = CurvePoint(k if spec.uses_k else 0, n, score, float(low), float(high), float("nan"), null, null_low, null_high,
                       draws, calibrated(score, null, spec))
    return FeatureAlignment(n, metric, matrix, (la, lb), point)


def with_concatenated_layers(features: FeatureSet) -> FeatureSet:
    """`features` plus one more layer, "concat": every layer side by side [n, sum of dims], as the
    reference code's all-layers option (clamped and normalised as a whole, like any layer)."""
    if len(features.layers) < 2:
        return features
    joined = np.concatenate([np.asarray(layer, dtype=np.float32) for layer in features.layers], axis=1)
    return FeatureSet(features.fingerprint, features.model, features.modality, [*features.layer_names, "concat"],
                      [*features.layers, joined], features.path)
