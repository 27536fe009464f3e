"""Independent brute-force references for the metric family: dense n x n kernels, explicit H and masks,
Python sets and textbook tables. Shares no code with core; written from the definitions in Huh et al. 2024."""

from __future__ import annotations

from itertools import combinations

import numpy as np

from tests.reference import neighbours


# --- kNN metrics over neighbour lists: one score per sample -----------------------------------------

def mutual_knn(na: list[list[int]], nb: list[list[int]]) -> list[float]:
    return [len(set(x) & set(y)) / len(x) for x, y in zip(na, nb)]


def jaccard_knn(na, nb) -> list[float]:
    return [len(set(x) & set(y)) / len(set(x) | set(y)) for x, y in zip(na, nb)]


def cycle_knn(na, nb) -> list[float]:
    return [float(any(i in na[j] for j in nb[i])) for i in range(len(na))]


def lcs_length(x, y) -> int:
    table = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            if x[i - 1] == y[j - 1]:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


def levenshtein(x, y) -> int:
    table = [[i + j if i * j == 0 else 0 for j in range(len(y) + 1)] for i in range(len(x) + 1)]
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + (x[i - 1] != y[j - 1]))
    return table[-1][-1]


def lcs_knn(na, nb) -> list[float]:
    return [float(lcs_length(x, y)) for x, y in zip(na, nb)]


def edit_distance_knn(na, nb) -> list[float]:
    return [1 - levenshtein(x, y) / len(x) for x, y in zip(na, nb)]


KNN_METRICS = {"mutual_knn": mutual_knn, "jaccard_knn": jaccard_knn, "cycle_knn": cycle_knn,
               "lcs_knn": lcs_knn, "edit_distance_knn": edit_distance_knn}


def knn_metric(name: str, a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Mean score of a kNN metric on features (already normalised)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.mean(KNN_METRICS[name](neighbours(x, k), neighbours(y, k))))


def jaccard_chance(k: int, gallery_size: int) -> float:
    """Mean Jaccard over every pair of k-subsets of the n - 1 other items (small n only)."""
    subsets = [set(s) for s in combinations(range(gallery_size - 1), k)]
    return float(np.mean([len(s & t) / len(s | t) for s in subsets for t in subsets]))


# --- kernel metrics with dense matrices -------------------------------------------------------------

def kernel(x: np.ndarray, kind: str, sigma: float = 1.0) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if kind == "linear":
        return x @ x.T
    differences = x[:, None, :] - x[None, :, :]
    return np.exp(-(differences ** 2).sum(axis=2) / (2 * sigma ** 2))


def hsic_biased(k: np.ndarray, l: np.ndarray) -> float:
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h) / (n - 1) ** 2)


def hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    n = len(k)
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    ones = np.ones(n)
    value = np.trace(k @ l) + (ones @ k @ ones) * (ones @ l @ ones) / ((n - 1) * (n - 2)) - 2 / (n - 2) * ones @ k @ l @ ones
    return float(value / (n * (n - 3)))


def cka(a, b, kind: str = "linear", sigma: float = 1.0, unbiased: bool = False) -> float:
    hsic = hsic_unbiased if unbiased else hsic_biased
    k, l = kernel(a, kind, sigma), kernel(b, kind, sigma)
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def top_k_mask(k_matrix: np.ndarray, k: int) -> np.ndarray:
    scores = k_matrix.copy()
    np.fill_diagonal(scores, -np.inf)
    mask = np.zeros_like(scores)
    for i, row in enumerate(scores):
        mask[i, np.argsort(-row, kind="stable")[:k]] = 1.0
    return mask


def cknna(a, b, k: int) -> float:
    def similarity(x, y):
        mask = top_k_mask(x, k) * top_k_mask(y, k)
        return hsic_unbiased(mask * x, mask * y)

    kk, ll = kernel(a, "linear"), kernel(b, "linear")
    return similarity(kk, ll) / (np.sqrt(similarity(kk, kk) * similarity(ll, ll)) + 1e-6)


def svcca(a, b, cca_dim: int = 10) -> float:
    """Top directions by a full SVD, then the exact canonical correlations (QR + SVD, no sklearn)."""
    def top_directions(x):
        centred = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        return u[:, :cca_dim] * s[:cca_dim]

    qa, _ = np.linalg.qr(top_directions(a) - top_directions(a).mean(axis=0))
    qb, _ = np.linalg.qr(top_directions(b) - top_directions(b).mean(axis=0))
    return float(np.mean(np.linalg.svd(qa.T @ qb, compute_uv=False)))
