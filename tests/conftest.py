"""Shared fixtures: real Tux Paint stamps, and one small real demo run (real models, 60 stamps)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Real stamps from different categories, with transparent backgrounds.
REAL_STAMPS = ["animals/amphibians/frog", "animals/mammals/cats/tiger", "food/fruit/banana", "vehicles/emergency/firetruck"]


@pytest.fixture(scope="session")
def stamps_root() -> Path:
    from core.data.tuxpaint import locate_stamps

    return locate_stamps()


@pytest.fixture
def few_stamps(tmp_path: Path, stamps_root: Path) -> Path:
    """A stamps folder with 4 real stamps and one of each kind of bad entry."""
    root = tmp_path / "stamps"
    for stamp in REAL_STAMPS:
        for suffix in (".png", ".txt"):
            src = (stamps_root / stamp).with_suffix(suffix)
            assert src.exists(), f"expected real stamp file {src}"
            dst = (root / stamp).with_suffix(suffix)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    bad = root / "bad"
    bad.mkdir()
    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    (bad / "corrupt.txt").write_text("A broken picture.\n")
    (bad / "vector.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (bad / "vector.txt").write_text("A vector drawing.\n")
    shutil.copy((stamps_root / REAL_STAMPS[0]).with_suffix(".png"), bad / "uncaptioned.png")
    shutil.copy((stamps_root / REAL_STAMPS[0]).with_suffix(".png"), bad / "blank.png")
    (bad / "blank.txt").write_text("   \nfr.utf8=Une grenouille.\n")
    return root


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, str]:
    """(cache folder, run id) of a real demo run on 60 stamps, small enough for every test to share."""
    from core.alignment import AlignmentConfig
    from core.jobs import run_alignment

    cache = tmp_path_factory.mktemp("cache")
    config = AlignmentConfig(draws=3, subset_sizes=(16, 32), bootstrap=200)
    return cache, run_alignment(limit=60, config=config, cache=cache)


@pytest.fixture(scope="session")
def audio_run(tmp_path_factory) -> tuple[Path, str]:
    """(cache folder, run id) of a text-audio run: 40 real Tux Paint sound effects with their captions,
    a tiny random Wav2Vec2 against MiniLM (no audio model's weights ship offline)."""
    import torch

    from core.alignment import AlignmentConfig
    from core.jobs import run_alignment
    from tests.tiny_models import save_tiny_wav2vec2

    torch.manual_seed(0)
    model = save_tiny_wav2vec2(tmp_path_factory.mktemp("wav2vec2_for_run"))
    cache = tmp_path_factory.mktemp("audio_cache")
    run_id = run_alignment("tuxpaint", f"hf:{model}", "minilm_l6", limit=40, cache=cache,
                           config=AlignmentConfig(ks=(1, 5), draws=3, subset_sizes=(16,)),
                           dataset_options={"media": "audio"})  # an hf: model A embeds the data set's media
    return cache, run_id
