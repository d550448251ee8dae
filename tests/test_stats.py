"""Cluster-bootstrap intervals, paired tests, McNemar and Holm (issue 12, items 1, 2 and 8).

Closed forms: the interval of an accuracy with independent items is p ± 1.96·sqrt(p(1−p)/n); with
items perfectly correlated inside clusters it is the same with n = the number of clusters. The
vectorised resample formulas are checked against scikit-learn on explicitly resampled items, the
permutation test against McNemar's exact binomial answer, Holm against a hand-worked example.
"""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from pipeline.core.manifest import Corpus, Task
from pipeline.core.metrics import classification_metrics, regression_metrics
from pipeline.experiment.scoring import average_metrics, score_table
from pipeline.experiment.stats import (
    Clusters,
    PairedData,
    UncertaintySettings,
    classification_resamples,
    confusion_stats,
    draw_counts,
    holm,
    interval,
    mcnemar,
    metric_scorer,
    paired_test,
    regression_resamples,
)

Z = 1.959964


def _accuracy_items(n_correct: int, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    correct = rng.permutation(np.r_[np.ones(n_correct, bool), np.zeros(n - n_correct, bool)])
    y_true = rng.choice(["a", "b"], n)
    y_pred = np.where(correct, y_true, np.where(y_true == "a", "b", "a"))
    return y_true, y_pred


def _war_interval(y_true, y_pred, units, resamples=2000):
    res, _ = classification_resamples(y_true, y_pred, ["a", "b"], units, settings=UncertaintySettings(resamples=resamples))
    return interval(res["war"], 0.95)


def test_interval_of_accuracy_with_independent_items_matches_the_binomial_closed_form():
    n, p = 2000, 0.7
    y_true, y_pred = _accuracy_items(int(p * n), n, np.random.default_rng(0))
    low, high = _war_interval(y_true, y_pred, np.arange(n))
    half = Z * np.sqrt(p * (1 - p) / n)  # 0.0201
    assert low == pytest.approx(p - half, abs=0.15 * half)
    assert high == pytest.approx(p + half, abs=0.15 * half)


def test_resampling_is_by_cluster_items_correlated_inside_clusters():
    """50 clusters of 40 items, each cluster all right or all wrong (35 of 50 right): the interval's
    width follows sqrt(p(1−p)/50), not sqrt(p(1−p)/2000) — and resampling items instead gives the latter."""
    rng = np.random.default_rng(1)
    g, m, p = 50, 40, 0.7
    cluster_right = rng.permutation(np.r_[np.ones(35, bool), np.zeros(15, bool)])
    units = np.repeat(np.arange(g), m)
    correct = cluster_right[units]
    y_true = rng.choice(["a", "b"], g * m)
    y_pred = np.where(correct, y_true, np.where(y_true == "a", "b", "a"))
    low, high = _war_interval(y_true, y_pred, units)
    by_cluster, by_item = 2 * Z * np.sqrt(p * (1 - p) / g), 2 * Z * np.sqrt(p * (1 - p) / (g * m))
    assert high - low == pytest.approx(by_cluster, rel=0.15)  # 0.254
    low_i, high_i = _war_interval(y_true, y_pred, np.arange(g * m))
    assert high_i - low_i == pytest.approx(by_item, rel=0.15)  # 0.040: the unit decides
    assert (high - low) > 4 * (high_i - low_i)


def _expanded(clusters: Clusters, counts_row: np.ndarray) -> np.ndarray:
    """Item indices of one resample, written out: every drawn cluster's items, as often as it was drawn."""
    return np.concatenate([np.flatnonzero(clusters.index == c) for c in np.repeat(np.arange(clusters.n), counts_row.astype(int))])


def test_every_resample_equals_scikit_learn_on_the_resampled_items():
    rng = np.random.default_rng(2)
    n, classes = 400, ["ang", "hap", "neu", "sad"]
    units = rng.integers(0, 12, n).astype(str)
    y_true = rng.choice(classes, n, p=[0.4, 0.3, 0.2, 0.1])
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.choice(classes, n)).astype(object)
    y_pred[:7] = "unparsed"  # an answer outside the classes (Audio-LLM) is wrong, never dropped
    clusters = Clusters.of(units)
    counts = draw_counts(clusters.n, 6, seed=3)
    res, _ = classification_resamples(y_true, y_pred, classes, units, counts)
    yb, pb = np.where(y_true == "sad", "dep", "ok"), np.where(y_pred == "sad", "dep", "ok")
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true" for 'unparsed'
        warnings.simplefilter("ignore")
        _check_resamples(clusters, counts, res, classes, y_true, y_pred, yb, pb, units, rng)


