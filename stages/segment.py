"""Stage ``segment@<corpus>``: decode media → 16 kHz mono audio + sampled frames (Zarr).

Reads only ``prepared/items.parquet`` (what the models see: ids, media paths, windows, file
digests), so a label edit does not rerun it; decoded items come from the segment cache when their
media are unchanged (:mod:`pipeline.segment.cache`).
"""

from __future__ import annotations

from pipeline.core.config import section
from pipeline.core.inputs import load_items
from pipeline.core.io import write_json
from pipeline.core.paths import prepared_dir, segment_report, segments_path
from pipeline.core.settings import parse
from pipeline.segment.decode import SegmentSettings, segment_corpus
from stages._cli import run_stage


def main(args, params) -> None:
    s = parse(SegmentSettings, section(params, "segment"), "segment")
    corpus = load_items(args.corpus, prepared_dir(args.corpus))
    report = segment_corpus(corpus, segments_path(args.corpus), s)
    write_json(segment_report(args.corpus), {"corpus": args.corpus, "skipped": report.skipped,
                                             "warnings": report.warnings, "counts": report.counts()})
    n = len(corpus.manifest)
    # (how much came from the cache is printed, never stored: the report must not depend on the cache)
    notes = [f"{report.decoded} decoded, {report.cached} from the segment cache"]
    if report.skipped:
        notes.append(f"skipped {len(report.skipped)} (see metrics/skipped.json)")
    flagged = {k: v for k, v in report.counts().items() if k != "skipped"}
    if flagged:
        notes.append(f"warnings {flagged} (listed in {segment_report(args.corpus)})")
    print(f"segmented {args.corpus}: {n - len(report.skipped)}/{n} utterances; " + "; ".join(notes))


if __name__ == "__main__":
    run_stage(__doc__, ["corpus"], main)
