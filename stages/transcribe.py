"""Stage ``transcribe@<corpus>``: fill missing transcripts so text backbones work on any corpus.

With ``transcripts.backend: none`` (the default) the corpus's own transcripts pass through
unchanged and no model is loaded; ``whisper`` (transformers) or ``funasr`` (Paraformer /
SenseVoice) transcribe only the utterances whose text is empty. Writes
``data/<corpus>/transcripts.parquet`` (id, text, source) and a report.
"""

from __future__ import annotations

from pipeline.core.config import section
from pipeline.core.inputs import load_items
from pipeline.core.io import atomic_file, write_json
from pipeline.core.paths import prepared_dir, segments_path, transcripts_path, transcripts_report
from pipeline.core.settings import parse
from pipeline.transcribe.asr import TranscriptsSettings, transcripts_table
from stages._cli import run_stage


def main(args, params) -> None:
    cfg = parse(TranscriptsSettings, section(params, "transcripts"), "transcripts")
    table, report = transcripts_table(load_items(args.corpus, prepared_dir(args.corpus)), segments_path(args.corpus), cfg)
    with atomic_file(transcripts_path(args.corpus), "wb") as f:
        table.to_parquet(f, index=False)
    write_json(transcripts_report(args.corpus), {"corpus": args.corpus, **report})
    print(f"transcripts {args.corpus}: {report['n_filled']} filled, {report['n_missing']} were missing")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus"], main)
