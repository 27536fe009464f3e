"""Tux Paint stamps (Debian package `tuxpaint-stamps-default`) as image-caption pairs.

Each stamp is `<category>/<name>.png` with `<name>.txt` beside it, whose first line is an
English caption ("A white kitten."); the folder path is the category.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from core.config import cache_dir
from core.data.base import PairedDataset, Sample, Skipped, evenly_spaced, register_dataset
from core.data.images import check_image

PACKAGE = "tuxpaint-stamps-default"
SYSTEM_ROOT = Path("/usr/share/tuxpaint/stamps")
STAMPS_SUBDIR = Path("usr/share/tuxpaint/stamps")


def locate_stamps(cache: str | Path | None = None) -> Path:
    """The stamps folder: the installed package if present, else the .deb extracted into the cache.

    Extraction needs no root: `apt-get download` then `dpkg-deb -x` into `<cache>/debian/`.
    """
    if SYSTEM_ROOT.is_dir() and any(SYSTEM_ROOT.iterdir()):
        return SYSTEM_ROOT
    target = cache_dir(cache) / "debian" / PACKAGE
    extracted = target / STAMPS_SUBDIR
    if extracted.is_dir() and any(extracted.iterdir()):
        return extracted
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise RuntimeError(
                f"Tux Paint stamps not found at {SYSTEM_ROOT} and `{tool}` is missing to fetch them; "
                f"install the Debian package {PACKAGE} or pass --data-root"
            )
    download_dir = target.parent / "downloads"
    download_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["apt-get", "download", PACKAGE], cwd=download_dir, capture_output=True, text=True)
    debs = sorted(download_dir.glob(f"{PACKAGE}_*.deb"))
    if done.returncode != 0 or not debs:
        raise RuntimeError(
            f"could not download {PACKAGE} with apt-get ({done.stderr.strip() or done.stdout.strip()}); "
            "run `apt-get update` first or install the package"
        )
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(staging)], check=True)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # atomic: a crash mid-extraction never leaves a half folder in use
    shutil.rmtree(download_dir, ignore_errors=True)  # the 160 MB .deb is not needed once extracted
    return extracted


def english_caption(txt_path: Path) -> str:
    """The first line of a stamp's .txt file (the English description), stripped."""
    text = txt_path.read_text(encoding="utf-8", errors="replace")
    first = text.splitlines()[0] if text.strip() else ""
    return first.strip()


@register_dataset("tuxpaint")
def load_tuxpaint(root: str | Path | None = None, limit: int | None = None,
                  cache: str | Path | None = None) -> PairedDataset:
    """Every stamp with a raster image and an English caption; the rest are listed in `skipped`.

    `limit` keeps at most that many pairs, spread evenly over the sorted stamps.
    """
    root = Path(root) if root else locate_stamps(cache)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder of Tux Paint stamps")
    samples: list[Sample] = []
    skipped: list[Skipped] = []
    captioned = {p.with_suffix("") for p in root.rglob("*.txt")}
    rasters = {p.with_suffix("") for p in root.rglob("*.png")}
    for stem in sorted(captioned | rasters):
        sample_id = stem.relative_to(root).as_posix()
        png, txt = stem.with_suffix(".png"), stem.with_suffix(".txt")
        if stem not in rasters:
            reason = "SVG only, no raster image" if stem.with_suffix(".svg").exists() else "no image file"
            skipped.append(Skipped(sample_id, str(txt), reason))
            continue
        if stem not in captioned:
            skipped.append(Skipped(sample_id, str(png), "no caption file"))
            continue
        caption = english_caption(txt)
        if not caption:
            skipped.append(Skipped(sample_id, str(txt), "empty caption"))
            continue
        problem = check_image(png)
        if problem:
            skipped.append(Skipped(sample_id, str(png), problem))
            continue
        category = stem.parent.relative_to(root).as_posix()
        sha = hashlib.sha256(png.read_bytes()).hexdigest()
        samples.append(Sample(sample_id, png, caption, category, sha))
    if not samples:
        raise ValueError(f"{root}: no stamp has both a PNG image and a caption")
    return PairedDataset("tuxpaint", root, evenly_spaced(samples, limit), skipped)
