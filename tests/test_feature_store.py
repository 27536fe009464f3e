"""The sharded feature store: resumable after any crash (kill -9 included), bad samples recorded, rows aligned."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from core.data import load_dataset, load_rgb
from core.encoders import create_encoder
from core.features import extract_features, load_feature_set
from core.jobs import drop_unembedded


class FlakyEncoder:
    """The real encoder, counting batches, and crashing once it has embedded `crash_after` batches."""

    def __init__(self, encoder, crash_after: int | None = None):
        self.inner, self.crash_after, self.batches, self.items = encoder, crash_after, 0, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _count(self, items: int) -> None:
        if self.crash_after is not None and self.batches >= self.crash_after:
            raise KeyboardInterrupt("simulated crash")
        self.batches += 1
        self.items += items

    def encode(self, batch):
        self._count(len(batch))
        return self.inner.encode(batch)

    def encode_inputs(self, inputs):  # encoders that split off `preprocess` get their batches here
        self._count(len(next(iter(inputs.values()))))
        return self.inner.encode_inputs(inputs)


@pytest.fixture(scope="module")
def captions(stamps_root):
    return load_dataset("tuxpaint", root=stamps_root, limit=200)


def test_a_crashed_job_resumes_after_its_last_complete_shard(captions, tmp_path):
    text = create_encoder("minilm_l6")
    text.batch_size = 10
    clean = extract_features(captions, text, tmp_path / "clean", shard_size=40)
    crashing = FlakyEncoder(text, crash_after=9)  # dies inside the third shard (batches 9..12)
    with pytest.raises(KeyboardInterrupt):
        extract_features(captions, crashing, tmp_path / "resumed", shard_size=40)
    partial = next((tmp_path / "resumed" / "features").glob("*.partial"))
    assert sorted(p.name for p in partial.glob("shard_*")) == ["shard_000000", "shard_000001"]
    resumed = FlakyEncoder(text)
    features = extract_features(captions, resumed, tmp_path / "resumed", shard_size=40)
    assert resumed.batches == 12, "only the 3 unfinished shards (12 batches of 10) are embedded again"
    assert features.n == 200 and not list((tmp_path / "resumed" / "features").glob("*.partial"))
    for a, b in zip(clean.layers, features.layers):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_kill_minus_nine_loses_and_duplicates_nothing(tmp_path):
    args = [sys.executable, "-m", "core", "embed", "--model", "efficientnet_lite0", "--limit", "160",
            "--shard-size", "32", "--workers", "0"]
    proc = subprocess.Popen([*args, "--cache-dir", str(tmp_path / "killed")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list((tmp_path / "killed" / "features").glob("*.partial/shard_000001/done.json")):
        assert proc.poll() is None and time.time() < deadline, "the job ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run([*args, "--cache-dir", str(tmp_path / "killed")], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    first_report = re.search(r"\| (\d+)/160", resumed.stderr).group(1)
    assert first_report == "64", "the resumed job starts after the two complete shards"
    clean = subprocess.run([*args, "--cache-dir", str(tmp_path / "clean")], capture_output=True, text=True)
    killed_set = load_feature_set(next((tmp_path / "killed" / "features").iterdir()))
    clean_set = load_feature_set(next((tmp_path / "clean" / "features").iterdir()))
    assert killed_set.n == clean_set.n == 160
    for a, b in zip(killed_set.layers, clean_set.layers):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert clean.returncode == 0


def test_an_image_that_fails_to_decode_is_recorded_and_pairs_stay_aligned(few_stamps, tmp_path):
    from core.data.tuxpaint import load_tuxpaint

    data = load_tuxpaint(few_stamps)
    victim = 2
    data.samples[victim].media_path.write_bytes(b"\x89PNG\r\n\x1a\n broken after loading")
    vision, text = create_encoder("efficientnet_lite0"), create_encoder("minilm_l6")
    image_features = extract_features(data, vision, tmp_path)
    caption_features = extract_features(data, text, tmp_path)
    assert list(image_features.bad_rows) == [victim]
    assert data.samples[victim].media_path.name in image_features.bad_rows[victim]
    assert np.isnan(image_features.layers[0][victim]).all() and np.isfinite(np.delete(image_features.layers[0], victim, 0)).all()
    kept, (fa, fb) = drop_unembedded(data, [image_features, caption_features])
    assert len(kept) == len(data) - 1 == fa.n == fb.n
    assert kept.skipped[-1].sample_id == data.samples[victim].sample_id
    for row, sample in enumerate(kept.samples):  # row i of each side is still sample i
        np.testing.assert_allclose(fb.layers[-1][row], text.encode([sample.caption])[-1][0], atol=1e-4)


def test_worker_processes_and_float16_storage(few_stamps, tmp_path):
    from core.data.tuxpaint import load_tuxpaint

    data = load_tuxpaint(few_stamps)
    vision = create_encoder("efficientnet_lite0")
    inline = extract_features(data, vision, tmp_path / "a", workers=0)
    parallel = extract_features(data, vision, tmp_path / "b", workers=2)
    for a, b in zip(inline.layers, parallel.layers):
        np.testing.assert_allclose(a, b, atol=1e-5)
    half = extract_features(data, vision, tmp_path / "c", dtype="float16")
    assert half.layers[0].dtype == np.float16 and half.fingerprint != inline.fingerprint
    np.testing.assert_allclose(half.layers[-1], inline.layers[-1], rtol=1e-2, atol=1e-2)
    manifest = json.loads((half.path / "manifest.json").read_text())
    assert manifest["dtype"] == "float16" and manifest["n"] == len(data)


def test_reference_feature_files_import_and_everything_exports(tmp_path):
    import pyarrow.parquet as pq
    import torch

    from core.cli import main

    feats = torch.randn(50, 3, 8)
    torch.save({"feats": feats, "num_params": 123}, tmp_path / "ref.pt")
    assert main(["features", "import", str(tmp_path / "ref.pt"), "--name", "llama", "--modality", "text",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    stored = load_feature_set(next((tmp_path / "cache" / "features").iterdir()))
    assert stored.model == "llama" and stored.n == 50 and len(stored.layers) == 3
    np.testing.assert_allclose(np.stack(stored.layers, axis=1), feats.numpy())
    prefix = stored.fingerprint[:10]
    assert main(["features", "export", prefix, str(tmp_path / "out.npy"), "--cache-dir", str(tmp_path / "cache")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), feats.numpy())
    assert main(["features", "export", prefix, str(tmp_path / "out.parquet"), "--cache-dir", str(tmp_path / "cache")]) == 0
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names == ["row", "layer0", "layer1", "layer2"]
    np.testing.assert_allclose(np.array(table.column("layer1").to_pylist()), feats[:, 1].numpy(), rtol=1e-6)
    torch.save({"something": 1}, tmp_path / "bad.pt")
    assert main(["features", "import", str(tmp_path / "bad.pt"), "--cache-dir", str(tmp_path / "cache")]) == 2


def test_many_to_many_rows_embed_each_distinct_item_once(tmp_path, stamps_root):
    from core.data.base import PairedDataset, Sample

    base = load_dataset("tuxpaint", root=stamps_root, limit=4)
    s = base.samples
    # image 0 with three captions, caption 1 with two images: 6 pairs, 3 distinct images, 4 distinct texts
    pairs = [(s[0], s[0].caption), (s[0], s[1].caption), (s[0], s[2].caption), (s[1], s[1].caption),
             (s[2], s[1].caption), (s[3], s[3].caption)]
    data = PairedDataset("m2m", base.root, [Sample(f"p{i}", img.media_path, cap, img.category, img.media_sha256)
                                            for i, (img, cap) in enumerate(pairs)])
    vision, text = FlakyEncoder(create_encoder("efficientnet_lite0")), FlakyEncoder(create_encoder("minilm_l6"))
    images = extract_features(data, vision, tmp_path)
    captions = extract_features(data, text, tmp_path)
    assert images.n == captions.n == 6
    assert vision.items == 4 and text.items == 4, "each distinct image and caption is embedded once"
    media_index, text_index = data.pair_index()
    for layer in images.layers:  # rows sharing an image share its features
        for i in range(6):
            np.testing.assert_array_equal(layer[i], layer[list(media_index).index(media_index[i])])
    np.testing.assert_allclose(captions.layers[-1][4], text.inner.encode([s[1].caption])[-1][0], atol=1e-4)
    direct = vision.inner.encode([load_rgb(s[3].media_path)])
    np.testing.assert_allclose(images.layers[-1][5], direct[-1][0], atol=1e-4)


def test_one_pool_of_decoding_workers_serves_every_shard(stamps_root, tmp_path, monkeypatch):
    import torch.utils.data

    stamps = load_dataset("tuxpaint", root=stamps_root, limit=40)
    encoder = create_encoder("efficientnet_lite0")
    in_process = extract_features(stamps, encoder, tmp_path / "a", shard_size=16, workers=0)
    loaders = []

    class CountingLoader(torch.utils.data.DataLoader):
        def __init__(self, *args, **kwargs):
            loaders.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(torch.utils.data, "DataLoader", CountingLoader)
    seen = []
    pooled = extract_features(stamps, encoder, tmp_path / "b", shard_size=16, workers=1,
                              progress=lambda stage, done, total: seen.append(done))
    assert len(loaders) == 1, "three shards, one DataLoader: the workers are not restarted per shard"
    assert seen[-1] == 40 and seen == sorted(seen)
    for a, b in zip(in_process.layers, pooled.layers):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_crash_while_workers_decode_ahead_keeps_only_finished_shards(stamps_root, tmp_path):
    stamps = load_dataset("tuxpaint", root=stamps_root, limit=48)
    encoder = create_encoder("efficientnet_lite0")  # batches of 8: two per 16-row shard
    clean = extract_features(stamps, encoder, tmp_path / "clean", shard_size=16, workers=0)
    with pytest.raises(KeyboardInterrupt):
        extract_features(stamps, FlakyEncoder(encoder, crash_after=3), tmp_path / "crashed", shard_size=16, workers=1)
    partial = next((tmp_path / "crashed" / "features").glob("*.partial"))
    assert sorted(p.name for p in partial.glob("shard_*")) == ["shard_000000"], "the workers had decoded further; nothing of it is kept"
    resumed = extract_features(stamps, encoder, tmp_path / "crashed", shard_size=16, workers=1)
    for a, b in zip(clean.layers, resumed.layers):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
