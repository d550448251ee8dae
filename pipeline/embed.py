"""The embed engine: (prepared corpus, segments, backbone config) → feature store.

How a store is built (the README's "Embedding at scale" section says why):

1. **Keys.** Every item gets a content key: a hash of its model input (the decoded audio or frames,
   whose keys the segment stage recorded together with the segment parameters, or the transcript)
   and of the *backbone key* (backbone type, its params minus pure scheduling knobs, the model's
   revision and the backbone code's version). Identical inputs share one computation.
2. **Cache.** Computed items live in a content-addressed cache *outside* the DVC output
   (``embed.cache``, default ``.cache/embed/<backbone key>/``), in cache shards of
   ``embed.shard_size`` items (small Zarr groups written atomically). DVC deletes a stage's outputs
   before it runs, so the previous store itself cannot be reused; the cache can. Only items whose
   key is not cached are computed: adding utterances computes only those, removing some drops them
   from the assembled store, changing a backbone param changes the backbone key and recomputes all.
3. **Plan.** The missing items are cut into shards in manifest order and the plan is written to the
   cache *before* any compute. A rerun after ``kill -9`` reuses the unfinished shards of that plan
   with the same composition and batches, so the resumed store is bit-identical (on CPU) to an
   uninterrupted run, and finished shards are never recomputed.
4. **Compute.** The local executor streams: a background thread reads inputs with bounded
   prefetch (``embed.prefetch`` batches), items of a shard are batched by length (bucketing, to
   limit padding), the model runs under ``torch.inference_mode``, and a writer thread stores each
   finished shard while the next batches compute. ``executor: ray`` hands whole shards to Ray Data
   actors instead (one per GPU; a shard has exactly one writer).
5. **Assemble.** The store is written in manifest order from the cache shards, streaming, into a
   temporary directory renamed into place with ``complete`` set last.

Peak memory is bounded by the prefetch depth, a few shards and one Zarr write buffer, never by the
corpus size.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import zarr
from tqdm import tqdm

import pipeline
from pipeline.backbones import backbone_class, build_backbone
from pipeline.backbones.base import Backbone
from pipeline.config import params_hash
from pipeline.io import atomic_dir, atomic_file
from pipeline.manifest import Corpus
from pipeline.segments import Segments, content_key
from pipeline.store import seal_store, write_not_applicable
from pipeline.zarrio import FRAMES_LAYOUT, POOLED_LAYOUT, ArrayAppender, offsets_from_lengths, read_strings, write_array, write_strings

DEFAULTS: dict[str, Any] = {
    "executor": "local",  # local | ray
    "shard_size": 256,  # items per cache shard: the unit of resume, of writing and of distribution
    "prefetch": 4,  # batches read ahead of the model
    "cache": ".cache/embed",  # content-addressed cache of computed shards (outside DVC outputs)
    "ray": {"address": None, "workers": 2, "cpus_per_worker": 1, "gpus_per_worker": 0},
}
# Backbone params that change how work is scheduled, not what is computed: not part of the key.
SCHEDULING_KEYS = ("batch_size", "batch_seconds")
# Per-run counters some backbones report (inputs padded or windowed): they describe what *this* run
# computed, which depends on the cache, so they are printed rather than stored (a resumed store
# must equal an uninterrupted one, attributes included).
RUN_COUNTERS = ("n_padded", "n_windowed")
EXECUTORS = ("local", "ray")
CACHE_ENV = "AFFECTBENCH_EMBED_CACHE"  # overrides embed.cache (e.g. a shared filesystem for Ray)


def code_version(cls: type) -> str:
    """Library version plus a hash of the backbone's module source (recorded in the store)."""
    src = inspect.getsource(inspect.getmodule(cls))
    return f"{pipeline.__version__}+{hashlib.sha256(src.encode()).hexdigest()[:10]}"


def not_applicable_reason(modality: str, corpus: Corpus, segments: Segments) -> str | None:
    if modality == "text" and not corpus.has_text:
        return f"corpus {corpus.name} has no transcripts (text backbone)"
    if modality == "video" and int(segments.group["frame_offsets"][-1]) == 0:
        return f"corpus {corpus.name} has no video frames (video backbone)"
    return None


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


def engine_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """The ``embed`` params section over :data:`DEFAULTS` (``ray`` merged key by key)."""
    out = {**DEFAULTS, **(cfg or {})}
    out["ray"] = {**DEFAULTS["ray"], **((cfg or {}).get("ray") or {})}
    unknown = set(out) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"embed: unknown option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    if out["executor"] not in EXECUTORS:
        raise ValueError(f"embed.executor must be one of {EXECUTORS}, got {out['executor']!r}")
    if int(out["shard_size"]) < 1 or int(out["prefetch"]) < 1:
        raise ValueError("embed.shard_size and embed.prefetch must be >= 1")
    out["cache"] = os.environ.get(CACHE_ENV) or out["cache"]
    return out


def backbone_key(cfg: dict[str, Any], cls: type, revision: Any) -> str:
    """What determines a backbone's output: type, params (minus scheduling), revision, code."""
    spec = {k: v for k, v in cfg.items() if k not in SCHEDULING_KEYS}
    blob = json.dumps({"type": cls.type_name, "cfg": spec, "revision": revision, "code": code_version(cls)}, sort_keys=True, default=str)
    return content_key(blob)


# ---------------------------------------------------------------------------------------------
# Items: what the model sees, addressed by content.
# ---------------------------------------------------------------------------------------------


