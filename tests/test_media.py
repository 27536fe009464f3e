"""Audio and video through the whole pipeline: decoding, adapters, feature store, alignment run, dashboard.

Real audio comes from the Tux Paint stamps' sound effects (Ogg Vorbis); WAV files and videos are
written here (stdlib `wave`, PyAV's MPEG-4 encoder) with content the assertions can check.
"""

from __future__ import annotations

import json
import tarfile
import wave
from pathlib import Path

import av
import duckdb
import numpy as np
import pytest

from core.config import CACHE_ENV, REPO_ROOT
from core.data import MediaError, load_dataset
from core.data.media import check_media, decode_media, load_audio, load_video, media_thumbnail
from core.encoders import create_encoder
from core.features import extract_features
from tests.tiny_models import save_tiny_videomae, save_tiny_wav2vec2


def write_wav(path: Path, tone_hz: float, rate: int = 8000, seconds: float = 0.5, channels: int = 2) -> Path:
    """A 16-bit PCM sine; with two channels the right one is silent, so the mono mix is half the tone."""
    t = np.arange(int(rate * seconds)) / rate
    left = (0.8 * np.sin(2 * np.pi * tone_hz * t) * 32767).astype(np.int16)
    frames = np.stack([left, np.zeros_like(left)], axis=1) if channels == 2 else left[:, None]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames.tobytes())
    return path


