"""The encoder interface and its registry (after timm's create_model).

Three ways to name an encoder in `create_encoder`:
- a registered name (`register_encoder`), e.g. the offline demo models "minilm_l6";
- a preset, one JSON file under `core/encoders/presets/` (e.g. "dinov2_base");
- a family prefix and a model: "hf:<hub id or folder>" (with `modality=`), "timm:<arch.tag>",
  "open_clip:<model name>" (with `pretrained=` and `modality=`).
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ENCODERS: dict[str, Callable[..., "Encoder"]] = {}
FAMILIES: dict[str, Callable[..., "Encoder"]] = {}
MODALITIES = ("image", "text", "audio", "video")
# "hf:" picks its family from the modality; the other prefixes name a family directly.
PREFIXES = {"hf": None, "timm": "timm_vit", "open_clip": "open_clip", "st": "sentence_transformers"}
HF_FAMILY_BY_MODALITY = {"text": "hf_text", "image": "hf_vision", "audio": "hf_audio", "video": "hf_video"}


def _registrar(table: dict[str, Callable[..., "Encoder"]], name: str):
    def wrap(factory):
        table[name] = factory
        return factory

    return wrap


def register_encoder(name: str):
    """Class or factory decorator: makes `create_encoder(name)` build it."""
    return _registrar(ENCODERS, name)


def register_family(name: str):
    """Class or factory decorator for a loader family: `factory(model, name=..., **options)` builds one encoder."""
    return _registrar(FAMILIES, name)


def check_choice(option: str, value: Any, choices: Sequence[Any]) -> None:
    """The boundary check of an option: what was expected and what came."""
    if value not in choices:
        raise ValueError(f"{option} must be one of {list(choices)}, got {value!r}")


def _import_families() -> None:
    import core.encoders.hf_media  # noqa: F401  (registers)
    import core.encoders.hf_text  # noqa: F401
    import core.encoders.hf_vision  # noqa: F401
    import core.encoders.open_clip_towers  # noqa: F401
    import core.encoders.timm_vision  # noqa: F401


def available_encoders() -> list[str]:
    """Registered names and preset names (the prefixes "hf:", "timm:", "open_clip:" take any model)."""
    from core.encoders.presets import load_presets

    _import_families()
    return sorted({*ENCODERS, *load_presets()})


def create_encoder(name: str, **kwargs) -> "Encoder":
    """Build an encoder by registered name, preset name or "<prefix>:<model>" (see the module docstring).

    Keyword arguments go to the encoder (device, dtype, pooling, batch_size, ...) and override a
    preset's options. Creating never loads weights; for hub models it checks they are cached.
    """
    from core.encoders.presets import load_presets

    _import_families()
    if name in ENCODERS:
        return _build(name, ENCODERS[name], **kwargs)
    presets = load_presets()
    if name in presets:
        preset = presets[name]
        options = {**preset.get("options", {}), **kwargs}
        if preset["family"] == "open_clip":
            options.setdefault("modality", preset["modality"])
        return _build(name, FAMILIES[preset["family"]], preset["model"], name=name, **options)
    prefix, sep, model = name.partition(":")
    if sep and prefix in PREFIXES and model:
        return _build(name, FAMILIES[_family_for_prefix(prefix, kwargs)], model, name=name, **kwargs)
    raise KeyError(f"unknown encoder {name!r}; known: {', '.join(available_encoders())}; "
                   f"or name any model as {', '.join(p + ':<model>' for p in PREFIXES)}")


def modality_options(name: str, modality: str) -> dict[str, str]:
    """{"modality": modality} for names that leave it open ("hf:", "open_clip:"), else nothing."""
    prefix, sep, _ = name.partition(":")
    return {"modality": modality} if sep and prefix in ("hf", "open_clip") else {}


def create_encoder_for(name: str, modality: str, **kwargs) -> "Encoder":
    """`create_encoder` for one side of a pair: names that leave the modality open get `modality`; a
    registered or preset name keeps its own (the feature store checks that it fits the data)."""
    return create_encoder(name, **{**modality_options(name, modality), **kwargs})


def _build(label: str, factory: Callable[..., "Encoder"], /, *args, **kwargs) -> "Encoder":
    """factory(*args, **kwargs); an option the encoder does not take is a ValueError naming it."""
    try:
        return factory(*args, **kwargs)
    except TypeError as exc:
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if unknown is None:
            raise
        raise ValueError(f"encoder {label} takes no option {unknown.group(1)!r}") from exc


def _family_for_prefix(prefix: str, kwargs: dict[str, Any]) -> str:
    if PREFIXES[prefix] is not None:
        return PREFIXES[prefix]
    modality = kwargs.pop("modality", None)
    check_choice("modality (needed by hf: encoders)", modality, sorted(HF_FAMILY_BY_MODALITY))
    return HF_FAMILY_BY_MODALITY[modality]


@lru_cache(maxsize=None)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """Content hash of a weights file (memoised per size and mtime)."""
    stat = Path(path).stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)


class Encoder(ABC):
    """Per-layer pooled features for one modality.

    Subclasses set `name`, `modality` (one of MODALITIES), `layer_names`, and describe their
    weights and preprocessing in `config()`; `fingerprint()` hashes that config so cached
    features are keyed by exactly what produced them. Weights load on first `encode`, never
    on creation, so a feature-cache hit costs nothing.
    """

    name: str
    modality: str
    layer_names: list[str]
    batch_size: int = 32

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything that determines the features: weights hash, pooling, preprocessing."""

    def encode(self, batch: Sequence[Any]) -> list[np.ndarray]:
        """Features of one batch: one float32 array [len(batch), dim_l] per layer.

        Override this, or split it into `preprocess` (CPU work: decoded items to model inputs) and
        `encode_inputs` (the model), so the pipeline runs the first in its decoding workers.
        """
        return self.encode_inputs(self.preprocess(batch))

    def preprocess(self, batch: Sequence[Any]) -> Any:
        """Decoded items -> the model's inputs (tensors, or a dict of them), on the CPU without the model.

        The pipeline runs it in its decoding worker processes, so it overlaps the model, and pins
        the result in page-locked memory when the encoder runs on CUDA.
        """
        return batch

    def encode_inputs(self, inputs: Any) -> list[np.ndarray]:
        """Features of `preprocess(batch)`: one float32 array [batch, dim_l] per layer."""
        raise NotImplementedError(f"{type(self).__name__} overrides neither encode nor encode_inputs")

    @property
    def splits_preprocessing(self) -> bool:
        """Whether `preprocess` does part of the work (else `encode` does it all)."""
        return type(self).preprocess is not Encoder.preprocess

    def decode_options(self) -> dict[str, Any]:
        """How the pipeline should decode this encoder's media files (core.data.media.decode_media):
        `rate` for audio, `frames` for video; images need nothing."""
        return {}

    def encode_all(self, inputs: Sequence[Any], batch_size: int | None = None) -> list[np.ndarray]:
        """Features of any number of inputs, `batch_size` at a time: one array [len(inputs), dim_l] per layer."""
        if len(inputs) == 0:
            raise ValueError(f"{self.name}: no inputs to encode")
        size = batch_size or self.batch_size
        parts = [self.encode(inputs[i:i + size]) for i in range(0, len(inputs), size)]
        return [np.concatenate(layer) for layer in zip(*parts)]

    def fingerprint(self) -> str:
        blob = json.dumps({"name": self.name, **self.config()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()
