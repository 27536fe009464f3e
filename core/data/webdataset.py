"""WebDataset tar shards: files grouped by key (the path up to the first dot of the file name).

A key's image (.jpg, .jpeg, .png, .webp) pairs with the caption in its `.txt`, or else the
`caption` or `text` field of its `.json` (a string or a list of strings); a `.cls` file is its
label. With `media="audio"` (or "video") the key's audio file (.wav, .flac, .mp3, ...; or
.mp4, .webm, ...) takes the image's place. Shards are paths, globs, brace lists (`shard-{000..003}.tar`) or http(s) URLs (fetched
into the cache). Each shard is extracted once into `<cache>/webdataset/<shard sha256>/`, so
later stages read files by path like any other data set.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from glob import glob
from pathlib import Path

from core.config import cache_dir
from core.data.base import PairedDataset, register_dataset
from core.data.builder import PairBuilder
from core.data.media import SUFFIXES, check_media_kind
from core.data.sources import FetchError, fetch_url, file_sha256, is_url

KEY = re.compile(r"((?:.*/)?[^./]+)\.([^/]+)")  # "dir/000123.jpg" -> key "dir/000123", suffix "jpg"
BRACES = re.compile(r"\{(\d+\.\.\d+|[^{}]*,[^{}]*)\}")
TEXT_SUFFIXES = ("txt", "json", "cls")
INDEX = "index.json"


@register_dataset("webdataset")
def load_webdataset(shards: str | Path | list[str | Path], limit: int | None = None,
                    cache: str | Path | None = None, strict: bool = False, media: str = "image") -> PairedDataset:
    """One pair per caption of every key with a `media` file; keys without one, or without a caption, are skipped.

    Pair ids are `<shard file name>/<key>`. `limit` keeps at most that many pairs, spread evenly.
    """
    check_media_kind(media)
    names = expand_shards(shards)
    local = [local_shard(name, cache) for name in names]
    builder = PairBuilder("webdataset", local[0].parent, strict, cache, media)
    for name, shard in zip(names, local):
        shard_name = name.rsplit("/", 1)[-1]
        folder, groups = extract_shard(shard, cache, media)
        for key, files in groups.items():
            sample_id, where = f"{shard_name}/{key}", f"{shard_name} key {key}"
            captions, label, problem = group_captions(files)
            if "media" not in files:
                builder.skip(sample_id, where, f"no {media} file", where)
            elif problem:
                builder.skip(sample_id, where, problem, where)
            else:
                builder.add(sample_id, folder / files["media"], captions, label or "", label, where)
    return builder.build(limit)


def expand_braces(pattern: str) -> list[str]:
    """`s-{000..002}.tar` -> s-000.tar, s-001.tar, s-002.tar; `{a,b}` -> a, b (as WebDataset and bash do)."""
    match = BRACES.search(pattern)
    if not match:
        return [pattern]
    body = match.group(1)
    if ".." in body and "," not in body:
        low, high = body.split("..")
        choices = [str(i).zfill(len(low)) for i in range(int(low), int(high) + 1)]
    else:
        choices = body.split(",")
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [name for choice in choices for name in expand_braces(head + choice + tail)]


def expand_shards(shards: str | Path | list[str | Path]) -> list[str]:
    """Every shard that `shards` names: brace lists expanded, globs matched (sorted), URLs kept."""
    specs = [shards] if isinstance(shards, (str, Path)) else list(shards)
    names: list[str] = []
    for spec in map(str, specs):
        for name in expand_braces(spec):
            if is_url(name) or not any(ch in name for ch in "*?["):
                names.append(name)
                continue
            matches = sorted(glob(name))
            if not matches:
                raise FileNotFoundError(f"{name}: no shard matches this pattern")
            names.extend(matches)
    if not names:
        raise ValueError("no shards given; pass tar paths, a glob, a brace list or URLs")
    return names


def local_shard(name: str, cache: str | Path | None) -> Path:
    """The shard on disk: a local path as is, a URL fetched into the cache."""
    if is_url(name):
        try:
            return fetch_url(name, cache)
        except FetchError as exc:
            raise ValueError(f"{name}: {exc}") from exc
    if not Path(name).is_file():
        raise FileNotFoundError(f"{name}: shard not found")
    return Path(name)


def extract_shard(shard: Path, cache: str | Path | None, media: str = "image") -> tuple[Path, dict[str, dict[str, str]]]:
    """(folder, {key: {"media": file name in folder, "txt" | "json" | "cls": text}}), in tar order.

    The `media` files are written to `<cache>/webdataset/<sha256 of the shard>-<media>/` with an index, once.
    """
    folder = cache_dir(cache) / "webdataset" / f"{file_sha256(shard)}-{media}"
    if (folder / INDEX).is_file():
        return folder, json.loads((folder / INDEX).read_text())
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    groups: dict[str, dict[str, str]] = {}
    written = 0
    try:
        with tarfile.open(shard) as tar:
            for member in tar:
                match = KEY.fullmatch(member.name.removeprefix("./"))
                if not member.isfile() or not match:
                    continue
                key, suffix = match.group(1), match.group(2).lower()
                files = groups.setdefault(key, {})
                if f".{suffix}" in SUFFIXES[media] and "media" not in files:
                    files["media"] = f"{written:07d}.{suffix}"  # numbered: tar names may hold '..' or clash
                    (staging / files["media"]).write_bytes(tar.extractfile(member).read())
                    written += 1
                elif suffix in TEXT_SUFFIXES:
                    files[suffix] = tar.extractfile(member).read().decode("utf-8", errors="replace")
    except (tarfile.TarError, EOFError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ValueError(f"{shard}: not a readable tar shard ({exc}); re-download or remove it") from exc
    (staging / INDEX).write_text(json.dumps(groups))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)  # atomic: an interrupted extraction is redone, never half used
    return folder, groups


def group_captions(files: dict[str, str]) -> tuple[list[str], str | None, str | None]:
    """(captions, label, problem) from one key's text files: `.txt`, else `.json` caption/text; `.cls` label."""
    label = files.get("cls", "").strip() or None
    if "txt" in files:
        return [files["txt"]], label, None
    if "json" not in files:
        return [], label, "no caption (.txt, or 'caption'/'text' in .json)"
    try:
        meta = json.loads(files["json"])
    except json.JSONDecodeError as exc:
        return [], label, f"malformed .json ({exc.msg})"
    caption = meta.get("caption", meta.get("text")) if isinstance(meta, dict) else None
    if caption is None:
        return [], label, "no caption (.txt, or 'caption'/'text' in .json)"
    captions = [caption] if isinstance(caption, str) else caption
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        return [], label, "malformed .json: 'caption' must be a string or a list of strings"
    return captions, label, None
