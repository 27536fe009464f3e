"""A folder of images (or audio clips, or videos) with sidecar caption files: `cats/x.jpg` + `cats/x.txt`.

Each non-empty line of the .txt is one caption (one pair each); the file's folder, relative
to the root, is its label and category. `media="audio"` takes .wav/.flac/.ogg/.mp3/... files,
`media="video"` .mp4/.webm/.mkv/... (see core.data.media).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from core.data.base import PairedDataset, register_dataset
from core.data.builder import PairBuilder
from core.data.media import SUFFIXES, check_media_kind


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def add_sidecar_pairs(builder: PairBuilder, root: Path, media_suffixes: tuple[str, ...],
                      read_captions: Callable[[Path], list[str]], accept: Callable[[Path], bool] = lambda path: True) -> None:
    """Pair every media file under `root` with the `.txt` of the same name beside it; ids are the relative
    paths without suffix (plus the suffix where several files share a name).

    Files that `accept` refuses are not media (Tux Paint's spoken `*_desc.ogg` beside the sound effects)."""
    captioned = {p.with_suffix("") for p in root.rglob("*.txt")}
    images: dict[Path, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in media_suffixes and path.is_file() and accept(path):
            images.setdefault(path.with_suffix(""), []).append(path)
    for stem in sorted(captioned | set(images)):
        sample_id = stem.relative_to(root).as_posix()
        txt = stem.with_name(stem.name + ".txt")
        if stem not in images:
            svg = stem.with_name(stem.name + ".svg").exists()
            builder.skip(sample_id, txt, "SVG only, no raster image" if svg and builder.media == "image"
                         else f"no {builder.media} file")
            continue
        if stem not in captioned:
            builder.skip(sample_id, images[stem][0], "no caption file")
            continue
        captions = read_captions(txt)
        category = stem.parent.relative_to(root).as_posix() if stem.parent != root else ""
        for image in images[stem]:
            image_id = sample_id if len(images[stem]) == 1 else sample_id + image.suffix
            builder.add(image_id, image, captions, category, category or None, str(txt))


@register_dataset("folder")
@register_dataset("image_folder")
def load_folder(root: str | Path, limit: int | None = None, cache: str | Path | None = None,
                strict: bool = False, media: str = "image") -> PairedDataset:
    """Every `media` file under `root` with a non-empty caption line beside it; the rest are in `skipped`.

    `limit` keeps at most that many pairs, spread evenly over the sorted files.
    """
    root = Path(root)
    check_media_kind(media)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder of {media} files with .txt captions")
    builder = PairBuilder("image_folder" if media == "image" else f"{media}_folder", root, strict, cache, media)
    add_sidecar_pairs(builder, root, SUFFIXES[media], lambda txt: read_text(txt).splitlines())
    return builder.build(limit)
