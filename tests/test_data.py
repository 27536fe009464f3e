"""The Tux Paint loader on real stamp files, and image decoding."""

from __future__ import annotations

import numpy as np
import pytest

from core.data import load_dataset, load_rgb
from core.data.images import ImageError, thumbnail
from core.data.tuxpaint import load_tuxpaint
from tests.conftest import REAL_STAMPS


def test_loader_pairs_each_png_with_the_first_line_of_its_txt(few_stamps):
    data = load_tuxpaint(few_stamps)
    assert [s.sample_id for s in data.samples] == sorted(REAL_STAMPS)
    for sample in data.samples:
        first_line = sample.media_path.with_suffix(".txt").read_text().splitlines()[0].strip()
        assert sample.caption == first_line and sample.caption
        assert sample.category == sample.sample_id.rsplit("/", 1)[0]
    assert "=" not in "".join(data.captions), "translations must not leak into captions"


def test_loader_skips_bad_stamps_and_says_why(few_stamps):
    data = load_tuxpaint(few_stamps)
    reasons = {s.sample_id: s.reason for s in data.skipped}
    assert reasons["bad/vector"] == "SVG only, no raster image"
    assert reasons["bad/uncaptioned"] == "no caption file"
    assert reasons["bad/blank"] == "empty caption"
    assert reasons["bad/corrupt"].startswith("unreadable image")
    assert len(data.skipped) == 4 and len(data) == len(REAL_STAMPS)


def test_fingerprint_follows_the_content(few_stamps):
    before = load_tuxpaint(few_stamps).fingerprint()
    assert load_tuxpaint(few_stamps).fingerprint() == before
    txt = (few_stamps / REAL_STAMPS[0]).with_suffix(".txt")
    txt.write_text("A green frog on a leaf.\n")
    assert load_tuxpaint(few_stamps).fingerprint() != before


def test_full_package_loads_with_skips_reported(stamps_root):
    data = load_dataset("tuxpaint", root=stamps_root)
    assert len(data) > 700
    assert data.skip_summary().get("SVG only, no raster image", 0) > 100
    assert len({s.category.split("/")[0] for s in data.samples}) >= 10


def test_limit_spreads_over_categories(stamps_root):
    small = load_dataset("tuxpaint", root=stamps_root, limit=40)
    assert len(small) == 40
    assert len({s.category.split("/")[0] for s in small.samples}) >= 8


def test_transparent_pixels_become_white(stamps_root):
    path = (stamps_root / REAL_STAMPS[0]).with_suffix(".png")
    image = load_rgb(path)
    assert image.mode == "RGB"
    from PIL import Image

    alpha = np.asarray(Image.open(path).convert("RGBA"))[..., 3]
    rgb = np.asarray(image)
    assert (alpha == 0).any()
    assert (rgb[alpha == 0] == 255).all()
    assert not (rgb[alpha == 255] == 255).all()


def test_corrupt_image_error_names_the_file(few_stamps, tmp_path):
    with pytest.raises(ImageError, match="corrupt.png"):
        load_rgb(few_stamps / "bad" / "corrupt.png")
    with pytest.raises(ImageError, match="corrupt.png"):
        thumbnail(few_stamps / "bad" / "corrupt.png", tmp_path, "x")


def test_thumbnail_is_small_and_reused(stamps_root, tmp_path):
    path = (stamps_root / REAL_STAMPS[1]).with_suffix(".png")
    thumb = thumbnail(path, tmp_path, "tiger")
    from PIL import Image

    assert max(Image.open(thumb).size) <= 160
    mtime = thumb.stat().st_mtime_ns
    assert thumbnail(path, tmp_path, "tiger").stat().st_mtime_ns == mtime
