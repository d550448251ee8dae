"""Benchmark 2: embed-stage throughput / model-forward-only throughput (target >= 0.9).

    python benchmarks/pipeline_efficiency.py              # 100 clips of 2-4 s, wav2vec2-base architecture
    python benchmarks/pipeline_efficiency.py --device cuda

Forward-only: the very batches the embed stage forms (same shards, same length buckets, same
padding), decoded and turned into model inputs beforehand and held in memory; only
``model(**inputs, output_hidden_states=True)`` is timed. The embed stage: ``embed_corpus`` on the
segments store with an empty cache — reading, feature extraction, pooling every layer, frame
features, cache shards and the final store included. Both are measured in one run, side by side.
The model load is timed separately and reported (it is a one-off per stage, not per item).
"""

from __future__ import annotations


from _common import arguments, backbone_cfg, emit, machine, make_corpus, make_model, timed


def main() -> None:
    args = arguments(__doc__)

    import torch

    from pipeline.core.segments import Segments
    from pipeline.features.backbones.base import build_backbone
    from pipeline.features.embed.cache import Shard
    from pipeline.features.embed.engine import EmbedSettings, backbone_key, embed_corpus
    from pipeline.features.embed.items import Items, collect_items
    from pipeline.features.embed.local import shard_batches
    from pipeline.segment.decode import segment_corpus

    work = args.work
    corpus = make_corpus(work / "corpus", args.n)
    model = make_model(work / f"model-{args.model}", args.model)
    segment_corpus(corpus, work / "seg.zarr", fps=0, workers=2)
    seg = Segments(work / "seg.zarr")
    cfg = backbone_cfg(model, device=args.device)

    # --- forward only, on the embed stage's own batches -------------------------------------
    bb, load_s = timed(lambda: build_backbone("w2v", cfg))
    items: Items = collect_items(corpus, seg, "audio", backbone_key(bb.settings, type(bb), None))
    keys = list(items.by_key)
    size = EmbedSettings().shard_size
    batches = []
    for i in range(0, len(keys), size):
        shard = Shard("x", keys[i : i + size])
        for rows in shard_batches(shard, items, bb.batch_size):
            windows = [items.load(items.by_key[shard.keys[r]]) for r in rows]
            features = bb.family.features
            batches.append(features(windows, padding=True, return_attention_mask=True) if len(windows) > 1 else features(windows))
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()

    def forward_only():
        with torch.inference_mode():
            for inputs in batches:
                bb.model(**inputs, output_hidden_states=True)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    forward_only()  # warm-up (allocator, kernels), not timed
    _, forward_s = timed(forward_only)

    # --- the embed stage ------------------------------------------------------------------------
    _, stage_s = timed(lambda: embed_corpus(corpus, seg, "w2v", cfg, work / "store.zarr", engine={"cache": str(work / "cache")}))
    emit({
        "benchmark": "pipeline_efficiency", "n": args.n, "model": f"wav2vec2-{args.model} (random init)", "device": args.device,
        "forward_batches": len(batches), "forward_only_s": round(forward_s, 2), "embed_stage_s": round(stage_s, 2),
        "model_load_s": round(load_s, 2),
        "efficiency": round(forward_s / stage_s, 3),
        "efficiency_excluding_model_load": round(forward_s / max(1e-9, stage_s - load_s), 3),
        "target": 0.9, "machine": machine(),
    })


if __name__ == "__main__":
    main()
