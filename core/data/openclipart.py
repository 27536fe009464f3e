"""Open Clip Art Library (Debian packages `openclipart-png`, `openclipart-svg`) as image-caption pairs.

Each `png/<category>/<name>.png` has an SVG twin at `svg/<category>/<name>.svg` whose RDF
metadata holds a title and often a description: one pair per distinct non-empty text. Titles
repeat across images ("gramastar", "card"), so the data is naturally many-to-many; the folder
path is the category (and label). Noisy and real.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from core.data.base import PairedDataset, register_dataset
from core.data.builder import PairBuilder
from core.data.debian import debian_data

PACKAGES = {"png": "openclipart-png", "svg": "openclipart-svg"}
SUBDIR = "usr/share/openclipart"
DC = "{http://purl.org/dc/elements/1.1/}"


def locate_openclipart(cache: str | Path | None = None) -> tuple[Path, Path]:
    """(png folder, svg folder): the installed packages if present, else their .debs extracted into the cache."""
    png, svg = (debian_data(package, f"{SUBDIR}/{kind}", cache) for kind, package in PACKAGES.items())
    return png, svg


def svg_texts(svg: Path) -> list[str] | str:
    """[title, description] from the SVG's RDF work metadata (blank when absent), or why it cannot be read."""
    try:
        data = svg.read_bytes()
        parser = ET.XMLPullParser(events=("end",))
        end = data.find(b"</metadata>")
        parser.feed(data if end < 0 else data[:end])  # the drawing after the metadata is not needed (3x faster)
        if end < 0:
            parser.close()  # the whole file was fed, so it must be complete
        for _, element in parser.read_events():
            if element.tag.endswith("}Work"):  # cc:Work, under either Creative Commons namespace
                return [" ".join(element.findtext(f"{DC}{field}", "").split()) for field in ("title", "description")]
    except (ET.ParseError, OSError) as exc:
        return f"unreadable SVG ({exc})"
    return ["", ""]


@register_dataset("openclipart")
def load_openclipart(root: str | Path | None = None, limit: int | None = None,
                     cache: str | Path | None = None, strict: bool = False) -> PairedDataset:
    """Every PNG with a titled SVG twin; `root` holds `png/` and `svg/` (default: the Debian packages).

    Pair ids are the PNG's path without suffix, plus `#0` (title) / `#1` (description) when both
    are given and differ. `limit` keeps at most that many pairs, spread evenly over the sorted files.
    """
    png_root, svg_root = (Path(root) / "png", Path(root) / "svg") if root else locate_openclipart(cache)
    if not png_root.is_dir():
        raise FileNotFoundError(f"{png_root}: no folder of Open Clip Art PNG images")
    builder = PairBuilder("openclipart", png_root, strict, cache)
    for png in sorted(png_root.rglob("*.png")):
        relative = png.relative_to(png_root)
        sample_id = relative.with_suffix("").as_posix()
        svg = svg_root / relative.with_suffix(".svg")
        texts = svg_texts(svg) if svg.is_file() else "no SVG twin with the metadata"
        if isinstance(texts, str):
            builder.skip(sample_id, svg, texts)
            continue
        title, description = texts
        category = relative.parent.as_posix() if relative.parent != Path(".") else ""
        builder.add(sample_id, png, [title, description if description != title else ""], category,
                    category or None, str(svg))
    return builder.build(limit)
