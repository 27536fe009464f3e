"""Vision transformers through transformers (ViT, DINOv2): one layer per block, class token or mean of patches."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from core.encoders.base import check_choice, register_family
from core.encoders.hf_base import HFModelEncoder
from core.encoders.pooling import to_device

VISION_POOLINGS = ("cls", "mean")


def pool_vit_tokens(tokens: torch.Tensor, pooling: str, prefix_tokens: int) -> np.ndarray:
    """tokens [batch, prefix + patches, dim] -> [batch, dim]: the class token (first prefix token) or the patch mean."""
    pooled = tokens[:, 0] if pooling == "cls" else tokens[:, prefix_tokens:].mean(dim=1)
    return pooled.float().cpu().numpy()


@register_family("hf_vision")
class HFVisionEncoder(HFModelEncoder):
    """Images through the model's AutoImageProcessor; layers are the blocks' outputs (before the final norm).

    pooling "cls" (default, the papers' choice) or "mean" over patch tokens (register tokens excluded).
    """

    modality = "image"

    def __init__(self, model: str | Path, name: str | None = None, device: str = "cpu", pooling: str = "cls",
                 **options) -> None:
        check_choice("pooling", pooling, VISION_POOLINGS)
        super().__init__(model, name, device, **options)
        self.pooling = pooling

    @cached_property
    def processor(self):
        from transformers import AutoImageProcessor

        return self._load(AutoImageProcessor)

    @cached_property
    def layer_names(self) -> list[str]:
        return [f"block{i}" for i in range(1, self.hf_config.num_hidden_layers + 1)]

    @property
    def prefix_tokens(self) -> int:
        """Class token plus register tokens (DINOv2 with registers) before the patches."""
        return 1 + getattr(self.hf_config, "num_register_tokens", 0)

    def config(self) -> dict[str, Any]:
        return {**self.weights_config(), "pooling": self.pooling, "processor": self.processor.to_dict()}

    def preprocess(self, batch: Sequence[Any]) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.processor(list(batch), return_tensors="pt")["pixel_values"]}

    @torch.inference_mode()
    def encode_inputs(self, inputs: dict[str, torch.Tensor]) -> list[np.ndarray]:
        pixels = to_device(inputs["pixel_values"], self.input_device, next(self.model.parameters()).dtype)
        hidden = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states[1:]
        return [pool_vit_tokens(h, self.pooling, self.prefix_tokens) for h in hidden]
