"""The demo encoders with their real weights: per-layer shapes, real predictions, pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data import load_rgb
from core.encoders import create_encoder
from tests.conftest import REAL_STAMPS

EFFICIENTNET_DIMS = [32, 16, 24, 40, 80, 112, 192, 320, 1280]


@pytest.fixture(scope="module")
def vision():
    return create_encoder("efficientnet_lite0")


@pytest.fixture(scope="module")
def text():
    return create_encoder("minilm_l6")


def test_vision_layers_and_shapes_on_two_real_images(vision, stamps_root):
    images = [load_rgb((stamps_root / s).with_suffix(".png")) for s in REAL_STAMPS[:2]]
    layers = vision.encode(images)
    assert vision.layer_names == ["stem", *[f"stage{i}" for i in range(1, 8)], "head"]
    assert [layer.shape for layer in layers] == [(2, d) for d in EFFICIENTNET_DIMS]
    assert all(layer.dtype == np.float32 and np.isfinite(layer).all() for layer in layers)


@pytest.mark.parametrize("stamp, imagenet_classes", [
    ("animals/mammals/cats/tiger", {292}),  # tiger
    ("food/fruit/banana", {954}),  # banana
    ("vehicles/emergency/firetruck", {555}),  # fire engine
])
def test_real_weights_recognise_the_stamps(vision, stamps_root, stamp, imagenet_classes):
    pixels = vision.transform(load_rgb((stamps_root / stamp).with_suffix(".png"))).unsqueeze(0)
    with torch.inference_mode():
        top5 = vision.model(pixels).topk(5).indices[0].tolist()
    assert imagenet_classes & set(top5), f"{stamp}: top-5 ImageNet classes {top5}"


def test_text_layers_and_shapes_on_two_real_captions(text, stamps_root):
    captions = [(stamps_root / s).with_suffix(".txt").read_text().splitlines()[0] for s in REAL_STAMPS[:2]]
    layers = text.encode(captions)
    assert text.layer_names == ["embeddings", *[f"layer{i}" for i in range(1, 7)]]
    assert [layer.shape for layer in layers] == [(2, 384)] * 7


def test_mean_pooling_ignores_padding(text):
    alone = text.encode(["A frog."])
    padded = text.encode(["A frog.", "A big red fire truck with a long ladder and flashing lights."])
    for a, b in zip(alone, padded):
        np.testing.assert_allclose(a[0], b[0], atol=1e-4)


def test_last_layer_mean_matches_sentence_transformers_pooling(text):
    """all-MiniLM-L6-v2's own sentence embedding is the mean of the last layer: similar captions score higher."""
    frog, toad, truck = text.encode(["A frog.", "A toad.", "A fire truck."])[-1]
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(frog, toad) > cos(frog, truck) + 0.1


def test_fingerprints_identify_weights_and_preprocessing(vision, text):
    assert vision.fingerprint() != text.fingerprint()
    assert create_encoder("efficientnet_lite0").fingerprint() == vision.fingerprint()
    assert vision.config()["weights_sha256"] and text.config()["weights_sha256"]


def test_unknown_encoder_lists_known_ones():
    with pytest.raises(KeyError, match="efficientnet_lite0"):
        create_encoder("no_such_model")
