"""Stage ``audio_llm_align@<corpus>-<item>``: Audio-LLM stage 1 — train the projector(s), LLM frozen."""

from __future__ import annotations

from pipeline.core import manifest
from pipeline.core.config import section
from pipeline.core.paths import prepared_dir
from pipeline.heads.audio_llm.plan import align_dir
from pipeline.heads.audio_llm.train import run_align
from pipeline.heads.base import head_settings
from stages._cli import run_stage


def main(args, params) -> None:
    settings = head_settings(args.head, section(params, "heads", args.head), family="audio_llm")
    corpus = manifest.load(prepared_dir(args.corpus))
    out = align_dir(args.corpus, args.backbone, args.head)
    summary = run_align(corpus, settings, args.backbone, out, head=args.head)
    if "skipped" in summary:
        print(f"skipped audio_llm_align {args.corpus}/{summary['backbone']}: {summary['skipped']}")
    for fold, info in summary.get("folds", {}).items():
        last = info["history"][-1] if info["history"] else {}
        print(f"audio_llm_align {args.corpus}/{summary['backbone']} {fold}: epoch {info['chosen_epoch']} chosen, "
              f"dev caption loss {last.get('dev_loss', float('nan')):.3f} (last epoch)")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus", "backbone", "head"], main)