def write_video(path: Path, frames: int = 30, shade_step: int = 8, size: tuple[int, int] = (48, 32)) -> Path:
    """An MPEG-4 clip whose frame i is flat grey at i * shade_step, so a decoded frame says which one it is."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            image = np.full((size[1], size[0], 3), i * shade_step, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def tiny_audio_model(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(0)
    return save_tiny_wav2vec2(tmp_path_factory.mktemp("wav2vec2"))


@pytest.fixture(scope="module")
def tiny_video_model(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(0)
    return save_tiny_videomae(tmp_path_factory.mktemp("videomae"))


# ---------------------------------------------------------------- decoding

def test_audio_is_mixed_to_mono_and_resampled_keeping_its_pitch(tmp_path):
    path = write_wav(tmp_path / "tone.wav", 440.0, rate=8000, seconds=0.5)
    native, rate = load_audio(path)
    assert rate == 8000 and native.shape == (4000,) and native.dtype == np.float32
    assert abs(np.abs(native).max() - 0.4) < 0.01  # left at 0.8, right silent: the mean of the two
    wave16, rate16 = load_audio(path, 16000)
    assert rate16 == 16000 and abs(len(wave16) - 8000) <= 64
    spectrum = np.abs(np.fft.rfft(wave16[1000:7000]))
    assert abs(np.fft.rfftfreq(6000, 1 / 16000)[spectrum.argmax()] - 440) < 5


def test_a_cap_on_clip_length_stops_decoding_there(tmp_path, tiny_audio_model):
    path = write_wav(tmp_path / "long.wav", 440.0, rate=8000, seconds=3.0)
    wave_, rate = load_audio(path, 16000, max_seconds=1.25)
    assert rate == 16000 and len(wave_) == 20000
    np.testing.assert_allclose(wave_, load_audio(path, 16000)[0][:20000], atol=1e-6)
    capped = create_encoder(f"hf:{tiny_audio_model}", modality="audio", max_seconds=1.25)
    whole = create_encoder(f"hf:{tiny_audio_model}", modality="audio")
    assert capped.decode_options() == {"rate": 16000, "max_seconds": 1.25} and capped.fingerprint() != whole.fingerprint()
    full = load_audio(path, 16000)[0]
    for a, b in zip(capped.encode([full]), whole.encode([full[:20000]])):  # the encoder cuts what it is given, too
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="max_seconds must be positive"):
        create_encoder(f"hf:{tiny_audio_model}", modality="audio", max_seconds=0)


def test_real_ogg_sound_effects_decode(stamps_root):
    wave_, rate = decode_media(stamps_root / "animals/mammals/badger.ogg", "audio", rate=16000)
    assert rate == 16000 and 5 < len(wave_) / rate < 10 and np.abs(wave_).max() > 0.1


def test_video_frames_are_picked_uniformly_while_decoding(tmp_path):
    path = write_video(tmp_path / "ramp.mp4", frames=30, shade_step=8)
    clip = load_video(path, 4)
    assert clip.shape == (4, 32, 48, 3) and clip.dtype == np.uint8
    np.testing.assert_allclose(clip.reshape(4, -1).mean(axis=1), [0, 80, 152, 232], atol=4)  # frames 0, 10, 19, 29
    assert load_video(path).shape[0] == 30
    short = load_video(write_video(tmp_path / "short.mp4", frames=2, shade_step=100), 4)  # repeats frames
    np.testing.assert_allclose(short.reshape(4, -1).mean(axis=1), [0, 0, 100, 100], atol=4)


def test_bad_media_files_say_what_is_wrong(tmp_path, stamps_root):
    (tmp_path / "broken.ogg").write_bytes(b"OggS" + b"\0" * 200)
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert check_media(tmp_path / "broken.ogg", "audio").startswith("unreadable audio (")
    assert check_media(stamps_root / "animals/mammals/badger.ogg", "video") == "has no video stream"
    assert check_media(write_video(tmp_path / "ok.mp4"), "video") is None
    with pytest.raises(MediaError, match=r"empty\.mp4: unreadable video \(.*\); remove or replace the file"):
        load_video(tmp_path / "empty.mp4", 4)
    with pytest.raises(MediaError, match=r"broken\.ogg"):
        decode_media(tmp_path / "broken.ogg", "audio")
    with pytest.raises(ValueError, match="media must be one of"):
        decode_media(tmp_path / "ok.mp4", "smell")


def test_thumbnails_are_a_spectrogram_for_sound_and_the_middle_frame_for_video(tmp_path):
    from PIL import Image

    sound = media_thumbnail(write_wav(tmp_path / "tone.wav", 1000.0, channels=1), "audio", tmp_path / "th", "a")
    pixels = np.asarray(Image.open(sound).convert("L"), dtype=float)
    assert pixels.shape == (120, 160)
    rows = pixels.mean(axis=1)  # a 1 kHz tone at 16 kHz: one bright band, 1/8 of the way up from the bottom
    assert abs(int(rows.argmax()) - 120 * 7 / 8) <= 6 and rows.max() > rows.mean() + 30
    frame = media_thumbnail(write_video(tmp_path / "ramp.mp4", frames=3, shade_step=100), "video", tmp_path / "th", "v")
    assert abs(np.asarray(Image.open(frame)).mean() - 100) < 6


# ---------------------------------------------------------------- adapters

def test_tuxpaint_sound_effects_pair_with_the_stamp_captions(stamps_root):
    data = load_dataset("tuxpaint", media="audio")
    assert data.media == "audio" and len(data) >= 100
    frog = next(s for s in data.samples if s.sample_id == "animals/amphibians/frog")
    assert frog.media_path.name == "frog.ogg" and frog.caption == "A frog."
    assert not any("_desc" in s.media_path.stem for s in data.samples)  # captions read aloud are not sound effects
    assert set(data.skip_summary()) <= {"no audio file", "no caption file"}
    assert data.fingerprint() != load_dataset("tuxpaint", media="image", limit=len(data)).fingerprint()
    with pytest.raises(ValueError, match="not video"):
        load_dataset("tuxpaint", media="video")


def test_manifest_folder_and_webdataset_take_audio_and_video(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_wav(clips / "low.wav", 220.0)
    write_wav(clips / "high.wav", 880.0)
    (clips / "broken.wav").write_bytes(b"RIFF1234WAVEfmt garbage")
    (tmp_path / "audio.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"audio": "clips/low.wav", "caption": ["a low hum", "a drone"]},
        {"audio": "clips/high.wav", "caption": "a high whistle"},
        {"audio": "clips/broken.wav", "caption": "noise"}]))
    data = load_dataset("manifest", source=tmp_path / "audio.jsonl")
    assert data.media == "audio" and data.captions == ["a low hum", "a drone", "a high whistle"]
    assert [s.reason.split(" (")[0] for s in data.skipped] == ["unreadable audio"]
    assert data.pair_index()[0].tolist() == [0, 0, 1]

    (tmp_path / "both.csv").write_text("image,audio,caption\na.png,a.wav,x\n")
    with pytest.raises(ValueError, match="keep exactly one of image, audio, video"):
        load_dataset("manifest", source=tmp_path / "both.csv")

    videos = tmp_path / "videos"
    (videos / "ramps").mkdir(parents=True)
    write_video(videos / "ramps/up.mp4")
    (videos / "ramps/up.txt").write_text("a grey screen getting brighter\n")
    (videos / "ramps/lonely.mp4").write_bytes(b"")
    folder = load_dataset("folder", source=videos, media="video")
    assert folder.media == "video" and folder.captions == ["a grey screen getting brighter"]
    assert folder.samples[0].label == "ramps" and folder.skip_summary() == {"no caption file": 1}

    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        tar.add(clips / "low.wav", "000001.wav")
        tar.add(clips / "high.wav", "000002.flac")  # FFmpeg reads the content, whatever the suffix says
        for key, text in (("000001", "a low hum"), ("000002", "a high whistle")):
            (tmp_path / f"{key}.txt").write_text(text)
            tar.add(tmp_path / f"{key}.txt", f"{key}.txt")
    shards = load_dataset("webdataset", source=str(shard), cache=tmp_path / "cache", media="audio")
    assert shards.media == "audio" and shards.captions == ["a low hum", "a high whistle"]
    with pytest.raises(ValueError, match="no usable image-caption pair"):  # the same shard holds no image
        load_dataset("webdataset", source=str(shard), cache=tmp_path / "cache")
    with pytest.raises(ValueError, match="takes no option media"):
        load_dataset("coco", source=tmp_path / "x.json", media="audio")


# ---------------------------------------------------------------- features and runs

def test_audio_features_through_the_pipeline_equal_the_encoder_on_decoded_clips(tmp_path, stamps_root, tiny_audio_model):
    root = tmp_path / "sounds"
    root.mkdir()
    for name in ("frog", "badger"):
        src = next(stamps_root.rglob(f"{name}.ogg"))
        (root / f"{name}.ogg").write_bytes(src.read_bytes())
        (root / f"{name}.txt").write_text(f"A {name}.\n")
    write_wav(root / "hum.wav", 220.0)
    (root / "hum.txt").write_text("A hum.\n")
    data = load_dataset("folder", source=root, media="audio")
    encoder = create_encoder(f"hf:{tiny_audio_model}", modality="audio")
    assert encoder.decode_options() == {"rate": 16000, "max_seconds": None}
    features = extract_features(data, encoder, tmp_path / "cache", workers=1)
    direct = encoder.encode([load_audio(s.media_path, 16000)[0] for s in data.samples])
    for stored, expected in zip(features.layers, direct):
        np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-5)
    assert features.modality == "audio" and features.n == 3 and not features.bad_rows

    with pytest.raises(ValueError, match="embeds audio, but data set tuxpaint pairs captions with image"):
        extract_features(load_dataset("tuxpaint", limit=4), encoder, tmp_path / "cache")


def test_a_clip_that_fails_to_decode_at_embed_time_keeps_its_row_as_nan(tmp_path, tiny_audio_model):
    root = tmp_path / "sounds"
    root.mkdir()
    for i, tone in enumerate((220.0, 440.0, 660.0)):
        write_wav(root / f"t{i}.wav", tone)
        (root / f"t{i}.txt").write_text(f"tone {i}\n")
    data = load_dataset("folder", source=root, media="audio")
    (root / "t1.wav").write_bytes(b"RIFF....WAVE")  # broken after loading, before embedding
    features = extract_features(data, create_encoder(f"hf:{tiny_audio_model}", modality="audio"), tmp_path / "cache")
    assert list(features.bad_rows) == [1] and "t1.wav" in features.bad_rows[1]
    assert np.isnan(features.layers[0][1]).all() and np.isfinite(features.layers[0][[0, 2]]).all()


def test_video_features_through_the_pipeline_equal_the_encoder_on_decoded_frames(tmp_path, tiny_video_model):
    root = tmp_path / "videos"
    root.mkdir()
    for i, step in enumerate((3, 5, 8)):
        write_video(root / f"v{i}.mp4", frames=12 + 3 * i, shade_step=step)
        (root / f"v{i}.txt").write_text(f"clip {i}\n")
    data = load_dataset("folder", source=root, media="video")
    encoder = create_encoder(f"hf:{tiny_video_model}", modality="video")
    assert encoder.decode_options() == {"frames": 4}
    features = extract_features(data, encoder, tmp_path / "cache", workers=1)
    direct = encoder.encode([load_video(s.media_path, 4) for s in data.samples])
    for stored, expected in zip(features.layers, direct):
        np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-5)


def test_a_text_audio_run_is_stored_with_spectrogram_previews(audio_run):
    from core import results
    from core.config import results_db_path

    cache, run_id = audio_run
    db = results_db_path(cache)
    info = results.run_info(run_id, db)
    assert (info["media"], info["modality_a"], info["modality_b"], info["n"]) == ("audio", "audio", "text", 40)
    table = results.samples(run_id, db)
    assert all(Path(p).suffix == ".ogg" for p in table.media_path)
    assert all(Path(p).is_file() and Path(p).suffix == ".jpg" for p in table.thumb_path)
    view = results.sample_view(run_id, 0, 5, path=db)
    assert list(view["a"].columns[-2:]) == ["media_path", "shared"] and len(view["a"]) == 5


def test_neighbours_page_plays_the_sound_of_each_sample(audio_run, monkeypatch):
    from streamlit.testing.v1 import AppTest

    cache, run_id = audio_run
    monkeypatch.setenv(CACHE_ENV, str(cache))
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60)
    at.query_params["k"] = "5"
    at.switch_page("dashboard/pages/neighbours.py")
    at.run()
    assert not at.exception
    players = at.get("audio")
    assert len(players) == 1 + 2 * 5  # the sample, then each neighbour in both spaces
    headings = [m.value for m in at.markdown if m.value.startswith("#####")]
    assert headings[0].startswith("##### Audio space") and headings[1].startswith("##### Text space")
    for page in ("home", "scale"):  # the other pages work on a text-audio run as they do on images
        other = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60)
        if page != "home":
            other.switch_page(f"dashboard/pages/{page}.py")
        other.run()
        assert not other.exception, page


def test_result_stores_written_before_audio_are_migrated_in_place(tmp_path, demo_run):
    from core import results

    cache, run_id = demo_run
    old = tmp_path / "old.duckdb"
    con = duckdb.connect(str(old))
    con.execute(f"ATTACH '{cache / 'results.duckdb'}' AS src (READ_ONLY)")
    for table in results.RUN_TABLES:  # the store as the previous version wrote it
        select = {"runs": "* EXCLUDE (media)", "samples": "* RENAME (media_path AS image_path)"}.get(table, "*")
        con.execute(f"CREATE TABLE {table} AS SELECT {select} FROM src.{table}")
    con.close()
    assert results.samples(run_id, old).columns[4] == "media_path"  # read-only: renamed on the way out
    assert results.run_info(run_id, old)["media"] == "image"
    with results.connect(old) as con:  # any write brings the schema up to date
        columns = [c[0] for c in con.execute("SELECT * FROM samples LIMIT 0").description]
        assert "media_path" in columns and "image_path" not in columns
        assert con.execute("SELECT media FROM runs").fetchone()[0] == "image"


def test_preprocessing_runs_in_the_decoding_workers_and_changes_nothing(tmp_path, tiny_audio_model):
    import os

    import torch

    from core.encoders.hf_media import HFAudioEncoder

    class Recording(HFAudioEncoder):
        """Notes which process preprocessed each batch."""

        seen: list[int] = []

        def preprocess(self, batch):
            return {**super().preprocess(batch), "pid": torch.tensor([os.getpid()])}

        def encode_inputs(self, inputs):
            self.seen.append(int(inputs["pid"][0]))
            return super().encode_inputs(inputs)

    root = tmp_path / "sounds"
    root.mkdir()
    for i in range(5):
        write_wav(root / f"t{i}.wav", 200.0 + 150 * i, seconds=0.2 + 0.1 * i)
        (root / f"t{i}.txt").write_text(f"tone {i}\n")
    data = load_dataset("folder", source=root, media="audio")
    in_process = extract_features(data, Recording(tiny_audio_model, batch_size=2), tmp_path / "a", workers=0)
    assert set(Recording.seen) == {os.getpid()}
    Recording.seen.clear()
    in_workers = extract_features(data, Recording(tiny_audio_model, batch_size=2), tmp_path / "b", workers=2)
    assert len(Recording.seen) == 3 and os.getpid() not in Recording.seen
    for a, b in zip(in_process.layers, in_workers.layers):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_text_video_run_shows_the_clip_and_its_neighbours_middle_frames(tmp_path, tiny_video_model, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from core import results
    from core.alignment import AlignmentConfig
    from core.config import results_db_path
    from core.jobs import run_alignment

    root = tmp_path / "videos"
    root.mkdir()
    for i in range(8):
        write_video(root / f"v{i}.mp4", frames=6 + i, shade_step=2 + 2 * i)
        (root / f"v{i}.txt").write_text(f"a grey clip, shade {i}\n")
    cache = tmp_path / "cache"
    run_id = run_alignment("folder", f"hf:{tiny_video_model}", "minilm_l6", cache=cache,
                           config=AlignmentConfig(ks=(1, 3), draws=2, subset_sizes=(4,)),
                           dataset_options={"source": root, "media": "video"})
    info = results.run_info(run_id, results_db_path(cache))
    assert (info["media"], info["modality_a"], info["n"]) == ("video", "video", 8)
    monkeypatch.setenv(CACHE_ENV, str(cache))
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60)
    at.query_params.update({"k": "3", "sample": "v2"})
    at.switch_page("dashboard/pages/neighbours.py")
    at.run()
    assert not at.exception
    assert len(at.get("video")) == 1 and len(at.get("image")) == 2 * 3  # the clip plays; neighbours show a frame
    assert [m.value for m in at.markdown if m.value.startswith("#####")][0].startswith("##### Video space")
