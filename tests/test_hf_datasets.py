"""The Hugging Face `datasets` adapter on small real data sets written locally (no hub access): a
`save_to_disk` folder with an Image column and caption lists, parquet files, and the error a hub id
gives offline."""

from __future__ import annotations

import io

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from core.data import available_datasets, load_dataset, load_rgb  # noqa: E402
from tests.conftest import REAL_STAMPS  # noqa: E402

FROG, TIGER, BANANA, FIRETRUCK = REAL_STAMPS


@pytest.fixture(autouse=True)
def hf_cache_in_tmp(tmp_path, monkeypatch):
    """datasets' own cache (what load_dataset converts data files into) stays inside the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


@pytest.fixture
def stamp_images(stamps_root):
    """{stamp: a small real picture (PIL RGB)} for the four real stamps."""
    images = {}
    for stamp in REAL_STAMPS:
        image = load_rgb((stamps_root / stamp).with_suffix(".png"))
        image.thumbnail((64, 64))
        images[stamp] = image
    return images


@pytest.fixture
def saved_dataset(tmp_path, stamp_images):
    """A `save_to_disk` folder: an Image column and a list-of-captions column; row 2's caption is blank."""
    rows = {
        "image": [stamp_images[FROG], stamp_images[TIGER], stamp_images[BANANA], stamp_images[FIRETRUCK]],
        "text": [["A green frog.", "A frog on a leaf."], ["A tiger."], ["   "], ["A red fire truck."]],
    }
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Sequence(datasets.Value("string"))})
    path = tmp_path / "saved"
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(path))
    return path


def reasons(data) -> dict[str, str]:
    return {s.sample_id: s.reason for s in data.skipped}


def test_hf_is_registered():
    assert "hf" in available_datasets()


def test_saved_dataset_gives_one_pair_per_caption_with_images_written_once_as_png(saved_dataset, tmp_path):
    cache = tmp_path / "cache"
    data = load_dataset("hf", source=str(saved_dataset), cache=cache)
    assert [s.sample_id for s in data.samples] == ["0#0", "0#1", "1", "3"]
    assert data.captions == ["A green frog.", "A frog on a leaf.", "A tiger.", "A red fire truck."]
    assert reasons(data) == {"2": "empty caption"}
    paths = {s.media_path for s in data.samples}
    assert len(paths) == 3 and all(p.suffix == ".png" and p.parent.parent == cache / "hf" for p in paths)
    assert load_rgb(data.samples[0].media_path).size == load_rgb(data.samples[1].media_path).size
    media_index, text_index = data.pair_index()
    assert media_index.tolist() == [0, 0, 1, 2] and text_index.tolist() == [0, 1, 2, 3]
    # a second load reads the PNGs already written, and yields the same pairs
    stamp = data.samples[0].media_path.stat().st_mtime_ns
    again = load_dataset("hf", source=str(saved_dataset), cache=cache)
    assert again.fingerprint() == data.fingerprint() and data.samples[0].media_path.stat().st_mtime_ns == stamp


def test_limit_writes_only_the_images_it_keeps(saved_dataset, tmp_path):
    cache = tmp_path / "cache"
    data = load_dataset("hf", source=str(saved_dataset), cache=cache, limit=2)
    assert len(data) == 2
    written = list((cache / "hf").rglob("*.png"))
    assert sorted(written) == sorted({s.media_path for s in data.samples})


def test_streaming_stops_at_limit(saved_dataset, tmp_path):
    data = load_dataset("hf", source=str(saved_dataset), cache=tmp_path / "cache", streaming=True, limit=2)
    assert [s.sample_id for s in data.samples] == ["0#0", "0#1"]
    assert len(list((tmp_path / "cache" / "hf").rglob("*.png"))) == 1


def test_strict_stops_at_the_blank_caption(saved_dataset, tmp_path):
    with pytest.raises(ValueError, match=r"row 2: empty caption"):
        load_dataset("hf", source=str(saved_dataset), cache=tmp_path / "cache", strict=True)


