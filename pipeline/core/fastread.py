"""Reading uncompressed Zarr v3 arrays of a local store straight into NumPy, without zarr's machinery.

Zarr stays the format; this is only a faster way to read the layouts :mod:`pipeline.core.zarrio`
writes for learned features (``FEATURES_COMPRESSED = False``):

- **plain**: chunks along the first axis only, codecs ``[bytes(little)]``. A chunk file is the raw
  C-order bytes of a full chunk (zarr v3 pads the edge chunk), so rows ``[a, b)`` of chunk ``c``
  are one byte range of file ``c/<c>/0…``, read with ``preadv`` into the caller's preallocated array.
- **sharded**: ``sharding_indexed`` with inner codecs ``[bytes(little)]`` and index codecs
  ``[bytes(little), crc32c]`` at the end (the zarr v3 sharding spec): the shard's index of
  ``(offset, nbytes)`` per inner chunk is read (and its CRC-32C checked, as zarr does), then the
  rows' byte ranges.

Semantics follow zarr's own reads, so results are bit-identical (``tests/test_fastread.py``): a
missing chunk or shard file, or an inner chunk marked absent, reads as the array's fill value; a
chunk of the wrong size or an index failing its CRC is an error (``ValueError`` naming the file),
as zarr's decoding fails on a truncated chunk. :func:`raw_layout` returns None for anything else
(compressed, other codecs, a non-local store, a chunk that splits a row) and callers fall back to
zarr. Layered pooled features ``[N, L, D]`` can be read one layer at a time from memory-mapped
chunk files (:meth:`RawLayout.read_layers`): only that layer's pages are touched.

:func:`file_signature` (inode, size, mtime and ctime in ns) identifies the state of a file; readers
use it to skip re-hashing data already verified against its checksum in this process while no file
it came from has changed (any write, truncation, replacement or ``touch`` changes ctime).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

MISSING = 2**64 - 1  # the sharding spec's marker of an absent inner chunk (offset and nbytes)


def file_signature(path: Path | str) -> tuple[int, int, int, int] | None:
    """(inode, size, mtime_ns, ctime_ns) of a file, None when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _little_bytes(codec) -> bool:
    from zarr.codecs import BytesCodec

    return isinstance(codec, BytesCodec) and (codec.endian is None or codec.endian.value == "little")


