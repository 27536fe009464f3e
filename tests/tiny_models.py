"""Tiny random-weight audio and video models, saved like hub checkpoints (hidden size 32, 2 layers).

Shared by the encoder-zoo tests and the audio/video pipeline tests.
"""

from __future__ import annotations

from pathlib import Path

WIDTH, LAYERS = 32, 2
SMALL = dict(num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=64)


def save_tiny_wav2vec2(folder: Path) -> Path:
    """A 16 kHz Wav2Vec2 (two conv layers, stride 20) with its feature extractor."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True).save_pretrained(folder)
    Wav2Vec2Model(Wav2Vec2Config(hidden_size=WIDTH, conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4),
                                 num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="layer",
                                 do_stable_layer_norm=True, **SMALL)).save_pretrained(folder)
    return folder


def save_tiny_videomae(folder: Path) -> Path:
    """A VideoMAE on 4 frames of 32x32 (tubelets of 2) with its image processor."""
    from transformers import VideoMAEConfig, VideoMAEImageProcessor, VideoMAEModel

    VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    VideoMAEModel(VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=WIDTH,
                                 **SMALL)).save_pretrained(folder)
    return folder
