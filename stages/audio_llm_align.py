"""Stage ``audio_llm_align@<corpus>``: Audio-LLM stage 1 — train the projector(s), LLM frozen."""

from __future__ import annotations

from pipeline import manifest
from pipeline.audio_llm.plan import align_dir
from pipeline.audio_llm.train import run_align
from pipeline.config import section
from pipeline.paths import prepared_dir
from stages._cli import run_stage


def main(args, params) -> None:
    cfg = section(params, "audio_llm")
    corpus = manifest.load(prepared_dir(args.corpus))
    summary = run_align(corpus, cfg, align_dir(args.corpus, cfg))
    if "skipped" in summary:
        print(f"skipped audio_llm_align {args.corpus}/{summary['backbone']}: {summary['skipped']}")
    for fold, info in summary.get("folds", {}).items():
        last = info["history"][-1] if info["history"] else {}
        print(f"audio_llm_align {args.corpus}/{summary['backbone']} {fold}: epoch {info['chosen_epoch']} chosen, "
              f"dev caption loss {last.get('dev_loss', float('nan')):.3f} (last epoch)")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus"], main)
