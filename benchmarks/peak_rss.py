"""Benchmark 6: peak RSS of the segment and embed stages at 1x and 4x corpus size (target: flat).

    python benchmarks/peak_rss.py                         # 200 and 800 clips of 2-4 s, small wav2vec2, shards of 25

Each stage runs in a fresh Python process (so one measurement cannot inherit another's peak) that
reports its own ``ru_maxrss``. The embed stage stores every layer pooled plus frame features, the
largest outputs a backbone makes. 1x holds ~10 min of audio, 4x ~40 min (~150 MB of float32
samples, ~200 MB of frame features): a stage that held the corpus in memory would show it. The
embed stage's working set is bounded by a few embed shards and one ~16 MiB Zarr shard per array
being written, so 1x must already exceed both: embed shards of 25 items (the default 256 would
fit a small 1x corpus into one) and more than one Zarr shard of frame features.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _common import ROOT, arguments, emit, extend, machine, make_corpus, make_model

CHILD = """
import json, resource, sys
sys.path.insert(0, {root!r})
from pipeline.core import manifest
from pipeline.core.segments import Segments
from pipeline.segment.decode import segment_corpus
from pipeline.features.embed.engine import embed_corpus
stage, prepared, seg, out, model, cache = sys.argv[1:7]
corpus = manifest.load(prepared)
if stage == "segment":
    segment_corpus(corpus, seg, fps=0, workers=2)
else:
    cfg = {{"type": "hf_audio", "source": model, "frame_layer": -1, "batch_size": 8, "device": "cpu"}}
    embed_corpus(corpus, Segments(seg), "w2v", cfg, out, engine={{"cache": cache, "shard_size": int(sys.argv[7])}})
print("PEAK", json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
"""


def run(stage: str, work: Path, tag: str, model: Path, shard_size: int) -> float:
    cmd = [sys.executable, "-c", CHILD.format(root=str(ROOT)), stage, str(work / f"prepared-{tag}"), str(work / f"seg-{tag}.zarr"),
           str(work / f"store-{tag}.zarr"), str(model), str(work / f"cache-{tag}"), str(shard_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-4000:])
    line = [x for x in proc.stdout.splitlines() if x.startswith("PEAK")][-1]
    return float(json.loads(line.split(" ", 1)[1]))


def main() -> None:
    args = arguments(__doc__, n=200, model="small", shard_size=25, scale=4)  # 1x must already span several shards

    from pipeline.core.manifest import save

    work = args.work
    model = make_model(work / f"model-{args.model}", args.model)
    one = make_corpus(work / "corpus", args.n)
    big = extend(one, make_corpus(work / "corpus", args.n * (args.scale - 1), start=args.n))
    figures = {"benchmark": "peak_rss", "n_1x": args.n, "n_big": args.n * args.scale, "shard_size": args.shard_size,
               "model": f"wav2vec2-{args.model} (random init)"}
    for tag, corpus in (("1x", one), (f"{args.scale}x", big)):
        save(corpus, work / f"prepared-{tag}")
        figures[f"segment_peak_mb_{tag}"] = round(run("segment", work, tag, model, args.shard_size), 1)
        figures[f"embed_peak_mb_{tag}"] = round(run("embed", work, tag, model, args.shard_size), 1)
    big_tag = f"{args.scale}x"
    figures["segment_growth"] = round(figures[f"segment_peak_mb_{big_tag}"] / figures["segment_peak_mb_1x"], 3)
    figures["embed_growth"] = round(figures[f"embed_peak_mb_{big_tag}"] / figures["embed_peak_mb_1x"], 3)
    figures["target"] = "flat (growth ~1.0)"
    figures["machine"] = machine()
    emit(figures)


if __name__ == "__main__":
    main()
