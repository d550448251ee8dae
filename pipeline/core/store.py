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
A (corpus, backbone) pair that does not apply (text backbone, corpus without transcripts) gets a
store with ``applicable: false`` and a ``reason``, which the probe and report turn into a line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import zarr

from pipeline.core.errors import StoreError
from pipeline.core.io import atomic_dir
from pipeline.core.shards import DamagedShard, checked
from pipeline.core.zarrio import (
    FRAMES_LAYOUT,
    POOLED_LAYOUT,
    data_digest,
    offsets_from_lengths,
    read_strings,
    seal,
    write_array,
    write_strings,
)

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
        self._pooled_checked = False
        self._frame_digests: list[str] = []

    @property
    def layered(self) -> bool:
        return self.attrs.get("layers") is not None

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        missing = [u for u in ids if u not in self._index]
        if missing:
            raise StoreError(f"{self.path}: {len(missing)} ids not in store, e.g. {missing[:3]}")
        return np.fromiter((self._index[u] for u in ids), dtype=np.int64, count=len(ids))

    def pooled(self, ids: Sequence[str] | None = None, layer: int | None = None) -> np.ndarray:
        """Pooled features [n, D] (or [n, L, D] with ``layer=None`` on a layered store)."""
        # checked against its checksum on the first read; a layer sweep reads it once per layer
        data = self.group["pooled"][...] if self._pooled_checked else self._checked("pooled")
        self._pooled_checked = True
        if ids is not None:
            data = data[self.rows(ids)]
        if self.layered and layer is not None:
            data = data[:, layer]
        return data

    def frames(self, uid: str) -> np.ndarray:
        """Frame-level features [T, D] of one utterance."""
        if "frames" not in self.group:
            raise StoreError(f"{self.path}: backbone {self.attrs.get('backbone')} has no frame features")
        if self._offsets is None:
            self._offsets = self._checked("offsets")
            self._frame_digests = [str(d) for d in self._checked("frame_digests")]
        i = int(self.rows([uid])[0])
        start, stop = self._offsets[i : i + 2]
        try:
            feats = self.group["frames"][int(start) : int(stop)]
        except Exception as err:  # a truncated chunk fails to decode: damage
            raise StoreError(f"{self.path}: frame features of {uid} cannot be read ({err}); {DAMAGED_HINT}") from err
        if data_digest(feats) != self._frame_digests[i]:
            raise StoreError(f"{self.path}: frame features of {uid} fail their checksum; {DAMAGED_HINT}")
        return feats

    def _checked(self, name: str) -> np.ndarray:
        """Array ``name`` read whole and compared with the checksum it was sealed with."""
        try:
            return checked(self.group, name, self.path)
        except DamagedShard as damage:  # (the same check as the caches'; a store is restored, not recomputed)
            raise StoreError(f"{damage}; {DAMAGED_HINT}") from damage