@dataclass
class Items:
    """The store's items in manifest order: ids, cache keys, and how to load each input."""

    modality: str
    segments: Segments
    ids: list[str]
    keys: list[str]  # per id (duplicates share a key)
    lengths: np.ndarray  # per id: samples, frames or characters (for bucketing)
    text: list[str] | None = None
    by_key: dict[str, int] = field(default_factory=dict)  # key → first position
    seg_index: list[int] | None = None  # position → segments row (None: the same)

    def load(self, pos: int) -> Any:
        if self.modality == "text":
            return self.text[pos]
        row = pos if self.seg_index is None else self.seg_index[pos]
        if self.modality == "video":
            return self.segments.frames_at(row)
        return self.segments.audio_at(row)


def collect_items(corpus: Corpus, segments: Segments, modality: str, bkey: str) -> Items:
    ids = segments.ids
    text = None
    if modality == "text":
        by_id = dict(zip(corpus.manifest["id"], corpus.manifest["text"]))
        text = [str(by_id[u]) for u in ids]
        inputs = [content_key("text", t) for t in text]
        lengths = np.array([len(t) for t in text])
    else:
        inputs = segments.keys(modality)
        lengths = segments.lengths(modality)
    keys = [content_key(bkey, k) for k in inputs]
    by_key: dict[str, int] = {}
    for pos, k in enumerate(keys):
        by_key.setdefault(k, pos)
    return Items(modality, segments, ids, keys, lengths, text, by_key)


# ---------------------------------------------------------------------------------------------
# The cache: <cache>/<backbone key>/{plans/*.json, shards/<id>.zarr}
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Computing one shard (shared by the local and the Ray executor).
# ---------------------------------------------------------------------------------------------


def shard_batches(shard: Shard, items: Items, batch_size: int) -> list[list[int]]:
    """Row indices of ``shard`` grouped into batches of similar input length (longest first)."""
    lengths = [int(items.lengths[items.by_key[k]]) for k in shard.keys]
    order = sorted(range(len(shard.keys)), key=lambda r: (-lengths[r], r))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def run_backbone(backbone: Backbone, inputs: list[Any]):
    import torch

    with torch.inference_mode():
        return backbone.embed(inputs)


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


# ---------------------------------------------------------------------------------------------
# Assembling the store from the cache.
# ---------------------------------------------------------------------------------------------


class _ShardReader:
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


def assemble_store(out_path: str | Path, items: Items, cache: Cache, done: dict[str, tuple[str, int]],
                   attrs: dict[str, Any], want_frames: bool) -> dict[str, Any]:
    lost = [u for u, k in zip(items.ids, items.keys) if k not in done]
    if lost:
        raise RuntimeError(f"{cache.dir}: {len(lost)} items missing from the embed cache after computing, e.g. {lost[:3]}")
    reader = _ShardReader(cache)
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


# ---------------------------------------------------------------------------------------------
# The driver.
# ---------------------------------------------------------------------------------------------


def embed_corpus(
    corpus: Corpus,
    segments: Segments,
    name: str,
    cfg: dict[str, Any],
    out_path: str | Path,
    engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run backbone ``name`` over every segmented utterance (cached ones excepted); write its store."""
    eng = engine_config(engine)
    cls = backbone_class(cfg.get("type", ""))
    attrs = {
        "backbone": name,
        "type": cls.type_name,
        "modality": cls.modality,
        "corpus": corpus.name,
        "params_hash": params_hash(cfg, dict(segments.group.attrs)),
        "code_version": code_version(cls),
    }
    reason = not_applicable_reason(cls.modality, corpus, segments)
    if reason:
        write_not_applicable(out_path, reason=reason, attrs=attrs)
        return {"applicable": False, "reason": reason}

    bound_heap()
    backbone = build_backbone(name, cfg)
    described = {k: v for k, v in backbone.describe().items() if k not in RUN_COUNTERS}
    if cls.modality == "video" and described.get("frame_rate") is None:
        described["frame_rate"] = segments.fps
    attrs.update(described)
    bkey = backbone_key(cfg, cls, described.get("revision"))
    items = collect_items(corpus, segments, cls.modality, bkey)
    cache = Cache(eng["cache"], bkey)
    shards, done = cache.plan(items, int(eng["shard_size"]), {"backbone": name, **attrs})
    cached = len(items.by_key) - sum(len(s.keys) for s in shards)
    n_todo = sum(len(s.keys) for s in shards)
    print(f"embed {corpus.name}/{name}: {len(items.by_key)} distinct inputs, {cached} cached, "
          f"{n_todo} to compute in {len(shards)} shard(s) [{eng['executor']}, cache {cache.dir}]", flush=True)
    bar = tqdm(total=n_todo, desc=f"embed {corpus.name}/{name}", unit="utt")
    if shards and eng["executor"] == "ray":
        from pipeline.embed_ray import run_ray

        run_ray(name, cfg, corpus, segments, items, shards, cache, eng["ray"], bar)
    elif shards:
        run_local(backbone, items, shards, cache, int(eng["prefetch"]), bar)
    bar.close()
    counters = {k: getattr(backbone, k) for k in RUN_COUNTERS if getattr(backbone, k, 0)}
    if counters and eng["executor"] == "local":
        print(f"embed {corpus.name}/{name}: {counters}", flush=True)
    done.update(cache.scan([s.id for s in shards]))  # only the shards this run wrote are read again
    info = assemble_store(out_path, items, cache, done, attrs, want_frames=backbone.has_frames)
    return {"applicable": True, "n": len(items.ids), "dims": info["dims"], "cached": cached, "computed": n_todo, "shards": len(shards)}
