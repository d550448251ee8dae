"""Direct reads of uncompressed Zarr arrays (pipeline/core/fastread.py) and the feature store built on them.

Every read must be bit-identical to zarr's own (plain and sharded layouts, edge chunks, missing
chunks read as the fill value); damage must still be caught, also after a first verified read in
the same process (the verified-files memo must notice the change); layer reads of a layered store
are the same as slicing the whole array.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.core.errors import StoreError
from pipeline.core.fastread import raw_layout
from pipeline.core.store import FeatureStore, write_store
from pipeline.core.zarrio import FRAMES_LAYOUT, POOLED_LAYOUT, write_array


def chunk_files(array_dir: Path) -> list[Path]:
    return sorted(p for p in array_dir.rglob("*") if p.is_file() and p.name != "zarr.json")


@pytest.fixture
def group(tmp_path):
    return zarr.open_group(str(tmp_path / "g.zarr"), mode="w")


def random_ranges(n: int, count: int = 150, seed: int = 0):
    rng = np.random.default_rng(seed)
    yield 0, n
    yield n - 1, n
    for _ in range(count):
        a = int(rng.integers(0, n))
        yield a, int(rng.integers(a, n + 1))


@pytest.mark.parametrize("layout, shape", [
    (FRAMES_LAYOUT, (6001, 24)),  # sharded; edge shard holds a partial inner chunk, later ones absent
    (POOLED_LAYOUT, (1001, 5, 16)),  # plain; padded edge chunk
    ({"compress": False, "chunk_bytes": 640}, (333, 40)),  # sharded, many small chunks and shards
    ({"compress": False, "chunk_bytes": 640, "sharded": False}, (333, 40)),
])
def test_reads_are_bit_identical_to_zarr(group, layout, shape):
    data = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    arr = write_array(group, "x", data, **layout)
    raw = raw_layout(arr)
    assert raw is not None and (raw.shard_rows is None) == (layout.get("sharded", True) is False)
    for a, b in random_ranges(shape[0]):
        got, want = raw.read(a, b), arr[a:b]
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes(), (a, b)
    out = np.empty_like(data)
    assert raw.read(out=out) is out and out.tobytes() == data.tobytes()


def test_integers_and_layer_reads(group):
    ints = write_array(group, "i", np.arange(5000, dtype=np.int64), compress=False, chunk_bytes=1024)
    assert raw_layout(ints).read(17, 4321).tobytes() == np.arange(17, 4321).tobytes()
    data = np.random.default_rng(2).standard_normal((777, 6, 32)).astype(np.float32)
    arr = write_array(group, "p", data, compress=False, chunk_bytes=20000, sharded=False)
    raw = raw_layout(arr)
    for layers in (slice(0, 1), slice(2, 5), slice(5, 6), slice(0, 6)):
        assert raw.read_layers(layers).tobytes() == arr[:, layers].tobytes()


def test_layouts_it_cannot_read_fall_back_to_zarr(group):
    assert raw_layout(write_array(group, "z", np.ones((10, 3), np.float32))) is None  # compressed
    wide = group.create_array("w", shape=(10, 8), dtype="f4", chunks=(5, 4))  # a chunk splits rows
    assert raw_layout(wide) is None


@pytest.mark.parametrize("layout", [FRAMES_LAYOUT, POOLED_LAYOUT])
def test_missing_chunks_read_as_zarr_reads_them_and_truncation_is_an_error(group, layout):
    data = np.random.default_rng(3).standard_normal((3000, 300)).astype(np.float32)
    arr = write_array(group, "x", data, chunk_bytes=64 << 10, **{k: v for k, v in layout.items() if k != "chunk_bytes"})
    files = chunk_files(Path(group.store.root) / "x")
    assert len(files) >= 2
    files[0].unlink()
    raw = raw_layout(arr)
    got, want = raw.read(), arr[...]
    assert np.isnan(got).any() and got.tobytes() == want.tobytes()  # the fill value, as zarr
    files[1].write_bytes(files[1].read_bytes()[:1000])
    with pytest.raises(ValueError, match=str(files[1].name)):
        raw.read()


def test_a_shard_index_failing_its_crc_is_an_error(group):
    arr = write_array(group, "x", np.ones((4000, 64), np.float32), **FRAMES_LAYOUT)
    shard = chunk_files(Path(group.store.root) / "x")[0]
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF  # inside the index
    shard.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        arr[0:10]  # zarr refuses it too
    with pytest.raises(ValueError, match="CRC-32C"):
        raw_layout(arr).read(0, 10)


def store_with_frames(path: Path, n: int = 40, layers: int = 3):
    rng = np.random.default_rng(4)
    ids = [f"u{i:03d}" for i in range(n)]
    pooled = rng.standard_normal((n, layers, 16)).astype(np.float32)
    frames = [rng.standard_normal((int(k), 16)).astype(np.float32) for k in rng.integers(0, 30, n)]
    write_store(path, ids=ids, pooled=pooled, frames=frames, attrs={"backbone": "b"})
    return ids, pooled, frames


def test_store_reads_match_the_written_data(tmp_path):
    ids, pooled, frames = store_with_frames(tmp_path / "s.zarr")
    store = FeatureStore(tmp_path / "s.zarr")
    order = list(np.random.default_rng(5).permutation(ids))
    idx = [ids.index(u) for u in order]
    assert store.pooled().tobytes() == pooled.tobytes()
    assert store.pooled(order).tobytes() == pooled[idx].tobytes()
    for layer in range(3):
        assert store.pooled(order, layer=layer).tobytes() == pooled[idx, layer].tobytes()
    assert store.layers(1, 3).tobytes() == pooled[:, 1:3].tobytes()
    for _ in range(2):  # the second pass is served by the verified-files memo
        assert all(store.frames(u).tobytes() == f.tobytes() for u, f in zip(ids, frames))


def alter(path: Path) -> None:
    """Flip bytes inside a chunk file, keeping its size (what a bad copy does)."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    raw[len(raw) // 3 + 1] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("read", ["whole", "layer"])
