"""Feature store: per-layer feature arrays on disk, keyed by a fingerprint of (data, model, preprocessing).

Layout of a finished set: `<cache>/features/<fingerprint>/layer_XX.npy` ([n, dim_l], float32 or
float16, memory-mappable) and `manifest.json`. While a job runs, rows are appended to
`<fingerprint>.partial/` in fixed-size shards, each written under a temporary name and renamed
when complete; a job killed at any point (kill -9 included) resumes after the last complete shard,
so no row is lost, duplicated or misaligned. When every shard is there, they are joined into one
file per layer and the folder is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.config import cache_dir
from core.data import PairedDataset
from core.data.media import MediaError, decode_media
from core.encoders import Encoder
from core.progress import ProgressFn

FORMAT_VERSION = 2
DTYPES = ("float32", "float16")


@dataclass
class FeatureSet:
    """Per-layer features of one model on one data set; `layers[l]` is [n, dim_l].

    `bad_rows` maps a row to the reason its sample could not be embedded (its features are NaN);
    the pairing of rows is never changed, so callers drop bad rows from both sides together.
    """

    fingerprint: str
    model: str
    modality: str
    layer_names: list[str]
    layers: list[np.ndarray]
    path: Path | None = None
    bad_rows: dict[int, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.layers[0].shape[0]

    def subset(self, rows: np.ndarray) -> "FeatureSet":
        """The same features restricted to `rows` (in memory; no longer a stored set, so nothing is cached beside it)."""
        return FeatureSet(self.fingerprint, self.model, self.modality, self.layer_names,
                          [np.asarray(layer[rows]) for layer in self.layers], None)


def feature_fingerprint(dataset: PairedDataset, encoder: Encoder, dtype: str = "float32") -> str:
    blob = json.dumps([FORMAT_VERSION, dataset.fingerprint(), encoder.fingerprint(), dtype])
    return hashlib.sha256(blob.encode()).hexdigest()


def load_feature_set(path: Path, mmap: bool = True) -> FeatureSet:
    manifest = json.loads((path / "manifest.json").read_text())
    layers = [np.load(path / f"layer_{i:02d}.npy", mmap_mode="r" if mmap else None) for i in range(len(manifest["layer_names"]))]
    bad = {int(row): reason for row, reason in manifest.get("bad_rows", {}).items()}
    return FeatureSet(manifest["fingerprint"], manifest["model"], manifest["modality"], manifest["layer_names"], layers, path, bad)


def check_modality(dataset: PairedDataset, encoder: Encoder) -> None:
    """A text encoder embeds the captions; any other must embed the data set's kind of media."""
    if encoder.modality not in ("text", dataset.media):
        raise ValueError(f"{encoder.name} embeds {encoder.modality}, but data set {dataset.name} pairs captions with "
                         f"{dataset.media}; pick a text or {dataset.media} model, or a data set of {encoder.modality}")


def _is_media(encoder: Encoder) -> bool:
    return encoder.modality != "text"


def _inputs(dataset: PairedDataset, encoder: Encoder, rows: list[int]):
    """The encoder's inputs for `rows`: media paths (decoded later) or caption strings."""
    if _is_media(encoder):
        return [dataset.samples[i].media_path for i in rows]
    return [dataset.samples[i].caption for i in rows]


@dataclass
class _Batch:
    """One batch on its way to the model: the encoder's inputs for the items that decoded, and why the others did not.

    `inputs` is either the raw items (for `encoder.encode`) or, when the encoder splits its work,
    what `encoder.preprocess` made of them (for `encoder.encode_inputs`).
    """

    size: int
    good: list[int]
    failed: dict[int, str]
    inputs: Any
    preprocessed: bool = False

    def run(self, encoder: Encoder) -> list[np.ndarray] | None:
        if not self.good:
            return None
        return encoder.encode_inputs(self.inputs) if self.preprocessed else encoder.encode(self.inputs)


