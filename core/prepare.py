"""Feature preprocessing as the reference code does it: clamp at the q-quantile of |x|, then L2-normalise rows.

`PreparedRows` applies it lazily, block by block, so features memory-mapped from disk (larger than
RAM) stream through the kNN search without ever being loaded whole.
"""

from __future__ import annotations

import numpy as np

DEFAULT_CLAMP_QUANTILE = 0.95
QUANTILE_SAMPLE = 10_000_000  # |x| values; beyond this the clamp bound is estimated from a sample
READ_BLOCK = 65536


def clamp_bound(features: np.ndarray, quantile: float, sample: int = QUANTILE_SAMPLE, seed: int = 0) -> float:
    """The `quantile` of |x| over all values of `features` [n, dim]: exact up to `sample` values, else from a row sample."""
    n, dim = features.shape
    if n * dim <= sample:
        return float(np.quantile(np.abs(np.asarray(features, dtype=np.float32)), quantile))
    rows = np.sort(np.random.default_rng(seed).choice(n, size=max(1, sample // dim), replace=False))
    return float(np.quantile(np.abs(np.asarray(features[rows], dtype=np.float32)), quantile))


class PreparedRows:
    """Rows of `features` [n, dim] (any array, memmaps included), clamped and L2-normalised when read.

    `take(rows)` returns float32 [len(rows), dim] with unit rows; a NaN, inf or all-zero row is an
    error naming the row, raised when that row is first read.
    """

    def __init__(self, features: np.ndarray, clamp_quantile: float | None = DEFAULT_CLAMP_QUANTILE,
                 name: str = "features") -> None:
        if getattr(features, "ndim", None) != 2:
            raise ValueError(f"{name}: expected a 2-D array [n, dim], got shape {getattr(features, 'shape', None)}")
        self.features, self.name = features, name
        self.bound = None if clamp_quantile is None else self._finite_bound(clamp_quantile)

    def _finite_bound(self, quantile: float) -> float:
        bound = clamp_bound(self.features, quantile)
        if not np.isfinite(bound):  # a NaN poisons the quantile: find the row to name it
            for start in range(0, len(self), READ_BLOCK):
                self.take(slice(start, min(start + READ_BLOCK, len(self))), first_row=start)
        return bound

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    def take(self, rows, first_row: int | None = None) -> np.ndarray:
        """Prepared rows: `rows` is a slice or an index array. `first_row` names rows of a slice in errors."""
        x = self.features[rows]
        # one writable float32 copy, then everything in place (blocks are large: copies cost time and memory)
        x = np.array(x, dtype=np.float32) if isinstance(rows, slice) or x.dtype != np.float32 or not x.flags.writeable else x
        squares = np.einsum("ij,ij->i", x, x)
        if not np.isfinite(squares).all():
            finite = np.isfinite(x).all(axis=1)
            if not finite.all():
                bad = np.flatnonzero(~finite)
                raise ValueError(f"{self.name}: {len(bad)} rows hold NaN or inf (first: row {self._position(rows, first_row, bad[0])})")
        if self.bound is not None:
            np.clip(x, -self.bound, self.bound, out=x)
            squares = np.einsum("ij,ij->i", x, x)
        if not np.isfinite(squares).all():  # finite but huge values overflow float32 squares
            squares = np.einsum("ij,ij->i", x.astype(np.float64), x.astype(np.float64))
        zero = squares == 0
        if zero.any():
            bad = np.flatnonzero(zero)
            raise ValueError(f"{self.name}: {len(bad)} rows are all zero and have no direction (first: row {self._position(rows, first_row, bad[0])})")
        x /= np.sqrt(squares).astype(np.float32)[:, None]
        return x

    def _position(self, rows, first_row: int | None, offset: int) -> int:
        """The row number (in `features`) of entry `offset` of a block read with `rows`."""
        if first_row is not None:
            return first_row + int(offset)
        if isinstance(rows, slice):
            return rows.indices(len(self))[0] + int(offset) * (rows.step or 1)
        return int(np.asarray(rows)[offset])

    def all(self) -> np.ndarray:
        """Every row, prepared, in memory: [n, dim] float32."""
        return self.take(slice(None), first_row=0)
