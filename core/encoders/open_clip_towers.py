"""open_clip image and text towers: one layer per transformer block (before the final norm).

Image: the class token of each block (or the mean of patch tokens). Text: the token the model
itself pools (its `text_pool_type`: the EOT token for CLIP's "argmax"), or the mean of the tokens
up to and including that one. Weights: a pretrained tag (from the local Hugging Face cache) or a
local checkpoint file; "hf-hub:org/name" models load config and weights from the cache.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from core.encoders.base import Encoder, check_choice, register_family
from core.encoders.hf_text import check_texts
from core.encoders.hf_vision import VISION_POOLINGS
from core.encoders.hub import WeightsSource, local_weights_identity, locate_weights
from core.encoders.pooling import masked_mean, take_tokens, to_device

OPEN_CLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
TEXT_POOLINGS = ("eot", "mean")


@register_family("open_clip")
def open_clip_tower(model: str, name: str | None = None, modality: str = "image", **options) -> "OpenCLIPTower":
    """The image or text tower of an open_clip model (see OpenCLIPTower for the options)."""
    towers = {"image": OpenCLIPImageTower, "text": OpenCLIPTextTower}
    check_choice("modality of an open_clip tower", modality, sorted(towers))
    return towers[modality](model, name, **options)


class OpenCLIPTower(Encoder):
    """model: an open_clip model name ("ViT-B-32", or "hf-hub:org/name"); pretrained: a tag or a checkpoint path."""

    poolings: tuple[str, ...]

    def __init__(self, model: str, name: str | None = None, device: str = "cpu", pretrained: str | Path | None = None,
                 pooling: str | None = None, batch_size: int = 32) -> None:
        self.arch = model
        self.name = name or f"open_clip:{model}:{self.modality}"
        self.device = torch.device(device)
        self.pooling = pooling or self.poolings[0]
        check_choice("pooling", self.pooling, self.poolings)
        self.batch_size = batch_size
        self.pretrained = None if pretrained is None else str(pretrained)
        self.source = self._locate()

    def _locate(self) -> WeightsSource:
        import open_clip

        if self.arch.startswith("hf-hub:"):
            return locate_weights(self.arch.removeprefix("hf-hub:"), self.name, files=OPEN_CLIP_WEIGHT_FILES)
        if self.pretrained is None:
            raise ValueError(f"{self.name}: pass pretrained= a tag ({open_clip.list_pretrained_tags_by_model(self.arch)}) "
                             f"or a checkpoint file")
        if Path(self.pretrained).exists():
            return WeightsSource(self.pretrained, local_weights_identity(Path(self.pretrained)))
        hub = open_clip.get_pretrained_cfg(self.arch, self.pretrained).get("hf_hub", "")
        if not hub:
            raise FileNotFoundError(f"{self.name}: {self.pretrained!r} is neither a checkpoint file nor an open_clip tag "
                                    f"hosted on the Hugging Face hub for {self.arch}")
        repo, filename = hub.rsplit("/", 1)  # open_clip's form: "org/name/" (default file) or "org/name/file"
        files = (filename,) if filename else OPEN_CLIP_WEIGHT_FILES
        return locate_weights(repo, self.name, files=files)

    @cached_property
    def loaded(self) -> tuple[torch.nn.Module, Any]:
        """(model, image preprocessing), built on first use so a cache hit never loads weights."""
        import open_clip

        if self.arch.startswith("hf-hub:") or not self.source.is_local:  # open_clip reads the cache or downloads
            model, _, preprocess = open_clip.create_model_and_transforms(self.arch, pretrained=self.pretrained)
        else:
            tag_cfg = open_clip.get_pretrained_cfg(self.arch, self.pretrained or "")
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.arch, pretrained=self.source.location, image_mean=tag_cfg.get("mean"), image_std=tag_cfg.get("std"),
                image_interpolation=tag_cfg.get("interpolation"), image_resize_mode=tag_cfg.get("resize_mode"))
        return model.eval().to(self.device), preprocess

    @property
    def model(self) -> torch.nn.Module:
        return self.loaded[0]

    @cached_property
    def layer_names(self) -> list[str]:
        return [f"block{i}" for i in range(1, len(self.blocks) + 1)]

    def config(self) -> dict[str, Any]:
        return {"model": self.arch, "tower": self.modality, "pretrained": self.pretrained, **self.source.identity,
                "pooling": self.pooling}


def eval_preprocess_cfg(arch: str, pretrained: str | None) -> dict[str, Any]:
    """The eval preprocessing open_clip gives a built-in `arch` with `pretrained` (a tag, or a checkpoint file:
    defaults), from its configs alone: image size from the model config, mean/std/interpolation/resize
    mode from the tag, as `open_clip.create_model_and_transforms` resolves them."""
    import open_clip
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None:
        raise ValueError(f"open_clip knows no model {arch!r} (see open_clip.list_models())")
    tag_cfg = {} if pretrained is None or Path(pretrained).exists() else open_clip.get_pretrained_cfg(arch, pretrained)
    cfg = merge_preprocess_dict(asdict(PreprocessCfg()), tag_cfg or {})
    cfg["size"] = model_cfg["vision_cfg"]["image_size"]
    return cfg


class OpenCLIPImageTower(OpenCLIPTower):
    modality = "image"
    poolings = VISION_POOLINGS

    @property
    def blocks(self) -> torch.nn.ModuleList:
        return self.model.visual.transformer.resblocks

    @cached_property
    def transform(self):
        """The eval transform; for built-in models made from the configs, so fingerprinting and the
        pipeline's decoding workers never load weights (hf-hub: models read theirs from the loaded model)."""
        if self.arch.startswith("hf-hub:"):
            return self.loaded[1]
        from open_clip.transform import PreprocessCfg, image_transform_v2

        return image_transform_v2(PreprocessCfg(**eval_preprocess_cfg(self.arch, self.pretrained)), is_train=False)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "preprocess": repr(self.transform)}

    def preprocess(self, batch: Sequence[Any]) -> dict[str, torch.Tensor]:
        return {"pixels": torch.stack([self.transform(image) for image in batch])}

    @torch.inference_mode()
    def encode_inputs(self, inputs: dict[str, torch.Tensor]) -> list[np.ndarray]:
        pixels = to_device(inputs["pixels"], self.device)
        out = self.model.forward_intermediates(image=pixels, intermediates_only=True, image_output_fmt="NLC",
                                               image_output_extra_tokens=True)
        if self.pooling == "mean":
            return [patches.float().mean(dim=1).cpu().numpy() for patches in out["image_intermediates"]]
        if "image_intermediates_prefix" not in out:
            raise ValueError(f"{self.name}: {self.arch} has no class token; use pooling='mean'")
        return [prefix[:, 0].float().cpu().numpy() for prefix in out["image_intermediates_prefix"]]


