"""Stage ``audio_llm_instruct@<corpus>-<item>``: Audio-LLM stage 2 — projector + LoRA, then merge and save."""

from __future__ import annotations

from pipeline.core import manifest
from pipeline.core.config import section
from pipeline.core.paths import prepared_dir
from pipeline.heads.audio_llm.plan import align_dir, instruct_dir
from pipeline.heads.audio_llm.train import run_instruct
from pipeline.heads.base import head_settings
from stages._cli import run_stage


def main(args, params) -> None:
    settings = head_settings(args.head, section(params, "heads", args.head), family="audio_llm")
    corpus = manifest.load(prepared_dir(args.corpus))
    summary = run_instruct(
        corpus, settings, args.backbone, align_dir(args.corpus, args.backbone, args.head),
        instruct_dir(args.corpus, args.backbone, args.head), head=args.head,
    )
    if "skipped" in summary:
        print(f"skipped audio_llm_instruct {args.corpus}/{summary['backbone']}: {summary['skipped']}")
    for fold, info in summary.get("folds", {}).items():
        print(f"audio_llm_instruct {args.corpus}/{summary['backbone']} {fold}: {info['selection']}")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus", "backbone", "head"], main)
