"""Stage ``probe@<corpus>-<backbone>-<head>``: train and evaluate a probe head on cached features.

With ``--test-corpus B --label-map M`` it is stage ``probe_cross@…``: train on ``--corpus`` A (model
selection on A's dev), test on every item of B through ``run.label_maps.M`` (the ``run.cross_corpus``
items); outputs go under ``<A>-to-<B>`` where a corpus name stands otherwise.
"""

from __future__ import annotations

import sys

from pipeline.core import manifest
from pipeline.core.config import cross_key, run_settings, section
from pipeline.core.paths import experiment_path, model_dir, predictions_dir, prepared_dir, store_path
from pipeline.core.store import FeatureStore
from pipeline.experiment.cross import dropped_line
from pipeline.experiment.results import summary_lines
from pipeline.experiment.stats import configure, evaluation_settings
from pipeline.heads.base import head_settings
from pipeline.heads.probe.cross import run_cross_probe
from pipeline.heads.probe.run import run_probe
from stages._cli import run_stage


def main(args, params) -> None:
    configure(evaluation_settings(params))  # intervals and paired tests: the evaluation params
    settings = head_settings(args.head, section(params, "heads", args.head), family="probe")
    if getattr(args, "test_corpus", None):
        return cross(args, params, settings)
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


def cross(args, params, settings) -> None:
    """Train on ``args.corpus``, test on ``args.test_corpus`` through ``run.label_maps.<args.label_map>``."""
    # through the whole run section: a map is checked against its own classes there, with the items naming it
    lmap = run_settings(params).label_maps[args.label_map]
    key = cross_key(args.corpus, args.test_corpus)
    result = run_cross_probe(
        manifest.load(prepared_dir(args.corpus)),
        manifest.load(prepared_dir(args.test_corpus)),
        (FeatureStore(store_path(args.corpus, args.backbone)), FeatureStore(store_path(args.test_corpus, args.backbone))),
        args.head,
        settings,
        (args.label_map, lmap),
        model_dir=model_dir(key, args.backbone, args.head),
        metrics_path=experiment_path(key, args.backbone, args.head),
        predictions_dir=predictions_dir(key, args.backbone, args.head),
    )
    print(dropped_line(result["cross_corpus"]))
    print("\n".join(summary_lines(result)))


if __name__ == "__main__":
    CROSS = ["corpus", "test-corpus", "label-map", "backbone", "head"]
    run_stage(__doc__, CROSS if "--test-corpus" in sys.argv else ["corpus", "backbone", "head"], main)
