"""Small Zarr v3 helpers shared by the segment store and the feature store.

Arrays are chunked along the first axis and grouped into shards so that a store has a handful of
files (DVC's cost grows with file count) while readers can still fetch single rows cheaply.
Ragged per-utterance sequences (audio samples, video frames, frame-level features) are stored
flat, ``[total, ...]``, with ``offsets[N+1]``: item ``i`` is ``flat[offsets[i]:offsets[i+1]]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import zarr
from zarr.codecs import BloscCodec

# Rows per chunk are derived from a byte budget so that tiny [N, 88] tables and large
# [frames, 96, 96, 3] stacks both get sensibly sized chunks.
CHUNK_BYTES = 1 << 20  # ~1 MiB uncompressed per chunk (the unit of reading)
CHUNKS_PER_SHARD = 64  # shards (the unit of writing, i.e. files) hold 64 chunks


def _rows_per_chunk(row_shape: Sequence[int], itemsize: int) -> int:
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * itemsize)
    return max(1, CHUNK_BYTES // row_bytes)


def write_array(group: zarr.Group, name: str, data: np.ndarray, fill_value=None) -> zarr.Array:
    """Write ``data`` as a sharded, compressed array ``name`` in ``group``."""
    data = np.asarray(data)
    rows = _rows_per_chunk(data.shape[1:], data.dtype.itemsize)
    rows = min(rows, max(1, data.shape[0]))
    chunks = (rows, *data.shape[1:])
    shards = (rows * CHUNKS_PER_SHARD, *data.shape[1:])
    if fill_value is None and np.issubdtype(data.dtype, np.floating):
        # NaN marks rows that were never written (Zarr skips empty chunks by default).
        fill_value = np.nan
    arr = group.create_array(
        name,
        shape=data.shape,
        dtype=data.dtype,
        chunks=chunks,
        shards=shards,
        compressors=BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
        fill_value=fill_value,
    )
    if data.size:
        arr[...] = data
    return arr


def write_strings(group: zarr.Group, name: str, values: Sequence[str]) -> zarr.Array:
    """Write a 1-D array of strings (utterance ids)."""
    values = list(values)
    n = max(1, len(values))
    arr = group.create_array(name, shape=(len(values),), dtype=str, chunks=(min(n, 65536),))
    if values:
        arr[:] = np.array(values, dtype=object).astype(str)
    return arr


def read_strings(arr: zarr.Array) -> list[str]:
    return [str(v) for v in arr[:]]


def offsets_from_lengths(lengths: Sequence[int]) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    return offsets
