"""COCO-style caption files (`captions_train2017.json`): many captions per image, one pair each.

The JSON holds `images` (`id`, `file_name`) and `annotations` (`image_id`, `caption`); the image
files lie in `images_dir` (default: the JSON's folder). Pair ids are `<file_name>#<k>` (k: the
caption's position; no suffix for an image with one caption).
"""

from __future__ import annotations

import json
from pathlib import Path

from core.data.base import PairedDataset, register_dataset
from core.data.builder import PairBuilder


@register_dataset("coco")
def load_coco(annotations: str | Path, images_dir: str | Path | None = None, limit: int | None = None,
              cache: str | Path | None = None, strict: bool = False) -> PairedDataset:
    """One pair per caption of every image listed in `annotations`; bad entries are in `skipped`.

    `limit` keeps at most that many pairs, spread evenly over the images in file order.
    """
    path = Path(annotations)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: COCO captions file not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name} line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or not isinstance(doc.get("annotations"), list):
        raise ValueError(f"{path}: expected a JSON object with 'images' and 'annotations' lists (COCO captions format)")
    images_dir = Path(images_dir) if images_dir else path.parent
    builder = PairBuilder("coco", images_dir, strict, cache)
    captions: dict[object, list[str]] = {}  # image id -> its captions, in file order
    file_names: dict[object, str] = {}
    for n, image in enumerate(doc["images"]):
        where = f"{path.name} images[{n}]"
        if not isinstance(image, dict) or not isinstance(image.get("id"), (int, str)) or not isinstance(image.get("file_name"), str):
            builder.skip(f"images[{n}]", where, "malformed image entry: needs 'id' and 'file_name'", where)
            continue
        file_names[image["id"]] = image["file_name"]
        captions[image["id"]] = []
    for n, note in enumerate(doc["annotations"]):
        where = f"{path.name} annotations[{n}]"
        if not isinstance(note, dict) or not isinstance(note.get("image_id"), (int, str)) or not isinstance(note.get("caption"), str):
            builder.skip(f"annotations[{n}]", where, "malformed annotation: needs 'image_id' and a string 'caption'", where)
        elif note.get("image_id") not in captions:
            builder.skip(f"annotations[{n}]", where, "caption of an unknown image id", where)
        else:
            captions[note["image_id"]].append(note["caption"])
    for image_id, file_name in file_names.items():
        builder.add(file_name, images_dir / file_name, captions[image_id], where=f"{path.name} image id {image_id}")
    return builder.build(limit)
