"""Encoders: every model, whatever its modality or library, yields per-layer pooled features.

`create_encoder(name)` takes a registered name, a preset (`core/encoders/presets/*.json`) or
"hf:<hub id or folder>" / "timm:<arch.tag>" / "open_clip:<model>"; each encoder exposes
`modality`, `layer_names`, `fingerprint()` and `encode(batch) -> list of [batch, dim_l] arrays`.
`bits_per_byte` scores a causal language model on a corpus.
"""

from core.encoders.base import (ENCODERS, FAMILIES, Encoder, available_encoders, create_encoder, create_encoder_for,
                                modality_options, register_encoder, register_family)
from core.encoders.hub import WeightsNotFound
from core.encoders.lm_quality import bits_per_byte
from core.encoders.presets import load_presets

__all__ = ["Encoder", "ENCODERS", "FAMILIES", "WeightsNotFound", "available_encoders", "bits_per_byte",
           "create_encoder", "create_encoder_for", "load_presets", "modality_options", "register_encoder", "register_family"]