def _check_resamples(clusters, counts, res, classes, y_true, y_pred, yb, pb, units, rng):
    n = len(y_true)
    scores = np.round(rng.random(n) * 0.5 + 0.4 * (yb == "dep"), 2)  # ties, on purpose
    res_b, _ = classification_resamples(yb, pb, ["ok", "dep"], units, counts, positive="dep", scores=scores)
    t = rng.normal(5, 2, n)
    p = 0.6 * t + rng.normal(0, 1, n)
    res_r, _ = regression_resamples(t, p, units, counts)
    for b in range(len(counts)):
        idx = _expanded(clusters, counts[b])
        ref = classification_metrics(y_true[idx], y_pred[idx], classes)
        for k in ("uar", "war", "macro_f1", "weighted_f1"):
            assert res[k][b] == pytest.approx(ref[k], abs=1e-12), k
        ref_recall = [np.nan if v is None else v for v in ref["per_class_recall"].values()]
        np.testing.assert_allclose(res["per_class_recall"][b], ref_recall, atol=1e-12)
        ref_b = classification_metrics(yb[idx], pb[idx], ["ok", "dep"], positive="dep", scores=scores[idx])
        for k in ("f1", "precision", "recall"):
            assert res_b[f"positive_{k}"][b] == pytest.approx(ref_b[f"dep_{k}"], abs=1e-12), k
        assert res_b["auroc"][b] == pytest.approx(roc_auc_score(yb[idx] == "dep", scores[idx]), abs=1e-12)
        ref_r = regression_metrics(t[idx], p[idx])
        for k in ("ccc", "pearson", "mae", "rmse"):
            assert res_r[k][b] == pytest.approx(ref_r[k], abs=1e-9), k


def test_a_thousand_resamples_of_thousands_of_items_take_well_under_a_second():
    rng = np.random.default_rng(4)
    n, classes = 5000, [f"c{i}" for i in range(7)]
    units = rng.integers(0, 300, n)
    y_true = rng.choice(classes, n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.choice(classes, n))
    start = time.perf_counter()
    classification_resamples(y_true, y_pred, classes, units)
    regression_resamples(rng.normal(size=n), rng.normal(size=n), units)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"{elapsed:.2f} s"


def _table(rng, n_spk=10, per=12, seed_col=None, group=False):
    classes = ["a", "b", "c"]
    rows = []
    for s in range(n_spk):
        for i in range(per):
            y = classes[(s + i) % 3]
            pred = y if rng.random() < 0.7 else classes[(i + 1) % 3]
            proba = np.full(3, 0.1)
            proba[classes.index(pred)] = 0.8
            rows.append({"id": f"s{s}_{i}", "split": "test", "speaker": f"s{s}", "actual": y, "predicted": pred,
                         **{f"p_{c}": v for c, v in zip(classes, proba)}})
    table = pd.DataFrame(rows)
    if group:
        table.insert(2, "group", [f"g{int(s[1:]) // 5}" for s in table["speaker"]])  # 2 sessions of 5 speakers
    if seed_col is not None:
        table.insert(1, "seed", seed_col)
    return table, Task("emotion", "classification", classes)


def test_score_table_gives_intervals_of_every_headline_metric_over_the_tables_unit():
    table, task = _table(np.random.default_rng(5))
    scores = score_table(task, table)
    ci = scores["ci"]
    assert (ci["unit"], ci["clusters"], ci["resamples"], ci["level"]) == ("speaker", 10, 1000, 0.95)
    for k in ("uar", "war", "macro_f1", "weighted_f1"):
        low, high = ci["intervals"][k]
        assert low <= scores[k] <= high and high - low > 0.01
    assert set(ci["per_class_recall"]) == {"a", "b", "c"}
    json.dumps(scores)  # what the experiment JSON holds
    assert score_table(task, table) == scores  # fixed seed: the same intervals every time
    grouped, _ = _table(np.random.default_rng(5), group=True)
    assert (score_table(task, grouped)["ci"]["unit"], score_table(task, grouped)["ci"]["clusters"]) == ("group", 2)
    assert "ci" not in score_table(task, table, UncertaintySettings(resamples=0))


