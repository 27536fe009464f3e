"""Tux Paint stamps (Debian package `tuxpaint-stamps-default`) as image-caption pairs.

Each stamp is `<category>/<name>.png` with `<name>.txt` beside it, whose first line is an
English caption ("A white kitten."); the folder path is the category (and label).
"""

from __future__ import annotations

from pathlib import Path

from core.data.base import PairedDataset, register_dataset
from core.data.builder import PairBuilder
from core.data.debian import debian_data
from core.data.image_folder import add_sidecar_pairs, read_text

PACKAGE = "tuxpaint-stamps-default"
STAMPS_SUBDIR = "usr/share/tuxpaint/stamps"


def locate_stamps(cache: str | Path | None = None) -> Path:
    """The stamps folder: the installed package if present, else the .deb extracted into the cache."""
    return debian_data(PACKAGE, STAMPS_SUBDIR, cache)


def english_caption(txt_path: Path) -> str:
    """The first line of a stamp's .txt file (the English description), stripped."""
    text = read_text(txt_path)
    first = text.splitlines()[0] if text.strip() else ""
    return first.strip()


@register_dataset("tuxpaint")
def load_tuxpaint(root: str | Path | None = None, limit: int | None = None,
                  cache: str | Path | None = None, strict: bool = False) -> PairedDataset:
    """Every stamp with a raster image and an English caption; the rest are listed in `skipped`.

    `limit` keeps at most that many pairs, spread evenly over the sorted stamps.
    """
    root = Path(root) if root else locate_stamps(cache)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder of Tux Paint stamps")
    builder = PairBuilder("tuxpaint", root, strict, cache)
    add_sidecar_pairs(builder, root, (".png",), lambda txt: [english_caption(txt)])
    return builder.build(limit)
