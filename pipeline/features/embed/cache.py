"""The embed cache: ``<cache>/<backbone key>/{plans/*.json, shards/<id>.zarr, backbone.json}``.

Computed items live in a content-addressed cache outside DVC's outputs, in shards of
``embed.shard_size`` items, each a small Zarr group written atomically with ``complete`` set last.
The shard plan is written before any compute, so a run resumed after ``kill -9`` reuses the
unfinished shards of that plan with the same composition and batches.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pipeline.core.hashing import content_key
from pipeline.core.io import atomic_dir, atomic_file
from pipeline.core.zarrio import (
    FRAMES_LAYOUT,
    POOLED_LAYOUT,
    offsets_from_lengths,
    read_strings,
    write_array,
    write_strings,
)
from pipeline.features.embed.items import Items


@dataclass
class Shard:
    id: str
    keys: list[str]


class Cache:
    def __init__(self, root: str | Path, bkey: str):
        self.dir = Path(root) / bkey
        self.shards_dir = self.dir / "shards"
        self.plans_dir = self.dir / "plans"
        self.has_frames: dict[str, bool] = {}

    def shard_path(self, sid: str) -> Path:
        return self.shards_dir / f"{sid}.zarr"

    def scan(self, sids: list[str] | None = None) -> dict[str, tuple[str, int]]:
        """key → (shard id, row) for every finished shard (or just ``sids``); notes which shards
        hold frame features in :attr:`has_frames`."""
        found: dict[str, tuple[str, int]] = {}
        paths = sorted(self.shards_dir.glob("*.zarr")) if sids is None else [self.shard_path(s) for s in sids]
        for path in paths:
            try:
                group = zarr.open_group(str(path), mode="r")
            except Exception:  # noqa: BLE001 - unreadable leftovers are recomputed
                continue
            if not group.attrs.get("complete"):
                continue
            self.has_frames[path.stem] = "offsets" in group
            for row, key in enumerate(read_strings(group["keys"])):
                found.setdefault(key, (path.stem, row))
        return found

    def pending(self) -> list[Shard]:
        """Shards planned by earlier runs (finished or not), oldest plan first."""
        shards: list[Shard] = []
        if self.plans_dir.is_dir():
            for plan in sorted(self.plans_dir.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name)):
                shards += [Shard(s["id"], s["keys"]) for s in json.loads(plan.read_text())["shards"]]
        return shards

    def plan(self, items: Items, shard_size: int, describe: dict[str, Any]) -> tuple[list[Shard], dict[str, tuple[str, int]]]:
        """Shards to compute now (reusing unfinished planned shards), and where the cached items are."""
        done = self.scan()
        missing = [k for k in items.by_key if k not in done]
        missing_set = set(missing)
        todo: list[Shard] = []
        for shard in self.pending():  # an interrupted run's shards keep their composition
            if shard.keys and missing_set.issuperset(shard.keys):  # (a shard planned twice fails this)
                todo.append(shard)
                missing_set.difference_update(shard.keys)
        rest = [k for k in missing if k in missing_set]  # manifest order
        new = []
        for i in range(0, len(rest), shard_size):
            keys = rest[i : i + shard_size]
            new.append(Shard(content_key(*keys)[:24], keys))
        if new:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "backbone.json").write_text(json.dumps(describe, indent=2, sort_keys=True, default=str))
            with atomic_file(self.plans_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{new[0].id}.json") as f:
                json.dump({"shards": [{"id": s.id, "keys": s.keys} for s in new]}, f)
        return todo + new, done


def write_cache_shard(path: Path, shard: Shard, pooled: list[np.ndarray], frames: list[np.ndarray | None]) -> None:
    """One finished shard, atomically: ``keys``, ``pooled``, and ``frames`` + ``offsets`` if any."""
    with atomic_dir(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        write_strings(group, "keys", shard.keys)
        write_array(group, "pooled", np.stack(pooled).astype(np.float32), **POOLED_LAYOUT)
        if all(f is not None for f in frames):
            write_array(group, "frames", np.concatenate(frames).astype(np.float32), **FRAMES_LAYOUT)
            write_array(group, "offsets", offsets_from_lengths([len(f) for f in frames]))
        group.attrs["complete"] = True


class ShardReader:
    """A few open cache shards (pooled rows in memory, frames read per item)."""

    def __init__(self, cache: Cache, keep: int = 4):
        self.cache, self.keep = cache, keep
        self.open: OrderedDict[str, tuple[zarr.Group, np.ndarray, np.ndarray | None]] = OrderedDict()

    def get(self, sid: str):
        if sid in self.open:
            self.open.move_to_end(sid)
            return self.open[sid]
        group = zarr.open_group(str(self.cache.shard_path(sid)), mode="r")
        entry = (group, group["pooled"][...], group["offsets"][...] if "offsets" in group else None)
        self.open[sid] = entry
        if len(self.open) > self.keep:
            self.open.popitem(last=False)
        return entry
