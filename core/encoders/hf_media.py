"""Audio and video through transformers: every hidden state, mean-pooled over time (and space).

Audio (Wav2Vec2, HuBERT, Whisper's encoder, ...): inputs are float waveforms, either bare 1-D
arrays at the feature extractor's sampling rate or (waveform, sampling_rate) pairs, resampled
when the rates differ; the mean covers only the frames of the real signal, not the padding.
Video (VideoMAE): inputs are frame arrays [frames, height, width, 3], uniformly subsampled to the
model's frame count; the mean covers every spatio-temporal token.
"""

from __future__ import annotations

from functools import cached_property
from math import gcd
from typing import Any, Sequence

import numpy as np
import torch

from core.encoders.base import register_family
from core.encoders.hf_base import HFModelEncoder
from core.encoders.pooling import masked_mean, to_device


class HFHiddenStatesEncoder(HFModelEncoder):
    """Layers are the embedding output and every block's output."""

    @cached_property
    def layer_names(self) -> list[str]:
        return ["embeddings"] + [f"layer{i}" for i in range(1, self.hf_config.num_hidden_layers + 1)]

    @property
    def model_dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


@register_family("hf_audio")
class HFAudioEncoder(HFHiddenStatesEncoder):
    """Waveforms through the model's feature extractor; encoder-decoder models (Whisper) use their encoder.

    Whisper's extractor pads or cuts every clip to its fixed window (30 s for the released models).
    max_seconds: keep only the first that many seconds of each clip (default: all of it). Attention
    grows with the square of a clip's length, so long recordings want a cap; the pipeline stops
    decoding there.
    """

    modality = "audio"

    def __init__(self, model, name=None, device: str = "cpu", max_seconds: float | None = None, **options) -> None:
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds!r}")
        super().__init__(model, name, device, **options)
        self.max_seconds = None if max_seconds is None else float(max_seconds)

    @cached_property
    def feature_extractor(self):
        from transformers import AutoFeatureExtractor

        return self._load(AutoFeatureExtractor)

    @cached_property
    def audio_model(self) -> torch.nn.Module:
        return self.model.get_encoder() if self.hf_config.is_encoder_decoder else self.model

    def decode_options(self) -> dict[str, Any]:
        return {"rate": int(self.feature_extractor.sampling_rate), "max_seconds": self.max_seconds}

    def config(self) -> dict[str, Any]:
        return {**self.weights_config(), "pooling": "masked mean over frames", "max_seconds": self.max_seconds,
                "feature_extractor": self.feature_extractor.to_dict()}

    def preprocess(self, batch: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Waveforms -> {"values": the extractor's input, "mask": which input steps are signal}."""
        extractor = self.feature_extractor
        rate = extractor.sampling_rate
        waves = [check_waveform(item, rate, i, self.name) for i, item in enumerate(batch)]
        if self.max_seconds is not None:
            waves = [wave[:int(self.max_seconds * rate)] for wave in waves]
        fixed_window = hasattr(extractor, "n_samples")  # Whisper-style extractors pad to their window themselves
        features = extractor(waves, sampling_rate=rate, return_tensors="pt", return_attention_mask=True,
                             **({} if fixed_window else {"padding": True}))
        return {"values": features[extractor.model_input_names[0]], "mask": features["attention_mask"]}

    @torch.inference_mode()
    def encode_inputs(self, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        extractor = self.feature_extractor
        inputs = {extractor.model_input_names[0]: to_device(batch["values"], self.input_device, self.model_dtype)}
        if extractor.return_attention_mask and not self.hf_config.is_encoder_decoder:
            inputs["attention_mask"] = to_device(batch["mask"], self.input_device)
        hidden = self.audio_model(**inputs, output_hidden_states=True).hidden_states
        mask = batch["mask"]
        frames = self._output_lengths(mask.sum(dim=-1), mask.shape[-1], hidden[0].shape[1])
        mask = torch.arange(hidden[0].shape[1]).unsqueeze(0) < frames.unsqueeze(1)
        return [masked_mean(h, mask) for h in hidden]

    def _output_lengths(self, lengths: torch.Tensor, input_steps: int, output_steps: int) -> torch.Tensor:
        """Valid output frames per clip, from the model's own conv arithmetic when it has one."""
        if hasattr(self.audio_model, "_get_feat_extract_output_lengths"):
            return self.audio_model._get_feat_extract_output_lengths(lengths).cpu().clamp(max=output_steps)
        return torch.ceil(lengths.float() * output_steps / input_steps).long()


def check_waveform(item: Any, rate: int, index: int, encoder: str) -> np.ndarray:
    """A waveform, or a (waveform, sampling_rate) pair -> float32 [samples] at `rate`."""
    wave, item_rate = item if isinstance(item, tuple) else (item, rate)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"{encoder}: clip {index} has shape {wave.shape}; expected a non-empty mono waveform [samples]")
    if int(item_rate) != rate:
        from scipy.signal import resample_poly

        common = gcd(int(item_rate), rate)
        wave = resample_poly(wave, rate // common, int(item_rate) // common).astype(np.float32)
    return wave


@register_family("hf_video")
class HFVideoEncoder(HFHiddenStatesEncoder):
    """Clips [frames, height, width, 3] through the model's image processor (VideoMAE)."""

    modality = "video"

    @cached_property
    def processor(self):
        from transformers import AutoImageProcessor

        return self._load(AutoImageProcessor)

    def decode_options(self) -> dict[str, Any]:
        return {"frames": int(self.hf_config.num_frames)}

    def config(self) -> dict[str, Any]:
        return {**self.weights_config(), "pooling": "mean over tokens", "frames": self.hf_config.num_frames,
                "frame_sampling": "uniform", "processor": self.processor.to_dict()}

    def preprocess(self, batch: Sequence[Any]) -> dict[str, torch.Tensor]:
        clips = [sample_frames(clip, self.hf_config.num_frames, i, self.name) for i, clip in enumerate(batch)]
        return {"pixel_values": self.processor(clips, return_tensors="pt")["pixel_values"]}

    @torch.inference_mode()
    def encode_inputs(self, inputs: dict[str, torch.Tensor]) -> list[np.ndarray]:
        pixels = to_device(inputs["pixel_values"], self.input_device, self.model_dtype)
        hidden = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states
        return [h.float().mean(dim=1).cpu().numpy() for h in hidden]


def sample_frames(clip: Any, frames: int, index: int, encoder: str) -> list[np.ndarray]:
    """[T, H, W, 3] -> `frames` frames picked uniformly over the clip (repeating frames of short clips)."""
    clip = np.asarray(clip)
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.shape[0] == 0:
        raise ValueError(f"{encoder}: clip {index} has shape {clip.shape}; expected frames [T, height, width, 3]")
    picks = np.linspace(0, clip.shape[0] - 1, frames).round().astype(int)
    return list(clip[picks])
