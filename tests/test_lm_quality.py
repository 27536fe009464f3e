"""Language-model quality (bits per byte) measured from the command line and stored with the model."""

from __future__ import annotations

import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from core import results
from core.cli import main
from core.config import results_db_path
from core.encoders import create_encoder
from core.encoders.lm_quality import bits_per_byte
from tests.test_encoder_zoo import save_wordlevel_tokenizer


@pytest.fixture
def tiny_gpt2(tmp_path):
    folder = tmp_path / "gpt2"
    save_wordlevel_tokenizer(folder)
    GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                               bos_token_id=1, eos_token_id=1)).save_pretrained(folder)
    return folder


def test_bits_per_byte_is_stored_with_the_model(tiny_gpt2, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a cat sat on the mat and a dog sat on the big red fire truck with a long ladder\n")
    args = ["lm-quality", "--model", f"hf:{tiny_gpt2}", "--corpus", str(corpus), "--max-length", "16", "--stride", "8",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0 and main(args) == 0  # measured twice: stored once
    table = results.model_quality(results_db_path(tmp_path / "cache"))
    assert len(table) == 1
    expected = bits_per_byte(create_encoder(f"hf:{tiny_gpt2}", modality="text"), [corpus.read_text()], max_length=16, stride=8)
    assert table.bits_per_byte[0] == pytest.approx(expected, rel=1e-6)
    assert table.corpus_bytes[0] == len(corpus.read_text().encode())
    capsys.readouterr()
    assert main(["lm-quality", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert f"hf:{tiny_gpt2}" in capsys.readouterr().out


def test_missing_corpus_is_named(tiny_gpt2, tmp_path):
    assert main(["lm-quality", "--model", f"hf:{tiny_gpt2}", "--corpus", str(tmp_path / "nope.txt"),
                 "--cache-dir", str(tmp_path)]) == 2
