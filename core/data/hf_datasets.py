"""Hugging Face `datasets`: a hub id, a folder written by `Dataset.save_to_disk`, or local data files.

The image column may hold images (the `Image` feature), dicts with `bytes`/`path`, paths or
http(s) URLs; the caption column a string or a list of strings (one pair each). Images that come
as bytes are decoded and written once as PNG into `<cache>/hf/<key>/<row>.png`, only for the rows
that `limit` keeps, so later stages read files by path like any other data set.

With `media="audio"` (or "video") the `audio` (`video`) column pairs with the captions instead:
the `Audio` feature's bytes are written as they are (FFmpeg reads them whatever their format),
decoded clips ({"array", "sampling_rate"}) as float WAV files; paths and URLs are read in place.
Text-audio sets such as Clotho or AudioCaps load this way.

The Platonic paper's evaluation set is `minhuh/prh` at revision `wit_1024` (1,024 WIT pairs;
columns `image` and `text`, a list of captions; the reference code embeds only the first, here
each caption is a pair and the pairs of one image share its key):
`load_hf("minhuh/prh", revision="wit_1024")`, or `--dataset hf --source minhuh/prh@wit_1024`.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from core.config import cache_dir
from core.data.base import PairedDataset, register_dataset
from core.data.builder import PairBuilder
from core.data.images import DECODE_ERRORS
from core.data.media import check_media_kind
from core.data.sources import is_url

DATA_FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}


@register_dataset("hf")
def load_hf(name: str, revision: str | None = None, split: str = "train", image_column: str | None = None,
            caption_column: str = "text", limit: int | None = None, cache: str | Path | None = None,
            strict: bool = False, streaming: bool = False, media: str = "image") -> PairedDataset:
    """One pair per caption of each row of `split`; rows without a usable media item or caption are skipped.

    `image_column` names the column of the media (default: "image", or "audio" / "video" as `media` says).

    `name` is a local path (a `save_to_disk` folder, a data file, a folder of data files) or a hub id,
    optionally `id@revision`. Pair ids are row numbers (`<row>#k` for the k-th of several captions).
    `limit` keeps at most that many pairs, spread evenly; with `streaming`, reading stops once
    `limit` pairs are listed.
    """
    import datasets

    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    image_column = image_column or check_media_kind(media)
    local = Path(name).expanduser()
    if not local.exists() and "@" in name and revision is None:
        name, revision = name.rsplit("@", 1)
    rows = open_rows(local if local.exists() else name, revision, split, streaming)
    features = rows.features or {}  # a streamed data set may not know its columns before the first row
    missing = [c for c in (image_column, caption_column) if features and c not in features]
    if missing:
        raise ValueError(f"{name}: no {' or '.join(repr(c) for c in missing)} column (found: {', '.join(features)}); "
                         "pass image_column= and caption_column= to name them")
    if isinstance(features.get(image_column), datasets.Image):
        rows = rows.cast_column(image_column, datasets.Image(decode=False))  # bytes: decode only the rows kept
    for kind in (datasets.Audio, datasets.Video):
        if isinstance(features.get(image_column), kind):
            rows = rows.cast_column(image_column, kind(decode=False))  # bytes, as stored
    identity = str(local.resolve()) if local.exists() else name
    # a local folder can be rewritten in place, so its key also covers the content's fingerprint
    fingerprint = getattr(rows, "_fingerprint", "") if local.exists() else ""
    key = hashlib.sha256("\0".join([identity, revision or "", split, fingerprint or ""]).encode()).hexdigest()
    folder = cache_dir(cache) / "hf" / key
    base = local if local.is_dir() else local.parent  # where relative image paths point
    root = local if local.exists() else folder

    if streaming:
        builder = PairBuilder("hf", root, strict, cache, media)
        for row, record in enumerate(rows):
            image = image_source(record.get(image_column), base)
            if image is ENCODED:
                image = write_item(record[image_column], encoded_path(folder, row, record[image_column], media), media)
                if isinstance(image, str):  # why it cannot be decoded
                    where = f"{name} row {row}"
                    builder.skip(str(row), where, image, where)
                    continue
            add_record(builder, name, row, image, record.get(caption_column))
            if limit is not None and len(builder.candidates) >= limit:
                break
        return builder.build(limit)

    builder = LazyItemBuilder("hf", root, strict, cache, media, read=lambda row: rows[row][image_column])
    for row, record in enumerate(rows.select_columns([image_column, caption_column])):
        image = image_source(record[image_column], base)
        if image is ENCODED:  # written only if `build` keeps the row: `limit` decodes few images
            image = encoded_path(folder, row, record[image_column], media)
            builder.pending.add(image)
        add_record(builder, name, row, image, record[caption_column])
    return builder.build(limit)


def open_rows(source: str | Path, revision: str | None, split: str, streaming: bool):
    """The `datasets.Dataset` (IterableDataset with `streaming`) of one split; hub failures say what to do."""
    import datasets

    if isinstance(source, Path):
        if (source / "state.json").is_file() or (source / "dataset_dict.json").is_file():
            loaded = datasets.load_from_disk(str(source))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise ValueError(f"{source}: no split {split!r} (found: {', '.join(loaded)})")
                loaded = loaded[split]
            return loaded.to_iterable_dataset() if streaming else loaded
        if source.is_file():
            kind = DATA_FILE_BUILDERS.get(source.suffix.lower())
            if kind is None:
                raise ValueError(f"{source}: unknown data file format {source.suffix!r}; use one of {', '.join(DATA_FILE_BUILDERS)}")
            return datasets.load_dataset(kind, data_files={split: str(source)}, split=split, streaming=streaming)
        return datasets.load_dataset(str(source), split=split, streaming=streaming)
    try:
        return datasets.load_dataset(source, revision=revision, split=split, streaming=streaming)
    except ConnectionError as exc:
        at = f" revision {revision}" if revision else ""
        raise ConnectionError(
            f"{source}{at}: Hugging Face dataset not reachable and not in the local cache ({exc}); "
            "fetch it on a networked machine first (load it once there, or save_to_disk and copy the folder) "
            "and pass it again, or give a local path") from exc


def add_record(builder: PairBuilder, name: str, row: int, image: str | Path | None, caption: Any) -> None:
    """Check one row's image and caption cells and hand it to the builder."""
    sample_id, where = str(row), f"{name} row {row}"
    captions = [caption] if isinstance(caption, str) else caption
    if image is None:
        what = {"image": "an image", "audio": "a clip"}.get(builder.media, "a video")
        builder.skip(sample_id, where, f"malformed row: {builder.media} must be {what}, bytes, a path or a URL", where)
    elif not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        builder.skip(sample_id, where, "malformed row: caption must be a string or a list of strings", where)
    else:
        builder.add(sample_id, image, captions, where=where)


