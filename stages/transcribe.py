"""Stage ``transcribe@<corpus>``: fill missing transcripts so text backbones work on any corpus.

With ``transcripts.backend: none`` (the default) the corpus's own transcripts pass through
unchanged and no model is loaded; ``whisper`` (transformers) or ``funasr`` (Paraformer /
SenseVoice) transcribe only the utterances whose text is empty. Writes
``data/<corpus>/transcripts.parquet`` (id, text, source) and a report.
"""

from __future__ import annotations

import pandas as pd

from pipeline.core import manifest
from pipeline.core.config import section
from pipeline.core.io import atomic_file, write_json
from pipeline.core.paths import prepared_dir, segments_path, transcripts_path, transcripts_report
from pipeline.core.segments import Segments
from pipeline.core.settings import parse
from pipeline.transcribe.asr import TranscriptsSettings
from stages._cli import run_stage


def main(args, params) -> None:
    cfg = parse(TranscriptsSettings, section(params, "transcripts"), "transcripts")
    corpus = manifest.load(prepared_dir(args.corpus))
    original = corpus.manifest["text"].fillna("").astype(str)
    if cfg.backend == "none":
        report = {"backend": "none", "n_rows": len(original), "n_missing": int((original.str.strip() == "").sum()), "n_filled": 0}
        texts = original
    else:
        from pipeline.transcribe.asr import fill_missing_transcripts  # loads models only when asked

        filled, report = fill_missing_transcripts(corpus, Segments(segments_path(args.corpus)), cfg)
        texts = filled.manifest["text"].fillna("").astype(str)
    table = pd.DataFrame(
        {"id": corpus.manifest["id"], "text": texts, "source": ["corpus" if t.strip() else "asr" for t in original]}
    )
    table.loc[texts.str.strip() == "", "source"] = "none"
    with atomic_file(transcripts_path(args.corpus), "wb") as f:
        table.to_parquet(f, index=False)
    write_json(transcripts_report(args.corpus), {"corpus": args.corpus, **report})
    print(f"transcripts {args.corpus}: {report.get('n_filled', 0)} filled, {report.get('n_missing', 0)} were missing")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus"], main)
