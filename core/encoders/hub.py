"""Where weights come from: a local folder or file, or a Hugging Face hub id already in the local cache.

Encoders resolve their weights when created (cheap: a few stat calls), so a missing model fails
at once with instructions instead of deep inside a feature-extraction job. Nothing here downloads;
with network access (HF_HUB_OFFLINE unset) an uncached hub id is left for the library to fetch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from core.encoders.base import file_sha256

HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt")


class WeightsNotFound(FileNotFoundError):
    """A model's weights are neither a local path nor in the local Hugging Face cache."""


@dataclass(frozen=True)
class WeightsSource:
    """`location`: a local folder or file to load from, or (online only) a hub id to download.
    `identity`: what the features' fingerprint records about the weights."""

    location: str
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return Path(self.location).exists()


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def missing_weights_message(encoder: str, hub_id: str, filename: str | None = None) -> str:
    from huggingface_hub import constants

    what = f"{hub_id} {filename}" if filename else hub_id
    return (
        f"encoder {encoder!r}: weights for {hub_id!r} were not found locally "
        f"(Hugging Face cache {constants.HF_HUB_CACHE}; offline mode: {hub_offline()}). "
        f"On a machine with internet access run `hf download {what}` (gated models need `hf auth login` "
        f"and accepting the licence on huggingface.co first), then copy the cache folder "
        f"models--{hub_id.replace('/', '--')} into {constants.HF_HUB_CACHE} here (or point HF_HUB_CACHE at it); "
        f"or `hf download {what} --local-dir DIR` and pass the local copy instead of the hub id (the folder for "
        f"transformers models, the weights file as weights= for timm and pretrained= for open_clip)."
    )


def local_weights_identity(path: Path) -> dict[str, Any]:
    """Content hashes of a local weights file, or of every weights file in a folder."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    return {"path_name": path.name, "weights_sha256": [file_sha256(f) for f in files] or None}


def locate_weights(source: str | Path, encoder: str, files: Sequence[str] = ("config.json",),
                   revision: str | None = None) -> WeightsSource:
    """Resolve `source` (a local folder/file or a hub id) without loading or downloading anything.

    For a hub id the first of `files` found in the cache pins the snapshot (its commit is the
    identity); for "config.json" the snapshot must also hold weights. Raises WeightsNotFound offline.
    """
    path = Path(source).expanduser()
    if path.exists():
        return WeightsSource(str(path), local_weights_identity(path))
    source = str(source)
    if not HUB_ID.match(source):
        raise FileNotFoundError(f"encoder {encoder!r}: {source!r} is neither an existing path nor a hub id (org/name)")
    from huggingface_hub import try_to_load_from_cache

    for filename in files:
        cached = try_to_load_from_cache(source, filename, revision=revision)
        if isinstance(cached, str):
            snapshot = Path(cached).parent
            if filename == "config.json" and not _has_weights(snapshot):
                continue
            if filename == "config.json":
                return WeightsSource(str(snapshot), {"hub_id": source, "revision": snapshot.name})
            return WeightsSource(cached, {"hub_id": source, "revision": snapshot.name, "file": filename})
    if hub_offline():
        raise WeightsNotFound(missing_weights_message(encoder, source, None if files[0] == "config.json" else files[0]))
    return WeightsSource(source, {"hub_id": source, "revision": revision or "main"})


def _has_weights(snapshot: Path) -> bool:
    index = next(iter(snapshot.glob("*.index.json")), None)
    if index is not None:
        import json

        shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        return all((snapshot / shard).exists() for shard in shards)
    return any(p.suffix in WEIGHT_SUFFIXES for p in snapshot.iterdir())
