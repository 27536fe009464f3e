"""Token pooling shared by every encoder: one vector per sample from one layer's tokens."""

from __future__ import annotations

import numpy as np
import torch


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Mean of the valid tokens: hidden [batch, tokens, dim], mask [batch, tokens] (1 = valid) -> [batch, dim]."""
    weights = mask.to(hidden.device, torch.float32).unsqueeze(-1)
    return ((hidden.float() * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)).cpu().numpy()


def last_valid_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last valid token per row [batch], for left and right padding alike."""
    return mask.shape[1] - 1 - mask.flip(1).long().argmax(dim=1)


def take_tokens(hidden: torch.Tensor, index: torch.Tensor) -> np.ndarray:
    """hidden [batch, tokens, dim] at one token per row `index` [batch] -> [batch, dim]."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, index.to(hidden.device)].float().cpu().numpy()


def to_device(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`tensor` on `device` (as `dtype`): an asynchronous copy from pinned memory, converted on the device."""
    moved = tensor.to(device, non_blocking=tensor.device.type == "cpu" and tensor.is_pinned())
    return moved if dtype is None or not moved.is_floating_point() else moved.to(dtype)
