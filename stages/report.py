"""Stage ``report``: leaderboard.json/.md, skipped.json and plots for everything in ``run``."""

from __future__ import annotations

import argparse

from pipeline.config import load_params, section
from pipeline.paths import METRICS
from pipeline.report import build_report


def extra_experiments(params: dict) -> list[tuple[str, str]]:
    """(backbone, head) of the fusion, fine-tuning and Audio-LLM runs named in ``run``."""
    run = params["run"]
    extra = [(f["backbone"], f["head"]) for f in run.get("fusions") or []]
    extra += [(f["backbone"], f["head"]) for f in run.get("finetune") or []]
    if run.get("audio_llm"):
        from pipeline.audio_llm.plan import backbone_tag

        extra.append((backbone_tag(params["audio_llm"]), "audio_llm"))
    return extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    run = section(params, "run")
    out = build_report(METRICS, run["corpora"], run["backbones"], run["heads"], extra_experiments(params))
    print(out["markdown"])


if __name__ == "__main__":
    main()
