"""Audio and video beside images: which files count, how to check, decode and preview them.

Audio and video are decoded with PyAV (FFmpeg's decoders, bundled in its wheel), so every format
FFmpeg reads works: WAV, FLAC, Ogg Vorbis, Opus, MP3, AAC; MP4, WebM, Matroska, AVI. Audio comes
back as a mono float32 waveform at the rate the encoder asks for (resampled by FFmpeg); video as
RGB frames [frames, height, width, 3], picked uniformly over the clip while decoding, so a long
clip never sits in memory whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.data.base import MEDIA
from core.data.images import IMAGE_SUFFIXES, THUMB_SIZE, ImageError, check_image, load_rgb, save_preview, thumbnail

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".webm", ".mkv", ".mov", ".avi")
SUFFIXES = {"image": IMAGE_SUFFIXES, "audio": AUDIO_SUFFIXES, "video": VIDEO_SUFFIXES}


class MediaError(ValueError):
    """A media file that cannot be decoded; the message names the file and what was wrong (`reason`)."""

    def __init__(self, path: str | Path, reason: str, advice: str = "remove or replace the file") -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}" + (f"; {advice}" if advice else ""))


def check_media_kind(media: str) -> str:
    if media not in MEDIA:
        raise ValueError(f"media must be one of {list(MEDIA)}, got {media!r}")
    return media


def _av_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.FFmpegError, OSError, ValueError, IndexError)


def _open_stream(path: str | Path, media: str):
    """(container, first stream of `media`), or MediaError naming the file."""
    import av

    try:
        container = av.open(str(path))
    except _av_errors() as exc:
        raise MediaError(path, f"unreadable {media} ({exc.__class__.__name__}: {exc})") from exc
    streams = container.streams.audio if media == "audio" else container.streams.video
    if not streams:
        container.close()
        raise MediaError(path, f"has no {media} stream")
    return container, streams[0]


def check_media(path: str | Path, media: str = "image") -> str | None:
    """None if `path` looks like a readable file of `media` (its first frame decodes), else the reason."""
    if media == "image":
        return check_image(path)
    try:
        container, stream = _open_stream(path, media)
    except MediaError as exc:
        return exc.reason
    try:
        with container:
            next(container.decode(stream))
    except StopIteration:
        return f"{media} stream has no frames"
    except _av_errors() as exc:
        return f"unreadable {media} ({exc.__class__.__name__}: {exc})"
    return None


def load_audio(path: str | Path, rate: int | None = None, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """(mono float32 waveform [samples], sampling rate): channels averaged, resampled to `rate` when given,
    cut after `max_seconds` (decoding stops there)."""
    import av

    container, stream = _open_stream(path, "audio")
    rate = int(rate or stream.rate)
    limit = None if max_seconds is None else int(max_seconds * rate)
    chunks: list[np.ndarray] = []
    kept = 0
    try:
        with container:
            # planar float at the target rate, channels kept: the mean below is the usual mono mix
            # (librosa's, and datasets'), where FFmpeg's own downmix would scale by 1/sqrt(2)
            resampler = av.AudioResampler(format="fltp", rate=rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().mean(axis=0))
                    kept += len(chunks[-1])
                if limit is not None and kept >= limit:
                    break
            else:
                chunks.extend(out.to_ndarray().mean(axis=0) for out in resampler.resample(None))
    except _av_errors() as exc:
        raise MediaError(path, f"cannot decode audio ({exc.__class__.__name__}: {exc})") from exc
    wave = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    wave = wave if limit is None else wave[:limit]
    if wave.size == 0:
        raise MediaError(path, "the audio stream holds no samples")
    if not np.isfinite(wave).all():
        raise MediaError(path, "the decoded audio holds NaN or infinite samples")
    return wave, rate


def _count_frames(path: str | Path) -> int:
    """Frames in the first video stream: from the header when it says, else by reading packets (no decoding)."""
    container, stream = _open_stream(path, "video")
    with container:
        if stream.frames:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)


def load_video(path: str | Path, frames: int | None = None) -> np.ndarray:
    """RGB frames uint8 [frames, height, width, 3], `frames` of them picked uniformly (all when None).

    A clip shorter than `frames` repeats frames, as uniform sampling with replacement does.
    """
    try:
        total = _count_frames(path)
        picks = None if frames is None else np.linspace(0, max(total - 1, 0), frames).round().astype(int)
        wanted = None if picks is None else set(picks.tolist())
        kept: dict[int, np.ndarray] = {}
        container, stream = _open_stream(path, "video")
        with container:
            for index, frame in enumerate(container.decode(stream)):
                if wanted is None or index in wanted:
                    kept[index] = frame.to_ndarray(format="rgb24")
                if wanted is not None and index >= max(wanted):
                    break
    except MediaError:
        raise
    except _av_errors() as exc:
        raise MediaError(path, f"cannot decode video ({exc.__class__.__name__}: {exc})") from exc
    if not kept:
        raise MediaError(path, "the video stream holds no frames")
    if picks is None:
        return np.stack([kept[i] for i in sorted(kept)])
    last = max(kept)  # the header may count more frames than decode: clamp to the last real one
    return np.stack([kept[min(i, last)] for i in picks])


def decode_media(path: str | Path, media: str, **options: Any):
    """The encoder input for one file: a PIL image, (waveform, rate) or frames [T, H, W, 3].

    `options`: `rate` for audio, `frames` for video (from the encoder's `decode_options()`).
    """
    if media == "image":
        try:
            return load_rgb(path)
        except ImageError as exc:
            raise MediaError(path, str(exc).removeprefix(f"{path}: "), advice="") from exc
    if media == "audio":
        return load_audio(path, options.get("rate"), options.get("max_seconds"))
    if media == "video":
        return load_video(path, options.get("frames"))
    raise ValueError(f"media must be one of {list(MEDIA)}, got {media!r}")


def media_thumbnail(path: str | Path, media: str, out_dir: Path, key: str) -> Path:
    """A small JPEG preview at `out_dir/key.jpg`, made once: the image itself, a video's middle frame,
    or an audio clip's spectrogram (time left to right, low frequencies at the bottom)."""
    if media == "image":
        return thumbnail(path, out_dir, key)
    out = out_dir / f"{key}.jpg"
    if not out.exists():
        if media == "video":
            im = Image.fromarray(load_video(path, 3)[1])
            im.thumbnail((THUMB_SIZE, THUMB_SIZE))
        else:
            im = spectrogram_image(*load_audio(path, 16000))
        save_preview(im, out)
    return out


def spectrogram_image(wave: np.ndarray, rate: int, size: tuple[int, int] = (THUMB_SIZE, THUMB_SIZE * 3 // 4)) -> Image.Image:
    """Log-magnitude spectrogram of `wave` (dB, 80 dB range) coloured with Viridis, `size` (width, height)."""
    from plotly.colors import hex_to_rgb, sequential

    n_fft = 512
    hop = max(1, min(n_fft // 2, len(wave) // size[0] or 1))
    padded = np.pad(wave, (n_fft // 2, n_fft // 2))
    starts = np.arange(0, max(len(padded) - n_fft, 0) + 1, hop)
    window = np.hanning(n_fft).astype(np.float32)
    frames = np.stack([padded[s:s + n_fft] * window for s in starts])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    db = 10 * np.log10(np.maximum(power, 1e-10))
    db = np.clip(db - db.max() + 80, 0, 80) / 80  # [time, freq] in 0..1
    stops = np.array([hex_to_rgb(c) for c in sequential.Viridis], dtype=np.float32)
    positions = np.linspace(0, 1, len(stops))
    lut = np.stack([np.interp(np.linspace(0, 1, 256), positions, stops[:, c]) for c in range(3)], axis=1).astype(np.uint8)
    pixels = lut[(db.T[::-1] * 255).astype(np.uint8)]  # rows: high to low frequency
    return Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR)