class OpenCLIPTextTower(OpenCLIPTower):
    modality = "text"
    poolings = TEXT_POOLINGS

    @property
    def blocks(self) -> torch.nn.ModuleList:
        return self.model.transformer.resblocks

    @cached_property
    def tokenizer(self):
        import open_clip

        return open_clip.get_tokenizer(self.arch)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "text_pool_type": self.model.text_pool_type,
                "context_length": self.model.context_length}

    def pooled_index(self, tokens: torch.Tensor) -> torch.Tensor:
        """The position the model pools per text [batch] (the EOT token for CLIP), by its own rule."""
        from open_clip.transformer import text_global_pool

        positions = torch.arange(tokens.shape[1], device=tokens.device).expand(tokens.shape[0], -1).unsqueeze(-1)
        return text_global_pool(positions, tokens, self.model.text_pool_type,
                                eos_token_id=getattr(self.model, "text_eos_id", None)).squeeze(-1)

    @torch.inference_mode()
    def encode(self, batch: Sequence[str]) -> list[np.ndarray]:
        tokens = self.tokenizer(check_texts(batch, self.name)).to(self.device)
        blocks = self.model.forward_intermediates(text=tokens, intermediates_only=True)["text_intermediates"]
        index = self.pooled_index(tokens)
        if self.pooling == "eot":
            return [take_tokens(h, index) for h in blocks]
        valid = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0) <= index.unsqueeze(1)
        return [masked_mean(h, valid) for h in blocks]
