"""The embed cache: ``<cache>/<backbone key>/{plans/*.json, shards/<id>.zarr, backbone.json}``.

Computed items live in a content-addressed cache outside DVC's outputs, in shards of
``embed.shard_size`` items, each a small Zarr group written atomically and sealed (checksums and
row counts of every array, ``complete`` last; :func:`pipeline.core.zarrio.seal`). The shard plan is
written before any compute, so a run resumed after ``kill -9`` reuses the unfinished shards of that
plan with the same composition and batches.

A cache is never trusted blindly (:mod:`pipeline.core.shards`): every shard is checked as it is
read — its keys when scanned, its pooled rows and offsets when opened, each item's frame features
against a per-item digest when copied into a store. A damaged shard raises
:class:`~pipeline.core.shards.DamagedShard` naming its path; the engine reports it, removes it and
recomputes its items, so removing or damaging anything in the cache costs time, never a wrong store.
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
from pipeline.core.shards import DamagedShard, ShardCache, checked, open_shard
from pipeline.core.zarrio import (
    FRAMES_LAYOUT,
    POOLED_LAYOUT,
    data_digest,
    offsets_from_lengths,
    seal,
    write_array,
    write_strings,
)
from pipeline.features.embed.items import Items


@dataclass
class Shard:
    id: str
    keys: list[str]


class Cache(ShardCache):
    """The embed cache of one backbone key: sealed shards plus the plans of earlier runs."""

    what = "embed cache"

    def __init__(self, root: str | Path, bkey: str):
        super().__init__(Path(root) / bkey)
        self.plans_dir = self.dir / "plans"
        self.has_frames: dict[str, bool] = {}

    def on_scan(self, sid: str, group: zarr.Group) -> None:
        self.has_frames[sid] = "offsets" in group

    def discard(self, damage: DamagedShard) -> None:
        super().discard(damage)
        self.has_frames.pop(damage.path.stem, None)

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
    """One finished shard, atomically: ``keys``, ``pooled``, and ``frames`` + ``offsets`` + a digest
    per item's frames if any; sealed with every array's checksum."""
    with atomic_dir(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        write_strings(group, "keys", shard.keys)
        write_array(group, "pooled", np.stack(pooled).astype(np.float32), **POOLED_LAYOUT)
        if all(f is not None for f in frames):
            frames = [np.asarray(f, dtype=np.float32) for f in frames]
            write_array(group, "frames", np.concatenate(frames), **FRAMES_LAYOUT)
            write_array(group, "offsets", offsets_from_lengths([len(f) for f in frames]))
            write_strings(group, "frame_digests", [data_digest(f) for f in frames])
        seal(group, {"rows": len(shard.keys)})


READER_BYTES = 512 << 20  # pooled rows of open shards kept by a ShardReader (beyond its `keep` newest)


class ShardReader:
    """Open cache shards (pooled rows in memory, frames read per run of items), every read checked
    against the shard's checksums: damage raises :class:`DamagedShard`.

    The most recently used shards stay open while their pooled rows total at most ``budget`` bytes
    (and at least ``keep`` of them): a manifest whose order is not the cache's (items added or
    reordered over time) then reads each shard once instead of once per item — 5 ms per item at
    3,000 shuffled items with only 4 kept (benchmarks/scale_100k.py).
    """

    def __init__(self, cache: Cache, keep: int = 4, budget: int | None = None):
        self.cache, self.keep = cache, keep
        self.budget = READER_BYTES if budget is None else budget
        self.open: OrderedDict[str, tuple[zarr.Group, np.ndarray, np.ndarray | None, list[str] | None]] = OrderedDict()
        self._bytes = 0
        self.opened = 0  # shards read (tests, benchmarks)

    def get(self, sid: str):
        if sid in self.open:
            self.open.move_to_end(sid)
            return self.open[sid][:3]
        path = self.cache.shard_path(sid)
        group = open_shard(path)
        with_frames = "offsets" in group
        entry = (
            group,
            checked(group, "pooled", path),
            checked(group, "offsets", path) if with_frames else None,
            [str(d) for d in checked(group, "frame_digests", path)] if with_frames else None,
        )
        self.open[sid] = entry
        self.opened += 1
        self._bytes += entry[1].nbytes
        while len(self.open) > self.keep and self._bytes > self.budget:
            self._bytes -= self.open.popitem(last=False)[1][1].nbytes
        return entry[:3]

    def frames(self, sid: str, start: int, stop: int) -> tuple[np.ndarray, list[int]]:
        """Frame features of rows ``start:stop`` of shard ``sid`` (flat) and their lengths, each
        item checked against its digest."""
        group, _, offsets = self.get(sid)
        digests = self.open[sid][3]
        path = self.cache.shard_path(sid)
        try:
            feats = group["frames"][int(offsets[start]) : int(offsets[stop])]
        except Exception as err:
            raise DamagedShard(path, f"array frames cannot be read ({type(err).__name__}: {err})") from err
        lengths = np.diff(offsets[start : stop + 1]).tolist()
        at = 0
        for row, n in zip(range(start, stop), lengths):
            if data_digest(feats[at : at + n]) != digests[row]:
                raise DamagedShard(path, f"frame features of row {row} fail their checksum (a chunk file missing or altered)")
            at += n
        return feats, lengths
