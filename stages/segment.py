"""Stage ``segment@<corpus>``: decode media → 16 kHz mono audio + sampled frames (Zarr)."""

from __future__ import annotations

from pipeline import manifest
from pipeline.config import section
from pipeline.io import write_json
from pipeline.paths import prepared_dir, segment_report, segments_path
from pipeline.segments import segment_corpus
from stages._cli import run_stage


def main(args, params) -> None:
    cfg = section(params, "segment")
    corpus = manifest.load(prepared_dir(args.corpus))
    skipped = segment_corpus(
        corpus,
        segments_path(args.corpus),
        sample_rate=int(cfg.get("sample_rate", 16000)),
        fps=float(cfg.get("fps", 2)),
        frame_size=int(cfg.get("frame_size", 96)),
        on_bad_media=cfg.get("on_bad_media", "error"),
        workers=int(cfg.get("workers", 2)),
    )
    write_json(segment_report(args.corpus), {"corpus": args.corpus, "skipped": skipped})
    n = len(corpus.manifest)
    print(f"segmented {args.corpus}: {n - len(skipped)}/{n} utterances" + (f", skipped {len(skipped)} (see metrics/skipped.json)" if skipped else ""))


if __name__ == "__main__":
    run_stage(__doc__, ["corpus"], main)