def test_damage_after_a_verified_read_is_still_caught(tmp_path, read):
    store_with_frames(tmp_path / "s.zarr")
    pooled = (lambda s: s.pooled()) if read == "whole" else (lambda s: s.pooled(layer=1))
    pooled(FeatureStore(tmp_path / "s.zarr"))  # verified, remembered
    chunk = chunk_files(tmp_path / "s.zarr" / "pooled")[0]
    alter(chunk)
    with pytest.raises(StoreError, match=r"s\.zarr: array pooled fails its checksum.*dvc checkout"):
        pooled(FeatureStore(tmp_path / "s.zarr"))
    chunk.write_bytes(chunk.read_bytes()[:100])
    with pytest.raises(StoreError, match=r"array pooled cannot be read"):
        pooled(FeatureStore(tmp_path / "s.zarr"))


def test_same_size_same_mtime_damage_is_caught(tmp_path):
    """Restoring the old mtime does not hide a change: the signature includes ctime."""
    store_with_frames(tmp_path / "s.zarr")
    FeatureStore(tmp_path / "s.zarr").pooled()
    chunk = chunk_files(tmp_path / "s.zarr" / "pooled")[0]
    st = chunk.stat()
    alter(chunk)
    os.utime(chunk, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(StoreError, match="fails its checksum"):
        FeatureStore(tmp_path / "s.zarr").pooled()


def test_damaged_frames_after_a_verified_read_are_caught(tmp_path):
    ids, _, frames = store_with_frames(tmp_path / "s.zarr")
    store = FeatureStore(tmp_path / "s.zarr")
    longest = max(range(len(ids)), key=lambda i: len(frames[i]))
    store.frames(ids[longest])
    shard = chunk_files(tmp_path / "s.zarr" / "frames")[0]
    raw = bytearray(shard.read_bytes())
    raw[: len(raw) - 300] = bytes(len(raw) - 300)  # zero every inner chunk's data, keep the index
    shard.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=rf"frame features of {ids[longest]} fail their checksum"):
        store.frames(ids[longest])
    shard.unlink()
    with pytest.raises(StoreError, match="fail their checksum"):  # fill values (NaN) now
        FeatureStore(tmp_path / "s.zarr").frames(ids[longest])


def test_an_inner_chunk_zarr_left_out_reads_as_the_fill_value(group):
    data = np.random.default_rng(6).standard_normal((4000, 64)).astype(np.float32)
    data[200:400] = np.nan  # whole inner chunks (100 rows) of fill values: zarr does not store them
    arr = write_array(group, "x", data, compress=False, chunk_bytes=100 * 64 * 4)
    shard = chunk_files(Path(group.store.root) / "x")[0]
    assert shard.stat().st_size < 1600 * 64 * 4  # (the shard really lacks them)
    got = raw_layout(arr).read(150, 1500)
    assert np.isnan(got[50:250]).all() and got.tobytes() == arr[150:1500].tobytes()
