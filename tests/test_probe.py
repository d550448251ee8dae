import numpy as np
import pandas as pd

from pipeline.heads.probe.base import build_head
from pipeline.core.manifest import Task
from pipeline.experiment.results import leaderboard_rows
from pipeline.core.store import FeatureStore, write_store
from tests.factories import FEATURE_CLASSES, feature_corpus, run_head

CLASSES = FEATURE_CLASSES
synthetic = feature_corpus


def run(tmp_path, corpus, store, cfg=None):
    return run_head(tmp_path, corpus, store, "logreg", cfg or {"C_grid": [0.001, 0.1, 10.0]})


def test_probe_learns_and_writes_the_metrics_contract(tmp_path):
    corpus, store = synthetic(tmp_path)
    res = run(tmp_path, corpus, store)
    test = res["tasks"]["emotion"]["test"]
    assert test["uar"] > 0.7 and test["n"] == 90
    assert set(test["per_class_recall"]) == set(CLASSES) and np.sum(test["confusion"]) == 90
    rows = leaderboard_rows(res)
    assert {r["split"] for r in rows} == {"dev", "test"}
    assert set(rows[0]) >= {"corpus", "task", "backbone", "head", "split", "uar", "war", "macro_f1", "weighted_f1", "n"}
    assert (tmp_path / "m" / "emotion.joblib").exists()
    preds = pd.read_csv(tmp_path / "p" / "emotion.csv")
    assert len(preds) == 180 and set(preds["split"]) == {"dev", "test"}


def test_selection_never_looks_at_test_labels(tmp_path):
    corpus, store = synthetic(tmp_path)
    first = run(tmp_path / "1", corpus, store)
    scrambled = corpus.manifest.copy()
    test = scrambled["split"] == "test"
    scrambled.loc[test, "emotion"] = np.random.default_rng(5).permutation(scrambled.loc[test, "emotion"].to_numpy())
    corpus.manifest = scrambled
    second = run(tmp_path / "2", corpus, store)
    assert first["tasks"]["emotion"]["folds"][0]["selection"] == second["tasks"]["emotion"]["folds"][0]["selection"]
    assert first["tasks"]["emotion"]["dev"] == second["tasks"]["emotion"]["dev"]
    assert first["tasks"]["emotion"]["test"]["uar"] != second["tasks"]["emotion"]["test"]["uar"]


def test_layered_store_uses_the_requested_layer(tmp_path):
    corpus, store = synthetic(tmp_path, layers=4)
    last = run(tmp_path / "l", corpus, store, {"C_grid": [1.0], "layer": "last"})
    first = run(tmp_path / "f", corpus, store, {"C_grid": [1.0], "layer": 0})
    assert last["tasks"]["emotion"]["layer"] == "4" and first["tasks"]["emotion"]["layer"] == "0"
    assert last["tasks"]["emotion"]["test"]["uar"] > first["tasks"]["emotion"]["test"]["uar"] + 0.2


def test_chosen_C_is_best_on_dev():
    head = build_head("logreg", {"C_grid": [1e-4, 1.0]})
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)); y = np.where(X[:, 0] > 0, "a", "b")
    head.fit(X[:100], y[:100], X[100:], y[100:])
    scores = head.selection["dev_uar"]
    assert head.selection["chosen"] == max(head.grid, key=lambda c: (scores[str(c)], -c))


def test_cross_validation_pools_out_of_fold_predictions(tmp_path):
    corpus, store = synthetic(tmp_path)
    df = corpus.manifest
    df["speaker"] = [f"s{i % 5}" for i in range(len(df))]
    df["fold"] = [i % 5 for i in range(len(df))]
    df["split"] = "train"
    res = run(tmp_path, corpus, store)
    entry = res["tasks"]["emotion"]
    assert [f["fold"] for f in entry["folds"]] == [f"fold{k}" for k in range(5)]
    assert entry["test"]["n"] == len(df)  # every utterance predicted exactly once, out of fold
    assert entry["folds"][0]["dev_note"] == "dev = fold 1"
    assert set(entry["fold_summary"]["test"]["uar"]) == {"mean", "std"}
    preds = pd.read_csv(tmp_path / "p" / "emotion.csv")
    assert preds[preds["split"] == "test"]["id"].is_unique


def test_two_folds_carve_dev_from_training_utterances(tmp_path):
    corpus, store = synthetic(tmp_path)
    df = corpus.manifest
    df["fold"] = (df["speaker"] == "s1").astype(int)
    df["split"] = "train"
    res = run(tmp_path, corpus, store)
    assert "random 20% of training utterances" in res["tasks"]["emotion"]["folds"][0]["dev_note"]
    assert res["tasks"]["emotion"]["test"]["n"] == len(df)


def test_regression_speaker_level_and_binary_positive_metrics(tmp_path):
    corpus, store = synthetic(tmp_path)
    df = corpus.manifest
    X = store.pooled(df["id"].tolist())
    df["score"] = X[:, 0] * 2.0 + 1.0
    df["speaker"] = [f"{sp}_{i // 3}" for i, sp in enumerate(df["speaker"])]  # 3 utterances per "subject"
    subj_score = df.groupby("speaker")["score"].transform("mean")
    df["score"] = subj_score
    df["depressed"] = np.where(subj_score > subj_score.median(), "yes", "no")
    corpus.tasks = [
        Task("score", "regression", unit="speaker"),
        Task("depressed", "classification", ["no", "yes"], positive="yes", unit="speaker"),
    ]
    res = run(tmp_path, corpus, store)
    reg = res["tasks"]["score"]["test"]
    assert reg["n"] == 30 and reg["ccc"] > 0.5 and reg["uar"] is None and {"mae", "rmse", "pearson"} <= set(reg)
    assert res["tasks"]["score"]["folds"][0]["head"] == "ridge"
    binary = res["tasks"]["depressed"]["test"]
    assert binary["n"] == 30 and 0.5 < binary["auroc"] <= 1.0 and "yes_f1" in binary and "yes_precision" in binary


def test_speaker_normalisation_removes_speaker_offsets(tmp_path):
    corpus, store = synthetic(tmp_path)
    df = corpus.manifest
    X = store.pooled(df["id"].tolist())
    # each speaker shifted along a class axis: the test speaker s3 "looks like" class a everywhere
    offsets = {"s1": np.zeros(6), "s2": 4 * np.eye(6)[1], "s3": 4 * np.eye(6)[0]}
    shifted = X + np.stack([offsets[s] for s in df["speaker"]])
    write_store(tmp_path / "g.zarr", ids=df["id"].tolist(), pooled=shifted, attrs={"backbone": "toy"})
    g = FeatureStore(tmp_path / "g.zarr")
    plain = run(tmp_path / "a", corpus, g, {"C_grid": [1.0]})
    normed = run(tmp_path / "b", corpus, g, {"C_grid": [1.0], "speaker_norm": True})
    assert normed["tasks"]["emotion"]["norm"] == "speaker" and plain["tasks"]["emotion"]["norm"] == "global"
    assert normed["tasks"]["emotion"]["test"]["uar"] > plain["tasks"]["emotion"]["test"]["uar"] + 0.2
