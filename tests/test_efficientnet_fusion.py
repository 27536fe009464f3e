"""EfficientNet loaded for inference (BatchNorm folded, static SAME padding) gives the features of the plain model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data import load_rgb
from core.encoders import create_encoder
from core.encoders.timm_vision import StaticSameConv2d, TimmEfficientNet
from tests.conftest import REAL_STAMPS


@pytest.fixture(scope="module")
def fused_and_plain() -> tuple[TimmEfficientNet, TimmEfficientNet]:
    fused = create_encoder("efficientnet_lite0")
    return fused, TimmEfficientNet(fused.arch, fused.weights, fused.name, fuse=False)


def test_efficientnet_fused_features_match_the_plain_model_on_real_stamps(fused_and_plain, stamps_root):
    fused, plain = fused_and_plain
    images = [load_rgb((stamps_root / s).with_suffix(".png")) for s in REAL_STAMPS]
    assert fused.fuse and not plain.fuse and fused.fingerprint() == plain.fingerprint()
    for a, b in zip(fused.encode(images), plain.encode(images)):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()  # measured ~4e-6
    # one image alone and in a batch: the same features
    alone = fused.encode(images[:1])
    for a, b in zip(alone, fused.encode(images)):
        np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-4 * np.abs(b).max())


def test_efficientnet_fused_model_has_no_batchnorm_and_no_dynamic_padding(fused_and_plain):
    from timm.layers import BatchNormAct2d, Conv2dSame

    fused, plain = fused_and_plain
    modules = list(fused.model.modules())
    assert not any(isinstance(m, (BatchNormAct2d, torch.nn.BatchNorm2d)) for m in modules)
    static = [m for m in modules if isinstance(m, StaticSameConv2d)]
    assert len(static) == sum(type(m) is Conv2dSame for m in plain.model.modules()) == 5
    assert all(type(m.conv) is Conv2dSame and m.input_size[0] in (224, 112, 56, 28, 14) for m in static)


def test_efficientnet_fused_model_classifies_other_input_sizes_like_the_plain_model(fused_and_plain):
    """Off the configured 224 x 224, the SAME convs take timm's padding path again."""
    fused, plain = fused_and_plain
    pixels = torch.randn(2, 3, 257, 190, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, b = fused.model(pixels), plain.model(pixels)
    assert (a - b).abs().max() <= 1e-4 * b.abs().max()


@pytest.mark.parametrize("kernel, stride, dilation, size", [
    (3, 2, 1, (224, 224)),  # lopsided padding (0, 1): widened kernel
    (5, 2, 1, (56, 57)),  # lopsided in one dimension (1, 2) and even in the other (2, 2)
    (3, 1, 1, (15, 16)),  # stride 1: even padding
    (3, 2, 2, (17, 17)),  # dilated, padding (2, 2)
    (4, 1, 1, (9, 9)),  # even kernel: (1, 2)
])
def test_static_same_conv_equals_timm_conv2d_same(kernel, stride, dilation, size):
    from timm.layers import Conv2dSame

    torch.manual_seed(0)
    conv = Conv2dSame(8, 8, kernel, stride=stride, dilation=dilation, groups=8, bias=True).eval()
    x = torch.randn(2, 8, *size)
    static = StaticSameConv2d(conv, size)
    with torch.inference_mode():
        want = conv(x)
        torch.testing.assert_close(static(x), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(static(x.contiguous(memory_format=torch.channels_last)), want, rtol=1e-5, atol=1e-5)
        other = torch.randn(1, 8, size[0] + 3, size[1] + 1)
        torch.testing.assert_close(static(other), conv(other))
