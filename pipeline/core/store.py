"""The feature store: one Zarr v3 group per (corpus, backbone) at ``features/<corpus>/<backbone>.zarr``.

Contract (the README repeats it):

- ``ids`` [N] utterance ids, in manifest order;
- ``pooled`` [N, D], or [N, L, D] for backbones that expose L layers (L = hidden layers + 1);
- ``frames`` [total_frames, D] + ``offsets`` [N+1] + ``frame_digests`` [N] where the backbone has
  frame-level output;
- ``checksums``: every array's digest and row count (:func:`pipeline.core.zarrio.seal`);
- attributes: ``backbone``, ``type``, ``modality``, ``source``, ``revision``, ``params_hash``,
  ``dims``, ``layers``, ``frame_rate``, ``dtype``, ``code_version``, ``complete``.

A store is written into a temporary directory and renamed into place with ``complete: true`` set
last, so a killed run never leaves a store that looks complete; readers refuse incomplete ones.
It is sealed only after checking one row per id and no NaN or infinite value (no backbone produces
one: a NaN row is what Zarr returns for a missing chunk). Readers check what they read against the
checksums (pooled features on load, an item's frames when read), so a store damaged on disk or in
transit is an error naming it, never silently wrong numbers; ``python -m pipeline.tools.verify``
checks every array.
Uncompressed arrays are read straight from their chunk files into one preallocated array
(:mod:`pipeline.core.fastread`; anything else through zarr), and what was verified is remembered
for the process by the files' signatures (inode, size, mtime, ctime): a second read of unchanged
files skips the hash, a changed file is checked again. One layer of a layered store is read from
memory-mapped chunks (:meth:`FeatureStore.layers`) after a streaming check of the whole array, so a
``layer: best`` sweep never holds all layers.
A (corpus, backbone) pair that does not apply (text backbone, corpus without transcripts) gets a
store with ``applicable: false`` and a ``reason``, which the probe and report turn into a line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import zarr

from pipeline.core.errors import StoreError
from pipeline.core.fastread import raw_layout
from pipeline.core.io import atomic_dir
from pipeline.core.shards import DamagedShard, checked
from pipeline.core.zarrio import (
    FRAMES_LAYOUT,
    POOLED_LAYOUT,
    Digest,
    data_digest,
    offsets_from_lengths,
    read_strings,
    seal,
    write_array,
    write_strings,
)

# What this process has checked: (array, "whole" | item, sealed digest) → the signatures of the files
# it was read from (pipeline.core.fastread.file_signature). A later read of unchanged files skips the
# hash; any change to a file (write, truncation, replacement, touch) changes its ctime and rechecks.
_VERIFIED: dict[tuple, tuple] = {}

DAMAGED_HINT = "restore it with `dvc checkout` (or `dvc pull`), or rebuild it with `dvc repro -f -s <its stage>`"


def write_store(
    path: str | Path,
    *,
    ids: Sequence[str],
    pooled: np.ndarray,
    frames: Sequence[np.ndarray] | None = None,
    attrs: dict[str, Any],
) -> None:
    """Atomically write a complete feature store."""
    pooled = np.asarray(pooled, dtype=np.float32)
    if len(ids) != pooled.shape[0]:
        raise StoreError(f"{path}: {len(ids)} ids but pooled has {pooled.shape[0]} rows")
    if len(set(ids)) != len(ids):
        raise StoreError(f"{path}: duplicate ids")
    with atomic_dir(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        write_strings(group, "ids", ids)
        write_array(group, "pooled", pooled, **POOLED_LAYOUT)
        if frames is not None:
            if len(frames) != len(ids):
                raise StoreError(f"{path}: {len(ids)} ids but {len(frames)} frame sequences")
            frames = [np.asarray(f, dtype=np.float32) for f in frames]
            dim = pooled.shape[-1] if not frames else frames[0].shape[-1]
            flat = np.concatenate(frames) if frames else np.zeros((0, dim), np.float32)
            if not np.isfinite(flat).all():
                raise StoreError(f"{path}: frame features contain NaN or infinite values; the store is not written")
            write_array(group, "frames", flat, **FRAMES_LAYOUT)
            write_array(group, "offsets", offsets_from_lengths([len(f) for f in frames]))
            write_strings(group, "frame_digests", [data_digest(f) for f in frames])
        if not np.isfinite(pooled).all():
            raise StoreError(f"{path}: pooled features contain NaN or infinite values; the store is not written")
        seal_store(group, attrs, pooled, has_frames=frames is not None)


def seal_store(group: zarr.Group, attrs: dict[str, Any], pooled, *, has_frames: bool) -> None:
    """Write a store's attributes, derived ones included, every array's checksum, and ``complete`` last."""
    meta = dict(attrs)
    meta.update(
        applicable=True,
        n_items=int(pooled.shape[0]),
        dims=int(pooled.shape[-1]),
        layers=int(pooled.shape[1]) if pooled.ndim == 3 else None,
        dtype=str(pooled.dtype),
        has_frames=has_frames,
    )
    seal(group, meta)  # ``complete`` written last: the store is usable from here on


def write_not_applicable(path: str | Path, *, reason: str, attrs: dict[str, Any]) -> None:
    """Write a store that records why this (corpus, backbone) pair was skipped."""
    with atomic_dir(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        seal(group, {**attrs, "applicable": False, "reason": reason})


class FeatureStore:
    """Read a feature store; arrays come back in the order of the ids you ask for."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "zarr.json").exists():
            raise StoreError(f"{self.path}: no feature store here; run its embed stage")
        self.group = zarr.open_group(str(self.path), mode="r")
        self.attrs: dict[str, Any] = dict(self.group.attrs)
        if not self.attrs.get("complete"):
            raise StoreError(f"{self.path}: store is incomplete (interrupted run?); rerun its embed stage")
        if "checksums" not in self.attrs:
            raise StoreError(f"{self.path}: store records no checksums (written by an older version); rerun its embed stage")
        self.applicable: bool = bool(self.attrs.get("applicable", True))
        self.ids: list[str] = read_strings(self.group["ids"]) if self.applicable else []
        self._index = {uid: i for i, uid in enumerate(self.ids)}
        self._offsets: np.ndarray | None = None
        self._frame_digests: list[str] = []
        self._frames_layout = None

    @property
    def layered(self) -> bool:
        return self.attrs.get("layers") is not None

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        missing = [u for u in ids if u not in self._index]
        if missing:
            raise StoreError(f"{self.path}: {len(missing)} ids not in store, e.g. {missing[:3]}")
        return np.fromiter((self._index[u] for u in ids), dtype=np.int64, count=len(ids))

    def pooled(self, ids: Sequence[str] | None = None, layer: int | None = None) -> np.ndarray:
        """Pooled features [n, D] (or [n, L, D] with ``layer=None`` on a layered store).

        Checked against the store's checksum on the first read in this process (and again whenever a
        file of the array has changed since: :func:`verified_read`). One layer of a layered store is
        read from memory-mapped chunks after a streaming check, never the whole [N, L, D] array.
        """
        if self.layered and layer is not None:
            n_layers = int(self.attrs["layers"])
            if not -n_layers <= layer < n_layers:
                raise StoreError(f"{self.path}: layer {layer} out of range (the store has {n_layers} layers)")
            layer %= n_layers  # -1 = the last: layers(-1, 0) would be an empty slice
            return self.layers(layer, layer + 1, ids)[:, 0]
        data = self._verified("pooled")
        return data if self._in_order(ids) else data[self.rows(ids)]

    def layers(self, start: int, stop: int, ids: Sequence[str] | None = None) -> np.ndarray:
        """Layers ``[start, stop)`` of a layered store's pooled features, [n, stop - start, D], read
        with memory bounded by what is returned (plus one chunk while the store is checked)."""
        if not self.layered:
            raise StoreError(f"{self.path}: pooled features have no layers")
        n_layers = int(self.attrs["layers"])
        start, stop, _ = slice(start, stop).indices(n_layers)
        arr = self.group["pooled"]
        layout = raw_layout(arr)
        if layout is None or layout.shard_rows is not None:  # an older layout: through zarr, whole
            data = self._verified("pooled")[:, start:stop]
        else:
            self._verify_streaming("pooled", layout)
            data = self._damage_guard("pooled", lambda: layout.read_layers(slice(start, stop)))
        return data if self._in_order(ids) else data[self.rows(ids)]

    def _in_order(self, ids: Sequence[str] | None) -> bool:
        return ids is None or ids is self.ids or (len(ids) == len(self.ids) and list(ids) == self.ids)

    def frames(self, uid: str) -> np.ndarray:
        """Frame-level features [T, D] of one utterance (checked against its digest when first read,
        and again whenever a file it comes from has changed)."""
        if self._offsets is None:
            if "frames" not in self.group:  # (a zarr lookup costs ~2 ms: once per store)
                raise StoreError(f"{self.path}: backbone {self.attrs.get('backbone')} has no frame features")
            self._offsets = self._checked("offsets")
            self._frame_digests = [str(d) for d in self._checked("frame_digests")]
            self._frames_layout = raw_layout(self.group["frames"])
            self._frames_key = str(self.path / "frames")
        i = self._index.get(uid)
        if i is None:
            self.rows([uid])  # the error naming it
        start, stop = int(self._offsets[i]), int(self._offsets[i + 1])
        layout, want = self._frames_layout, self._frame_digests[i]
        key = (self._frames_key, i, want)
        sig = layout.signatures(start, stop, meta=False) if layout is not None else None
        try:
            feats = layout.read(start, stop) if layout is not None else self.group["frames"][start:stop]
        except Exception as err:  # a truncated chunk fails to decode: damage
            raise StoreError(f"{self.path}: frame features of {uid} cannot be read ({err}); {DAMAGED_HINT}") from err
        if sig is not None and _VERIFIED.get(key) == sig:
            return feats
        if data_digest(feats) != want:
            raise StoreError(f"{self.path}: frame features of {uid} fail their checksum; {DAMAGED_HINT}")
        if sig is not None:
            _VERIFIED[key] = sig
        return feats

    def _want(self, name: str) -> dict:
        return self.attrs["checksums"].get(name) or {}

    def _damage_guard(self, name: str, read):
        try:
            return read()
        except Exception as err:  # a truncated or undecodable chunk is damage, whatever raised
            raise StoreError(f"{self.path}: array {name} cannot be read ({type(err).__name__}: {err}); "
                             f"{DAMAGED_HINT}") from err

    def _verified(self, name: str) -> np.ndarray:
        """Array ``name`` read whole: straight into one preallocated array where its layout allows
        (:mod:`pipeline.core.fastread`), checked against its checksum unless it was in this process
        and none of its files changed since."""
        layout = raw_layout(self.group[name])
        if layout is None:
            return self._checked(name)
        want = self._want(name)
        key = (str(self.path / name), "whole", want.get("blake2b"))
        sig = layout.signatures()
        data = self._damage_guard(name, layout.read)
        if _VERIFIED.get(key) != sig:
            if len(data) != want.get("rows") or data_digest(data) != want.get("blake2b"):
                raise StoreError(f"{self.path}: array {name} fails its checksum (a chunk file missing or altered); "
                                 f"{DAMAGED_HINT}")
            _VERIFIED[key] = sig
        return data

    def _verify_streaming(self, name: str, layout) -> None:
        """Check array ``name`` against its checksum a file at a time (memory: one chunk), once per
        state of its files in this process."""
        want = self._want(name)
        key = (str(self.path / name), "whole", want.get("blake2b"))
        sig = layout.signatures()
        if _VERIFIED.get(key) == sig:
            return
        digest, step = Digest(), layout.file_rows
        buf = np.empty((min(step, layout.shape[0]), *layout.row_shape), layout.dtype)
        for a in range(0, layout.shape[0], step):
            b = min(a + step, layout.shape[0])
            digest.update(self._damage_guard(name, lambda a=a, b=b: layout.read(a, b, out=buf[: b - a])))
        if digest.rows != want.get("rows") or digest.hexdigest() != want.get("blake2b"):
            raise StoreError(f"{self.path}: array {name} fails its checksum (a chunk file missing or altered); "
                             f"{DAMAGED_HINT}")
        _VERIFIED[key] = sig

    def _checked(self, name: str) -> np.ndarray:
        """Array ``name`` read whole and compared with the checksum it was sealed with."""
        try:
            return checked(self.group, name, self.path)
        except DamagedShard as damage:  # (the same check as the caches'; a store is restored, not recomputed)
            raise StoreError(f"{damage}; {DAMAGED_HINT}") from damage