class _MediaBatches:
    """Decodes (and, when the encoder splits its work, preprocesses) one batch of media paths; it runs in
    a DataLoader worker. A file that fails to decode becomes its reason, and the batch goes on without it."""

    def __init__(self, chunks: list[list], encoder: Encoder) -> None:
        self.chunks, self.media = chunks, encoder.modality
        self.options = encoder.decode_options()
        self.preprocess = encoder.preprocess if encoder.splits_preprocessing else None

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> _Batch:
        paths = self.chunks[index]
        decoded, good, failed = [], [], {}
        for offset, path in enumerate(paths):
            try:
                decoded.append(decode_media(path, self.media, **self.options))
                good.append(offset)
            except MediaError as exc:
                failed[offset] = str(exc)
        if self.preprocess is None or not decoded:
            return _Batch(len(paths), good, failed, decoded)
        return _Batch(len(paths), good, failed, self.preprocess(decoded), preprocessed=True)


def default_workers() -> int:
    """Decoding workers when none are asked for: every core but two (the model's), at most 8. None on two
    cores or fewer, where a worker only takes a core from the model (benchmarks/embed_throughput.py)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(8, cores - 2))


def _worker_init(_: int) -> None:
    """One intra-op thread per decoding worker: the workers are many, and the cores belong to the model."""
    import torch

    torch.set_num_threads(1)


def _batches(chunks: list[list], encoder: Encoder, workers: int):
    """Yield one `_Batch` per chunk of inputs, in order; media files are decoded (and preprocessed) by
    `workers` processes ahead of the model, into pinned memory when the model is on CUDA."""
    if not _is_media(encoder):
        for chunk in chunks:
            yield _Batch(len(chunk), list(range(len(chunk))), {}, chunk)
        return
    batches = _MediaBatches(chunks, encoder)
    if workers <= 0:
        yield from (batches[i] for i in range(len(batches)))
        return
    import torch
    from torch.utils.data import DataLoader

    device = getattr(encoder, "device", None)
    pin = batches.preprocess is not None and torch.device(device or "cpu").type == "cuda" and torch.cuda.is_available()
    # each item is already a whole batch; workers prepare upcoming batches while the model runs
    yield from DataLoader(batches, batch_size=None, num_workers=workers, prefetch_factor=2, persistent_workers=False,
                          collate_fn=_as_is, pin_memory=pin, worker_init_fn=_worker_init)


def _as_is(batch: _Batch) -> _Batch:
    """The DataLoader's collate step: keep the batch as it is (the default turns arrays into tensors and
    tuples into lists)."""
    return batch


@dataclass
class _ShardPlan:
    """What one shard embeds: each distinct item (image, clip, caption) of its rows once, in batches."""

    rows: range
    keys: list[str]  # per row: the key of its item
    first_of: dict[str, int]  # key -> offset (into rows) of its first row, in order of first appearance
    chunks: list[list]  # the encoder's inputs of the distinct items, a batch each

    @classmethod
    def make(cls, dataset: PairedDataset, encoder: Encoder, rows: range) -> "_ShardPlan":
        keys = [dataset.samples[i].media_key if _is_media(encoder) else dataset.samples[i].text_key for i in rows]
        first_of: dict[str, int] = {}
        for offset, key in enumerate(keys):
            first_of.setdefault(key, offset)
        items = _inputs(dataset, encoder, [rows[o] for o in first_of.values()])
        size = encoder.batch_size
        return cls(rows, keys, first_of, [items[i:i + size] for i in range(0, len(items), size)])

    def assemble(self, results: list[tuple[int, list[int], list[np.ndarray] | None]], failed: dict[int, str],
                 encoder: Encoder, dtype: str) -> tuple[list[np.ndarray], dict[int, str]]:
        """Per-row layers (NaN where the item failed) from the per-batch outputs, and the failed rows' reasons."""
        dims = next(([out.shape[1] for out in outputs] for _, _, outputs in results if outputs is not None), None)
        if dims is None:
            raise ValueError(f"{encoder.name}: no sample in rows {self.rows.start}-{self.rows.stop - 1} could be embedded; "
                             f"first failure: {next(iter(failed.values()), 'unknown')}")
        per_item = [np.full((len(self.first_of), dim), np.nan, dtype=np.float32) for dim in dims]
        for first, good, outputs in results:
            if outputs is not None:
                for layer, out in zip(per_item, outputs):
                    layer[np.asarray(good) + first] = out
        item_of_key = {key: index for index, key in enumerate(self.first_of)}
        gather = np.array([item_of_key[key] for key in self.keys])
        bad = {self.rows[offset]: failed[item_of_key[key]] for offset, key in enumerate(self.keys)
               if item_of_key[key] in failed}
        return [layer[gather].astype(dtype) for layer in per_item], bad


