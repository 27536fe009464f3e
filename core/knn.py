"""Exact inner-product k-nearest-neighbour graphs, searched block by block.

One entry point, `knn_graph`; faiss does the search when installed, a numpy matmul + partial
sort otherwise. Memory stays at one [block, gallery] slab whatever the query count.
"""

from __future__ import annotations

import numpy as np

try:  # faiss-gpu or faiss-cpu; the numpy path gives the same neighbours
    import faiss
except ImportError:  # pragma: no cover - exercised only where faiss is absent
    faiss = None


def _validate(queries: np.ndarray, gallery: np.ndarray, k: int, exclude_self: bool) -> None:
    if queries.ndim != 2 or gallery.ndim != 2:
        raise ValueError(f"queries and gallery must be 2-D [n, dim]; got {queries.shape} and {gallery.shape}")
    if queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries have dim {queries.shape[1]} but gallery has dim {gallery.shape[1]}")
    available = gallery.shape[0] - (1 if exclude_self else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k={k} is out of range: the gallery has {gallery.shape[0]} items, "
                         f"so k must be between 1 and {available}{' (self excluded)' if exclude_self else ''}")


def _search_block(block: np.ndarray, gallery: np.ndarray, k: int, index) -> tuple[np.ndarray, np.ndarray]:
    if index is not None:
        sims, ids = index.search(np.ascontiguousarray(block, dtype=np.float32), k)
        return ids.astype(np.int64), sims
    scores = block @ gallery.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)


def knn_graph(queries: np.ndarray, gallery: np.ndarray, k: int, query_ids: np.ndarray | None = None,
              block_size: int = 4096, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The k gallery items with the largest inner product for each query.

    queries [q, dim], gallery [n, dim] (normalise first for cosine). `query_ids` [q] gives each
    query's own row in the gallery, which is never returned as its neighbour (None: no exclusion).
    Returns (indices [q, k] int64 into the gallery, similarities [q, k] float32), best first.
    """
    exclude_self = query_ids is not None
    _validate(queries, gallery, k, exclude_self)
    if exclude_self and len(query_ids) != len(queries):
        raise ValueError(f"query_ids has {len(query_ids)} entries for {len(queries)} queries")
    use_faiss = backend == "faiss" or (backend == "auto" and faiss is not None)
    if use_faiss and faiss is None:
        raise RuntimeError("backend='faiss' requested but faiss is not installed (pip install faiss-cpu)")
    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    index = None
    if use_faiss:
        index = faiss.IndexFlatIP(gallery.shape[1])
        index.add(gallery)
    search_k = k + 1 if exclude_self else k
    out_ids = np.empty((len(queries), k), dtype=np.int64)
    out_sims = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), block_size):
        stop = min(start + block_size, len(queries))
        ids, sims = _search_block(np.asarray(queries[start:stop], dtype=np.float32), gallery, search_k, index)
        if exclude_self:
            ids, sims = _drop_self(ids, sims, np.asarray(query_ids[start:stop]), k)
        out_ids[start:stop], out_sims[start:stop] = ids, sims
    return out_ids, out_sims


def _drop_self(ids: np.ndarray, sims: np.ndarray, self_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own id from its k+1 results (or the last one if self was outranked by ties)."""
    is_self = ids == self_ids[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    keep = ~is_self
    return ids[keep].reshape(len(ids), k), sims[keep].reshape(len(ids), k)


def nested_knn(queries: np.ndarray, gallery: np.ndarray, k: int, gallery_sizes: list[int],
               query_ids: np.ndarray | None = None, order: np.ndarray | None = None,
               block_size: int = 65536) -> list[tuple[np.ndarray, np.ndarray]]:
    """kNN of each query in every nested gallery `order[:m]`, m in `gallery_sizes`, in one pass.

    The gallery is scanned once, block by block in `order` (default: row order), keeping each
    query's running top k and recording it at every size boundary, so a whole sweep costs about
    one search of the largest gallery. queries [q, dim]; `query_ids` [q] are the queries' own
    positions in the scan order (never their own neighbour). Returns, per size, (indices [q, k]
    into the scan order, similarities [q, k]), best first.
    """
    sizes = sorted(set(int(m) for m in gallery_sizes))
    n = len(gallery) if order is None else len(order)
    if not sizes or sizes[0] < 1 or sizes[-1] > n:
        raise ValueError(f"gallery sizes must lie between 1 and {n}; got {gallery_sizes}")
    _validate(queries, gallery[:1], 1, False)
    if query_ids is not None and (query_ids.max(initial=-1) >= sizes[0]):
        raise ValueError(f"every query must lie in the smallest gallery ({sizes[0]}); "
                         f"a query sits at position {int(query_ids.max())}")
    min_available = sizes[0] - (1 if query_ids is not None else 0)
    if not 1 <= k <= min_available:
        raise ValueError(f"k={k} is out of range for the smallest gallery of {sizes[0]}: k must be between 1 and {min_available}")
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best_ids = np.full((len(queries), k), -1, dtype=np.int64)
    best_sims = np.full((len(queries), k), -np.inf, dtype=np.float32)
    recorded = []
    start = 0
    for size in sizes:
        while start < size:
            stop = min(start + block_size, size)
            rows = np.arange(start, stop) if order is None else order[start:stop]
            scores = queries @ np.asarray(gallery[rows], dtype=np.float32).T
            if query_ids is not None:
                inside = (query_ids >= start) & (query_ids < stop)
                scores[np.flatnonzero(inside), query_ids[inside] - start] = -np.inf
            best_ids, best_sims = _merge_top_k(best_ids, best_sims, scores, start, k)
            start = stop
        recorded.append((best_ids.copy(), best_sims.copy()))
    return recorded


def _merge_top_k(best_ids, best_sims, scores, offset, k):
    """Fold a block of scores [q, b] (gallery positions offset..offset+b) into the running top k."""
    take = min(k, scores.shape[1])
    top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
    ids = np.concatenate([best_ids, top + offset], axis=1)
    sims = np.concatenate([best_sims, np.take_along_axis(scores, top, axis=1)], axis=1)
    # stable sort on (-similarity, position): ties go to the earlier gallery item, as in one search
    order = np.lexsort((ids, -sims), axis=1)[:, :k]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(sims, order, axis=1)
