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
   temporary directory renamed into place with ``complete`` set last. Every cache read is checked
   against the shard's checksums; a damaged shard is reported, removed and its items computed
   again (then assembly restarts), and a store with a missing row or a NaN is never sealed.

Peak memory is bounded by the prefetch depth, a few shards and one Zarr write buffer, never by the
corpus size. Modules: ``items`` (keys), ``cache`` (shards, plans), ``local`` and ``ray_executor``
(compute), ``assemble`` (the store), this one (settings, keys, the driver).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from tqdm import tqdm

from pipeline.core.errors import StoreError
from pipeline.core.hashing import code_version, content_key, params_hash
from pipeline.core.manifest import Corpus
from pipeline.core.segments import Segments
from pipeline.core.settings import Settings, parse
from pipeline.core.store import write_not_applicable
from pipeline.features.backbones.base import (
    RUN_COUNTERS,
    BackboneSettings,
    backbone_class,
    backbone_settings,
    result_settings,
)
from pipeline.features.embed.assemble import assemble_store
from pipeline.features.embed.cache import Cache, DamagedShard
from pipeline.features.embed.items import collect_items
from pipeline.features.embed.local import bound_heap, run_local

CACHE_ENV = "AFFECTBENCH_EMBED_CACHE"  # overrides embed.cache (e.g. a shared filesystem for Ray)
# Bumped when the engine changes what it stores for an item (not when only backbones change: their
# code is part of the key through code_version). 2: shards sealed with checksums.
CACHE_FORMAT = 2
REPAIR_ROUNDS = 3  # damaged cache shards found while assembling: recompute and retry this often


class RaySettings(Settings):
    address: str | None = None  # null: start a local Ray; "auto" or ray://host:10001 for a cluster
    workers: int = Field(2, ge=1)  # actors (one per GPU on a GPU cluster)
    cpus_per_worker: float = Field(1, gt=0)
    gpus_per_worker: float = Field(0, ge=0)


class EmbedSettings(Settings):
    """The ``embed`` section: how embedding work is scheduled. It never changes results, so no stage
    depends on it (switching executor or cache does not rerun anything)."""

    executor: Literal["local", "ray"] = "local"
    shard_size: int = Field(256, ge=1)  # items per cache shard: the unit of resume, writing and distribution
    prefetch: int = Field(4, ge=1)  # batches read ahead of the model by a background thread
    cache: str = ".cache/embed"  # content-addressed cache of computed items, outside DVC's outputs
    ray: RaySettings = Field(default_factory=RaySettings)

    def cache_root(self) -> str:
        return os.environ.get(CACHE_ENV) or self.cache


def backbone_code_version(cls: type) -> str:
    """The code version of a backbone type: its module's import closure (see pipeline.core.hashing)."""
    return code_version(cls.__module__)


def backbone_key(settings: BackboneSettings, cls: type, revision: Any) -> str:
    """What determines a backbone's output: type, settings (minus scheduling), revision, code."""
    blob = json.dumps(
        {"type": cls.type_name, "cfg": result_settings(settings), "revision": revision, "code": backbone_code_version(cls),
         "format": CACHE_FORMAT},
        sort_keys=True, default=str,
    )
    return content_key(blob)


def segment_params(segments: Segments) -> dict[str, Any]:
    """The segment parameters that decide a backbone's inputs (not the store's checksums or counts)."""
    return {k: segments.group.attrs.get(k) for k in ("sample_rate", "fps", "frame_size", "decoder")}


def not_applicable_reason(modality: str, corpus: Corpus, segments: Segments) -> str | None:
    if modality == "text" and not corpus.has_text:
        return f"corpus {corpus.name} has no transcripts (text backbone)"
    if modality == "video" and int(segments.group["frame_offsets"][-1]) == 0:
        return f"corpus {corpus.name} has no video frames (video backbone)"
    return None


def embed_corpus(
    corpus: Corpus,
    segments: Segments,
    name: str,
    cfg: dict[str, Any] | BackboneSettings,
    out_path: str | Path,
    engine: dict[str, Any] | EmbedSettings | None = None,
) -> dict[str, Any]:
    """Run backbone ``name`` over every segmented utterance (cached ones excepted); write its store."""
    eng = parse(EmbedSettings, engine, "embed")
    settings = backbone_settings(name, cfg)
    cls = backbone_class(settings.type)
    attrs = {
        "backbone": name,
        "type": cls.type_name,
        "modality": cls.modality,
        "corpus": corpus.name,
        # what decided the values (a batch size or hub revision change rewrites no store)
        "params_hash": params_hash(result_settings(settings), segment_params(segments)),
        "code_version": backbone_code_version(cls),
    }
    reason = not_applicable_reason(cls.modality, corpus, segments)
    if reason:
        write_not_applicable(out_path, reason=reason, attrs=attrs)
        return {"applicable": False, "reason": reason}

    bound_heap()
    backbone = cls(name, settings)
    described = {k: v for k, v in backbone.describe().items() if k not in RUN_COUNTERS}
    if cls.modality == "video" and described.get("frame_rate") is None:
        described["frame_rate"] = segments.fps
    attrs.update(described)
    bkey = backbone_key(settings, cls, described.get("revision"))
    items = collect_items(corpus, segments, cls.modality, bkey)
    cache = Cache(eng.cache_root(), bkey)
    computed = n_shards = 0
    for _ in range(REPAIR_ROUNDS):
        shards, done = cache.plan(items, eng.shard_size, {"backbone": name, **attrs})
        n_todo = sum(len(s.keys) for s in shards)
        cached = len(items.by_key) - n_todo
        print(f"embed {corpus.name}/{name}: {len(items.by_key)} distinct inputs, {cached} cached, "
              f"{n_todo} to compute in {len(shards)} shard(s) [{eng.executor}, cache {cache.dir}]", flush=True)
        _compute(backbone, name, settings, segments, items, shards, cache, eng, f"embed {corpus.name}/{name}")
        computed += n_todo
        n_shards += len(shards)
        done.update(cache.scan([s.id for s in shards]))  # only the shards this run wrote are read again
        try:
            info = assemble_store(out_path, items, cache, done, attrs, want_frames=backbone.has_frames,
                                  allow_nonfinite=cls.nonfinite_ok)
            break
        except DamagedShard as damage:  # found while reading: remove it, compute its items again, retry
            cache.discard(damage)
    else:
        raise StoreError(f"{cache.dir}: cache shards still damaged after {REPAIR_ROUNDS} repairs (is the disk failing?)")
    after = backbone.describe()
    counters = {k: after[k] for k in RUN_COUNTERS if after.get(k)}
    if counters and eng.executor == "local":  # (Ray workers count in their own processes)
        print(f"embed {corpus.name}/{name}: {counters}", flush=True)
    return {"applicable": True, "n": len(items.ids), "dims": info["dims"], "cached": len(items.by_key) - computed,
            "computed": computed, "shards": n_shards}


def _compute(backbone, name, settings, segments, items, shards, cache, eng: EmbedSettings, desc: str) -> None:
    """Compute ``shards`` into the cache with the configured executor, showing progress."""
    if not shards:
        return
    with tqdm(total=sum(len(s.keys) for s in shards), desc=desc, unit="utt") as bar:
        if eng.executor == "ray":
            from pipeline.features.embed.ray_executor import run_ray

            run_ray(name, settings, segments, items, shards, cache, eng.ray, bar)
        else:
            run_local(backbone, items, shards, cache, eng.prefetch, bar)
