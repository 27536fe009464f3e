"""`python -m core`: the command list, the align JSON contract, and clear errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from core.cli import main
from tests import reference


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True)


def test_help_lists_the_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("demo", "embed", "align", "runs", "list"):
        assert command in out.stdout


@pytest.fixture
def paired_files(tmp_path):
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(200, 4))
    a = np.stack([latent @ rng.normal(size=(4, 16)) + s * rng.normal(size=(200, 16)) for s in (2.0, 0.2)], axis=1)
    b = latent @ rng.normal(size=(4, 8)) + 0.5 * rng.normal(size=(200, 8))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    return tmp_path, a, b


def test_align_json(paired_files, capsys):
    folder, a, b = paired_files
    assert main(["align", str(folder / "a.npy"), str(folder / "b.npy"), "--k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metric"] == "mutual_knn" and out["k"] == 5 and out["n"] == 200
    assert out["layer_pair"] == [1, 0]
    assert out["score"] == pytest.approx(reference.mutual_knn(a[:, 1], b, 5), abs=1e-12)
    assert out["chance"] == pytest.approx(5 / 199)
    assert out["ci_low"] <= out["score"] <= out["ci_high"]


@pytest.mark.parametrize("make_b, k, message", [
    (lambda a: a[:150], 10, "200 rows.*150"),
    (lambda a: np.where(np.arange(200)[:, None, None] == 7, np.nan, a), 10, "NaN or inf.*row 7"),
    (lambda a: a, 200, "k=200 is too large"),
    (lambda a: np.zeros((200, 2, 3)), 10, "all zero"),
    (lambda a: np.zeros((200, 2, 3, 1)), 10, r"expected shape \[n, dim\] or \[n, layers, dim\]"),
])
def test_bad_input_exits_non_zero_naming_the_problem(paired_files, make_b, k, message):
    folder, a, _ = paired_files
    np.save(folder / "bad.npy", make_b(a))
    out = run_cli("align", str(folder / "a.npy"), str(folder / "bad.npy"), "--k", str(k))
    assert out.returncode == 2
    assert out.stderr.startswith("error: ")
    import re

    assert re.search(message, out.stderr), out.stderr


def test_demo_command_computes_then_reuses_its_caches(tmp_path):
    args = ["demo", "--limit", "30", "--draws", "2", "--subset-sizes", "16", "--cache-dir", str(tmp_path)]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "30 pairs, efficientnet_lite0 x minilm_l6" in first.stdout
    assert "mutual_knn k=10" in first.stdout and "chance 0.3448" in first.stdout
    assert "embed image" in first.stderr, "progress bars go to stderr"
    features = sorted(p.name for p in (tmp_path / "features").iterdir())
    assert len(features) == 2
    again = run_cli(*args)
    assert again.returncode == 0
    assert again.stdout.splitlines()[0] == first.stdout.splitlines()[0], "same run id"
    assert "embed image" not in again.stderr, "nothing is embedded twice"
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == features
    runs = run_cli("runs", "--cache-dir", str(tmp_path))
    assert runs.stdout.count("tuxpaint") == 1


def test_embed_command_prints_the_feature_folder(tmp_path):
    out = run_cli("embed", "--model", "minilm_l6", "--limit", "5", "--cache-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "5 samples x 7 layers" in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith(str(tmp_path / "features"))


def test_unknown_model_is_named(tmp_path):
    out = run_cli("embed", "--model", "nope", "--limit", "5", "--cache-dir", str(tmp_path))
    assert out.returncode == 2 and "unknown encoder 'nope'" in out.stderr


def test_embed_takes_encoder_options_and_names_a_wrong_one(tmp_path):
    out = run_cli("embed", "--model", "minilm_l6", "--limit", "5", "--option", "batch_size=2", "--cache-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    out = run_cli("embed", "--model", "minilm_l6", "--limit", "5", "--option", "colour=blue", "--cache-dir", str(tmp_path))
    assert out.returncode == 2 and "encoder minilm_l6 takes no option 'colour'" in out.stderr
    out = run_cli("embed", "--model", "minilm_l6", "--option", "batch_size")
    assert out.returncode == 2 and "KEY=VALUE" in out.stderr


def test_demo_aligns_sound_effects_with_captions(tmp_path):
    import torch

    from tests.tiny_models import save_tiny_wav2vec2

    torch.manual_seed(0)
    model = save_tiny_wav2vec2(tmp_path / "wav2vec2")
    out = run_cli("demo", "--media", "audio", "--model-a", f"hf:{model}", "--option-a", "batch_size=4", "--limit", "20",
                  "--draws", "2", "--subset-sizes", "8", "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr
    assert f"20 pairs, hf:{model} x minilm_l6" in out.stdout and "embed audio" in out.stderr
    assert "no audio file" in out.stdout  # the stamps without a sound effect, reported as skipped
    wrong = run_cli("demo", "--media", "audio", "--limit", "20", "--cache-dir", str(tmp_path / "cache"))
    assert wrong.returncode == 2 and "efficientnet_lite0 embeds image, but data set tuxpaint pairs captions with audio" in wrong.stderr
