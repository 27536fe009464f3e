"""Exact inner-product k-nearest neighbours, streamed block by block.

One engine, `nested_knn`: the gallery is read once, block by block (so it may be memory-mapped
and larger than RAM), each block scored against the queries by a back end (faiss, torch or
numpy), and each query's running top k merged in; at every gallery-size boundary the running
result is recorded, so a whole nested sweep costs one search of the largest gallery.
`knn_graph` is the same engine with a single size. Memory: one [query_block, gallery_block] slab.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

try:  # faiss-gpu or faiss-cpu; torch and numpy give the same neighbours
    import faiss
except ImportError:  # pragma: no cover - exercised only where faiss is absent
    faiss = None

BACKENDS = ("auto", "faiss", "torch", "numpy")
SLAB_FLOATS = 1 << 26  # 256 MB of float32 scores per block product


class Rows(Protocol):
    """A gallery read by blocks: core.prepare.PreparedRows, or any [n, dim] array."""

    def take(self, rows) -> np.ndarray: ...
    def __len__(self) -> int: ...


class _ArrayRows:
    def __init__(self, array: np.ndarray) -> None:
        if getattr(array, "ndim", None) != 2:
            raise ValueError(f"gallery must be 2-D [n, dim]; got shape {getattr(array, 'shape', None)}")
        self.array, self.dim = array, array.shape[1]

    def take(self, rows) -> np.ndarray:
        return np.ascontiguousarray(self.array[rows], dtype=np.float32)

    def __len__(self) -> int:
        return self.array.shape[0]


def as_rows(gallery) -> Rows:
    return _ArrayRows(gallery) if isinstance(gallery, np.ndarray) else gallery  # ndarray.take is not Rows.take


class _NumpyScorer:
    name = "numpy"

    def top(self, queries: np.ndarray, block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = queries @ block.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(np.arange(scores.shape[1]), (len(scores), 1))
        return top, np.take_along_axis(scores, top, axis=1)


class _FaissScorer:
    name = "faiss"

    def __init__(self) -> None:
        self.gpu = None
        if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:  # pragma: no cover - GPU only
            self.gpu = faiss.StandardGpuResources()

    def top(self, queries, block, k):
        if self.gpu is not None:  # pragma: no cover - GPU only
            sims, ids = faiss.knn_gpu(self.gpu, queries, block, k, metric=faiss.METRIC_INNER_PRODUCT)
        else:
            sims, ids = faiss.knn(queries, block, k, metric=faiss.METRIC_INNER_PRODUCT)
        return ids.astype(np.int64), sims


class _TorchScorer:
    name = "torch"

    def __init__(self, device: str | None = None) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._cached: tuple[int, object] | None = None

    def top(self, queries, block, k):
        torch = self.torch
        if self._cached is None or self._cached[0] != id(queries):  # queries stay on the device between blocks
            self._cached = (id(queries), torch.from_numpy(queries).to(self.device))
        block = block if isinstance(block, torch.Tensor) else torch.from_numpy(block)  # a Rows may serve device tensors
        scores = self._cached[1] @ block.to(self.device).T
        sims, ids = torch.topk(scores, k, dim=1)
        return ids.cpu().numpy().astype(np.int64), sims.cpu().numpy()


def make_scorer(backend: str = "auto", device: str | None = None):
    """The block scorer for `backend`: faiss when installed (GPU when faiss-gpu sees one), else torch, else numpy."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown kNN back end {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "faiss" if faiss is not None else "numpy"
    if backend == "faiss":
        if faiss is None:
            raise RuntimeError("backend='faiss' requested but faiss is not installed (pip install faiss-cpu)")
        return _FaissScorer()
    return _TorchScorer(device) if backend == "torch" else _NumpyScorer()


