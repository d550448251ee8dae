"""Benchmark 1: the embed stage vs a seed-style loop, same model, same corpus, one run.

    python benchmarks/embed_vs_seed.py                 # 100 clips of 2-4 s, wav2vec2-base architecture
    python benchmarks/embed_vs_seed.py --n 500 --device cuda

Seed style (what the user scripts did): for each file, decode it, run the model at batch size 1,
mean-pool the last layer, ``np.save`` one ``.npy`` per utterance. AffectBench: the segment stage
(decode every file once into Zarr) and the embed stage (bucketed batches, prefetch, write-behind,
every layer pooled plus frame features) with an empty cache. Prints throughputs and their ratios,
for the embed stage alone and for segment + embed (the fair end-to-end comparison: the seed loop
decodes too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from _common import arguments, backbone_cfg, emit, machine, make_corpus, make_model, timed


def seed_loop(corpus, model_dir: Path, out: Path, device: str) -> None:
    import torch
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    from pipeline.core.media import decode_audio

    extractor = Wav2Vec2FeatureExtractor.from_pretrained(model_dir)
    model = Wav2Vec2Model.from_pretrained(model_dir).to(device).eval()
    out.mkdir(parents=True, exist_ok=True)
    for uid, path in zip(corpus.manifest["id"], corpus.manifest["audio"]):
        audio = decode_audio(path, 16000)
        inputs = extractor(audio, sampling_rate=16000, return_tensors="pt").to(device)
        with torch.no_grad():
            hidden = model(**inputs).last_hidden_state
        np.save(out / f"{uid}.npy", hidden.mean(1)[0].cpu().numpy())


def main() -> None:
    args = arguments(__doc__)
    from pipeline.features.embed.engine import embed_corpus
    from pipeline.core.segments import Segments
    from pipeline.segment.decode import segment_corpus

    work = args.work
    corpus = make_corpus(work / "corpus", args.n)
    model = make_model(work / f"model-{args.model}", args.model)

    _, seed_s = timed(lambda: seed_loop(corpus, model, work / "npy", args.device))
    _, segment_s = timed(lambda: segment_corpus(corpus, work / "seg.zarr", fps=0, workers=2))
    seg = Segments(work / "seg.zarr")
    audio_s = float(seg.lengths("audio").sum()) / 16000
    cfg = backbone_cfg(model, device=args.device)
    _, embed_s = timed(lambda: embed_corpus(corpus, seg, "w2v", cfg, work / "store.zarr", engine={"cache": str(work / "cache")}))
    emit({
        "benchmark": "embed_vs_seed", "n": args.n, "audio_seconds": round(audio_s, 1), "model": f"wav2vec2-{args.model} (random init)",
        "device": args.device, "seed_s": round(seed_s, 2), "segment_s": round(segment_s, 2), "embed_s": round(embed_s, 2),
        "seed_utt_per_s": round(args.n / seed_s, 2), "embed_utt_per_s": round(args.n / embed_s, 2),
        "ratio_embed_stage": round(seed_s / embed_s, 2), "ratio_segment_plus_embed": round(seed_s / (segment_s + embed_s), 2),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
