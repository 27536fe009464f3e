"""Model presets as data: one JSON file per model, read by `create_encoder(name)`.

Each file holds "name" (its file stem), "family" (the loader: hf_text, hf_vision, hf_audio,
hf_video, timm_vit, open_clip), "model" (the hub id as the papers publish it, or an open_clip
model name), "modality", "collection" (which model list it belongs to) and optionally "options"
(keyword arguments for the family, overridden by the caller's) and "note".
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

PRESET_DIR = Path(__file__).parent
REQUIRED_KEYS = ("name", "family", "model", "modality", "collection")


@lru_cache(maxsize=1)
def load_presets() -> dict[str, dict[str, Any]]:
    """Every preset by name, validated once."""
    from core.encoders.base import MODALITIES

    presets = {}
    for path in sorted(PRESET_DIR.glob("*.json")):
        preset = json.loads(path.read_text())
        missing = [key for key in REQUIRED_KEYS if key not in preset]
        if missing:
            raise ValueError(f"{path}: missing {', '.join(missing)}; every preset needs {', '.join(REQUIRED_KEYS)}")
        if preset["name"] != path.stem:
            raise ValueError(f"{path}: name {preset['name']!r} differs from the file name; rename one")
        if preset["modality"] not in MODALITIES:
            raise ValueError(f"{path}: modality {preset['modality']!r}; expected one of {MODALITIES}")
        presets[preset["name"]] = preset
    return presets


def presets_in(collection: str) -> list[str]:
    """Preset names of one collection (e.g. "prh_vision"), sorted."""
    return sorted(name for name, preset in load_presets().items() if preset["collection"] == collection)