def _embed_shards(dataset: PairedDataset, encoder: Encoder, shard_rows: list[range], workers: int, dtype: str,
                  on_batch):
    """Yield (rows, layers, bad rows) for each shard in turn: layers [len(rows), dim_l] (NaN where a sample
    failed) and the failures' reasons.

    One stream of batches (one pool of decoding workers) serves every shard, so the pipeline does not
    drain and restart at shard boundaries; a batch never spans two shards. Many-to-many data: each
    distinct item among a shard's rows is embedded once and gathered.
    """
    plans = [_ShardPlan.make(dataset, encoder, rows) for rows in shard_rows]
    stream = _batches([chunk for plan in plans for chunk in plan.chunks], encoder, workers)
    for plan in plans:
        results: list[tuple[int, list[int], list[np.ndarray] | None]] = []  # (first item, good offsets, outputs)
        failed: dict[int, str] = {}  # item index -> reason
        item = 0
        for _ in plan.chunks:
            batch = next(stream)
            failed.update({item + i: why for i, why in batch.failed.items()})
            results.append((item, batch.good, batch.run(encoder)))
            item += batch.size
            on_batch(batch.size)
        on_batch(len(plan.rows) - len(plan.first_of))  # repeated items count as done
        yield (plan.rows, *plan.assemble(results, failed, encoder, dtype))


@dataclass
class EmbeddingJob:
    """One feature set being written: where its shards go and which are still missing.

    In-process and distributed (core.distributed) runs share it: any worker may embed any
    pending shard; a shard counts once its folder has been renamed into place.
    """

    dataset: PairedDataset
    encoder: Encoder
    fingerprint: str
    final: Path
    partial: Path
    shard_size: int
    dtype: str

    @property
    def shards(self) -> range:
        return range((len(self.dataset) + self.shard_size - 1) // self.shard_size)

    def rows(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, len(self.dataset)))

    def is_done(self, shard: int) -> bool:
        return (self.partial / f"shard_{shard:06d}" / "done.json").exists()

    def pending(self) -> list[int]:
        return [s for s in self.shards if not self.is_done(s)]

    def embed_shard(self, shard: int, workers: int = 0, on_batch=lambda count: None) -> None:
        """Embed one shard's rows and move them into place atomically (a crash leaves only a .tmp folder)."""
        self.embed_shards([shard], workers, on_batch)

    def embed_shards(self, shards: list[int], workers: int = 0, on_batch=lambda count: None) -> None:
        """Embed `shards` in turn, one stream of batches for all, each moved into place as soon as it is done."""
        stream = _embed_shards(self.dataset, self.encoder, [self.rows(s) for s in shards], workers, self.dtype, on_batch)
        for shard, (rows, layers, bad) in zip(shards, stream):
            self._write_shard(shard, rows, layers, bad)

    def _write_shard(self, shard: int, rows: range, layers: list[np.ndarray], bad: dict[int, str]) -> None:
        folder = self.partial / f"shard_{shard:06d}"
        staging = folder.with_name(folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for i, layer in enumerate(layers):
            np.save(staging / f"layer_{i:02d}.npy", layer)
        (staging / "done.json").write_text(json.dumps({"rows": [rows.start, rows.stop], "bad_rows": bad}))
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)

    def finish(self) -> FeatureSet:
        return _finish(self.dataset, self.encoder, self.partial, self.final, self.fingerprint, self.shards, self.dtype)


