"""Benchmark: the embedding pipeline against a naive one-sample-at-a-time loop, on the demo models.

Run on demand: `.venv/bin/python -m benchmarks.embed_throughput [--samples N]`. Both paths embed the
same stamps with the same encoders, side by side in one run; writes
benchmarks/results/embed_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from core.data import load_rgb
from core.data.tuxpaint import load_tuxpaint
from core.encoders import create_encoder
from core.features import extract_features

OUT = Path(__file__).parent / "results"


def naive(data, encoder) -> float:
    """Decode and embed one sample at a time, in one process: samples/s."""
    start = time.perf_counter()
    for sample in data.samples:
        encoder.encode([load_rgb(sample.image_path) if encoder.modality == "image" else sample.caption])
    return len(data) / (time.perf_counter() - start)


def pipeline(data, encoder, workers: int) -> float:
    """The product's path: batches, decoding in worker processes, sharded store: samples/s."""
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        extract_features(data, encoder, cache, workers=workers)
        return len(data) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args()
    data = load_tuxpaint(limit=args.samples)
    rows = []
    for name, workers in (("efficientnet_lite0", 0), ("efficientnet_lite0", 1), ("minilm_l6", 0)):
        encoder = create_encoder(name)
        encoder.encode([load_rgb(data.samples[0].image_path)] if encoder.modality == "image" else ["warm up"])
        slow, fast = naive(data, encoder), pipeline(data, encoder, workers)
        rows.append({"model": name, "modality": encoder.modality, "samples": len(data), "naive_per_s": slow,
                     "pipeline_per_s": fast, "speedup": fast / slow, "workers": workers, "batch_size": encoder.batch_size})
        print(rows[-1], flush=True)
    OUT.mkdir(exist_ok=True)
    meta = f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, {time.strftime('%Y-%m-%d')}"
    (OUT / "embed_throughput.json").write_text(json.dumps({"machine": meta, "results": rows}, indent=1))
    lines = [f"Embedding {len(data)} Tux Paint stamps on {meta}:", "",
             "| model | naive loop (samples/s) | pipeline (samples/s) | speed-up | pipeline settings |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['naive_per_s']:.1f} | {r['pipeline_per_s']:.1f} | {r['speedup']:.1f}x | "
              f"batch {r['batch_size']}, {r['workers']} decoding worker(s) |" for r in rows]
    (OUT / "embed_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    assert np.isfinite([r["speedup"] for r in rows]).all()


if __name__ == "__main__":
    main()
