"""Assembling a feature store from the embed cache: streaming, in manifest order, atomically.

Runs of consecutive items stored in consecutive rows of one cache shard are read once, every read
checked against the shard's checksums (a damaged shard raises
:class:`~pipeline.features.embed.cache.DamagedShard` before anything is renamed into place); the store
is written into a temporary directory, checked (one row per id, every value finite) and sealed
(checksums, ``complete`` last) before it is renamed into place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm import tqdm

from pipeline.core.errors import StoreError
from pipeline.core.io import atomic_dir
from pipeline.core.store import seal_store
from pipeline.core.zarrio import (
    FRAMES_LAYOUT,
    POOLED_LAYOUT,
    ArrayAppender,
    offsets_from_lengths,
    write_array,
    write_strings,
)
from pipeline.features.embed.cache import Cache, ShardReader
from pipeline.features.embed.items import Items


def _check_finite(values: np.ndarray, what: str, shard: Path, allowed: bool) -> None:
    if not allowed and not np.isfinite(values).all():
        raise StoreError(f"{shard}: {what} features contain NaN or infinite values, which this backbone never "
                         "produces; the store is not written")


def assemble_store(out_path: str | Path, items: Items, cache: Cache, done: dict[str, tuple[str, int]],
                   attrs: dict[str, Any], want_frames: bool, allow_nonfinite: bool = False) -> dict[str, Any]:
    lost = [u for u, k in zip(items.ids, items.keys) if k not in done]
    if lost:
        raise StoreError(f"{cache.dir}: {len(lost)} items missing from the embed cache after computing, e.g. {lost[:3]}")
    reader = ShardReader(cache)
    located = [done[k] for k in items.keys]
    # runs of consecutive items stored in consecutive rows of one shard: read once per run
    runs: list[list[Any]] = []
    for sid, row in located:
        if runs and runs[-1][0] == sid and runs[-1][2] == row:
            runs[-1][2] += 1
        else:
            runs.append([sid, row, row + 1])
    # frame features only when every shard has them
    with_frames = want_frames and all(cache.has_frames[run[0]] for run in runs)
    frame_lengths: list[int] = []
    frame_digests: list[str] = []
    _, first, _ = reader.get(located[0][0])
    with atomic_dir(out_path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        write_strings(group, "ids", items.ids)
        pooled_out = ArrayAppender(group, "pooled", first.shape[1:], np.float32, **POOLED_LAYOUT)
        frames_out = None
        for sid, start, stop in tqdm(runs, desc="assemble store", unit="run", leave=False):
            _, pooled, _ = reader.get(sid)
            _check_finite(pooled[start:stop], "pooled", cache.shard_path(sid), allow_nonfinite)
            pooled_out.append(pooled[start:stop])
            if with_frames:
                feats, lengths = reader.frames(sid, start, stop)
                _check_finite(feats, "frame", cache.shard_path(sid), allow_nonfinite)
                if frames_out is None:
                    frames_out = ArrayAppender(group, "frames", feats.shape[1:], np.float32, **FRAMES_LAYOUT)
                frames_out.append(feats)
                frame_lengths += lengths
                frame_digests += reader.open[sid][3][start:stop]
        pooled_arr = pooled_out.close()
        if pooled_arr.shape[0] != len(items.ids):
            raise StoreError(f"{out_path}: assembled {pooled_arr.shape[0]} rows for {len(items.ids)} ids")
        if frames_out is not None:
            frames_out.close()
            write_array(group, "offsets", offsets_from_lengths(frame_lengths))
            write_strings(group, "frame_digests", frame_digests)
        seal_store(group, attrs, pooled_arr, has_frames=frames_out is not None)
    return {"dims": int(pooled_arr.shape[-1])}
