"""Data shipped in Debian packages: the installed files, else the .deb extracted into the cache."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from core.config import cache_dir


def debian_data(package: str, subdir: str, cache: str | Path | None = None) -> Path:
    """`/<subdir>` if `package` is installed, else `<cache>/debian/<package>/<subdir>` from its .deb.

    Extraction needs no root: `apt-get download` then `dpkg-deb -x`; it happens once per cache.
    """
    system = Path("/") / subdir
    if system.is_dir() and any(system.iterdir()):
        return system
    target = cache_dir(cache) / "debian" / package
    extracted = target / subdir
    if extracted.is_dir() and any(extracted.iterdir()):
        return extracted
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise RuntimeError(
                f"{system} not found and `{tool}` is missing to fetch it; "
                f"install the Debian package {package} or pass the data set's root folder"
            )
    download_dir = target.parent / "downloads"
    download_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["apt-get", "download", package], cwd=download_dir, capture_output=True, text=True)
    debs = sorted(download_dir.glob(f"{package}_*.deb"))
    if done.returncode != 0 or not debs:
        raise RuntimeError(
            f"could not download {package} with apt-get ({done.stderr.strip() or done.stdout.strip()}); "
            "run `apt-get update` first or install the package"
        )
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(staging)], check=True)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # atomic: a crash mid-extraction never leaves a half folder in use
    for deb in debs:
        deb.unlink()  # the .deb (up to 160 MB) is not needed once extracted
    return extracted