def test_speaker_level_tasks_resample_speakers():
    table, _ = _table(np.random.default_rng(6), n_spk=8, per=3)
    labels = {f"s{s}": "dep" if s % 2 else "ok" for s in range(8)}
    table["actual"] = table["speaker"].map(labels)
    rng = np.random.default_rng(7)
    table["p_dep"] = np.clip(0.5 + 0.3 * (table["actual"] == "dep") + rng.normal(0, 0.2, len(table)), 0, 1)
    table["p_ok"] = 1 - table["p_dep"]
    table = table.drop(columns=["p_a", "p_b", "p_c"])
    table["predicted"] = np.where(table["p_dep"] > 0.5, "dep", "ok")
    task = Task("depression", "classification", ["ok", "dep"], positive="dep", unit="speaker")
    scores = score_table(task, table)
    assert scores["n"] == 8 and scores["ci"]["clusters"] == 8
    assert {"dep_f1", "dep_precision", "dep_recall", "auroc"} <= set(scores["ci"]["intervals"])


def test_seed_mean_interval_averages_each_resample_over_the_seeds():
    rng = np.random.default_rng(8)
    tables = [_table(rng, seed_col=s)[0] for s in (0, 1, 2)]
    task = _table(rng)[1]
    per_seed = [score_table(task, t) for t in tables]
    merged = average_metrics(per_seed)
    want = np.mean([m.resamples["uar"] for m in per_seed], axis=0)
    assert merged["ci"]["intervals"]["uar"] == interval(want, 0.95)
    assert merged["uar"] == pytest.approx(np.mean([m["uar"] for m in per_seed]))
    assert "3 seeds" in merged["ci"]["method"]
    json.dumps(merged)


def test_mcnemar_known_answers():
    a = np.r_[np.ones(10, bool), np.ones(30, bool)]
    b = np.r_[np.zeros(10, bool), np.ones(30, bool)]
    assert mcnemar(a, b)["p_mcnemar"] == pytest.approx(2 * 0.5**10)  # 10 discordant pairs, all one way
    assert mcnemar(a, a)["p_mcnemar"] == 1.0
    assert mcnemar(np.r_[a, np.zeros(10, bool)], np.r_[b, np.ones(10, bool)])["p_mcnemar"] == pytest.approx(1.0)


def _paired(y_true, pred_a, pred_b, units, classes):
    clusters = Clusters.of(units)
    return PairedData(confusion_stats(y_true, pred_a, classes, clusters), confusion_stats(y_true, pred_b, classes, clusters),
                      metric_scorer("classification", "war", len(classes)), clusters)


def test_permutation_test_of_accuracy_with_independent_items_is_mcnemars_exact_test():
    """Swapping single items only moves the discordant ones: the permutation p of the accuracy
    difference is the exact two-sided binomial p of the discordant pairs (15 vs 5: 0.041)."""
    rng = np.random.default_rng(9)
    n = 200
    y_true = rng.choice(["a", "b"], n)
    wrong = np.where(y_true == "a", "b", "a")
    kind = rng.permutation(np.r_[np.full(15, 1), np.full(5, 2), np.full(120, 3), np.full(60, 0)])  # 1: only a right, 2: only b
    pred_a = np.where((kind == 1) | (kind == 3), y_true, wrong)
    pred_b = np.where((kind == 2) | (kind == 3), y_true, wrong)
    out = paired_test(_paired(y_true, pred_a, pred_b, np.arange(n), ["a", "b"]), UncertaintySettings(permutations=20000))
    exact = binomtest(15, 20, 0.5).pvalue
    assert out["diff"] == pytest.approx(10 / n)
    assert out["p_permutation"] == pytest.approx(exact, abs=0.008)
    assert out["ci"][0] < 10 / n < out["ci"][1]
    assert mcnemar(pred_a == y_true, pred_b == y_true)["p_mcnemar"] == pytest.approx(exact)


