"""Stage ``embed@<corpus>-<backbone>``: segments → features/<corpus>/<backbone>.zarr."""

from __future__ import annotations

import pandas as pd

from pipeline import manifest
from pipeline.config import section
from pipeline.embed import embed_corpus
from pipeline.paths import prepared_dir, segments_path, store_path, transcripts_path
from pipeline.segments import Segments
from stages._cli import run_stage


def main(args, params) -> None:
    cfg = section(params, "backbones", args.backbone)
    corpus = manifest.load(prepared_dir(args.corpus))
    transcripts = transcripts_path(args.corpus)
    if transcripts.exists():  # the transcribe stage's output: corpus text, ASR where it was missing
        text = pd.read_parquet(transcripts).set_index("id")["text"]
        corpus.manifest["text"] = corpus.manifest["id"].map(text).fillna("")
    segments = Segments(segments_path(args.corpus))
    out = store_path(args.corpus, args.backbone)
    # params `embed` (executor, cache, shard size) schedule the work; they do not change results.
    info = embed_corpus(corpus, segments, args.backbone, cfg, out, engine=params.get("embed"))
    if info["applicable"]:
        print(
            f"embedded {args.corpus}/{args.backbone}: {info['n']} utterances, dim {info['dims']} "
            f"({info['computed']} computed, {info['cached']} from the embed cache)"
        )
    else:
        print(f"skipped {args.corpus}/{args.backbone}: {info['reason']}")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus", "backbone"], main)
