"""Torch heads (linear, mlp and their regression counterparts): training, early stopping, seeds, persistence."""

import joblib
import numpy as np
import pandas as pd
import pytest

from pipeline.heads.probe.base import build_head
from pipeline.core.manifest import Task
from tests.factories import FEATURE_CLASSES as CLASSES, feature_corpus as synthetic, run_head

FAST = {"epochs": 30, "patience": 5, "batch_size": 32, "lr": 5e-3}


def blobs(n, seed=0, shift=2.0, weights=None):
    rng = np.random.default_rng(seed)
    k = rng.choice(3, size=n, p=weights)
    X = rng.normal(size=(n, 6)) + shift * np.eye(6)[k]
    return X.astype(np.float32), np.asarray(CLASSES, object)[k]


@pytest.fixture(scope="module")
def data():
    return blobs(240, 0), blobs(90, 1)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_training_reduces_loss_and_learns(kind, data):
    (Xtr, ytr), (Xdv, ydv) = data
    head = build_head(kind, FAST).fit(Xtr, ytr, Xdv, ydv)
    losses = np.asarray(head.history)[:, 0]
    assert losses[-1] < 0.8 * losses[0]
    assert (head.predict(Xdv) == ydv).mean() > 0.8
    assert head.predict_proba(Xdv).shape == (90, 3) and np.allclose(head.predict_proba(Xdv).sum(1), 1, atol=1e-5)
    assert head.classes_ == CLASSES and head.kind == kind


def test_best_epoch_weights_are_restored(data):
    (Xtr, ytr), (Xdv, ydv) = data
    # a large learning rate overfits quickly; patience stops the run and the best epoch comes back
    head = build_head("mlp", {**FAST, "epochs": 60, "lr": 0.05, "patience": 4}).fit(Xtr, ytr, Xdv, ydv)
    sel = head.selection
    assert len(head.history) == sel["chosen"] + 4 or len(head.history) == 60
    from sklearn.metrics import balanced_accuracy_score

    assert balanced_accuracy_score(ydv, head.predict(Xdv)) == pytest.approx(sel["dev_uar"], abs=1e-6)


def test_checkpoint_round_trip(tmp_path, data):
    (Xtr, ytr), (Xdv, ydv) = data
    head = build_head("mlp", {**FAST, "seeds": [0, 1]}).fit(Xtr, ytr, Xdv, ydv)
    head.save(tmp_path / "h.joblib")
    loaded = joblib.load(tmp_path / "h.joblib")
    np.testing.assert_allclose(loaded.predict_proba(Xdv), head.predict_proba(Xdv), atol=1e-6)
    assert list(loaded.predict(Xdv)) == list(head.predict(Xdv)) and loaded.selection == head.selection


def test_seeds_are_deterministic_and_different(data):
    (Xtr, ytr), (Xdv, ydv) = data
    a = build_head("mlp", {**FAST, "seeds": [0, 1]}).fit(Xtr, ytr, Xdv, ydv)
    b = build_head("mlp", {**FAST, "seeds": [0, 1]}).fit(Xtr, ytr, Xdv, ydv)
    (_, _, p0), (_, _, p1) = a.member_outputs(Xdv)
    np.testing.assert_allclose(a.predict_proba(Xdv), b.predict_proba(Xdv), atol=1e-6)
    assert not np.allclose(p0, p1)  # two seeds, two models


def test_class_weighting_helps_the_minority_class():
    Xtr, ytr = blobs(300, 2, shift=1.0, weights=[0.8, 0.15, 0.05])
    Xdv, ydv = blobs(150, 3, shift=1.0, weights=[0.8, 0.15, 0.05])
    Xte, yte = blobs(300, 4, shift=1.0)  # balanced test
    recall = {}
    for cw in ("balanced", "none"):
        head = build_head("linear", {**FAST, "class_weight": cw}).fit(Xtr, ytr, Xdv, ydv)
        recall[cw] = (head.predict(Xte)[yte == "c"] == "c").mean()
    assert recall["balanced"] > recall["none"] + 0.2


def test_regression_counterpart_uses_mse(data):
    (Xtr, _), (Xdv, _) = data
    head = build_head("mlp", FAST, "regression")
    assert head.kind == "mlp" and head.task_type == "regression"
    head.fit(Xtr, Xtr[:, 0] * 3 + 1, Xdv, Xdv[:, 0] * 3 + 1)
    assert head.selection["dev_ccc"] > 0.9 and head.predict(Xdv).dtype == float


def test_multi_seed_probe_reports_mean_and_std_over_seeds(tmp_path):
    corpus, store = synthetic(tmp_path, n_per=20)
    cfg = {"type": "mlp", **FAST, "seeds": [0, 1, 2]}
    res = run_head(tmp_path, corpus, store, "mlp3", cfg)
    entry = res["tasks"]["emotion"]
    summary = entry["seed_summary"]["test"]["uar"]
    assert len(summary["values"]) == 3 and summary["std"] >= 0
    assert entry["test"]["uar"] == pytest.approx(summary["mean"])  # headline = mean over seeds
    recalls = entry["test"]["per_class_recall"]  # seed-averaged, consistent with the averaged UAR
    assert entry["test"]["uar"] == pytest.approx(np.mean([recalls[c] for c in CLASSES]))
    assert np.sum(entry["test"]["confusion"]) == 3 * entry["test"]["n"]  # every seed's predictions
    preds = pd.read_csv(tmp_path / "p" / "emotion.csv")
    assert sorted(preds["seed"].unique()) == [0, 1, 2] and len(preds) == 3 * 2 * 60
    assert len(entry["folds"][0]["seeds"]["dev"]) == 3


def test_selection_never_sees_test_labels(tmp_path):
    corpus, store = synthetic(tmp_path, n_per=20)
    cfg = {"type": "mlp", **FAST, "seeds": [0, 1], "layer": "last"}
    first = run_head(tmp_path / "1", corpus, store, "mlp", cfg)
    df = corpus.manifest
    test = df["split"] == "test"
    df.loc[test, "emotion"] = np.random.default_rng(5).permutation(df.loc[test, "emotion"].to_numpy())
    second = run_head(tmp_path / "2", corpus, store, "mlp", cfg)
    a, b = first["tasks"]["emotion"], second["tasks"]["emotion"]
    assert a["folds"][0]["selection"] == b["folds"][0]["selection"] and a["dev"] == b["dev"]
    assert a["test"]["uar"] != b["test"]["uar"]


def test_speaker_level_regression_task_through_the_probe(tmp_path):
    corpus, store = synthetic(tmp_path, n_per=10)
    df = corpus.manifest
    X = store.pooled(df["id"].tolist())
    df["speaker"] = [f"{sp}_{i // 3}" for i, sp in enumerate(df["speaker"])]
    df["score"] = pd.Series(X[:, 0] * 2.0).groupby(df["speaker"]).transform("mean").to_numpy()
    corpus.tasks = [Task("score", "regression", unit="speaker")]
    res = run_head(tmp_path, corpus, store, "linear", {**FAST, "seeds": [0, 1]})
    entry = res["tasks"]["score"]
    assert entry["type"] == "regression" and entry["folds"][0]["head"] == "linear" and entry["test"]["n"] == 10 and entry["test"]["ccc"] > 0.3
    assert set(entry["seed_summary"]["test"]["ccc"]) == {"mean", "std", "values"}
