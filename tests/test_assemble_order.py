"""Assembling a store from the embed cache when the manifest's order is not the cache's.

Each cache shard must be read once (not once per item: the shard reader keeps shards open up to a
byte budget), and the store must hold every id's own row whatever the order.
"""

from __future__ import annotations

import numpy as np

import pipeline.features.embed.assemble as assemble_mod
from pipeline.core.hashing import content_key
from pipeline.core.store import FeatureStore
from pipeline.features.embed.cache import Cache, Shard, ShardReader, write_cache_shard
from pipeline.features.embed.items import Items


def test_a_shuffled_manifest_reads_each_shard_once(tmp_path, monkeypatch):
    n, size = 600, 64
    rng = np.random.default_rng(0)
    ids = [f"u{i:04d}" for i in range(n)]
    keys = [content_key("t", u) for u in ids]
    X = rng.standard_normal((n, 8)).astype(np.float32)
    cache = Cache(tmp_path / "cache", "b")
    for a in range(0, n, size):
        shard = Shard(content_key(*keys[a : a + size])[:24], keys[a : a + size])
        write_cache_shard(cache.shard_path(shard.id), shard, list(X[a : a + size]), [None] * len(shard.keys))
    readers = []

    class Recording(ShardReader):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            readers.append(self)

    monkeypatch.setattr(assemble_mod, "ShardReader", Recording)
    order = rng.permutation(n)
    items = Items(modality="audio", segments=None, ids=[ids[i] for i in order], keys=[keys[i] for i in order],
                  lengths=np.ones(n, np.int64))
    done = cache.scan()
    assemble_mod.assemble_store(tmp_path / "s.zarr", items, cache, done, {"backbone": "b"}, want_frames=False)
    assert readers[0].opened == (n + size - 1) // size
    store = FeatureStore(tmp_path / "s.zarr")
    assert store.ids == items.ids and store.pooled().tobytes() == X[order].tobytes()

    readers.clear()  # with no byte budget only the last 4 stay open: shards are read again and again
    monkeypatch.setattr("pipeline.features.embed.cache.READER_BYTES", 0)
    assemble_mod.assemble_store(tmp_path / "s2.zarr", items, cache, done, {"backbone": "b"}, want_frames=False)
    assert readers[0].opened > 5 * ((n + size - 1) // size)
    assert FeatureStore(tmp_path / "s2.zarr").pooled().tobytes() == X[order].tobytes()
