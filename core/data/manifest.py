"""A manifest of image-caption rows: JSON Lines (.jsonl), CSV (.csv) or Parquet (.parquet).

Columns (fields, for JSON Lines):
- `image`: a path relative to the manifest's folder, an absolute path, or an http(s) URL
  (fetched once into `<cache>/downloads/`). A manifest of audio clips or videos has an `audio`
  or `video` column instead (same forms; exactly one of the three);
- `caption`: a string, or a list of strings (one pair per caption); in CSV a list is written
  as a JSON array string (`["a cat", "a kitten"]`);
- `id` (optional): the row's id, unique in the file; default `<file name>:<line>`
  (`<file name>:<row>` for Parquet). Several captions give ids `<id>#0`, `<id>#1`, ...;
- `label` (optional): the image's class, also shown as its category.
Rows that share an image (same file or same bytes) share its key, so many-to-many data is
simply several rows.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

from core.data.base import PairedDataset, register_dataset
from core.data.builder import PairBuilder
from core.data.sources import is_url

MEDIA_COLUMNS = ("image", "audio", "video")  # exactly one names the media files; its name is the data set's media


@register_dataset("manifest")
def load_manifest(path: str | Path, limit: int | None = None, cache: str | Path | None = None,
                  strict: bool = False) -> PairedDataset:
    """The pairs listed in the manifest at `path`; bad rows are in `skipped` (or raise, with `strict`).

    `limit` keeps at most that many pairs, spread evenly over the rows, fetching only their images.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    readers = {".jsonl": jsonl_rows, ".csv": csv_rows, ".parquet": parquet_rows}
    if path.suffix.lower() not in readers:
        raise ValueError(f"{path}: unknown manifest format {path.suffix!r}; use one of {', '.join(readers)}")
    rows = readers[path.suffix.lower()](path)
    media = next(rows)  # each reader first says which media column the manifest has
    builder = PairBuilder("manifest", path.parent, strict, cache, media)
    for where, default_id, row, problem in rows:
        add_row(builder, path, where, default_id, row, problem)
    return builder.build(limit)


def add_row(builder: PairBuilder, manifest: Path, where: str, default_id: str, row: dict, problem: str | None) -> None:
    """Check one row's fields and hand it to the builder; `problem` says why a row could not be parsed."""
    sample_id = default_id if row.get("id") in (None, "") else str(row["id"])
    if problem:
        builder.skip(sample_id, where, problem, where)
        return
    column = builder.media
    image, captions, label = row.get(column), row.get("caption"), row.get("label")
    if isinstance(captions, str):
        captions = [captions]
    if not isinstance(image, str) or not image.strip():
        builder.skip(sample_id, where, f"malformed row: '{column}' must be a path or URL", where)
    elif not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        builder.skip(sample_id, where, "malformed row: 'caption' must be a string or a list of strings", where)
    else:
        image = image.strip()
        source = image if is_url(image) else manifest.parent / Path(image).expanduser()
        label = None if label in (None, "") else str(label)
        builder.add(sample_id, source, captions, label or "", label, where)


Rows = Iterator  # the media column's name, then (where, default id, row, why it is malformed) per row


def jsonl_rows(path: Path) -> Rows:
    """One row per non-blank line; the media column is the one the first object names."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:  # -sig: tolerate a byte-order mark
        yield media_column(path, first_object_keys(f))
        f.seek(0)
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where, default_id = f"{path.name} line {number}", f"{path.name}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, default_id, {}, f"malformed row: not valid JSON ({exc.msg} at column {exc.colno})"
            else:
                is_object = isinstance(row, dict)
                yield (where, default_id, row if is_object else {},
                       None if is_object else f"malformed row: expected a JSON object, got {type(row).__name__}")


def csv_rows(path: Path) -> Rows:
    """One row per data row; a caption cell holding a JSON array is a list."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:  # -sig: spreadsheets write a BOM
        reader = csv.DictReader(f)
        yield media_column(path, reader.fieldnames or [])
        for row in reader:
            where, default_id = f"{path.name} line {reader.line_num}", f"{path.name}:{reader.line_num}"
            if None in row or None in row.values():  # csv puts extra cells under None, missing ones as None
                yield where, default_id, row, f"malformed row: expected {len(reader.fieldnames)} cells"
                continue
            caption = row["caption"].strip()
            if caption.startswith("["):
                try:
                    row["caption"] = json.loads(caption)
                except json.JSONDecodeError as exc:
                    yield where, default_id, row, f"malformed row: caption is not a valid JSON array ({exc.msg})"
                    continue
            yield where, default_id, row, None


def parquet_rows(path: Path) -> Rows:
    """One row per table row, read a batch at a time."""
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    media = media_column(path, table.schema_arrow.names)
    yield media
    columns = [c for c in (media, "caption", "id", "label") if c in table.schema_arrow.names]
    number = 0
    for batch in table.iter_batches(columns=columns):
        for row in batch.to_pylist():
            number += 1
            yield f"{path.name} row {number}", f"{path.name}:{number}", row, None


def first_object_keys(lines) -> list[str]:
    """The keys of the first JSON object that names a media column (else of the first object; none if no line is one)."""
    first: list[str] | None = None
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            if any(c in row for c in MEDIA_COLUMNS):
                return list(row)
            first = list(row) if first is None else first
    return first or []


def media_column(path: Path, columns: list[str]) -> str:
    """Which of `image`, `audio`, `video` the manifest has (exactly one), checking `caption` is there too."""
    media = [c for c in MEDIA_COLUMNS if c in columns]
    missing = ([] if len(media) == 1 else ["image (or audio, or video)"]) + ([] if "caption" in columns else ["caption"])
    if len(media) > 1:
        raise ValueError(f"{path}: columns {', '.join(media)} are all present; a manifest pairs captions with one "
                         "kind of media, so keep exactly one of image, audio, video")
    if missing:
        raise ValueError(f"{path}: no {' or '.join(repr(c) for c in missing)} column (found: {', '.join(columns) or 'none'}); "
                         "a manifest needs columns 'image' (or 'audio', or 'video') and 'caption', optionally 'id' and 'label'")
    return media[0]
