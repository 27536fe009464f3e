"""Independent brute-force references: dense similarity matrices and Python sets, no shared code with core."""

from __future__ import annotations

import numpy as np


def normalise(x: np.ndarray, clamp_quantile: float | None = 0.95) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if clamp_quantile is not None:
        q = np.quantile(np.abs(x), clamp_quantile)
        x = np.minimum(np.maximum(x, -q), q)
    return x / np.sqrt((x ** 2).sum(axis=1, keepdims=True))


def neighbours(x: np.ndarray, k: int) -> list[list[int]]:
    """k nearest rows of each row (cosine on already normalised rows), self excluded, via a dense matrix."""
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    return [list(np.argsort(-row, kind="stable")[:k]) for row in sims]


def mutual_knn(a: np.ndarray, b: np.ndarray, k: int, clamp_quantile: float | None = 0.95) -> float:
    na, nb = neighbours(normalise(a, clamp_quantile), k), neighbours(normalise(b, clamp_quantile), k)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb)]))


def query_neighbours(x: np.ndarray, query_rows: np.ndarray, gallery_rows: np.ndarray, k: int) -> list[list[int]]:
    """k nearest gallery rows (as positions in gallery_rows) of each query row, the query itself excluded."""
    sims = x[query_rows] @ x[gallery_rows].T
    sims[query_rows[:, None] == gallery_rows[None, :]] = -np.inf
    return [list(np.argsort(-row, kind="stable")[:k]) for row in sims]
