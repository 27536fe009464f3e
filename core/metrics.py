"""Alignment metrics of paired feature sets. Every metric in one place, with a name -> spec table (`METRICS`).

Two kinds of metric, following the reference code of Huh et al. 2024 (platonic-rep, metrics.py):
- kNN-graph metrics (mutual_knn, jaccard_knn, cycle_knn, lcs_knn, edit_distance_knn) read only the
  two neighbour graphs [n, k] and give one score per sample [n], so callers can bootstrap over queries;
- feature metrics (cka, unbiased_cka, cknna, svcca) read the features and give one float.
`score(name, a, b, k)` runs any of them on prepared features (see `prepare`).

Nothing builds an n x n matrix: linear kernels go through d x d feature cross-products, RBF kernels
one [block, n] slab at a time, CKNNA through the <= n k mutual-neighbour pairs (scipy.sparse).

Where we differ from the reference, and why:
- biased CKA (`cka`) is far from 0 on independent data at small n (about 0.7 at n = 50, d = 100);
  `unbiased_cka` (Song et al. 2012 HSIC) is about 0 there. Prefer it when n is small next to d.
- `cka` / `unbiased_cka` are the plain ratio HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)); the reference
  adds 1e-6 to the denominator. `cknna` keeps that 1e-6 as `epsilon`: its HSIC shrinks like k / n,
  so at large n the default biases it down; pass epsilon=0 for the plain ratio.
- `cknna` accepts k = 1 (the reference refuses k < 2).
- `lcs_knn` is the mean length of the longest common subsequence, NOT divided by k (0..k), as in the
  reference; the other kNN metrics lie in 0..1.
- `svcca` only centres the features before the SVD (the reference also divides every column by its
  std, which makes the score depend on the basis of each space) and keeps the exact top directions
  (the reference uses a randomised low-rank SVD and adds 1e-10 noise to dodge NaNs).
- the outlier clamp of `prepare` is per layer in this product (the reference: one bound per model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import sparse
from scipy.stats import hypergeom

from core.knn import knn_graph
from core.prepare import DEFAULT_CLAMP_QUANTILE, PreparedRows
_WORK_ELEMENTS = 1 << 22  # float64 scratch per block (32 MiB): sets the row block of every streamed metric


def prepare(features: np.ndarray, clamp_quantile: float | None = DEFAULT_CLAMP_QUANTILE, name: str = "features") -> np.ndarray:
    """Clamp outliers to +-q (q = the `clamp_quantile` of |x|, as the reference code does), then L2-normalise rows.

    features [n, dim] -> float32 [n, dim] with unit rows, in memory (see core.prepare.PreparedRows
    to stream). Non-finite values and all-zero rows are errors naming the row.
    """
    return PreparedRows(features, clamp_quantile, name).all()


def self_knn(features: np.ndarray, k: int) -> np.ndarray:
    """kNN graph of a set against itself, self excluded: indices [n, k]."""
    return knn_graph(features, features, k, query_ids=np.arange(len(features)))[0]


def knn_overlap(neighbours_a: np.ndarray, neighbours_b: np.ndarray, block: int = 8192) -> np.ndarray:
    """Per-sample |S_a(i) ∩ S_b(i)| / k for two graphs [n, k] of the same k (mutual_knn). Returns [n] float64."""
    return _shared_counts(neighbours_a, neighbours_b, block) / neighbours_a.shape[1]


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


def jaccard_chance_level(k: int, gallery_size: int) -> float:
    """Expected jaccard_knn of two independent spaces: E[I / (2k - I)], I the overlap of two random k-subsets of n - 1."""
    shared = np.arange(k + 1)
    return float((hypergeom.pmf(shared, gallery_size - 1, k, k) * shared / (2 * k - shared)).sum())


# --- kNN-graph metrics: two graphs [n, k] (best first, self excluded) -> per-sample scores [n] ---------

def _check_graphs(neighbours_a: np.ndarray, neighbours_b: np.ndarray) -> tuple[int, int]:
    if neighbours_a.shape != neighbours_b.shape:
        raise ValueError(f"neighbour graphs differ in shape: {neighbours_a.shape} vs {neighbours_b.shape}")
    if neighbours_a.ndim != 2 or neighbours_a.shape[1] == 0:
        raise ValueError(f"neighbour graphs must be [n, k] with k >= 1; got shape {neighbours_a.shape}")
    return neighbours_a.shape


def _row_blocks(n: int, k: int, block: int | None):
    """(start, stop) row ranges whose [block, k, k] work arrays stay near _WORK_ELEMENTS."""
    block = block or max(1, _WORK_ELEMENTS // (k * k))
    for start in range(0, n, block):
        yield start, min(start + block, n)


def _in_both(neighbours_a: np.ndarray, neighbours_b: np.ndarray, block: int | None = None) -> np.ndarray:
    """[n, k] bool: True where the entry S_a(i)[j] is also in S_b(i)."""
    n, k = _check_graphs(neighbours_a, neighbours_b)
    out = np.empty((n, k), dtype=bool)
    for start, stop in _row_blocks(n, k, block):
        out[start:stop] = (neighbours_a[start:stop, :, None] == neighbours_b[start:stop, None, :]).any(axis=2)
    return out


def _shared_counts(neighbours_a: np.ndarray, neighbours_b: np.ndarray, block: int | None = None) -> np.ndarray:
    """|S_a(i) ∩ S_b(i)| per sample, [n] int."""
    return _in_both(neighbours_a, neighbours_b, block).sum(axis=1)


def jaccard_knn_per_sample(neighbours_a: np.ndarray, neighbours_b: np.ndarray, block: int | None = None) -> np.ndarray:
    """|S_a(i) ∩ S_b(i)| / |S_a(i) ∪ S_b(i)| for two graphs [n, k]. Returns [n] float64 in [0, 1]."""
    shared = _shared_counts(neighbours_a, neighbours_b, block)
    return shared / (2 * neighbours_a.shape[1] - shared)


def cycle_knn_per_sample(neighbours_a: np.ndarray, neighbours_b: np.ndarray, block: int | None = None) -> np.ndarray:
    """1 where sample i is among the A-neighbours of one of its B-neighbours (i -> S_b(i) -> S_a(j) -> i), else 0.

    Graphs [n, k]; returns [n] float64. The reference's knn_A[knn_B], checked for i.
    """
    n, k = _check_graphs(neighbours_a, neighbours_b)
    out = np.empty(n, dtype=np.float64)
    for start, stop in _row_blocks(n, k, block):
        round_trip = neighbours_a[neighbours_b[start:stop]]  # [block, k, k]
        out[start:stop] = (round_trip == np.arange(start, stop)[:, None, None]).any(axis=(1, 2))
    return out


def lcs_knn_per_sample(neighbours_a: np.ndarray, neighbours_b: np.ndarray, block: int | None = None) -> np.ndarray:
    """Length of the longest common subsequence of the ordered lists S_a(i) and S_b(i), NOT divided by k.

    Graphs [n, k]; returns [n] float64 in [0, k]. Row by row of the textbook table, all samples of a block at once.
    """
    n, k = _check_graphs(neighbours_a, neighbours_b)
    out = np.empty(n, dtype=np.float64)
    for start, stop in _row_blocks(n, k, block):
        same = neighbours_a[start:stop, :, None] == neighbours_b[start:stop, None, :]  # [block, k, k]
        table = np.zeros((stop - start, k + 1), dtype=np.int64)
        for i in range(k):
            # lcs[i+1][j+1] = max(lcs[i][j+1], lcs[i][j] + same, lcs[i+1][j]): the last term is a running max
            table[:, 1:] = np.maximum.accumulate(np.maximum(table[:, 1:], table[:, :-1] + same[:, i]), axis=1)
        out[start:stop] = table[:, -1]
    return out


def edit_distance_knn_per_sample(neighbours_a: np.ndarray, neighbours_b: np.ndarray, block: int | None = None) -> np.ndarray:
    """1 - Levenshtein(S_a(i), S_b(i)) / k over the ordered neighbour ids. Graphs [n, k]; returns [n] float64 in [0, 1]."""
    n, k = _check_graphs(neighbours_a, neighbours_b)
    out = np.empty(n, dtype=np.float64)
    offsets = np.arange(k + 1)
    for start, stop in _row_blocks(n, k, block):
        differ = neighbours_a[start:stop, :, None] != neighbours_b[start:stop, None, :]  # [block, k, k]
        table = np.broadcast_to(offsets, (stop - start, k + 1)).copy()
        for i in range(k):
            candidates = np.empty_like(table)
            candidates[:, 0] = i + 1
            candidates[:, 1:] = np.minimum(table[:, 1:] + 1, table[:, :-1] + differ[:, i])
            # d[i+1][j+1] = min(candidate, d[i+1][j] + 1): a running min of d - j
            table = np.minimum.accumulate(candidates - offsets, axis=1) + offsets
        out[start:stop] = 1.0 - table[:, -1] / k
    return out


# --- feature metrics: prepared features a [n, da], b [n, db] paired by row -> one float -----------------

def _check_pair(a: np.ndarray, b: np.ndarray) -> int:
    for name, x in (("features A", a), ("features B", b)):
        if np.ndim(x) != 2:
            raise ValueError(f"{name}: expected a 2-D array [n, dim], got shape {np.shape(x)}")
    if len(a) != len(b):
        raise ValueError(f"features are not paired: {len(a)} rows vs {len(b)} rows")
    return len(a)


def _need_four(n: int, metric: str) -> None:
    if n < 4:
        raise ValueError(f"{metric}: the unbiased HSIC estimator needs n >= 4 samples; got n={n}")


@dataclass(frozen=True)
class _KernelSums:
    """What HSIC needs of two n x n kernels X, Y without holding them.

    trace = tr(X Y) = sum_ij X_ij Y_ji; cols_x = X^T 1 [n]; rows_y = Y 1 [n]; diag_x, diag_y [n].
    """

    trace: float
    cols_x: np.ndarray
    rows_y: np.ndarray
    diag_x: np.ndarray
    diag_y: np.ndarray

    def hsic(self, unbiased: bool) -> float:
        n = len(self.rows_y)
        if not unbiased:  # tr(X H Y H) / (n-1)^2, for symmetric X, Y
            centred = self.trace - 2 / n * self.cols_x @ self.rows_y + self.cols_x.sum() * self.rows_y.sum() / n ** 2
            return float(centred / (n - 1) ** 2)
        # Song et al. 2012, eq. 5, on X~ and Y~ = X and Y with zeroed diagonals
        trace = self.trace - self.diag_x @ self.diag_y
        total_x, total_y = self.cols_x.sum() - self.diag_x.sum(), self.rows_y.sum() - self.diag_y.sum()
        paths = (self.cols_x - self.diag_x) @ (self.rows_y - self.diag_y)
        return float((trace + total_x * total_y / ((n - 1) * (n - 2)) - 2 / (n - 2) * paths) / (n * (n - 3)))


def _centred_products(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Column means and cross-products (float64) of the centred features, streamed over row blocks.

    Returns mean_a [da], mean_b [db], aa [da, da], bb [db, db], ab [da, db], and the squared row
    norms norms_a, norms_b [n] (the diagonals of the centred linear kernels).
    """
    dim_a = a.shape[1]
    mean_a, mean_b = a.mean(axis=0, dtype=np.float64), b.mean(axis=0, dtype=np.float64)
    joint = np.zeros((dim_a + b.shape[1],) * 2)
    norms = np.empty((len(a), 2))
    block = max(1, _WORK_ELEMENTS // joint.shape[0])
    for start in range(0, len(a), block):
        rows = np.hstack([a[start:start + block] - mean_a, b[start:start + block] - mean_b])
        joint += rows.T @ rows
        squares = rows ** 2
        norms[start:start + block, 0] = squares[:, :dim_a].sum(axis=1)
        norms[start:start + block, 1] = squares[:, dim_a:].sum(axis=1)
    return {"mean_a": mean_a, "mean_b": mean_b, "aa": joint[:dim_a, :dim_a], "bb": joint[dim_a:, dim_a:],
            "ab": joint[:dim_a, dim_a:], "norms_a": norms[:, 0], "norms_b": norms[:, 1]}


def _linear_kernel_sums(products: dict[str, np.ndarray]) -> tuple[_KernelSums, _KernelSums, _KernelSums]:
    """Sums of (K, L), (K, K), (L, L) for K = A A^T, L = B B^T of the centred features (`_centred_products`).

    HSIC (biased and unbiased) does not change when a constant is added to every row, and after
    centring K 1 = 0, so only the traces tr(KL) = ||A^T B||_F^2 and the diagonals remain.
    """
    norms_a, norms_b = products["norms_a"], products["norms_b"]
    zeros = np.zeros(len(norms_a))
    traces = {pair: float((products[pair] ** 2).sum()) for pair in ("ab", "aa", "bb")}
    return (_KernelSums(traces["ab"], zeros, zeros, norms_a, norms_b),
            _KernelSums(traces["aa"], zeros, zeros, norms_a, norms_a),
            _KernelSums(traces["bb"], zeros, zeros, norms_b, norms_b))


def _without_variance(products: dict[str, np.ndarray], side: str) -> bool:
    """True if the rows of one side are all equal, up to the rounding left by centring."""
    spread, mean = products[f"norms_{side}"].sum(), products[f"mean_{side}"]
    return bool(spread <= 1e-24 * (spread + len(products[f"norms_{side}"]) * mean @ mean))


def _rbf_rows(x: np.ndarray, squares: np.ndarray, start: int, stop: int, sigma: float) -> np.ndarray:
    """Rows start..stop of the RBF kernel exp(-||x_i - x_j||^2 / (2 sigma^2)): [stop - start, n] float64."""
    distances = squares[start:stop, None] + squares[None, :] - 2 * x[start:stop] @ x.T
    distances[np.arange(stop - start), np.arange(start, stop)] = 0.0  # exact zeros on the diagonal
    return np.exp(-np.maximum(distances, 0.0) / (2 * sigma ** 2))


def _rbf_kernel_sums(a: np.ndarray, b: np.ndarray, sigma: float) -> tuple[_KernelSums, _KernelSums, _KernelSums]:
    """Sums of (K, L), (K, K), (L, L) for the RBF kernels, one [block, n] slab of each at a time (O(n^2 d) time)."""
    n = len(a)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    squares_a, squares_b = (a ** 2).sum(axis=1), (b ** 2).sum(axis=1)
    traces = np.zeros(3)
    rows_k, rows_l = np.empty(n), np.empty(n)
    block = max(1, _WORK_ELEMENTS // n)
    for start in range(0, n, block):
        stop = min(start + block, n)
        slab_k, slab_l = _rbf_rows(a, squares_a, start, stop, sigma), _rbf_rows(b, squares_b, start, stop, sigma)
        traces += [(slab_k * slab_l).sum(), (slab_k ** 2).sum(), (slab_l ** 2).sum()]
        rows_k[start:stop], rows_l[start:stop] = slab_k.sum(axis=1), slab_l.sum(axis=1)
    ones = np.ones(n)
    return (_KernelSums(traces[0], rows_k, rows_l, ones, ones),
            _KernelSums(traces[1], rows_k, rows_k, ones, ones),
            _KernelSums(traces[2], rows_l, rows_l, ones, ones))


def _kernel_alignment(a: np.ndarray, b: np.ndarray, kernel: str, sigma: float, unbiased: bool) -> float:
    metric = "unbiased_cka" if unbiased else "cka"
    n = _check_pair(a, b)
    if unbiased:
        _need_four(n, metric)
    if kernel == "linear":
        products = _centred_products(a, b)
        if _without_variance(products, "a") or _without_variance(products, "b"):
            return float("nan")  # else the ratio of two rounding errors
        cross, within_a, within_b = _linear_kernel_sums(products)
    elif kernel == "rbf":
        if not sigma > 0:
            raise ValueError(f"{metric}: sigma must be positive; got {sigma}")
        cross, within_a, within_b = _rbf_kernel_sums(a, b, sigma)
    else:
        raise ValueError(f"{metric}: kernel={kernel!r} is not supported; use 'linear' or 'rbf'")
    scale = within_a.hsic(unbiased) * within_b.hsic(unbiased)
    return cross.hsic(unbiased) / np.sqrt(scale) if scale > 0 else float("nan")


def cka(a: np.ndarray, b: np.ndarray, kernel: str = "linear", sigma: float = 1.0) -> float:
    """Centred kernel alignment with the biased HSIC: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).

    a [n, da], b [n, db] prepared features; kernel 'linear' (K = a a^T, O(n d^2)) or 'rbf'
    (exp(-||a_i - a_j||^2 / (2 sigma^2)), O(n^2 d) time, O(block n) memory). NaN if a space has no variance.
    Far from 0 on independent data when n is small next to d: see `unbiased_cka`.
    """
    return _kernel_alignment(a, b, kernel, sigma, unbiased=False)


def unbiased_cka(a: np.ndarray, b: np.ndarray, kernel: str = "linear", sigma: float = 1.0) -> float:
    """`cka` with the unbiased HSIC estimator (Song et al. 2012): about 0 on independent data at any n >= 4.

    NaN where an estimated HSIC(K, K) or HSIC(L, L) is not positive (possible only at tiny n).
    """
    return _kernel_alignment(a, b, kernel, sigma, unbiased=True)


def _graph_pairs(neighbours: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pairs (i, j), j in S(i), of a graph [n, k]; only where `keep` [n, k] is True if given."""
    rows, positions = np.nonzero(np.ones(neighbours.shape, dtype=bool) if keep is None else keep)
    return rows, neighbours[rows, positions]


def _masked_linear_kernel(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> sparse.csr_matrix:
    """mask * (x x^T) as an n x n sparse matrix holding x_i . x_j (float64) at the given pairs."""
    values = np.empty(len(rows))
    block = max(1, _WORK_ELEMENTS // x.shape[1])
    for start in range(0, len(rows), block):
        left = np.asarray(x[rows[start:start + block]], dtype=np.float64)
        values[start:start + block] = np.einsum("ij,ij->i", left, x[cols[start:start + block]])
    return sparse.csr_matrix((values, (rows, cols)), shape=(len(x),) * 2)


def _masked_hsic(x: sparse.csr_matrix, y: sparse.csr_matrix) -> float:
    """Unbiased HSIC of two sparse n x n matrices with zero diagonals (not symmetric in general)."""
    zeros = np.zeros(x.shape[0])
    sums = _KernelSums(float(x.multiply(y.T).sum()), np.asarray(x.sum(axis=0)).ravel(),
                       np.asarray(y.sum(axis=1)).ravel(), zeros, zeros)
    return sums.hsic(unbiased=True)


def cknna(a: np.ndarray, b: np.ndarray, k: int = 10, neighbours_a: np.ndarray | None = None,
          neighbours_b: np.ndarray | None = None, epsilon: float = 1e-6) -> float:
    """CKA restricted to mutual-kNN pairs (reference defaults: unbiased=True, distance_agnostic=False).

    a [n, da], b [n, db] prepared features; the kNN graphs [n, k] are searched unless given.
    sim(X, Y) = HSIC_unbiased(mask * X, mask * Y), mask the pairs in the k-NN of both X and Y;
    returns sim(K, L) / (sqrt(sim(K, K) sim(L, L)) + epsilon), K = a a^T, L = b b^T. NaN if the product is negative.
    """
    n = _check_pair(a, b)
    _need_four(n, "cknna")
    neighbours_a = self_knn(a, k) if neighbours_a is None else neighbours_a
    neighbours_b = self_knn(b, k) if neighbours_b is None else neighbours_b
    if len(neighbours_a) != n:
        raise ValueError(f"cknna: the neighbour graphs have {len(neighbours_a)} rows for {n} samples")
    shared = _graph_pairs(neighbours_a, keep=_in_both(neighbours_a, neighbours_b))  # the mutual-kNN mask
    kernel_a = _masked_linear_kernel(a, *_graph_pairs(neighbours_a))
    kernel_b = _masked_linear_kernel(b, *_graph_pairs(neighbours_b))
    similarity = _masked_hsic(_masked_linear_kernel(a, *shared), _masked_linear_kernel(b, *shared))
    scale = _masked_hsic(kernel_a, kernel_a) * _masked_hsic(kernel_b, kernel_b)
    return similarity / (np.sqrt(scale) + epsilon) if scale >= 0 else float("nan")


def _principal_scores(features: np.ndarray, mean: np.ndarray, gram: np.ndarray, dims: int) -> np.ndarray:
    """Centred features projected on their top `dims` principal directions, U[:, :dims] * S[:dims]: [n, dims]."""
    _, vectors = np.linalg.eigh(gram)  # ascending eigenvalues
    top = vectors[:, ::-1][:, :dims]
    block = max(1, _WORK_ELEMENTS // features.shape[1])
    return np.concatenate([(features[start:start + block] - mean) @ top for start in range(0, len(features), block)])


def svcca(a: np.ndarray, b: np.ndarray, cca_dim: int = 10) -> float:
    """Singular vector CCA: top `cca_dim` principal directions of each centred space, then CCA (sklearn).

    a [n, da], b [n, db] prepared features. Returns the mean over the `cca_dim` canonical pairs of
    the correlation of the paired canonical variates, in [0, 1]. O(n d^2).
    """
    from sklearn.cross_decomposition import CCA  # slow to import; only this metric needs it

    n = _check_pair(a, b)
    limit = min(n - 1, a.shape[1], b.shape[1])
    if not 1 <= cca_dim <= limit:
        raise ValueError(f"svcca: cca_dim={cca_dim} is out of range: it must be between 1 and {limit} "
                         f"(the smallest of n - 1 = {n - 1}, dim A = {a.shape[1]}, dim B = {b.shape[1]})")
    products = _centred_products(a, b)
    scores_a = _principal_scores(a, products["mean_a"], products["aa"], cca_dim)
    scores_b = _principal_scores(b, products["mean_b"], products["bb"], cca_dim)
    variates_a, variates_b = CCA(n_components=cca_dim).fit(scores_a, scores_b).transform(scores_a, scores_b)
    return float(np.mean([np.corrcoef(variates_a[:, i], variates_b[:, i])[0, 1] for i in range(cca_dim)]))


# --- the table --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricSpec:
    """How to call one metric.

    kind 'knn': fn(neighbours_a [n, k], neighbours_b [n, k]) -> per-sample scores [n];
    kind 'features': fn(a [n, da], b [n, db], **params) -> float, with k= when `uses_k`.
    chance(k, gallery_size) is the expected score of independent spaces, None where unknown
    (estimate it with a shuffled-pairs null).
    """

    name: str
    kind: str
    fn: Callable[..., np.ndarray | float]
    chance: Callable[[int, int], float] | None = None
    uses_k: bool = True
    follows_neighbours: bool = False  # reads the graph rows of neighbours: needs every sample as a query


METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in (
    MetricSpec("mutual_knn", "knn", knn_overlap, chance=chance_level),
    MetricSpec("jaccard_knn", "knn", jaccard_knn_per_sample, chance=jaccard_chance_level),
    MetricSpec("cycle_knn", "knn", cycle_knn_per_sample, follows_neighbours=True),
    MetricSpec("lcs_knn", "knn", lcs_knn_per_sample),
    MetricSpec("edit_distance_knn", "knn", edit_distance_knn_per_sample),
    MetricSpec("cka", "features", cka, uses_k=False),
    MetricSpec("unbiased_cka", "features", unbiased_cka, uses_k=False),
    MetricSpec("cknna", "features", cknna),
    MetricSpec("svcca", "features", svcca, uses_k=False),
)}


def score(name: str, a: np.ndarray, b: np.ndarray, k: int = 10, **params) -> float:
    """Metric `name` of prepared features a [n, da], b [n, db] (see `prepare`; nothing is prepared here).

    kNN metrics: the mean of the per-sample scores over both self-kNN graphs; `k` is ignored by
    the feature metrics that do not use it; `params` go to the metric (kernel=, sigma=, cca_dim=, ...).
    """
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}")
    spec = METRICS[name]
    _check_pair(a, b)
    if spec.kind == "knn":
        return float(spec.fn(self_knn(a, k), self_knn(b, k), **params).mean())
    return float(spec.fn(a, b, k=k, **params) if spec.uses_k else spec.fn(a, b, **params))
