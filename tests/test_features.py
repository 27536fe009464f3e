"""The feature cache: keyed by data, model and preprocessing; nothing embedded twice, nothing stale."""

from __future__ import annotations

import numpy as np

from core.data.tuxpaint import load_tuxpaint
from core.encoders import create_encoder
from core.features import extract_features


class CountingEncoder:
    """The real text encoder, counting how many batches it embeds."""

    def __init__(self, encoder):
        self.inner, self.batches = encoder, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, batch):
        self.batches += 1
        return self.inner.encode(batch)


def test_features_are_cached_by_fingerprint(few_stamps, tmp_path):
    data = load_tuxpaint(few_stamps)
    encoder = CountingEncoder(create_encoder("minilm_l6"))
    first = extract_features(data, encoder, tmp_path)
    assert encoder.batches == 1 and first.n == len(data)
    again = extract_features(data, encoder, tmp_path)
    assert encoder.batches == 1, "a cached set must not be embedded again"
    assert again.fingerprint == first.fingerprint
    for a, b in zip(first.layers, again.layers):
        np.testing.assert_array_equal(a, b)

    (few_stamps / "food/fruit/banana.txt").write_text("A yellow banana.\n")
    changed = extract_features(load_tuxpaint(few_stamps), encoder, tmp_path)
    assert encoder.batches == 2, "changed captions must be embedded afresh"
    assert changed.fingerprint != first.fingerprint


def test_rows_follow_the_data_set_order(few_stamps, tmp_path):
    data = load_tuxpaint(few_stamps)
    encoder = create_encoder("minilm_l6")
    features = extract_features(data, encoder, tmp_path)
    for i, caption in enumerate(data.captions):
        np.testing.assert_allclose(features.layers[-1][i], encoder.encode([caption])[-1][0], atol=1e-4)


def test_partial_write_is_never_served(few_stamps, tmp_path):
    data = load_tuxpaint(few_stamps)
    encoder = create_encoder("minilm_l6")
    features = extract_features(data, encoder, tmp_path)
    # a crash after writing layers but before the manifest leaves only a .partial folder
    (features.path / "manifest.json").unlink()
    rebuilt = extract_features(data, encoder, tmp_path)
    assert (rebuilt.path / "manifest.json").exists()
    assert not any(p.name.endswith(".partial") for p in (tmp_path / "features").iterdir())
