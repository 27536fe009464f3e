"""Embedding on Ray: the same sharded, resumable job as `core.features.extract_features`, spread over actors.

Ray Data runs an actor pool (`map_batches`, one shard per call, `gpus_per_actor` GPUs each); every
actor builds the encoder once and writes finished shards straight into the feature store, so a
run that dies (driver or actor) resumes from the shards already in place, with or without Ray.
Without a cluster address, Ray starts locally on this machine.
"""

from __future__ import annotations

from pathlib import Path

from core.data import PairedDataset
from core.encoders import create_encoder
from core.features import FeatureSet, start_job
from core.progress import ProgressFn


class _ShardEmbedder:
    """A Ray actor: one encoder, many shards."""

    def __init__(self, dataset: PairedDataset, encoder_name: str, encoder_kwargs: dict, cache: str, dtype: str,
                 shard_size: int, device: str, workers: int) -> None:
        self.workers = workers
        encoder = create_encoder(encoder_name, device=device, **encoder_kwargs)
        job = start_job(dataset, encoder, cache, dtype, shard_size)
        if isinstance(job, FeatureSet):  # finished meanwhile by another run
            self.job = None
        else:
            self.job = job

    def __call__(self, batch: dict) -> dict:
        for shard in batch["shard"]:
            if self.job is not None and not self.job.is_done(int(shard)):
                self.job.embed_shard(int(shard), self.workers)
        return {"shard": batch["shard"]}


def extract_features_ray(dataset: PairedDataset, encoder_name: str, cache: str | Path | None = None,
                         dtype: str = "float32", shard_size: int | None = None, actors: int = 1,
                         gpus_per_actor: float = 0, cpus_per_actor: float | None = None, address: str | None = None,
                         progress: ProgressFn | None = None, encoder_kwargs: dict | None = None,
                         workers: int = 0) -> FeatureSet:
    """Embed `dataset` with the registered encoder `encoder_name` on a Ray actor pool; returns the FeatureSet.

    `address`: a running cluster ("auto" or "ray://host:port"); None starts Ray locally. Each actor
    decodes media in `workers` processes of its own, and reserves `cpus_per_actor` CPUs (default:
    one, plus one per worker).
    """
    import ray

    from core.config import cache_dir

    cache = str(cache_dir(cache))
    encoder_kwargs = encoder_kwargs or {}
    cpus_per_actor = 1 + workers if cpus_per_actor is None else cpus_per_actor
    device = "cuda" if gpus_per_actor else "cpu"
    job = start_job(dataset, create_encoder(encoder_name, device="cpu", **encoder_kwargs), cache, dtype, shard_size)
    if isinstance(job, FeatureSet):
        return job
    pending = job.pending()
    stage = f"embed {job.encoder.modality} ({encoder_name}) on Ray"
    if pending:
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                     **({} if address else {"num_cpus": max(1, int(actors * cpus_per_actor))}))
        try:
            shards = ray.data.from_items([{"shard": s} for s in pending])
            done = shards.map_batches(
                _ShardEmbedder, batch_size=1, concurrency=actors, num_gpus=gpus_per_actor, num_cpus=cpus_per_actor,
                fn_constructor_kwargs={"dataset": dataset, "encoder_name": encoder_name, "encoder_kwargs": encoder_kwargs,
                                       "cache": cache, "dtype": dtype, "shard_size": job.shard_size, "device": device,
                                       "workers": workers})
            finished = 0
            for _ in done.iter_rows():  # streams as actors finish shards
                finished += 1
                if progress is not None:
                    progress(stage, finished, len(pending))
        finally:
            if started_here:
                ray.shutdown()
    missing = job.pending()
    if missing:
        raise RuntimeError(f"Ray finished but shards {missing[:5]} are missing; run again to resume them")
    return job.finish()
