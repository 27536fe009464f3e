"""The Ray path: a local Ray instance on the CPU runs the same sharded job and gives the same features."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.tuxpaint import load_tuxpaint
from core.distributed import extract_features_ray
from core.encoders import create_encoder
from core.features import extract_features, start_job


@pytest.fixture(scope="module")
def captions(stamps_root):
    return load_tuxpaint(stamps_root, limit=96)


def test_ray_actor_pool_matches_the_in_process_job_and_resumes_its_shards(captions, tmp_path):
    text = create_encoder("minilm_l6")
    local = extract_features(captions, text, tmp_path / "local", shard_size=32)
    # one shard already done in place (as if an earlier run died): Ray must do only the other two
    job = start_job(captions, text, tmp_path / "ray", shard_size=32)
    job.embed_shard(1)
    kept = np.load(job.partial / "shard_000001" / "layer_00.npy")
    seen = []
    distributed = extract_features_ray(captions, "minilm_l6", tmp_path / "ray", shard_size=32, actors=2,
                                       progress=lambda stage, done, total: seen.append((done, total)))
    assert seen[-1] == (2, 2), "two pending shards, not three"
    assert distributed.n == local.n == 96 and distributed.fingerprint == local.fingerprint
    for a, b in zip(local.layers, distributed.layers):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_array_equal(distributed.layers[0][32:64], kept)


def test_ray_actors_decode_images_in_worker_processes_of_their_own(stamps_root, tmp_path):
    stamps = load_tuxpaint(stamps_root, limit=32)
    local = extract_features(stamps, create_encoder("efficientnet_lite0"), tmp_path / "local", shard_size=16)
    distributed = extract_features_ray(stamps, "efficientnet_lite0", tmp_path / "ray", shard_size=16, actors=1, workers=1)
    assert distributed.fingerprint == local.fingerprint and not distributed.bad_rows
    for a, b in zip(local.layers, distributed.layers):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