def test_missing_column_names_the_columns_found(saved_dataset, tmp_path):
    with pytest.raises(ValueError, match=r"no 'caption' column \(found: image, text\)"):
        load_dataset("hf", source=str(saved_dataset), cache=tmp_path / "cache", caption_column="caption")


def test_parquet_files_with_bytes_paths_and_a_corrupt_image(tmp_path, stamp_images):
    """Image cells as {bytes, path} dicts or plain relative paths; string captions; bad bytes are skipped."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def png_bytes(image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    folder = tmp_path / "parquet"
    folder.mkdir()
    stamp_images[TIGER].save(folder / "tiger.png")
    images = [{"bytes": png_bytes(stamp_images[FROG]), "path": None}, {"bytes": None, "path": "tiger.png"},
              {"bytes": b"\x89PNG\r\n\x1a\nthis is not a png", "path": None}]
    table = pa.table({"picture": images, "caption": ["A green frog.", "A tiger.", "A broken picture."]})
    pq.write_table(table, folder / "pairs.parquet")
    data = load_dataset("hf", source=str(folder / "pairs.parquet"), image_column="picture",
                        caption_column="caption", cache=tmp_path / "cache")
    assert data.captions == ["A green frog.", "A tiger."]
    assert data.samples[1].media_path == folder / "tiger.png"
    assert list(reasons(data)) == ["2"] and reasons(data)["2"].startswith("cannot decode image")


def test_hub_id_offline_says_to_fetch_it_on_a_networked_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConnectionError, match=r"minhuh/prh revision wit_1024: .*networked machine.*local path"):
        load_dataset("hf", source="minhuh/prh@wit_1024", cache=tmp_path / "cache")


def wav_bytes(tone_hz: float, rate: int = 8000) -> bytes:
    import io
    import wave

    t = np.arange(rate // 2) / rate
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.sin(2 * np.pi * tone_hz * t) * 20000).astype(np.int16).tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize("streaming", [False, True])
def test_audio_feature_bytes_and_decoded_arrays_become_files(tmp_path, streaming):
    from core.data.media import load_audio

    stored = datasets.Dataset.from_dict(
        {"audio": [{"bytes": wav_bytes(220), "path": "low.wav"}, {"bytes": b"not audio", "path": "x.wav"},
                   {"bytes": wav_bytes(880), "path": "high.wav"}],
         "text": [["a low hum"], ["static"], ["a high whistle", "a beep"]]})
    # as the hub stores an Audio column (built from bytes: encoding clips would need torchcodec)
    stored = stored.cast_column("audio", datasets.Audio(decode=False)).cast_column("audio", datasets.Audio())
    stored.save_to_disk(tmp_path / "clips")
    data = load_dataset("hf", source=str(tmp_path / "clips"), media="audio", cache=tmp_path / "cache", streaming=streaming)
    assert data.media == "audio" and data.captions == ["a low hum", "a high whistle", "a beep"]
    assert [s.reason.split(" (")[0] for s in data.skipped] == ["unreadable audio"]
    wave_, rate = load_audio(data.samples[0].media_path)
    assert rate == 8000 and len(wave_) == 4000 and data.samples[0].media_path.suffix == ".wav"
    assert data.pair_index()[0].tolist() == [0, 1, 1]

    arrays = datasets.Dataset.from_dict({"audio": [{"array": [0.25] * 800, "sampling_rate": 16000},
                                                   {"array": [], "sampling_rate": 16000}], "text": ["flat", "empty"]})
    arrays.save_to_disk(tmp_path / "arrays")
    decoded = load_dataset("hf", source=str(tmp_path / "arrays"), media="audio", cache=tmp_path / "cache",
                           streaming=streaming)
    assert decoded.captions == ["flat"] and decoded.skipped[0].reason.startswith("malformed audio cell")
    wave_, rate = load_audio(decoded.samples[0].media_path)
    assert rate == 16000 and np.allclose(wave_, 0.25)  # written as float WAV: lossless
