"""Stage ``probe@<corpus>-<backbone>-<head>``: train and evaluate a probe head on cached features."""

from __future__ import annotations

from pipeline.core import manifest
from pipeline.core.config import section
from pipeline.core.paths import experiment_path, model_dir, predictions_dir, prepared_dir, store_path
from pipeline.core.store import FeatureStore
from pipeline.experiment.results import summary_lines
from pipeline.heads.base import head_settings
from pipeline.heads.probe.run import run_probe
from stages._cli import run_stage


def main(args, params) -> None:
    settings = head_settings(args.head, section(params, "heads", args.head), family="probe")
    corpus = manifest.load(prepared_dir(args.corpus))
    result = run_probe(
        corpus,
        FeatureStore(store_path(args.corpus, args.backbone)),
        args.head,
        settings,
        model_dir=model_dir(args.corpus, args.backbone, args.head),
        metrics_path=experiment_path(args.corpus, args.backbone, args.head),
        predictions_dir=predictions_dir(args.corpus, args.backbone, args.head),
    )
    print("\n".join(summary_lines(result)))


if __name__ == "__main__":
    run_stage(__doc__, ["corpus", "backbone", "head"], main)
