"""Feature store: per-layer feature arrays on disk, keyed by a fingerprint of (data, model, preprocessing).

Layout: `<cache>/features/<fingerprint>/layer_XX.npy` (float32 [n, dim_l], memory-mappable) and
`manifest.json`. A set is written under a temporary name and renamed when complete, so a crash
never leaves a half-written set that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.config import cache_dir
from core.data import PairedDataset, load_rgb
from core.encoders import Encoder
from core.progress import ProgressFn, track

FORMAT_VERSION = 1


@dataclass
class FeatureSet:
    """Per-layer features of one model on one data set; `layers[l]` is [n, dim_l]."""

    fingerprint: str
    model: str
    modality: str
    layer_names: list[str]
    layers: list[np.ndarray]
    path: Path | None = None

    @property
    def n(self) -> int:
        return self.layers[0].shape[0]


def feature_fingerprint(dataset: PairedDataset, encoder: Encoder) -> str:
    blob = json.dumps([FORMAT_VERSION, dataset.fingerprint(), encoder.fingerprint()])
    return hashlib.sha256(blob.encode()).hexdigest()


def load_feature_set(path: Path, mmap: bool = True) -> FeatureSet:
    manifest = json.loads((path / "manifest.json").read_text())
    layers = [np.load(path / f"layer_{i:02d}.npy", mmap_mode="r" if mmap else None) for i in range(len(manifest["layer_names"]))]
    return FeatureSet(manifest["fingerprint"], manifest["model"], manifest["modality"], manifest["layer_names"], layers, path)


def extract_features(dataset: PairedDataset, encoder: Encoder, cache: str | Path | None = None,
                     progress: ProgressFn | None = None) -> FeatureSet:
    """Embed every sample of `dataset` with `encoder`, or return the cached result.

    Images are decoded here (composited on white), captions passed as strings.
    """
    fingerprint = feature_fingerprint(dataset, encoder)
    final = cache_dir(cache) / "features" / fingerprint
    if (final / "manifest.json").exists():
        return load_feature_set(final)
    samples = dataset.samples
    batches = [samples[i:i + encoder.batch_size] for i in range(0, len(samples), encoder.batch_size)]
    per_layer: list[list[np.ndarray]] = [[] for _ in encoder.layer_names]
    stage = f"embed {encoder.modality} ({encoder.name})"
    for batch in track(batches, stage, len(batches), progress):
        inputs = [load_rgb(s.image_path) for s in batch] if encoder.modality == "image" else [s.caption for s in batch]
        for store, feats in zip(per_layer, encoder.encode(inputs)):
            store.append(np.asarray(feats, dtype=np.float32))
    layers = [np.concatenate(chunks) for chunks in per_layer]
    for name, layer in zip(encoder.layer_names, layers):
        bad = ~np.isfinite(layer).all(axis=1)
        if bad.any():
            first = samples[int(np.flatnonzero(bad)[0])].sample_id
            raise ValueError(f"{encoder.name} layer {name}: non-finite features for {int(bad.sum())} samples (first: {first})")
    staging = final.with_name(final.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for i, layer in enumerate(layers):
        np.save(staging / f"layer_{i:02d}.npy", layer)
    manifest = {
        "fingerprint": fingerprint,
        "format_version": FORMAT_VERSION,
        "model": encoder.name,
        "modality": encoder.modality,
        "layer_names": encoder.layer_names,
        "dims": [int(layer.shape[1]) for layer in layers],
        "n": len(samples),
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(),
        "encoder_config": json.loads(json.dumps(encoder.config(), default=str)),
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return load_feature_set(final)
