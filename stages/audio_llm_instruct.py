"""Stage ``audio_llm_instruct@<corpus>``: Audio-LLM stage 2 — projector + LoRA, then merge and save."""

from __future__ import annotations

from pipeline import manifest
from pipeline.audio_llm.plan import align_dir, instruct_dir
from pipeline.audio_llm.train import run_instruct
from pipeline.config import section
from pipeline.paths import prepared_dir
from stages._cli import run_stage


def main(args, params) -> None:
    cfg = section(params, "audio_llm")
    corpus = manifest.load(prepared_dir(args.corpus))
    summary = run_instruct(corpus, cfg, align_dir(args.corpus, cfg), instruct_dir(args.corpus, cfg))
    if "skipped" in summary:
        print(f"skipped audio_llm_instruct {args.corpus}/{summary['backbone']}: {summary['skipped']}")
    for fold, info in summary.get("folds", {}).items():
        print(f"audio_llm_instruct {args.corpus}/{summary['backbone']} {fold}: {info['selection']}")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus"], main)
