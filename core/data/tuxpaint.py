"""Tux Paint stamps (Debian package `tuxpaint-stamps-default`) as image-caption or audio-caption pairs.

Each stamp is `<category>/<name>.png` with `<name>.txt` beside it, whose first line is an
English caption ("A white kitten."); the folder path is the category (and label). 440 stamps
also have a sound effect, `<name>.ogg` (a cat's meow, a fire engine's siren): with
`media="audio"` those are the pairs, a real text-audio data set. (The `<name>_desc*.ogg` files
are the caption read aloud, in several languages, and are not used.)
"""

from __future__ import annotations

import re
from pathlib import Path

from core.data.base import PairedDataset, register_dataset
from core.data.builder import PairBuilder
from core.data.debian import debian_data
from core.data.image_folder import add_sidecar_pairs, read_text
from core.data.media import check_media_kind

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


LOCALISED = re.compile(r"(.+?)(_desc)?(_[a-z]{2,3}(_[a-zA-Z]{2,4})?)?")  # frog_desc_fr, 7_en_GB, 5_zh_tw


def is_stamp_sound(path: Path) -> bool:
    """A stamp's own sound, not its caption read aloud (`_desc`) or a translation (`7_de.ogg` beside `7.txt`)."""
    base, desc, lang, _ = LOCALISED.fullmatch(path.stem).groups()
    if desc:
        return False
    return not (lang and (path.with_name(base + ".txt").exists() or path.with_name(base + path.suffix).exists()))


@register_dataset("tuxpaint")
def load_tuxpaint(root: str | Path | None = None, limit: int | None = None,
                  cache: str | Path | None = None, strict: bool = False, media: str = "image") -> PairedDataset:
    """Every stamp with a raster image (or, with `media="audio"`, a sound effect) and an English
    caption; the rest are listed in `skipped`.

    `limit` keeps at most that many pairs, spread evenly over the sorted stamps.
    """
    root = Path(root) if root else locate_stamps(cache)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder of Tux Paint stamps")
    if check_media_kind(media) == "video":
        raise ValueError("tuxpaint: the stamps have images and sounds, not video; use media='image' or 'audio'")
    builder = PairBuilder("tuxpaint", root, strict, cache, media)
    suffix = ".png" if media == "image" else ".ogg"
    add_sidecar_pairs(builder, root, (suffix,), lambda txt: [english_caption(txt)],
                      accept=is_stamp_sound if media == "audio" else lambda path: True)
    return builder.build(limit)