def knn_graph(queries: np.ndarray, gallery, k: int, query_ids: np.ndarray | None = None, backend: str = "auto",
              **blocks) -> tuple[np.ndarray, np.ndarray]:
    """The k gallery rows with the largest inner product for each query.

    queries [q, dim], gallery [n, dim] (normalised first for cosine; an array or PreparedRows).
    `query_ids` [q] are the queries' own rows in the gallery, never returned (None: no exclusion).
    Returns (indices [q, k] int64 into the gallery, similarities [q, k] float32), best first.
    """
    return nested_knn(queries, gallery, k, [len(gallery)], query_ids, backend=backend, **blocks)[0]


def nested_knn(queries: np.ndarray, gallery, k: int | list[int], gallery_sizes: list[int], query_ids: np.ndarray | None = None,
               order: np.ndarray | None = None, backend: str = "auto", query_block: int | None = None,
               gallery_block: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """kNN of each query in every nested gallery (`order[:m]` for m in `gallery_sizes`) in one pass.

    The gallery is scanned once in `order` (default: row order). `query_ids` [q] are the queries'
    own positions in that scan order (never their own neighbour). `k` is one number, or one per
    size (ascending sizes; e.g. k proportional to the gallery). Returns, per size ascending,
    (indices [q, k_m] into the scan order, similarities [q, k_m]), best first; ties go to the earlier position.
    """
    rows = as_rows(gallery)
    queries = np.asarray(queries)
    if queries.ndim != 2:
        raise ValueError(f"queries must be 2-D [q, dim]; got shape {queries.shape}")
    n = len(rows) if order is None else len(order)
    sizes = sorted(set(int(m) for m in gallery_sizes))
    if not sizes or sizes[0] < 1 or sizes[-1] > n:
        raise ValueError(f"gallery sizes must lie between 1 and {n}; got {list(gallery_sizes)}")
    exclude_self = query_ids is not None
    if exclude_self:
        query_ids = np.asarray(query_ids, dtype=np.int64)
        if len(query_ids) != len(queries):
            raise ValueError(f"query_ids has {len(query_ids)} entries for {len(queries)} queries")
        if len(query_ids) and query_ids.max() >= sizes[0]:
            raise ValueError(f"every query must lie in the smallest gallery ({sizes[0]}); a query sits at position {int(query_ids.max())}")
    ks = [int(k)] * len(sizes) if np.isscalar(k) else [int(v) for v in k]
    if len(ks) != len(sizes):
        raise ValueError(f"got {len(ks)} values of k for {len(sizes)} gallery sizes")
    for size, k_m in zip(sizes, ks):
        available = size - (1 if exclude_self else 0)
        if not 1 <= k_m <= available:
            raise ValueError(f"k={k_m} is out of range: the {'smallest ' if len(sizes) > 1 and size == sizes[0] else ''}gallery has "
                             f"{size} items, so k must be between 1 and {available}{' (self excluded)' if exclude_self else ''}")
    scorer = make_scorer(backend)
    keep = max(ks) + (1 if exclude_self else 0)  # self is found like any neighbour, then dropped
    query_block = query_block or min(max(len(queries), 1), 4096)
    query_blocks = [np.ascontiguousarray(queries[s:s + query_block], dtype=np.float32) for s in range(0, len(queries), query_block)]
    dim = queries.shape[1]
    # bounded twice: the score slab [query_block, gallery_block] and the block read [gallery_block, dim]
    gallery_block = gallery_block or max(1024, min(SLAB_FLOATS // query_block, SLAB_FLOATS // max(dim, 1)))
    best_ids = np.full((len(queries), keep), -1, dtype=np.int64)
    best_sims = np.full((len(queries), keep), -np.inf, dtype=np.float32)
    recorded, start = [], 0
    for size, k_m in zip(sizes, ks):
        while start < size:
            stop = min(start + gallery_block, size)
            if order is None:
                block, positions = rows.take(slice(start, stop)), None
            else:  # read in file order (near-sequential on a memory map), remember each row's scan position
                wanted = np.asarray(order[start:stop])
                positions = np.argsort(wanted, kind="stable")
                block = rows.take(wanted[positions])
            if block.shape[1] != dim:
                raise ValueError(f"queries have dim {dim} but the gallery has dim {block.shape[1]}")
            take = min(keep, stop - start)
            for q, qb in enumerate(query_blocks):
                ids, sims = scorer.top(qb, block, take)
                ids = (ids if positions is None else positions[ids]) + start
                rows_q = slice(q * query_block, q * query_block + len(qb))
                best_ids[rows_q], best_sims[rows_q] = _merge(best_ids[rows_q], best_sims[rows_q], ids, sims, keep)
            start = stop
        if exclude_self:
            recorded.append(_drop_self(best_ids[:, :k_m + 1], best_sims[:, :k_m + 1], query_ids, k_m))
        else:
            recorded.append((best_ids[:, :k_m].copy(), best_sims[:, :k_m].copy()))
    return recorded


def _merge(best_ids, best_sims, ids, sims, keep):
    """Fold a block's candidates into the running top `keep`, ordered by (-similarity, position)."""
    all_ids = np.concatenate([best_ids, ids], axis=1)
    all_sims = np.concatenate([best_sims, sims.astype(np.float32, copy=False)], axis=1)
    order = np.lexsort((all_ids, -all_sims), axis=1)[:, :keep]
    return np.take_along_axis(all_ids, order, axis=1), np.take_along_axis(all_sims, order, axis=1)


def _drop_self(ids: np.ndarray, sims: np.ndarray, self_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own id from its k+1 results (or the last one if ties outranked self)."""
    is_self = ids == self_ids[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    keep = ~is_self
    return ids[keep].reshape(len(ids), k), sims[keep].reshape(len(ids), k)


def ivf_nested_knn(queries: np.ndarray, gallery, k: int | list[int], gallery_sizes: list[int],
                   query_ids: np.ndarray | None = None, order: np.ndarray | None = None, nlist: int | None = None,
                   nprobe: int = 32, train_size: int = 65536, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Approximate `nested_knn` with a faiss IVF index (inner product) over the largest gallery.

    Vectors are added in scan order with their positions as ids; each nested gallery is searched
    with an id-range selector, so the results have the same form as the exact search. Recall
    against exact search is the caller's to measure (see `recall_at_k`). The index holds the
    gallery in RAM (float32).
    """
    if faiss is None:
        raise RuntimeError("the approximate index needs faiss (pip install faiss-cpu)")
    rows = as_rows(gallery)
    sizes = sorted(set(int(m) for m in gallery_sizes))
    ks = [int(k)] * len(sizes) if np.isscalar(k) else [int(v) for v in k]
    n = sizes[-1]
    positions = np.arange(n) if order is None else np.asarray(order[:n])
    nlist = nlist or max(1, min(int(4 * np.sqrt(n)), n // 39))  # faiss wants >= 39 training points per list
    train = np.sort(np.random.default_rng(seed).choice(n, size=min(n, max(train_size, 39 * nlist)), replace=False))
    quantizer = faiss.IndexFlatIP(rows.take(positions[:1]).shape[1])
    index = faiss.IndexIVFFlat(quantizer, quantizer.d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(rows.take(positions[train]))
    for start in range(0, n, 65536):
        stop = min(start + 65536, n)
        index.add_with_ids(rows.take(positions[start:stop]), np.arange(start, stop, dtype=np.int64))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    exclude_self = query_ids is not None
    recorded = []
    for size, k_m in zip(sizes, ks):
        keep = k_m + (1 if exclude_self else 0)
        params = faiss.SearchParametersIVF(sel=faiss.IDSelectorRange(0, size), nprobe=min(nprobe, nlist))
        sims, ids = index.search(queries, keep, params=params)
        ids = ids.astype(np.int64)
        recorded.append(_drop_self(ids, sims, np.asarray(query_ids), k_m) if exclude_self else (ids, sims))
    return recorded


def recall_at_k(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Fraction of the exact k neighbours [q, k] that the approximate search [q, k] also found."""
    k = exact.shape[1]
    return float(np.mean([len(set(a) & set(e)) / k for a, e in zip(approximate, exact)]))
