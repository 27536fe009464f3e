"""Alignment metrics over kNN graphs. Every metric in one place, with a name -> function table."""

from __future__ import annotations

from typing import Callable

import numpy as np

from core.knn import knn_graph

DEFAULT_CLAMP_QUANTILE = 0.95


def prepare(features: np.ndarray, clamp_quantile: float | None = DEFAULT_CLAMP_QUANTILE, name: str = "features") -> np.ndarray:
    """Clamp outliers to +-q (q = the `clamp_quantile` of |x|, as the reference code does), then L2-normalise rows.

    features [n, dim] -> float32 [n, dim] with unit rows. Non-finite values and all-zero rows are errors.
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array [n, dim], got shape {x.shape}")
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise ValueError(f"{name}: {int((~finite).sum())} rows hold NaN or inf (first: row {int(np.flatnonzero(~finite)[0])})")
    if clamp_quantile is not None:
        bound = float(np.quantile(np.abs(x), clamp_quantile))
        x = np.clip(x, -bound, bound)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    if zero.any():
        raise ValueError(f"{name}: {int(zero.sum())} rows are all zero and have no direction (first: row {int(np.flatnonzero(zero)[0])})")
    return x / norms


def self_knn(features: np.ndarray, k: int) -> np.ndarray:
    """kNN graph of a set against itself, self excluded: indices [n, k]."""
    return knn_graph(features, features, k, query_ids=np.arange(len(features)))[0]


def knn_overlap(neighbours_a: np.ndarray, neighbours_b: np.ndarray, block: int = 8192) -> np.ndarray:
    """Per-sample |S_a(i) ∩ S_b(i)| / k for two graphs [n, k] of the same k. Returns [n] float64."""
    if neighbours_a.shape != neighbours_b.shape:
        raise ValueError(f"neighbour graphs differ in shape: {neighbours_a.shape} vs {neighbours_b.shape}")
    n, k = neighbours_a.shape
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, block):
        a, b = neighbours_a[start:start + block], neighbours_b[start:start + block]
        out[start:start + block] = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1) / k
    return out


def repair_graph(neighbours: np.ndarray, pairing: np.ndarray) -> np.ndarray:
    """The graph seen from sample i when i is paired with sample pairing[i] instead of itself.

    If the second modality's row i is replaced by row pairing[i], its neighbours become
    pairing^-1(S(pairing[i])): the shuffled-pairs null without searching again.
    """
    inverse = np.empty_like(pairing)
    inverse[pairing] = np.arange(len(pairing))
    return inverse[neighbours[pairing]]


def mutual_knn(features_a: np.ndarray, features_b: np.ndarray, k: int = 10,
               clamp_quantile: float | None = DEFAULT_CLAMP_QUANTILE) -> float:
    """Mutual k-nearest-neighbour alignment of paired features [n, dim_a] and [n, dim_b]."""
    if len(features_a) != len(features_b):
        raise ValueError(f"features are not paired: {len(features_a)} rows vs {len(features_b)} rows")
    a = prepare(features_a, clamp_quantile, "features A")
    b = prepare(features_b, clamp_quantile, "features B")
    return float(knn_overlap(self_knn(a, k), self_knn(b, k)).mean())


def chance_level(k: int, gallery_size: int) -> float:
    """Expected mutual-kNN score of two independent spaces: k / (n - 1)."""
    return k / (gallery_size - 1)


METRICS: dict[str, Callable[..., float]] = {"mutual_knn": mutual_knn}