def test_identical_systems_do_not_differ_and_clustered_differences_are_not_overstated():
    rng = np.random.default_rng(10)
    n = 300
    y_true = rng.choice(["a", "b"], n)
    pred = np.where(rng.random(n) < 0.7, y_true, "a")
    same = paired_test(_paired(y_true, pred, pred, np.arange(n), ["a", "b"]))
    assert same["diff"] == 0 and same["ci"] == [0.0, 0.0] and same["p_permutation"] == 1.0
    # a better on 3 of 3 speakers, 100 items each: item-wise the difference looks certain, but with
    # 3 clusters the smallest attainable two-sided p is 2/8 = 0.25
    units = np.repeat(np.arange(3), 100)
    better = np.where(rng.random(n) < 0.9, y_true, pred)
    by_speaker = paired_test(_paired(y_true, better, pred, units, ["a", "b"]), UncertaintySettings(permutations=4000))
    by_item = paired_test(_paired(y_true, better, pred, np.arange(n), ["a", "b"]))
    assert by_item["p_permutation"] < 0.01 and by_speaker["p_permutation"] > 0.2


def test_holm_hand_worked_example():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.9]) == [pytest.approx(1.0), None, pytest.approx(1.0)]
    assert holm([]) == []


def test_settings_typo_names_the_key():
    from pipeline.core.errors import ConfigError
    from pipeline.core.settings import parse

    with pytest.raises(ConfigError, match=r"unknown key 'resample' \(did you mean 'resamples'\?\)"):
        parse(UncertaintySettings, {"resample": 10}, "evaluation")
    with pytest.raises(ConfigError, match="evaluation.level"):
        parse(UncertaintySettings, {"level": 1.5}, "evaluation")


def test_prepare_summary_shows_folds_and_says_when_dev_cannot_be_speaker_independent():
    from stages.prepare import split_summary

    df = pd.DataFrame({"id": [f"u{i}" for i in range(92)], "speaker": ["03"] * 49 + ["09"] * 43, "split": "train",
                       "fold": [0] * 49 + [1] * 43, "audio": "", "video": "", "text": "", "emotion": "anger"})
    line = split_summary(Corpus("emodb", df, [Task("emotion", "classification", ["anger"])], "/x", {"protocol": "loso"}))
    assert "2 folds by speaker" in line and "fold 0: 49 utterances, 1 speaker (03)" in line
    assert "fold 1: 43 utterances, 1 speaker (09)" in line and "NOT speaker-independent" in line
    assert "{'train': 92}" not in line
    official = df.drop(columns="fold").assign(split=["train"] * 60 + ["test"] * 32, speaker=[f"s{i % 5}" for i in range(60)] + ["t"] * 32)
    line = split_summary(Corpus("x", official, [], "/x", {}))
    assert "train 60 utterances, 5 speakers" in line and "dev = held-out training speakers" in line


def test_the_evaluation_params_decide_what_scoring_and_validate_use():
    from pipeline.core.config import load_params
    from pipeline.core.errors import ConfigError
    from pipeline.core.hashing import ROOT
    from pipeline.experiment.stats import active, configure, evaluation_settings
    from pipeline.tools.validate import validate_params

    params = load_params(ROOT / "params.yaml")
    assert evaluation_settings(params) == UncertaintySettings()  # the shipped values are the defaults
    with pytest.raises(ConfigError, match=r"evaluation.*unknown key 'resample'"):
        validate_params({**params, "evaluation": {"resample": 200}})
    table, task = _table(np.random.default_rng(5))
    try:
        configure(evaluation_settings({"evaluation": {"resamples": 200, "level": 0.9, "seed": 3}}))
        ci = score_table(task, table)["ci"]
        assert (ci["resamples"], ci["level"], ci["seed"]) == (200, 0.9, 3)
        configure(evaluation_settings({"evaluation": {"resamples": 0}}))
        assert "ci" not in score_table(task, table)
    finally:
        configure(UncertaintySettings())
    assert active() == UncertaintySettings()
