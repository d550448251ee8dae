"""Stage ``probe@<corpus>-<backbone>-<head>``: train and evaluate a head on cached features."""

from __future__ import annotations

from pipeline import manifest
from pipeline.config import section
from pipeline.paths import experiment_path, model_dir, predictions_dir, prepared_dir, store_path
from pipeline.probe import leaderboard_rows, run_probe
from pipeline.store import FeatureStore
from stages._cli import run_stage


def main(args, params) -> None:
    cfg = section(params, "heads", args.head)
    corpus = manifest.load(prepared_dir(args.corpus))
    result = run_probe(
        corpus,
        FeatureStore(store_path(args.corpus, args.backbone)),
        args.head,
        cfg,
        model_dir=model_dir(args.corpus, args.backbone, args.head),
        metrics_path=experiment_path(args.corpus, args.backbone, args.head),
        predictions_dir=predictions_dir(args.corpus, args.backbone, args.head),
    )
    if "skipped" in result:
        print(f"skipped {args.corpus}/{args.backbone}/{args.head}: {result['skipped']}")
    for row in leaderboard_rows(result):
        metric = "uar" if row["uar"] is not None else "ccc"
        print(f"{row['corpus']}/{row['task']}/{row['backbone']}/{row['head']} {row['split']}: {metric.upper()} {row[metric]:.3f} (n={row['n']})")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus", "backbone", "head"], main)
