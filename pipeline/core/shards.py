"""Content-addressed caches of computed items, in sealed Zarr shards: the embed and segment caches.

A cache directory holds ``shards/<id>.zarr``, each a small Zarr group of a few hundred items
written atomically and sealed with the checksum and row count of every array
(:func:`pipeline.core.zarrio.seal`), with a ``keys`` array naming the items it holds. Nothing in a
cache is trusted blindly: a shard's metadata and keys are checked when the cache is scanned, its
arrays when they are read. A damaged shard (a chunk file deleted, truncated or altered; metadata
unreadable) raises :class:`DamagedShard` naming its path; :meth:`ShardCache.discard` reports it in
one line and removes it, and its items are computed again. Removing or damaging anything in a
cache therefore costs time, never a wrong result.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import zarr

from pipeline.core.zarrio import data_digest, verify_group


class DamagedShard(Exception):
    """A cache shard that does not read back as it was sealed."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


def open_shard(path: Path) -> zarr.Group:
    try:
        return zarr.open_group(str(path), mode="r")
    except Exception as err:  # unreadable metadata is damage, whatever zarr raises
        raise DamagedShard(path, f"cannot be opened ({type(err).__name__}: {err})") from err


def checked(group: zarr.Group, name: str, path: Path) -> np.ndarray:
    """Array ``name`` of a shard, read whole and compared with its sealed checksum and row count."""
    want = group.attrs.get("checksums", {}).get(name)
    try:
        data = group[name][...]
    except Exception as err:  # a truncated or undecodable chunk is damage, whatever zarr raises
        raise DamagedShard(path, f"array {name} cannot be read ({type(err).__name__}: {err})") from err
    if want is None or len(data) != want["rows"] or data_digest(data) != want["blake2b"]:
        raise DamagedShard(path, f"array {name} fails its checksum (a chunk file missing or altered)")
    return data


class ShardCache:
    """The shards of one cache directory: where each cached item is, and removal of damaged shards."""

    what = "cache"  # how warnings name this cache ("embed cache", "segment cache")

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.shards_dir = self.dir / "shards"

    def shard_path(self, sid: str) -> Path:
        return self.shards_dir / f"{sid}.zarr"

    def scan(self, sids: list[str] | None = None) -> dict[str, tuple[str, int]]:
        """key → (shard id, row) for every sound sealed shard (or just ``sids``). A shard whose
        metadata or keys are damaged is reported and removed, so its items are computed again."""
        found: dict[str, tuple[str, int]] = {}
        paths = sorted(self.shards_dir.glob("*.zarr")) if sids is None else [self.shard_path(s) for s in sids]
        for path in paths:
            try:
                group = open_shard(path)
                problems = verify_group(group, deep=False)
                if problems:
                    raise DamagedShard(path, "; ".join(problems))
                keys = [str(k) for k in checked(group, "keys", path)]
            except DamagedShard as damage:
                self.discard(damage)
                continue
            self.on_scan(path.stem, group)
            for row, key in enumerate(keys):
                found.setdefault(key, (path.stem, row))
        return found

    def on_scan(self, sid: str, group: zarr.Group) -> None:
        """Hook: note facts about a sound shard while scanning."""

    def discard(self, damage: DamagedShard) -> None:
        """Report a damaged shard (one line naming it) and remove it: its items are computed again."""
        print(f"warning: {self.what} shard {damage.path} is damaged ({damage.problem}); removing it, its items "
              "are computed again", file=sys.stderr, flush=True)
        shutil.rmtree(damage.path, ignore_errors=True)
