"""The report with intervals, fold spread, protocol notes and paired comparisons (issue 12, items 1, 2, 8).

Two probes on one tiny synthetic corpus (2 training speakers, no dev: dev is a random 20 % of the
training utterances, which cannot be speaker-independent), one on a cross-validated copy; ~5 s.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.io import read_json
from pipeline.core.manifest import Corpus
from pipeline.core.paths import experiment_path, predictions_dir
from pipeline.core.store import FeatureStore, write_store
from pipeline.heads.probe.run import run_probe
from pipeline.report.build import build_report
from tests.factories import feature_corpus


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    corpus, store = feature_corpus(tmp, n_per=20)
    df = corpus.manifest.copy()
    df.loc[df["split"] == "dev", "split"] = "train"  # train speakers s1, s2; test s3: dev must be carved
    speakers = {"train": ["s1", "s2"], "test": ["s3", "s4", "s5"]}
    df["speaker"] = [speakers[s][i % len(speakers[s])] for i, s in enumerate(df["split"])]
    plain = Corpus("syn", df, corpus.tasks, corpus.root)
    cv = df.assign(split="train", fold=[i % 3 for i in range(len(df))], speaker=[f"f{i % 3}" for i in range(len(df))])
    folds = Corpus("cv", cv, corpus.tasks, corpus.root)
    metrics = tmp / "metrics"
    noisy = tmp / "noisy.zarr"
    X = store.pooled(store.ids)
    write_store(noisy, ids=store.ids, pooled=X + np.random.default_rng(0).normal(0, 2.0, X.shape).astype(X.dtype),
                attrs={"backbone": "noisy"})
    runs = [(plain, store, "toy"), (plain, FeatureStore(noisy), "noisy"), (folds, store, "toy")]
    for c, s, backbone in runs:
        where = metrics if c.name == "syn" else tmp / "metrics_cv"
        run_probe(c, s, "logreg", {"C_grid": [0.01, 1.0]}, model_dir=tmp / "m" / c.name / backbone,
                  metrics_path=experiment_path(c.name, backbone, "logreg", where),
                  predictions_dir=predictions_dir(c.name, backbone, "logreg", where))
    cv_report = build_report(tmp / "metrics_cv", ["cv"], [("toy", "logreg", "probe")])
    return metrics, build_report(metrics, ["syn"], [("toy", "logreg", "probe"), ("noisy", "logreg", "probe")]), cv_report


def test_every_row_has_intervals_and_says_what_was_resampled(report):
    metrics, out, _ = report
    for row in out["rows"]:
        assert set(row["ci"]) >= {"uar", "war", "macro_f1", "weighted_f1"}
        for k, (low, high) in row["ci"].items():
            if k in ("uar", "war", "macro_f1", "weighted_f1"):
                assert low <= row[k] <= high
        assert row["ci_unit"] == "speaker" and row["ci_level"] == 0.95
    test = [r for r in out["rows"] if r["split"] == "test"]
    assert {r["n_units"] for r in test} == {3}
    experiment = read_json(experiment_path("syn", "toy", "logreg", metrics))
    assert experiment["tasks"]["emotion"]["test"]["ci"]["intervals"]["uar"] == test[[r["backbone"] for r in test].index("toy")]["ci"]["uar"]


def test_markdown_shows_intervals_and_the_dev_that_is_not_speaker_independent(report):
    _, out, _ = report
    md = out["markdown"]
    toy = next(line for line in md.splitlines() if line.startswith("| syn | emotion | toy | logreg"))
    row = next(r for r in out["rows"] if r["backbone"] == "toy" and r["split"] == "test")
    low, high = row["ci"]["uar"]
    assert f"{row['uar']:.3f} [{low:.3f}, {high:.3f}]" in toy
    assert "dev not speaker-independent (random 20% of training utterances)" in toy
    assert row["dev_note"].startswith("dev = random 20% of training utterances")
    assert "3 speakers" in toy and "interval from 3 speakers only" in toy
    assert row["dev_independent"] is False


def test_cross_validation_rows_show_mean_and_std_over_folds(report):
    _, _, cv = report
    row = next(r for r in cv["rows"] if r["split"] == "test")
    assert row["folds"] == 3 and set(row["fold_mean_std"]["uar"]) == {"mean", "std"}
    m = row["fold_mean_std"]["uar"]
    assert f"{m['mean']:.3f} ± {m['std']:.3f} (3 folds)" in cv["markdown"]
    assert "dev not speaker-independent" not in cv["markdown"].split("## dev")[0]  # dev = the next fold


def test_paired_comparisons_table_and_heatmap(report):
    metrics, out, _ = report
    (pair,) = out["comparisons"]
    assert (pair["a"], pair["b"], pair["metric"], pair["clusters"]) == ("toy / logreg", "noisy / logreg", "uar", 3)
    rows = {r["backbone"]: r for r in out["rows"] if r["split"] == "test"}
    assert pair["diff"] == pytest.approx(rows["toy"]["uar"] - rows["noisy"]["uar"])
    assert pair["p_permutation_holm"] == pytest.approx(pair["p_permutation"])  # one comparison: Holm changes nothing
    assert pair["p_permutation"] >= 0.25  # 3 speakers: no permutation p can be smaller than 2/8
    assert "## Paired comparisons (test)" in out["markdown"] and "| toy / logreg | noisy / logreg | uar |" in out["markdown"]
    assert (metrics / "plots" / "paired.png").stat().st_size > 1000
    assert (metrics / "plots" / "paired.csv").read_text().count("\n") == 2
    assert (metrics / "plots" / "per_class_accuracy.png").exists()
