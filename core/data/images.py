"""Image decoding shared by every loader: RGB, transparency composited on white."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

THUMB_SIZE = 160
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")  # what folder and tar loaders take as images


# a huge image (DecompressionBombError) is as unusable as a broken one
DECODE_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, Image.DecompressionBombError)


class ImageError(ValueError):
    """An image file that cannot be decoded; the message names the file."""


def load_rgb(path: str | Path) -> Image.Image:
    """Decode `path` to RGB; transparent pixels (stamp cut-outs) become white."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "P", "PA") or "transparency" in im.info:
                rgba = im.convert("RGBA")
                canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(canvas, rgba).convert("RGB")
            return im.convert("RGB")
    except DECODE_ERRORS as exc:
        raise ImageError(f"{path}: cannot decode image ({exc}); remove or replace the file") from exc


def check_image(path: str | Path) -> str | None:
    """None if `path` looks like a readable image, else the reason it is not."""
    try:
        with Image.open(path) as im:
            im.verify()
    except DECODE_ERRORS as exc:
        return f"unreadable image ({exc.__class__.__name__}: {exc})"
    return None


def save_preview(im: Image.Image, out: Path) -> Path:
    """`im` as a JPEG at `out`, written under a temporary name and renamed: a reader never sees half a file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.jpg")
    im.convert("RGB").save(tmp, "JPEG", quality=88)
    tmp.replace(out)
    return out


def thumbnail(path: str | Path, out_dir: Path, key: str) -> Path:
    """A small JPEG of the image (on white) at `out_dir/key.jpg`, made once and reused."""
    out = out_dir / f"{key}.jpg"
    if not out.exists():
        im = load_rgb(path)
        im.thumbnail((THUMB_SIZE, THUMB_SIZE))
        save_preview(im, out)
    return out
