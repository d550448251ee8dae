"""Small Zarr v3 helpers shared by the segment store and the feature store.

Arrays are chunked along the first axis and grouped into shards so that a store has a handful of
files (DVC's cost grows with file count) while readers can still fetch single rows cheaply.
Learned embeddings are stored uncompressed (``FEATURES_COMPRESSED``): float32 model outputs shrink
by ~11 % under zstd + bitshuffle, while decompression was most of the time a probe spends loading
them (benchmarks/feature_loading.py). Pooled features use 8 MiB unsharded chunks (read whole);
frame features keep small sharded chunks (read per utterance). Audio, video frames and ids stay
compressed.
Ragged per-utterance sequences (audio samples, video frames, frame-level features) are stored
flat, ``[total, ...]``, with ``offsets[N+1]``: item ``i`` is ``flat[offsets[i]:offsets[i+1]]``.

Checksums: every array written here carries a BLAKE2b digest of its contents (attribute
``blake2b``, computed from the data in memory as it is written); :func:`seal` copies them into the
group's ``checksums`` with the row counts and sets ``complete`` last, and :func:`verify_group`
reads every array back and compares. Zarr returns the fill value for a missing chunk file, so a
deleted chunk would otherwise read as NaN rows, silently; a truncated chunk fails to decode.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np
import zarr
from zarr.codecs import BloscCodec

# Rows per chunk are derived from a byte budget so that tiny [N, 88] tables and large
# [frames, 96, 96, 3] stacks both get sensibly sized chunks.
CHUNK_BYTES = 1 << 20  # ~1 MiB uncompressed per chunk (the unit of reading)
CHUNKS_PER_SHARD = 16  # shards (the unit of writing, i.e. files) hold 16 chunks (~16 MiB)
FEATURES_COMPRESSED = False  # pooled / frame features in feature stores and the embed cache
# Pooled features are read whole (a probe loads every row): big chunks, one file each, no sharding —
# zarr's sharding codec costs ~4x on a whole-array read of small chunks (benchmarks/feature_loading.py).
POOLED_LAYOUT = {"compress": FEATURES_COMPRESSED, "chunk_bytes": 8 << 20, "sharded": False}
FRAMES_LAYOUT = {"compress": FEATURES_COMPRESSED}  # frames are read per utterance: small chunks, sharded


def _create(group: zarr.Group, name: str, shape: tuple[int, ...], dtype, fill_value=None, compress: bool = True,
            chunk_bytes: int = CHUNK_BYTES, sharded: bool = True) -> zarr.Array:
    dtype = np.dtype(dtype)
    row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)
    rows = max(1, chunk_bytes // row_bytes)
    if shape[0]:  # a known, small array gets one chunk; an appendable one (0 rows) keeps the budget
        rows = min(rows, shape[0])
    if fill_value is None and np.issubdtype(dtype, np.floating):
        # NaN marks rows that were never written (Zarr skips empty chunks by default).
        fill_value = np.nan
    return group.create_array(
        name,
        shape=shape,
        dtype=dtype,
        chunks=(rows, *shape[1:]),
        shards=(rows * CHUNKS_PER_SHARD, *shape[1:]) if sharded else None,
        compressors=BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle") if compress else None,
        fill_value=fill_value,
    )


class Digest:
    """Streaming BLAKE2b over an array's rows, in order: the same digest however the rows arrive
    in blocks (strings are hashed one by one, NUL-terminated)."""

    def __init__(self) -> None:
        self._h = hashlib.blake2b(digest_size=16)
        self.rows = 0

    def update(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        if rows.dtype.kind in "OUST":
            if rows.size:  # each string NUL-terminated: the same bytes however the rows are split
                self._h.update(("\x00".join(map(str, rows.ravel())) + "\x00").encode())
        elif rows.size:
            self._h.update(np.ascontiguousarray(rows).data)
        self.rows += len(rows) if rows.ndim else 1

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def data_digest(data: np.ndarray) -> str:
    """The :class:`Digest` of an in-memory array."""
    d = Digest()
    d.update(data)
    return d.hexdigest()


def _stamp(arr: zarr.Array, digest: str) -> zarr.Array:
    arr.attrs["blake2b"] = digest
    return arr


def array_digest(arr: zarr.Array) -> str:
    """Read ``arr`` back block by block (a shard, or a chunk, of rows at a time) and digest it."""
    d = Digest()
    step = max(1, (arr.shards or arr.chunks)[0]) if arr.ndim else 1
    if arr.ndim == 0:
        d.update(arr[...])
    for start in range(0, arr.shape[0] if arr.ndim else 0, step):
        d.update(arr[start : start + step])
    return d.hexdigest()


def write_array(group: zarr.Group, name: str, data: np.ndarray, fill_value=None, compress: bool = True, **layout) -> zarr.Array:
    """Write ``data`` as array ``name`` in ``group``: sharded and compressed unless ``layout`` says
    otherwise (``compress``, ``chunk_bytes``, ``sharded``; see :data:`POOLED_LAYOUT`)."""
    data = np.asarray(data)
    arr = _create(group, name, data.shape, data.dtype, fill_value, compress, **layout)
    if data.size:
        arr[...] = data
    return _stamp(arr, data_digest(data))


class ArrayAppender:
    """Grow an array ``name`` row block by row block with bounded memory.

    Rows are buffered until a whole shard (the unit of writing) is full and then appended, so a
    shard is written once instead of being read back and rewritten for every small append. Used
    where the total size is not known up front or the data does not fit in memory (segmenting a
    large corpus, assembling a feature store from cache shards). Call :meth:`close` at the end.
    """

    def __init__(self, group: zarr.Group, name: str, row_shape: Sequence[int], dtype, fill_value=None, compress: bool = True,
                 **layout):
        self.array = _create(group, name, (0, *row_shape), dtype, fill_value, compress, **layout)
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        # flush whole units of writing (a shard; a chunk when unsharded): a partial shard would be
        # read back and rewritten on every append, which costs time and, worse, memory growing
        # with the array (benchmarks/peak_rss.py); a ~16 MiB buffer keeps memory flat instead
        self.shard_rows = (self.array.shards or self.array.chunks)[0]
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self.digest = Digest()

    def append(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"{self.array.name}: rows of shape {rows.shape[1:]}, expected {self.row_shape}")
        if not len(rows):
            return
        self.digest.update(rows)
        self._buf.append(rows)
        self._buffered += len(rows)
        if self._buffered >= self.shard_rows:
            data = np.concatenate(self._buf)
            whole = (len(data) // self.shard_rows) * self.shard_rows
            self.array.append(data[:whole])
            rest = data[whole:].copy()  # a view would keep the whole flushed block alive
            self._buf = [rest] if len(rest) else []
            self._buffered = len(rest)

    def close(self) -> zarr.Array:
        if self._buffered:
            self.array.append(np.concatenate(self._buf))
        self._buf, self._buffered = [], 0
        return _stamp(self.array, self.digest.hexdigest())


def write_strings(group: zarr.Group, name: str, values: Sequence[str]) -> zarr.Array:
    """Write a 1-D array of strings (utterance ids)."""
    values = list(values)
    n = max(1, len(values))
    arr = group.create_array(name, shape=(len(values),), dtype=str, chunks=(min(n, 65536),))
    if values:
        arr[:] = np.array(values, dtype=object).astype(str)
    return _stamp(arr, data_digest(np.array(values, dtype=object)))


def read_strings(arr: zarr.Array) -> list[str]:
    return [str(v) for v in arr[:]]


def offsets_from_lengths(lengths: Sequence[int]) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    return offsets


# --- sealing and verifying a group ----------------------------------------------------------------


def seal(group: zarr.Group, attrs: dict[str, Any] | None = None) -> None:
    """Record every array's checksum and row count in the group's attributes, then ``complete``.

    ``complete`` is written last: a reader that sees it knows every array was written and what it
    must read back as.
    """
    checksums = {}
    for name, arr in sorted(group.arrays()):  # (listing order is the filesystem's: sort, for stable bytes)
        digest = arr.attrs.get("blake2b")
        if digest is None:
            raise ValueError(f"{group.store}: array {name} was not written through pipeline.core.zarrio (no checksum)")
        checksums[name] = {"blake2b": digest, "rows": int(arr.shape[0]) if arr.ndim else 1}
    group.attrs.update({**(attrs or {}), "checksums": checksums})
    group.attrs["complete"] = True


NO_CHECKSUMS = "records no checksums (written by an older version)"


def verify_group(group: zarr.Group, deep: bool = True) -> list[str]:
    """Problems with a sealed group: not complete, arrays missing or of the wrong length, and (with
    ``deep``) contents that do not match their checksum or cannot be read. Empty when it is sound."""
    if not group.attrs.get("complete"):
        return ["not sealed complete (interrupted write?)"]
    recorded = group.attrs.get("checksums")
    if recorded is None:
        return [NO_CHECKSUMS]
    problems = []
    present = dict(group.arrays())
    for name, want in sorted(recorded.items()):
        arr = present.get(name)
        if arr is None:
            problems.append(f"array {name} is missing")
            continue
        rows = int(arr.shape[0]) if arr.ndim else 1
        if rows != want["rows"]:
            problems.append(f"array {name} has {rows} rows, sealed with {want['rows']}")
            continue
        if deep:
            try:
                digest = array_digest(arr)
            except Exception as err:  # noqa: BLE001 - any decode failure is damage (truncated chunk, bad codec data)
                problems.append(f"array {name} cannot be read ({type(err).__name__}: {err})")
                continue
            if digest != want["blake2b"]:
                problems.append(f"array {name} fails its checksum (a chunk file missing or altered)")
    return problems
