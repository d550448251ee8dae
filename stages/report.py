"""Stage ``report``: leaderboard.json/.md, skipped.json, plots and report.html for every experiment ``run`` names."""

from __future__ import annotations

from pipeline.core.config import run_settings
from pipeline.core.paths import METRICS
from pipeline.experiment.stats import configure, evaluation_settings
from pipeline.report.build import build_report
from stages._cli import run_stage


def main(args, params) -> None:
    configure(evaluation_settings(params))  # intervals and paired tests: the evaluation params
    run = run_settings(params)
    out = build_report(METRICS, run.corpora, run.experiments(), run.cross_experiments())
    # One line, not the table: `make repro` prints metrics/leaderboard.md once after `dvc repro`,
    # also when DVC skipped this stage or restored it from the run-cache (then nothing runs here).
    print(f"report: {len(out['rows'])} leaderboard rows in {METRICS / 'leaderboard.md'} (and .json, plots/, report.html)")


if __name__ == "__main__":
    run_stage(__doc__, [], main)
