"""The local executor: stream shards through the model — read ahead, compute, write behind.

A background thread reads inputs with bounded prefetch (``embed.prefetch`` batches), items of a
shard are batched by length (bucketing, to limit padding), the model runs under
``torch.inference_mode``, and a writer thread stores each finished shard while the next one
computes. :func:`compute_shard` is the same work without threads, for the Ray workers.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterator

from tqdm import tqdm

from pipeline.features.backbones.base import Backbone
from pipeline.features.embed.cache import Cache, Shard, write_cache_shard
from pipeline.features.embed.items import Items


def shard_batches(shard: Shard, items: Items, batch_size: int) -> list[list[int]]:
    """Row indices of ``shard`` grouped into batches of similar input length (longest first)."""
    lengths = [int(items.lengths[items.by_key[k]]) for k in shard.keys]
    order = sorted(range(len(shard.keys)), key=lambda r: (-lengths[r], r))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def run_backbone(backbone: Backbone, inputs: list[Any]):
    import torch

    with torch.inference_mode():
        return backbone.embed(inputs)


def compute_shard(backbone: Backbone, items: Items, shard: Shard, cache: Cache) -> None:
    """Compute and write one shard without background threads (the Ray worker's loop)."""
    pooled: list[Any] = [None] * len(shard.keys)
    frames: list[Any] = [None] * len(shard.keys)
    for rows in shard_batches(shard, items, backbone.batch_size):
        embs = run_backbone(backbone, [items.load(items.by_key[shard.keys[r]]) for r in rows])
        for r, emb in zip(rows, embs):
            pooled[r], frames[r] = emb.pooled, emb.frames
    write_cache_shard(cache.shard_path(shard.id), shard, pooled, frames)


def _prefetch(gen: Iterator[Any], depth: int) -> Iterator[Any]:
    """Run ``gen`` in a background thread, at most ``depth`` results ahead of the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def work() -> None:
        try:
            for item in gen:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(end)
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
            q.put(err)

    thread = threading.Thread(target=work, daemon=True, name="embed-prefetch")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def run_local(backbone: Backbone, items: Items, shards: list[Shard], cache: Cache, prefetch: int, bar: tqdm) -> None:
    """Stream the shards through the model: read ahead, compute, write behind."""

    def batches() -> Iterator[tuple[int, list[int], list[Any]]]:
        for s, shard in enumerate(shards):
            for rows in shard_batches(shard, items, backbone.batch_size):
                yield s, rows, [items.load(items.by_key[shard.keys[r]]) for r in rows]

    results: dict[int, tuple[list[Any], list[Any], int]] = {}
    writing: Future | None = None  # one shard is written while the next computes
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-writer") as writer:
        for s, rows, inputs in _prefetch(batches(), prefetch):
            shard = shards[s]
            pooled, frames, left = results.setdefault(s, ([None] * len(shard.keys), [None] * len(shard.keys), len(shard.keys)))
            for r, emb in zip(rows, run_backbone(backbone, inputs)):
                pooled[r], frames[r] = emb.pooled, emb.frames
            left -= len(rows)
            results[s] = (pooled, frames, left)
            bar.update(len(rows))
            if left == 0:
                del results[s]
                if writing is not None:
                    writing.result()  # re-raises a failed write
                writing = writer.submit(write_cache_shard, cache.shard_path(shard.id), shard, pooled, frames)
        if writing is not None:
            writing.result()


def bound_heap(threshold: int = 64 << 10) -> None:
    """Serve allocations above ``threshold`` with mmap (glibc), so freed activations go back to the OS.

    A model run over inputs of many lengths allocates tensors of many sizes; glibc's heap then
    fragments and peak RSS grows with the number of batches, i.e. with the corpus (2.07 GB at 4x vs
    1.11 GB at 1x in benchmarks/peak_rss.py; 0.93 GB at 4x with this). No-op off glibc.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
    except OSError:
        pass
