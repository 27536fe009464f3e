"""GPU benchmark (for a machine with CUDA): the nested-gallery sweep at 1M and 10M, TFLOP/s vs the card.

Run on demand on a GPU server: `python -m benchmarks.gpu_knn` (`--quick` runs tiny sizes, on the
CPU too). 1,024 queries, k = 10, d = 384, galleries generated block by block (no host copy of the
whole gallery); the torch back end scores each block on the GPU. Writes
benchmarks/results/gpu_knn.{json,md}: achieved TFLOP/s against the card's measured float32
matmul rate for the same shapes, and the sweep against one search of the largest gallery.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from core.knn import nested_knn

OUT = Path(__file__).parent / "results"


class SyntheticRows:
    """A deterministic [n, dim] unit-row gallery made on the device, block by block from each block's seed.

    Serves torch tensors (the torch back end takes them as they are), so the host never holds the gallery.
    """

    block = 1 << 18

    def __init__(self, n: int, dim: int, device: torch.device, seed: int = 0) -> None:
        self.n, self.dim, self.device, self.seed = n, dim, device, seed

    def __len__(self) -> int:
        return self.n

    def take(self, rows) -> np.ndarray:
        if not isinstance(rows, slice):
            raise TypeError("SyntheticRows is read in scan order (slices) only")
        start, stop, _ = rows.indices(self.n)
        parts = []
        for first in range(start - start % self.block, stop, self.block):
            generator = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + first)
            x = torch.randn(min(self.block, self.n - first), self.dim, generator=generator, device=self.device)
            x /= x.norm(dim=1, keepdim=True)
            parts.append(x[max(start - first, 0):stop - first])
        return torch.cat(parts)


def matmul_tflops(device: torch.device, rows: int, dim: int, cols: int = 1 << 20, repeats: int = 10) -> float:
    a = torch.randn(rows, dim, device=device)
    b = torch.randn(cols, dim, device=device)
    a @ b.T
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b.T
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * rows * dim * cols * repeats / (time.perf_counter() - start) / 1e12


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    queries, dim, k = 1024, 384, 10
    largest = [65_536, 262_144] if args.quick else [1_048_576, 10_485_760]
    rate = matmul_tflops(device, queries, dim, cols=min(1 << 20, largest[0]))
    rows_out = []
    for n in largest:
        gallery = SyntheticRows(n, dim, device)
        query_rows = gallery.take(slice(0, queries)).cpu().numpy()
        sizes = sorted({queries, *[s for s in (10_000, 100_000, 1_000_000, 5_000_000, n) if s <= n]})
        block = 1 << 20 if device.type == "cuda" else 1 << 16
        run = lambda s: nested_knn(query_rows, gallery, k, s, np.arange(queries), backend="torch", gallery_block=block)  # noqa: E731
        run([queries, 4 * queries])
        start = time.perf_counter()
        run(sizes)
        sweep_s = time.perf_counter() - start
        start = time.perf_counter()
        run([queries, n])
        single_s = time.perf_counter() - start
        achieved = 2 * queries * n * dim / sweep_s / 1e12
        row = {"n": n, "sizes": sizes, "sweep_s": sweep_s, "single_s": single_s, "sweep_over_single": sweep_s / single_s,
               "achieved_tflops": achieved, "matmul_tflops": rate, "share_of_matmul": achieved / rate}
        rows_out.append(row)
        print(row, flush=True)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    OUT.mkdir(exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (OUT / f"gpu_knn{suffix}.json").write_text(json.dumps({"device": name, "results": rows_out}, indent=1))
    lines = [f"Device: {name}; 1,024 queries, d = 384, k = 10, torch back end, galleries generated block by block.", "",
             "| largest gallery | sweep (s) | one search (s) | sweep / single | achieved TFLOP/s | matmul TFLOP/s | share |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n']:,} | {r['sweep_s']:.2f} | {r['single_s']:.2f} | {r['sweep_over_single']:.2f} | "
              f"{r['achieved_tflops']:.1f} | {r['matmul_tflops']:.1f} | {r['share_of_matmul']:.0%} |" for r in rows_out]
    (OUT / f"gpu_knn{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
