"""Stage ``segment@<corpus>``: decode media → 16 kHz mono audio + sampled frames (Zarr)."""

from __future__ import annotations

from pipeline.core import manifest
from pipeline.core.config import section
from pipeline.core.io import write_json
from pipeline.core.paths import prepared_dir, segment_report, segments_path
from pipeline.core.settings import parse
from pipeline.segment.decode import SegmentSettings, segment_corpus
from stages._cli import run_stage


def main(args, params) -> None:
    s = parse(SegmentSettings, section(params, "segment"), "segment")
    corpus = manifest.load(prepared_dir(args.corpus))
    skipped = segment_corpus(corpus, segments_path(args.corpus), s)
    write_json(segment_report(args.corpus), {"corpus": args.corpus, "skipped": skipped})
    n = len(corpus.manifest)
    print(f"segmented {args.corpus}: {n - len(skipped)}/{n} utterances" + (f", skipped {len(skipped)} (see metrics/skipped.json)" if skipped else ""))


if __name__ == "__main__":
    run_stage(__doc__, ["corpus"], main)
