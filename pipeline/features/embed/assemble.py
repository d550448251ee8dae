"""Assembling a feature store from the embed cache: streaming, in manifest order, atomically.

Runs of consecutive items stored in consecutive rows of one cache shard are read once; the store is
written into a temporary directory and renamed into place, sealed (``complete``) last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm import tqdm

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


def assemble_store(out_path: str | Path, items: Items, cache: Cache, done: dict[str, tuple[str, int]],
                   attrs: dict[str, Any], want_frames: bool) -> dict[str, Any]:
    lost = [u for u, k in zip(items.ids, items.keys) if k not in done]
    if lost:
        raise RuntimeError(f"{cache.dir}: {len(lost)} items missing from the embed cache after computing, e.g. {lost[:3]}")
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
    _, first, _ = reader.get(located[0][0])
    with atomic_dir(out_path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        write_strings(group, "ids", items.ids)
        pooled_out = ArrayAppender(group, "pooled", first.shape[1:], np.float32, **POOLED_LAYOUT)
        frames_out = None
        for sid, start, stop in tqdm(runs, desc="assemble store", unit="run", leave=False):
            shard_group, pooled, offsets = reader.get(sid)
            pooled_out.append(pooled[start:stop])
            if with_frames:
                feats = shard_group["frames"][int(offsets[start]) : int(offsets[stop])]
                if frames_out is None:
                    frames_out = ArrayAppender(group, "frames", feats.shape[1:], np.float32, **FRAMES_LAYOUT)
                frames_out.append(feats)
                frame_lengths += np.diff(offsets[start : stop + 1]).tolist()
        pooled_arr = pooled_out.close()
        if frames_out is not None:
            frames_out.close()
            write_array(group, "offsets", offsets_from_lengths(frame_lengths))
        seal_store(group, attrs, pooled_arr, has_frames=frames_out is not None)
    return {"dims": int(pooled_arr.shape[-1])}