ENCODED = object()  # image_source's answer for an image held as bytes or pixels
PNG_MODES = ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")  # others (CMYK photos) are converted to RGB


def image_source(value: Any, base: Path) -> str | Path | object | None:
    """A URL or path the builder can read as is, ENCODED for bytes or a decoded image, or None if neither."""
    if isinstance(value, Image.Image) or isinstance(value, dict) and (value.get("bytes") or value.get("array") is not None):
        return ENCODED
    if isinstance(value, dict):
        value = value.get("path")
    if isinstance(value, str) and value.strip():
        value = value.strip()
        return value if is_url(value) else base / Path(value).expanduser()
    return None


def partial_path(target: Path) -> Path:
    """Where `target` is written before it is renamed into place; unique per process and thread."""
    return target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.partial")


def write_png(value: Any, target: Path) -> Path | str:
    """`target`, the image (a PIL image or {"bytes": ...}) written there once as PNG; else why it cannot be decoded."""
    if target.is_file():
        return target
    partial = partial_path(target)
    try:
        image = value if isinstance(value, Image.Image) else Image.open(io.BytesIO(value["bytes"]))
        if image.mode not in PNG_MODES:
            image = image.convert("RGB")
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(partial, format="PNG")
    except DECODE_ERRORS as exc:
        partial.unlink(missing_ok=True)
        return f"cannot decode image ({exc})"
    partial.replace(target)  # atomic: a reader never sees half a file
    return target


def encoded_path(folder: Path, row: int, value: Any, media: str) -> Path:
    """Where row `row`'s encoded item goes: a PNG for images; audio and video keep their file's suffix."""
    if media == "image":
        return folder / f"{row}.png"
    suffix = Path(str(value.get("path") or "")).suffix if isinstance(value, dict) and value.get("bytes") else ""
    return folder / f"{row}{suffix or ('.wav' if media == 'audio' else '.bin')}"


def write_item(value: Any, target: Path, media: str) -> Path | str:
    """`target`, written once from an encoded item (see `encoded_path`); else why it cannot be."""
    if media == "image":
        return write_png(value, target)
    if target.is_file():
        return target
    partial = partial_path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if value.get("bytes"):
        partial.write_bytes(value["bytes"])
    else:
        try:
            write_float_wav(value["array"], int(value["sampling_rate"]), partial)
        except (KeyError, TypeError, ValueError) as exc:
            partial.unlink(missing_ok=True)
            return f"malformed audio cell ({exc.__class__.__name__}: {exc}); expected an array and a sampling_rate"
    partial.replace(target)  # atomic: a reader never sees half a file
    return target


def write_float_wav(samples: Any, rate: int, target: Path) -> None:
    """A mono or [channels, samples] float clip as a 32-bit float WAV (lossless), through PyAV."""
    import av
    import numpy as np

    array = np.asarray(samples, dtype=np.float32)
    array = array[None] if array.ndim == 1 else array
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"audio array of shape {np.shape(samples)}")
    layout = {1: "mono", 2: "stereo"}.get(array.shape[0])
    if layout is None:
        raise ValueError(f"{array.shape[0]} channels (mono or stereo only)")
    with av.open(str(target), "w", format="wav") as container:
        stream = container.add_stream("pcm_f32le", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(array), format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


class LazyItemBuilder(PairBuilder):
    """A PairBuilder whose `pending` files (`<folder>/<row>.<suffix>`) are written from `read(row)` when first checked."""

    def __init__(self, *args, read: Callable[[int], Any], **kwargs):
        super().__init__(*args, **kwargs)
        self.read = read
        self.pending: set[Path] = set()

    def _resolve(self, images: list[str | Path]) -> None:
        for image in images:
            if image in self.pending and image not in self._resolved:
                self.pending.discard(image)
                written = write_item(self.read(int(Path(image).stem)), Path(image), self.media)
                if isinstance(written, str):
                    self._resolved[image] = written
        super()._resolve(images)
