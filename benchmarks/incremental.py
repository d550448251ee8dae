"""Benchmark 3: adding 10 % more utterances / a full run of the embed stage (target <= 0.12).

    python benchmarks/incremental.py                      # 100 clips + 10 new, wav2vec2-base architecture

Full run: the embed stage on ``n`` utterances with an empty cache. Incremental run: the corpus
grows by 10 % (new files; the segment stage rewrites its store, as it does under ``dvc repro``) and
the embed stage runs again with the cache the full run left: it must compute only the new 10 %.
Reports both wall times and their ratio; the segment stage's times are listed separately (it is
not incremental: it decodes every file again, which is cheap next to a model).
"""

from __future__ import annotations


from _common import arguments, backbone_cfg, emit, extend, machine, make_corpus, make_model, timed


def main() -> None:
    args = arguments(__doc__, extra=0.10)

    from pipeline.features.embed.engine import embed_corpus
    from pipeline.core.segments import Segments
    from pipeline.segment.decode import segment_corpus

    work = args.work
    base = make_corpus(work / "corpus", args.n)
    n_new = max(1, round(args.n * args.extra))
    grown = extend(base, make_corpus(work / "corpus", n_new, start=args.n))
    model = make_model(work / f"model-{args.model}", args.model)
    cfg = backbone_cfg(model, device=args.device)
    engine = {"cache": str(work / "cache")}

    _, seg_full_s = timed(lambda: segment_corpus(base, work / "seg1.zarr", fps=0, workers=2))
    full, full_s = timed(lambda: embed_corpus(base, Segments(work / "seg1.zarr"), "w2v", cfg, work / "s1.zarr", engine=engine))
    _, seg_grown_s = timed(lambda: segment_corpus(grown, work / "seg2.zarr", fps=0, workers=2))
    inc, inc_s = timed(lambda: embed_corpus(grown, Segments(work / "seg2.zarr"), "w2v", cfg, work / "s2.zarr", engine=engine))
    assert inc["computed"] == n_new and inc["cached"] == args.n, inc
    emit({
        "benchmark": "incremental", "n": args.n, "added": n_new, "model": f"wav2vec2-{args.model} (random init)",
        "full_embed_s": round(full_s, 2), "incremental_embed_s": round(inc_s, 2), "ratio": round(inc_s / full_s, 3),
        "target": 0.12, "computed_full": full["computed"], "computed_incremental": inc["computed"],
        "segment_full_s": round(seg_full_s, 2), "segment_grown_s": round(seg_grown_s, 2), "machine": machine(),
    })


if __name__ == "__main__":
    main()
