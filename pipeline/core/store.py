"""The feature store: one Zarr v3 group per (corpus, backbone) at ``features/<corpus>/<backbone>.zarr``.

Contract (the README repeats it):

- ``ids`` [N] utterance ids, in manifest order;
- ``pooled`` [N, D], or [N, L, D] for backbones that expose L layers (L = hidden layers + 1);
- ``frames`` [total_frames, D] + ``offsets`` [N+1] where the backbone has frame-level output;
- attributes: ``backbone``, ``type``, ``modality``, ``source``, ``revision``, ``params_hash``,
  ``dims``, ``layers``, ``frame_rate``, ``dtype``, ``code_version``, ``complete``.

A store is written into a temporary directory and renamed into place with ``complete: true`` set
last, so a killed run never leaves a store that looks complete; readers refuse incomplete ones.
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
from pipeline.core.zarrio import (
    FRAMES_LAYOUT,
    POOLED_LAYOUT,
    offsets_from_lengths,
    read_strings,
    write_array,
    write_strings,
)


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
            dim = pooled.shape[-1] if not frames else frames[0].shape[-1]
            flat = np.concatenate(frames).astype(np.float32) if frames else np.zeros((0, dim), np.float32)
            write_array(group, "frames", flat, **FRAMES_LAYOUT)
            write_array(group, "offsets", offsets_from_lengths([len(f) for f in frames]))
        seal_store(group, attrs, pooled, has_frames=frames is not None)


def seal_store(group: zarr.Group, attrs: dict[str, Any], pooled, *, has_frames: bool) -> None:
    """Write a store's attributes, derived ones included, and ``complete`` last."""
    meta = dict(attrs)
    meta.update(
        applicable=True,
        n_items=int(pooled.shape[0]),
        dims=int(pooled.shape[-1]),
        layers=int(pooled.shape[1]) if pooled.ndim == 3 else None,
        dtype=str(pooled.dtype),
        has_frames=has_frames,
    )
    group.attrs.update(meta)
    group.attrs["complete"] = True  # written last: the store is usable from here on


def write_not_applicable(path: str | Path, *, reason: str, attrs: dict[str, Any]) -> None:
    """Write a store that records why this (corpus, backbone) pair was skipped."""
    with atomic_dir(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        group.attrs.update({**attrs, "applicable": False, "reason": reason})
        group.attrs["complete"] = True


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
        self.applicable: bool = bool(self.attrs.get("applicable", True))
        self.ids: list[str] = read_strings(self.group["ids"]) if self.applicable else []
        self._index = {uid: i for i, uid in enumerate(self.ids)}

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
        data = self.group["pooled"][...]
        if ids is not None:
            data = data[self.rows(ids)]
        if self.layered and layer is not None:
            data = data[:, layer]
        return data

    def frames(self, uid: str) -> np.ndarray:
        """Frame-level features [T, D] of one utterance."""
        if "frames" not in self.group:
            raise StoreError(f"{self.path}: backbone {self.attrs.get('backbone')} has no frame features")
        offsets = self.group["offsets"]
        i = int(self.rows([uid])[0])
        start, stop = offsets[i : i + 2]
        return self.group["frames"][int(start) : int(stop)]
