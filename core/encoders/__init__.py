"""Encoders: every model, whatever its modality or library, yields per-layer pooled features.

`create_encoder(name)` looks a name up in the registry; each encoder exposes `modality`,
`layer_names`, `fingerprint()` and `encode(batch) -> list of [batch, dim_l] arrays`.
"""

from core.encoders.base import ENCODERS, Encoder, available_encoders, create_encoder, register_encoder

__all__ = ["Encoder", "ENCODERS", "available_encoders", "create_encoder", "register_encoder"]
