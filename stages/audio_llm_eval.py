"""Stage ``audio_llm_eval@<corpus>-<item>``: Audio-LLM evaluation — generated answers, parsed and scored."""

from __future__ import annotations

from pipeline.core import manifest
from pipeline.core.config import section
from pipeline.core.paths import experiment_path, predictions_dir, prepared_dir
from pipeline.experiment.results import summary_lines
from pipeline.experiment.stats import configure, evaluation_settings
from pipeline.heads.audio_llm.evaluate import run_eval
from pipeline.heads.audio_llm.plan import instruct_dir
from pipeline.heads.base import head_settings
from stages._cli import run_stage


def main(args, params) -> None:
    configure(evaluation_settings(params))  # intervals and paired tests: the evaluation params
    settings = head_settings(args.head, section(params, "heads", args.head), family="audio_llm")
    corpus = manifest.load(prepared_dir(args.corpus))
    result = run_eval(
        corpus, settings, args.backbone, instruct_dir(args.corpus, args.backbone, args.head),
        metrics_path=experiment_path(args.corpus, args.backbone, args.head),
        predictions_dir=predictions_dir(args.corpus, args.backbone, args.head), head=args.head,
    )
    print("\n".join(summary_lines(result)))


if __name__ == "__main__":
    run_stage(__doc__, ["corpus", "backbone", "head"], main)
