"""Stage ``audio_llm_eval@<corpus>``: generate, parse and score the merged Audio-LLM on dev and test."""

from __future__ import annotations

from pipeline import manifest
from pipeline.audio_llm.evaluate import run_eval
from pipeline.audio_llm.plan import HEAD, backbone_tag, instruct_dir
from pipeline.config import section
from pipeline.paths import experiment_path, predictions_dir, prepared_dir
from pipeline.probe import leaderboard_rows
from stages._cli import run_stage


def main(args, params) -> None:
    cfg = section(params, "audio_llm")
    corpus = manifest.load(prepared_dir(args.corpus))
    tag = backbone_tag(cfg)
    result = run_eval(
        corpus, cfg, instruct_dir(args.corpus, cfg),
        metrics_path=experiment_path(args.corpus, tag, HEAD), predictions_dir=predictions_dir(args.corpus, tag, HEAD),
    )
    if "skipped" in result:
        print(f"skipped {args.corpus}/{tag}/{HEAD}: {result['skipped']}")
    for row in leaderboard_rows(result):
        unparsed = result["tasks"][row["task"]][row["split"]]["unparsed"]
        print(f"{row['corpus']}/{row['task']}/{row['backbone']}/{row['head']} {row['split']}: "
              f"UAR {row['uar']:.3f} (n={row['n']}, unparsed={unparsed})")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus"], main)
