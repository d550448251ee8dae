"""The headline metrics file each experiment writes beside its detailed JSON (issue 13): what DVC reads.

``dvc exp show`` listed 446 columns (every per-class recall, confusion cell and fold of the detailed
JSONs) and ``dvc metrics diff`` needed the DVC cache of both revisions. Now each experiment stage's
DVC metric is ``metrics/headline/<corpus>/<backbone>/<head>.json`` — per task and split uar, war,
macro_f1, ccc, n, rounded — committed to git (``cache: false``); the detailed JSON is a plain output.
The DVC round trip (metrics show, diff in a clone without cache) is in tests/test_dvc_pipeline.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from pipeline.core.hashing import ROOT
from pipeline.core.paths import experiment_path
from pipeline.experiment.results import HEADLINE_KEYS, headline_for, headline_path, headline_summary, write_skipped
from tests.factories import feature_corpus, run_head


def test_headline_keeps_five_rounded_figures_per_task_and_split():
    result = {"tasks": {
        "emotion": {"type": "classification",
                    "dev": {"uar": 0.123456789, "war": 0.5, "macro_f1": float("nan"), "weighted_f1": 0.4, "ccc": None,
                            "n": 40, "per_class_recall": {"a": 1.0}, "confusion": [[1]]},
                    "test": {"uar": 2 / 3, "war": 0.75, "macro_f1": 0.6, "ccc": None, "n": 12}},
        "valence": {"type": "regression", "test": {"uar": None, "war": None, "ccc": -0.00001, "mae": 0.3, "n": 9}},
    }}
    assert headline_summary(result) == {
        "emotion": {"dev": {"uar": 0.1235, "war": 0.5, "n": 40},  # NaN and None are left out
                    "test": {"uar": 0.6667, "war": 0.75, "macro_f1": 0.6, "n": 12}},
        "valence": {"test": {"ccc": 0.0, "n": 9}},
    }
    assert json.dumps(headline_summary(result)["valence"]) == '{"test": {"ccc": 0.0, "n": 9}}'  # not -0.0
    assert HEADLINE_KEYS == ("uar", "war", "macro_f1", "ccc", "n")


def test_headline_path_mirrors_the_experiment_layout():
    exp = experiment_path("demo", "egemaps", "logreg")
    assert headline_for(exp) == headline_path("demo", "egemaps", "logreg") == Path("metrics/headline/demo/egemaps/logreg.json")
    assert headline_for(Path("/x/metrics/experiments/a-to-b/bb/h.json")) == Path("/x/metrics/headline/a-to-b/bb/h.json")
    assert headline_for(Path("/tmp/run/m.json")) == Path("/tmp/run/m.headline.json")  # outside the layout: beside it


def test_a_probe_writes_its_headline_reproducibly(tmp_path):
    corpus, store = feature_corpus(tmp_path, n_per=10)
    first = run_head(tmp_path / "a", corpus, store, "logreg", {"C_grid": [0.1, 1.0]})
    run_head(tmp_path / "b", corpus, store, "logreg", {"C_grid": [0.1, 1.0]})
    a, b = (tmp_path / d / "metrics.headline.json" for d in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()
    headline = json.loads(a.read_text())
    for split in ("dev", "test"):
        full = first["tasks"]["emotion"][split]
        assert headline["emotion"][split] == {k: round(full[k], 4) if k != "n" else full[k]
                                              for k in ("uar", "war", "macro_f1", "n")}
        assert all(not isinstance(v, float) or math.isfinite(v) for v in headline["emotion"][split].values())


def test_a_skipped_combination_writes_an_empty_headline(tmp_path):
    path = experiment_path("demo", "minilm", "logreg", tmp_path / "metrics")
    write_skipped({"corpus": "demo", "backbone": "minilm", "head": "logreg"}, "no transcripts",
                  metrics_path=path, predictions_dir=tmp_path / "p")
    assert json.loads(headline_path("demo", "minilm", "logreg", tmp_path / "metrics").read_text()) == {}
    assert json.loads(path.read_text())["skipped"] == "no transcripts"


def test_every_experiment_stage_declares_its_headline_as_the_git_tracked_metric():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    writers = {name: s for name, s in stages.items()
               if any(str(o).startswith("metrics/experiments/") for o in s.get("outs", []))}
    assert set(writers) == {"probe", "probe_cross", "fuse", "finetune", "audio_llm_eval"}
    for name, stage in writers.items():
        (experiment,) = [o for o in stage["outs"] if str(o).startswith("metrics/experiments/")]
        (metric,) = stage["metrics"]
        ((path, options),) = metric.items()
        assert path == experiment.replace("metrics/experiments/", "metrics/headline/", 1), name
        assert options == {"cache": False}, name  # in git: dvc metrics diff needs no DVC cache
    assert "metrics/report.html" in stages["report"]["outs"]
