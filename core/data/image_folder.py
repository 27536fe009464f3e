"""A folder of images with sidecar caption files: `cats/x.jpg` + `cats/x.txt`.

Each non-empty line of the .txt is one caption (one pair each); the image's folder, relative
to the root, is its label and category.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from core.data.base import PairedDataset, register_dataset
from core.data.builder import PairBuilder
from core.data.images import IMAGE_SUFFIXES


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def add_sidecar_pairs(builder: PairBuilder, root: Path, image_suffixes: tuple[str, ...],
                      read_captions: Callable[[Path], list[str]]) -> None:
    """Pair every image under `root` with the `.txt` of the same name beside it; ids are the relative
    paths without suffix (plus the suffix where several images share a name)."""
    captioned = {p.with_suffix("") for p in root.rglob("*.txt")}
    images: dict[Path, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in image_suffixes and path.is_file():
            images.setdefault(path.with_suffix(""), []).append(path)
    for stem in sorted(captioned | set(images)):
        sample_id = stem.relative_to(root).as_posix()
        txt = stem.with_name(stem.name + ".txt")
        if stem not in images:
            svg = stem.with_name(stem.name + ".svg").exists()
            builder.skip(sample_id, txt, "SVG only, no raster image" if svg else "no image file")
            continue
        if stem not in captioned:
            builder.skip(sample_id, images[stem][0], "no caption file")
            continue
        captions = read_captions(txt)
        category = stem.parent.relative_to(root).as_posix() if stem.parent != root else ""
        for image in images[stem]:
            image_id = sample_id if len(images[stem]) == 1 else sample_id + image.suffix
            builder.add(image_id, image, captions, category, category or None, str(txt))


@register_dataset("image_folder")
def load_image_folder(root: str | Path, limit: int | None = None, cache: str | Path | None = None,
                      strict: bool = False) -> PairedDataset:
    """Every image under `root` with a non-empty caption line beside it; the rest are in `skipped`.

    `limit` keeps at most that many pairs, spread evenly over the sorted files.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder of images with .txt captions")
    builder = PairBuilder("image_folder", root, strict, cache)
    add_sidecar_pairs(builder, root, IMAGE_SUFFIXES, lambda txt: read_text(txt).splitlines())
    return builder.build(limit)
