"""Benchmark: the demo pipeline end to end on this machine, first run against cached re-run.

Run on demand: `.venv/bin/python -m benchmarks.demo_pipeline`. Writes
benchmarks/results/demo_pipeline.{json,md}; the README quotes the table.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from core.alignment import AlignmentConfig, align
from core.data import load_dataset
from core.encoders import create_encoder
from core.features import extract_features
from core.jobs import run_alignment

OUT = Path(__file__).parent / "results"


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """The machine's measured float32 matrix-multiply rate (numpy/BLAS), for context."""
    a = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    a @ a
    _, seconds = timed(lambda: [a @ a for _ in range(repeats)])
    return 2 * n ** 3 * repeats / seconds / 1e9


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        data, load_s = timed(lambda: load_dataset("tuxpaint", cache=cache))
        vision, text = create_encoder("efficientnet_lite0"), create_encoder("minilm_l6")
        fa, embed_a_s = timed(lambda: extract_features(data, vision, cache))
        fb, embed_b_s = timed(lambda: extract_features(data, text, cache))
        _, align_s = timed(lambda: align(fa, fb, AlignmentConfig()))
        _, first_s = timed(lambda: run_alignment(cache=cache))  # features cached: alignment + store + thumbnails
        _, cached_s = timed(lambda: run_alignment(cache=cache))  # everything cached
    n = len(data)
    rows = {
        "samples": n,
        "load and hash the data set (s)": load_s,
        "embed images, EfficientNet-Lite0, 9 layers (images/s)": n / embed_a_s,
        "embed captions, MiniLM-L6, 7 layers (captions/s)": n / embed_b_s,
        "align: 16 kNN graphs + 63 layer pairs + sweep with nulls (s)": align_s,
        "demo job with features cached (s)": first_s,
        "demo job fully cached (s)": cached_s,
        "measured float32 matmul rate (GFLOP/s)": matmul_gflops(),
    }
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
            "date": time.strftime("%Y-%m-%d")}
    OUT.mkdir(exist_ok=True)
    (OUT / "demo_pipeline.json").write_text(json.dumps({**meta, "results": rows}, indent=1))
    lines = [f"Demo pipeline on {meta['machine']} ({meta['date']}), all {n} stamps:", "",
             "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v:,.2f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in rows.items()]
    (OUT / "demo_pipeline.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
