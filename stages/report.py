"""Stage ``report``: leaderboard.json/.md, skipped.json and plots for everything in ``run``."""

from __future__ import annotations

import argparse

from pipeline.config import load_params, section
from pipeline.paths import METRICS
from pipeline.report import build_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    run = section(params, "run")
    out = build_report(METRICS, run["corpora"], run["backbones"], run["heads"])
    print(out["markdown"])


if __name__ == "__main__":
    main()