def start_job(dataset: PairedDataset, encoder: Encoder, cache: str | Path | None = None, dtype: str = "float32",
              shard_size: int | None = None) -> EmbeddingJob | FeatureSet:
    """The cached FeatureSet if this (data, model, preprocessing, dtype) is done, else the job to run or resume."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    check_modality(dataset, encoder)
    fingerprint = feature_fingerprint(dataset, encoder, dtype)
    final = cache_dir(cache) / "features" / fingerprint
    if (final / "manifest.json").exists():
        return load_feature_set(final)
    shard_size = shard_size or max(encoder.batch_size * 32, 1024)
    shard_size = max(encoder.batch_size, shard_size // encoder.batch_size * encoder.batch_size)
    partial = final.with_name(final.name + ".partial")
    meta_path = partial / "meta.json"
    meta = {"fingerprint": fingerprint, "shard_size": shard_size, "n": len(dataset)}
    if not meta_path.exists() or json.loads(meta_path.read_text()) != meta:
        shutil.rmtree(partial, ignore_errors=True)  # a partial set of another shape cannot be resumed
        partial.mkdir(parents=True)
        meta_path.write_text(json.dumps(meta))
    return EmbeddingJob(dataset, encoder, fingerprint, final, partial, shard_size, dtype)


def extract_features(dataset: PairedDataset, encoder: Encoder, cache: str | Path | None = None,
                     progress: ProgressFn | None = None, dtype: str = "float32", shard_size: int | None = None,
                     workers: int | None = None) -> FeatureSet:
    """Embed every sample of `dataset` with `encoder`, resuming a killed job, or return the cached set.

    Rows are written in shards of `shard_size` samples (a multiple of the batch size); `workers`
    processes (default: `default_workers()`) decode media files ahead of the model; features are stored as `dtype`.
    """
    workers = default_workers() if workers is None else workers
    job = start_job(dataset, encoder, cache, dtype, shard_size)
    if isinstance(job, FeatureSet):
        return job
    n = len(dataset)
    stage = f"embed {encoder.modality} ({encoder.name})"
    embedded = n - sum(len(job.rows(s)) for s in job.pending())
    if progress is not None:
        progress(stage, embedded, n)

    def advance(count: int) -> None:
        nonlocal embedded
        embedded += count
        if progress is not None:
            progress(stage, embedded, n)

    job.embed_shards(job.pending(), workers, advance)
    return job.finish()


def _finish(dataset, encoder, partial: Path, final: Path, fingerprint: str, shards: range, dtype: str) -> FeatureSet:
    """Join the shards into one memory-mappable file per layer, check them, and move the set into place."""
    first = partial / f"shard_{0:06d}"
    n_layers = len(list(first.glob("layer_*.npy")))
    dims = [np.load(first / f"layer_{i:02d}.npy", mmap_mode="r").shape[1] for i in range(n_layers)]
    n = len(dataset)
    bad: dict[int, str] = {}
    for i, dim in enumerate(dims):
        out = np.lib.format.open_memmap(partial / f"layer_{i:02d}.npy", mode="w+", dtype=dtype, shape=(n, dim))
        for shard in shards:
            folder = partial / f"shard_{shard:06d}"
            start, stop = json.loads((folder / "done.json").read_text())["rows"]
            out[start:stop] = np.load(folder / f"layer_{i:02d}.npy")
        out.flush()
        del out
    for shard in shards:
        bad.update({int(r): why for r, why in json.loads((partial / f"shard_{shard:06d}" / "done.json").read_text())["bad_rows"].items()})
    for i, name in enumerate(encoder.layer_names):
        layer = np.load(partial / f"layer_{i:02d}.npy", mmap_mode="r")
        for start in range(0, n, 65536):
            block = np.asarray(layer[start:start + 65536])
            bad_block = ~np.isfinite(block).all(axis=1)
            unexplained = [start + int(r) for r in np.flatnonzero(bad_block) if start + int(r) not in bad]
            if unexplained:
                raise ValueError(f"{encoder.name} layer {name}: non-finite features for {len(unexplained)} samples "
                                 f"(first: {dataset.samples[unexplained[0]].sample_id})")
    manifest = {
        "fingerprint": fingerprint, "format_version": FORMAT_VERSION, "model": encoder.name, "modality": encoder.modality,
        "layer_names": list(encoder.layer_names), "dims": dims, "dtype": dtype, "n": n, "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(), "encoder_config": json.loads(json.dumps(encoder.config(), default=str)),
        "bad_rows": {str(r): why for r, why in sorted(bad.items())},
    }
    for shard in shards:
        shutil.rmtree(partial / f"shard_{shard:06d}")
    (partial / "meta.json").unlink()
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return load_feature_set(final)


def import_reference(path: str | Path, name: str, modality: str, cache: str | Path | None = None) -> FeatureSet:
    """Bring a reference-code feature file (a torch file holding `feats` [n, layers, dim]) into the store.

    Loaded with weights_only=True (no code runs); keyed by the file's content hash.
    """
    import torch

    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file
        raise ValueError(f"{path}: not a readable torch file ({exc.__class__.__name__}: {exc})") from exc
    feats = payload.get("feats") if isinstance(payload, dict) else None
    if feats is None or getattr(feats, "ndim", 0) != 3:
        raise ValueError(f"{path}: expected a dict with 'feats' of shape [n, layers, dim], got "
                         f"{type(payload).__name__}{'' if feats is None else ' with feats ' + str(tuple(feats.shape))}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    fingerprint = hashlib.sha256(json.dumps([FORMAT_VERSION, "reference", digest, name]).encode()).hexdigest()
    final = cache_dir(cache) / "features" / fingerprint
    if not (final / "manifest.json").exists():
        array = feats.float().numpy()
        staging = final.with_name(final.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for i in range(array.shape[1]):
            np.save(staging / f"layer_{i:02d}.npy", np.ascontiguousarray(array[:, i]))
        manifest = {"fingerprint": fingerprint, "format_version": FORMAT_VERSION, "model": name, "modality": modality,
                    "layer_names": [f"layer{i}" for i in range(array.shape[1])], "dims": [array.shape[2]] * array.shape[1],
                    "dtype": "float32", "n": array.shape[0], "source": str(path), "source_sha256": digest, "bad_rows": {}}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    return load_feature_set(final)


def export_features(features: FeatureSet, out: str | Path) -> Path:
    """Write a feature set to `.npy` ([n, layers, dim] when every layer has one width, else one
    `<stem>.layerXX.npy` per layer) or `.parquet` (a `row` column and one list column per layer)."""
    out = Path(out)
    if out.suffix == ".npy":
        dims = {layer.shape[1] for layer in features.layers}
        if len(dims) == 1:
            np.save(out, np.stack([np.asarray(layer) for layer in features.layers], axis=1))
        else:
            for i, layer in enumerate(features.layers):
                np.save(out.with_name(f"{out.stem}.layer{i:02d}.npy"), np.asarray(layer))
        return out
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {"row": pa.array(np.arange(features.n))}
        for name, layer in zip(features.layer_names, features.layers):
            values = np.asarray(layer)
            columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])
        pq.write_table(pa.table(columns), out)
        return out
    raise ValueError(f"{out}: export to .npy or .parquet")
