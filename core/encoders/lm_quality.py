"""Language-model quality as bits per byte: the original paper's measure is 1 - bits-per-byte on OpenWebText.

bits per byte = total negative log-likelihood of the corpus in bits / its UTF-8 byte count, so
models with different tokenizers compare on the same footing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import torch


def bits_per_byte(model: Any, texts: Sequence[str] | str | Path, max_length: int = 1024, stride: int = 512,
                  tokenizer: Any = None, batch_size: int = 8) -> float:
    """Bits per UTF-8 byte of a causal language model on a corpus.

    model: an HFTextEncoder of a causal LM (its model and tokenizer are used), or a transformers
    causal LM together with `tokenizer`. texts: documents as strings, or a path to a .jsonl file
    (one document per line, its "text" field) or to any other text file (one document).
    Each document is prefixed with the BOS token (EOS where there is none) so that its first token
    is scored too. Documents longer than `max_length` tokens are scored with sliding windows: each
    window holds at most `max_length` tokens, starts `stride` tokens after the previous one, and
    scores only the tokens no earlier window scored (the rest is context), so every token is
    scored once with at least `max_length - stride` tokens of context where the document has them.
    """
    if not 0 < stride < max_length:
        raise ValueError(f"need 0 < stride < max_length, got stride={stride}, max_length={max_length}")
    documents = read_corpus(texts)
    language_model, tokenizer, device = _resolve_model(model, tokenizer)
    context_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if context_id is None:
        raise ValueError("the tokenizer has neither a BOS nor an EOS token to start documents with")
    windows = []
    for document in documents:
        ids = [context_id] + tokenizer(document, add_special_tokens=False)["input_ids"]
        windows.extend(sliding_windows(ids, max_length, stride))
    windows.sort(key=lambda window: len(window[0]))
    nll_nats = sum(_window_nll(language_model, windows[i:i + batch_size], device) for i in range(0, len(windows), batch_size))
    total_bytes = sum(len(document.encode("utf-8")) for document in documents)
    return nll_nats / math.log(2) / total_bytes


def sliding_windows(ids: list[int], max_length: int, stride: int) -> list[tuple[list[int], int]]:
    """(window token ids, how many of its last tokens to score) covering ids[1:] once; ids[0] is context only."""
    windows, begin, scored_until = [], 0, 1
    while scored_until < len(ids):
        end = min(begin + max_length, len(ids))
        windows.append((ids[begin:end], end - scored_until))
        scored_until, begin = end, begin + stride
    return windows


def read_corpus(texts: Sequence[str] | str | Path) -> list[str]:
    """Documents from a list of strings or a file (.jsonl: the "text" field of each line; else the whole file)."""
    if isinstance(texts, (str, Path)):
        path = Path(texts)
        if not path.is_file():
            raise FileNotFoundError(f"corpus {path}: no such file (pass a list of strings for literal texts)")
        if path.suffix == ".jsonl":
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            texts = [json.loads(line)["text"] for line in lines]
        else:
            texts = [path.read_text(encoding="utf-8")]
    documents = [text for text in texts if text]
    if not documents:
        raise ValueError("the corpus is empty: no non-empty documents")
    return documents


def _resolve_model(model: Any, tokenizer: Any) -> tuple[torch.nn.Module, Any, torch.device]:
    from core.encoders.hf_text import HFTextEncoder

    if isinstance(model, HFTextEncoder):
        if not model.causal:
            raise ValueError(f"{model.name} is not a causal language model; bits per byte needs next-token predictions")
        return model.model, tokenizer or model.tokenizer, model.input_device
    if tokenizer is None:
        raise ValueError("pass tokenizer= with a transformers model (or pass an HFTextEncoder)")
    return model, tokenizer, next(model.parameters()).device


@torch.inference_mode()
def _window_nll(model: torch.nn.Module, windows: list[tuple[list[int], int]], device: torch.device) -> float:
    """Summed negative log-likelihood (nats) of the scored tokens of a batch of windows (right-padded)."""
    width = max(len(ids) for ids, _ in windows)
    input_ids = torch.zeros(len(windows), width, dtype=torch.long)
    attention_mask = torch.zeros(len(windows), width, dtype=torch.long)
    for row, (ids, _) in enumerate(windows):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        attention_mask[row, :len(ids)] = 1
    logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits.float()
    log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
    token_nll = -log_probs.gather(-1, input_ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)  # [batch, width - 1]
    return sum(float(token_nll[row, len(ids) - 1 - scored:len(ids) - 1].sum()) for row, (ids, scored) in enumerate(windows))