@dataclass
class RawLayout:
    """Where the bytes of an uncompressed array's rows are: one file per chunk (or per shard)."""

    directory: Path  # the array's directory
    shape: tuple[int, ...]
    dtype: np.dtype
    fill_value: object
    chunk_rows: int  # rows per (inner) chunk
    shard_rows: int | None  # rows per shard file; None: one file per chunk
    key_dims: int  # chunk key components (the array's rank)

    def __post_init__(self) -> None:
        self.row_shape = tuple(self.shape[1:])
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self.file_rows = self.shard_rows or self.chunk_rows
        # chunk keys: c/<row chunk>/0/... (default encoding, "/" separator); plain strings, as pathlib
        # costs more than the read of a small item
        self._prefix = os.path.join(str(self.directory), "c", "")
        self._suffix = "/0" * (self.key_dims - 1)
        self._meta = os.path.join(str(self.directory), "zarr.json")
        self._indexes: dict[str, tuple] = {}  # shard file → (its signature, its index)

    def file_path(self, index: int) -> str:
        return f"{self._prefix}{index}{self._suffix}"

    def files(self, start: int = 0, stop: int | None = None) -> list[str]:
        """The chunk (or shard) files holding rows ``[start, stop)``."""
        stop = self.shape[0] if stop is None else stop
        if stop <= start:
            return []
        return [self.file_path(i) for i in range(start // self.file_rows, (stop - 1) // self.file_rows + 1)]

    def signatures(self, start: int = 0, stop: int | None = None, meta: bool = True) -> tuple:
        """The :func:`file_signature` of every file holding those rows (and of the array's metadata)."""
        return tuple(file_signature(p) for p in [self._meta] * meta + self.files(start, stop))

    # --- reading ---------------------------------------------------------------------------------

    def read(self, start: int = 0, stop: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``[start, stop)`` as a new (or the given, C-contiguous) array ``[stop - start, ...]``."""
        stop = self.shape[0] if stop is None else min(stop, self.shape[0])
        start = max(0, min(start, stop))
        if out is None:
            out = np.empty((stop - start, *self.row_shape), self.dtype)
        elif out.shape != (stop - start, *self.row_shape) or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"{self.directory}: out of shape {out.shape} {out.dtype}, expected {(stop - start, *self.row_shape)}")
        if stop == start:
            return out
        flat = memoryview(out.reshape(-1).view(np.uint8))
        rb = self.row_bytes
        fr = self.file_rows
        for index in range(start // fr, (stop - 1) // fr + 1):
            f0 = index * fr
            a, b = max(start, f0), min(stop, f0 + fr)
            dest = flat[(a - start) * rb : (b - start) * rb]
            path = self.file_path(index)
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # zarr: a missing chunk reads as the fill value
                out[a - start : b - start] = self.fill_value
                continue
            try:
                if self.shard_rows is None:
                    size = os.fstat(fd).st_size
                    if size != self.chunk_rows * rb:
                        raise ValueError(f"{path}: chunk of {size} bytes, expected {self.chunk_rows * rb}")
                    _pread_into(fd, dest, (a - f0) * rb, path)
                else:
                    self._read_shard(fd, path, f0, a, b, out[a - start : b - start], dest)
            finally:
                os.close(fd)
        return out

    def _read_shard(self, fd: int, path: str, f0: int, a: int, b: int, out: np.ndarray, dest: memoryview) -> None:
        cr, rb = self.chunk_rows, self.row_bytes
        st = os.fstat(fd)
        sig = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._indexes.get(path)
        if cached is None or cached[0] != sig:  # (read once per state of the shard file)
            cached = self._indexes[path] = (sig, self._shard_index(fd, path, st.st_size))
        index, size = cached[1], st.st_size
        index_bytes = index.size * 8 + 4
        for inner in range((a - f0) // cr, (b - 1 - f0) // cr + 1):
            c0 = f0 + inner * cr
            x, y = max(a, c0), min(b, c0 + cr)
            offset, nbytes = (int(v) for v in index[inner])
            if offset == MISSING and nbytes == MISSING:
                out[x - a : y - a] = self.fill_value
                continue
            if nbytes != cr * rb or offset + nbytes > size - index_bytes:
                raise ValueError(f"{path}: inner chunk {inner} of {nbytes} bytes at {offset}, expected {cr * rb}")
            _pread_into(fd, dest[(x - a) * rb : (y - a) * rb], offset + (x - c0) * rb, path)

    def _shard_index(self, fd: int, path: str, size: int) -> np.ndarray:
        """The shard's (offset, nbytes) per inner chunk, its CRC-32C checked as zarr checks it."""
        import google_crc32c  # zarr's own CRC-32C implementation (its crc32c codec)

        n_inner = self.shard_rows // self.chunk_rows
        index_bytes = n_inner * 16 + 4
        if size < index_bytes:
            raise ValueError(f"{path}: shard of {size} bytes, shorter than its index ({index_bytes})")
        raw = bytearray(index_bytes)
        _pread_into(fd, memoryview(raw), size - index_bytes, path)
        if np.uint32(google_crc32c.value(bytes(raw[:-4]))).tobytes() != bytes(raw[-4:]):
            raise ValueError(f"{path}: shard index fails its CRC-32C")
        return np.frombuffer(bytes(raw[:-4]), dtype="<u8").reshape(n_inner, 2)

    def read_layers(self, layers: slice, out: np.ndarray | None = None) -> np.ndarray:
        """``array[:, layers]`` of a plain [N, L, D] array, from memory-mapped chunk files: only the
        pages of those layers are read (a layer of D = 1024 float32 is one page per row)."""
        if self.shard_rows is not None or len(self.shape) != 3:
            raise ValueError(f"{self.directory}: layer reads need an unsharded [N, L, D] array")
        n, n_layers, dim = self.shape
        picked = range(n_layers)[layers]
        if out is None:
            out = np.empty((n, len(picked), dim), self.dtype)
        cr = self.chunk_rows
        for index in range((n + cr - 1) // cr):
            a, b = index * cr, min(n, (index + 1) * cr)
            path = self.file_path(index)
            if not os.path.exists(path):
                out[a:b] = self.fill_value
                continue
            size = os.path.getsize(path)
            if size != cr * self.row_bytes:
                raise ValueError(f"{path}: chunk of {size} bytes, expected {cr * self.row_bytes}")
            mm = np.memmap(path, dtype=self.dtype, mode="r", shape=(cr, n_layers, dim))
            out[a:b] = mm[: b - a, layers]
            del mm
        return out


def _pread_into(fd: int, dest: memoryview, offset: int, path: str) -> None:
    while len(dest):
        got = os.preadv(fd, [dest], offset)
        if got <= 0:
            raise ValueError(f"{path}: file ends before byte {offset + len(dest)}")
        dest, offset = dest[got:], offset + got


def raw_layout(arr: zarr.Array) -> RawLayout | None:
    """The :class:`RawLayout` of ``arr`` when its bytes can be read directly, else None (use zarr)."""
    from zarr.codecs import Crc32cCodec, ShardingCodec
    from zarr.storage import LocalStore

    try:
        store, meta = arr.store_path.store, arr.metadata
        if not isinstance(store, LocalStore) or meta.zarr_format != 3 or arr.ndim < 1 or meta.storage_transformers:
            return None
        dtype = np.dtype(arr.dtype)
        if dtype.kind not in "fiub" or dtype.byteorder == ">":
            return None
        if meta.chunk_key_encoding.to_dict() != {"name": "default", "configuration": {"separator": "/"}}:
            return None
        codecs = meta.codecs
        if len(codecs) != 1:
            return None
        outer = tuple(arr.chunks)
        shard_rows = None
        if isinstance(codecs[0], ShardingCodec):
            sh = codecs[0]
            index_codecs = sh.index_codecs
            if (sh.index_location.value != "end" or len(sh.codecs) != 1 or not _little_bytes(sh.codecs[0])
                    or len(index_codecs) != 2 or not _little_bytes(index_codecs[0])
                    or not isinstance(index_codecs[1], Crc32cCodec)):
                return None
            inner = tuple(sh.chunk_shape)
            if tuple(arr.shards) != tuple(meta.chunk_grid.chunk_shape) or arr.shards[0] % inner[0]:
                return None
            shard_rows = arr.shards[0]
            outer = tuple(arr.shards)
        elif _little_bytes(codecs[0]):
            inner = outer
        else:
            return None
        if outer[1:] != tuple(arr.shape[1:]) or inner[1:] != tuple(arr.shape[1:]):
            return None  # a chunk that splits rows: not a single byte range per row
        return RawLayout(
            directory=Path(store.root) / arr.store_path.path, shape=tuple(arr.shape), dtype=dtype,
            fill_value=meta.fill_value, chunk_rows=int(inner[0]), shard_rows=shard_rows, key_dims=arr.ndim,
        )
    except (AttributeError, TypeError):  # a zarr version with other internals: read through zarr
        return None
