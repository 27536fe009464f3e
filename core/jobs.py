"""Jobs that chain the stages: data set -> encoders -> features -> alignment -> result store.

The dashboard and the CLI call these; both pass a ProgressFn to show progress.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from core.alignment import AlignmentConfig, align
from core.config import cache_dir, results_db_path
from core.data import PairedDataset, Skipped, load_dataset, media_thumbnail
from core.encoders import create_encoder_for
from core.features import FeatureSet, extract_features
from core.progress import ProgressFn, track
from core import results

DEMO = {"dataset": "tuxpaint", "model_a": "efficientnet_lite0", "model_b": "minilm_l6"}


def drop_unembedded(data: PairedDataset, features: list[FeatureSet]) -> tuple[PairedDataset, list[FeatureSet]]:
    """Drop the pairs that either model could not embed (from the data and every feature set alike), as skipped."""
    bad = {row: why for fs in features for row, why in fs.bad_rows.items()}
    if not bad:
        return data, features
    keep = np.array([i for i in range(len(data)) if i not in bad])
    skipped = [Skipped(data.samples[i].sample_id, str(data.samples[i].media_path), why) for i, why in sorted(bad.items())]
    return data.subset(keep, skipped), [fs.subset(keep) for fs in features]


def run_alignment(dataset: str = DEMO["dataset"], model_a: str = DEMO["model_a"], model_b: str = DEMO["model_b"],
                  limit: int | None = None, config: AlignmentConfig = AlignmentConfig(), cache: Path | None = None,
                  force: bool = False, progress: ProgressFn | None = None, device: str = "cpu",
                  dataset_options: dict | None = None, model_options: tuple[dict, dict] = ({}, {})) -> str:
    """Embed `dataset` with both models, align them, store everything; returns the run id.

    Model A embeds the data set's media (images, audio or video), model B the captions; "hf:" and
    "open_clip:" names take that modality. `model_options` go to each encoder (dtype, device_map, pooling, ...).

    Nothing is recomputed that is cached under the same fingerprints (features, run), unless `force`.
    """
    cache = cache_dir(cache)
    db = results_db_path(cache)
    data = load_dataset(dataset, limit=limit, cache=cache, **(dataset_options or {}))
    features = [extract_features(data, create_encoder_for(name, modality, **{"device": device, **options}), cache, progress)
                for name, modality, options in ((model_a, data.media, model_options[0]), (model_b, "text", model_options[1]))]
    run_id = hashlib.sha256(json.dumps([f.fingerprint for f in features] + [config.fingerprint()]).encode()).hexdigest()[:16]
    if not force and results.has_run(run_id, db):
        return run_id
    data, features = drop_unembedded(data, features)
    thumbs_dir = cache / "thumbs"
    thumbs = [str(media_thumbnail(s.media_path, data.media, thumbs_dir / s.media_sha256[:2], s.media_sha256))
              for s in track(data.samples, "thumbnails", len(data), progress)]
    result = align(*features, config=config, progress=progress)
    fa, fb = features
    tables = {
        "layers": pd.DataFrame(
            [{"side": side, "layer": i, "name": name, "dim": int(fs.layers[i].shape[1])}
             for side, fs in (("a", fa), ("b", fb)) for i, name in enumerate(fs.layer_names)]),
        "samples": pd.DataFrame({
            "idx": np.arange(len(data)), "sample_id": [s.sample_id for s in data.samples], "caption": data.captions,
            "category": [s.category for s in data.samples], "media_path": [str(s.media_path) for s in data.samples],
            "thumb_path": thumbs}),
        "skipped": pd.DataFrame([asdict(s) for s in data.skipped], columns=["sample_id", "path", "reason"]),
        "layer_scores": pd.DataFrame(
            [{"k": k, "layer_a": i, "layer_b": j, "score": float(m[i, j])}
             for k, m in result.layer_scores.items() for i in range(m.shape[0]) for j in range(m.shape[1])]),
        "best_pairs": pd.DataFrame(
            [{"k": k, "layer_a": la, "layer_b": lb, "score": float(result.layer_scores[k][la, lb])}
             for k, (la, lb) in result.best_pairs.items()]),
        "curve": pd.DataFrame([asdict(p) for p in result.curve]),
        "sample_scores": pd.DataFrame(
            [{"k": k, "idx": i, "overlap": float(v)} for k, vals in result.sample_scores.items() for i, v in enumerate(vals)]),
        "neighbours": pd.concat([results.neighbour_frame("a", result.neighbours_a),
                                 results.neighbour_frame("b", result.neighbours_b)], ignore_index=True),
    }
    run = {"run_id": run_id, "dataset": data.name, "dataset_fingerprint": data.fingerprint(), "media": data.media,
           "model_a": fa.model, "model_b": fb.model, "modality_a": fa.modality, "modality_b": fb.modality,
           "features_a": fa.fingerprint, "features_b": fb.fingerprint, "n": len(data), "metric": config.metric,
           "config": {**asdict(config), "limit": limit}}
    results.write_run(run, tables, db)
    return run_id


def measure_lm_quality(model: str, corpus: str | Path, cache: Path | None = None, max_length: int = 1024,
                       stride: int = 512, device: str = "cpu") -> dict:
    """Bits per byte of causal LM `model` on `corpus` (a text or .jsonl file), stored with the model; returns the row."""

    from core.encoders.lm_quality import bits_per_byte, read_corpus

    corpus = Path(corpus)
    if not corpus.is_file():
        raise FileNotFoundError(f"{corpus}: corpus not found (a text file, or .jsonl with a 'text' field per line)")
    encoder = create_encoder_for(model, "text", device=device)
    documents = read_corpus(corpus)
    row = {"model": model, "model_fingerprint": encoder.fingerprint(), "corpus": str(corpus),
           "corpus_sha256": hashlib.sha256(corpus.read_bytes()).hexdigest(),
           "corpus_bytes": sum(len(d.encode("utf-8")) for d in documents),
           "bits_per_byte": bits_per_byte(encoder, documents, max_length=max_length, stride=stride),
           "max_length": max_length, "stride": stride}
    results.write_model_quality(row, results_db_path(cache_dir(cache)))
    return row
