"""``embed.executor: ray``: cache shards computed by Ray Data actors.

The driver plans the shards exactly as the local executor does (:mod:`pipeline.features.embed.engine`); Ray Data then
maps them over a pool of actors, each loading the backbone once (one actor per GPU with
``gpus_per_worker: 1``). A shard is the unit of work, so every shard has exactly one writer: two
processes writing rows of one Zarr shard would lose data. Workers write their shards straight into
the embed cache, which therefore has to be on a filesystem every node sees (set
``AFFECTBENCH_EMBED_CACHE`` or ``embed.cache``); the driver assembles the store from it afterwards,
as in the local case, so both executors produce identical stores.

``ray.address``: null starts a local Ray instance with ``workers × cpus_per_worker`` CPUs (the
tests use 2 CPU workers); ``auto`` or ``ray://head:10001`` joins an existing cluster.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.features.embed.cache import Cache, Shard
from pipeline.features.embed.items import Items
from pipeline.features.embed.local import compute_shard


class ShardWorker:
    """A Ray Data actor: loads the backbone once, then computes whole shards."""

    def __init__(self, name: str, cfg: dict[str, Any], modality: str, segments_path: str, cache_root: str, bkey: str, threads: int):
        import torch

        from pipeline.core.segments import Segments
        from pipeline.features.backbones.base import build_backbone
        from pipeline.features.embed.local import bound_heap

        bound_heap()

        # CPU kernels may sum in a different order with another thread count; one thread per
        # reserved CPU keeps CPU results equal to a local run with the same torch thread count.
        torch.set_num_threads(threads)

        self.backbone = build_backbone(name, cfg)
        self.modality = modality
        self.segments = Segments(segments_path) if modality != "text" else None
        self.cache = Cache(cache_root, bkey)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        done = []
        for sid, keys, rows, lengths, text in zip(batch["sid"], batch["keys"], batch["rows"], batch["lengths"], batch["text"]):
            keys = [str(k) for k in keys]
            items = Items(
                modality=self.modality,
                segments=self.segments,
                ids=[],
                keys=keys,
                lengths=np.asarray(lengths),
                text=[str(t) for t in text] if self.modality == "text" else None,
                by_key={k: i for i, k in enumerate(keys)},
                seg_index=[int(r) for r in rows],
            )
            compute_shard(self.backbone, items, Shard(str(sid), keys), self.cache)
            done.append(len(keys))
        return {"sid": np.asarray(batch["sid"]), "n": np.asarray(done)}


def worker_pythonpath() -> str:
    """PYTHONPATH for Ray workers: the checkout holding ``pipeline/`` (a shared filesystem on a cluster;
    in client mode, ``ray://``, Ray adds no working directory, so ``import pipeline`` depends on it)."""
    from pipeline.core.hashing import ROOT

    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def run_ray(name: str, settings, segments, items: Items, shards: list[Shard], cache: Cache, ray_cfg, bar) -> None:
    """Compute ``shards`` on Ray Data actors; ``settings`` is the backbone's, ``ray_cfg`` the ``embed.ray`` section."""
    import ray

    workers = ray_cfg.workers
    cpus = float(ray_cfg.cpus_per_worker)
    gpus = float(ray_cfg.gpus_per_worker or 0)
    started_here = False
    if not ray.is_initialized():
        env = {"env_vars": {"PYTHONPATH": worker_pythonpath()}}
        address = ray_cfg.address
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
        else:
            # a local instance sized for the workers, plus one CPU for Ray Data's own tasks
            ray.init(num_cpus=int(workers * cpus) + 1, include_dashboard=False, runtime_env=env, log_to_driver=False)
        started_here = True
    try:
        rows = []
        for shard in shards:
            pos = [items.by_key[k] for k in shard.keys]
            rows.append(
                {
                    "sid": shard.id,
                    "keys": list(shard.keys),
                    "rows": pos,
                    "lengths": [int(items.lengths[p]) for p in pos],
                    "text": [items.text[p] for p in pos] if items.text is not None else [""] * len(pos),
                }
            )
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        out = ds.map_batches(
            ShardWorker,
            fn_constructor_kwargs={
                "name": name,
                "cfg": settings.dump(),
                "modality": items.modality,
                "segments_path": str(Path(segments.path).resolve()),
                "cache_root": str(cache.dir.parent.resolve()),
                "bkey": cache.dir.name,
                "threads": max(1, int(cpus)),
            },
            batch_size=1,  # one shard per call: whole shards per worker
            concurrency=workers,
            num_cpus=cpus,
            num_gpus=gpus or None,
        )
        for batch in out.iter_batches(batch_size=1):
            bar.update(int(np.sum(batch["n"])))
    finally:
        if started_here:
            ray.shutdown()
