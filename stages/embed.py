"""Stage ``embed@<corpus>-<backbone>``: segments → features/<corpus>/<backbone>.zarr."""

from __future__ import annotations

import pandas as pd

from pipeline.core.config import section
from pipeline.core.inputs import load_items
from pipeline.core.paths import prepared_dir, segments_path, store_path, transcripts_path
from pipeline.core.segments import Segments
from pipeline.core.settings import parse
from pipeline.features.backbones.base import backbone_settings
from pipeline.features.embed.engine import EmbedSettings, embed_corpus
from stages._cli import run_stage


def main(args, params) -> None:
    settings = backbone_settings(args.backbone, section(params, "backbones", args.backbone))
    # params `embed` (executor, cache, shard size) schedule the work; they do not change results.
    engine = parse(EmbedSettings, params.get("embed"), "embed")
    corpus = load_items(args.corpus, prepared_dir(args.corpus))  # ids, media, text: no labels
    transcripts = transcripts_path(args.corpus)
    if transcripts.exists():  # the transcribe stage's output: corpus text, ASR where it was missing
        text = pd.read_parquet(transcripts).set_index("id")["text"]
        corpus.manifest["text"] = corpus.manifest["id"].map(text).fillna("")
    segments = Segments(segments_path(args.corpus))
    out = store_path(args.corpus, args.backbone)
    info = embed_corpus(corpus, segments, args.backbone, settings, out, engine=engine)
    if info["applicable"]:
        print(
            f"embedded {args.corpus}/{args.backbone}: {info['n']} utterances, dim {info['dims']} "
            f"({info['computed']} computed, {info['cached']} from the embed cache)"
        )
    else:
        print(f"skipped {args.corpus}/{args.backbone}: {info['reason']}")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus", "backbone"], main)
