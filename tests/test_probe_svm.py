"""SVM probe heads and the Gram-space (N ≪ D) path of the logreg and SVM probes.

The Gram path must be the same model as scikit-learn's fit on the features: same selected C (and
gamma), >= 99 % equal predictions, close probabilities. The references here are scikit-learn's own
estimators on the standardised features — for logistic regression a tightly converged float64 fit
(the default tol=1e-4 fit on float32 features stops early at large C, so it is compared at the
selection and prediction level only).
"""

from __future__ import annotations

import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_class_weight

from pipeline.core.config import load_params, section
from pipeline.core.errors import ConfigError
from pipeline.core.manifest import Corpus, Task
from pipeline.core.store import FeatureStore, write_store
from pipeline.heads.base import head_settings
from pipeline.heads.fusion.run import run_fusion
from pipeline.heads.probe.base import build_head
from pipeline.heads.probe.gram import TrainingSpan
from pipeline.heads.probe.ridge import RidgeHead
from tests.factories import feature_corpus, run_head

C_GRID = [0.001, 0.01, 0.1, 1.0]


def wide_data(n_train=60, n_dev=40, n_test=80, dim=800, classes=3, seed=0):
    """N ≪ D: classes separated along a few directions, features on very unequal scales."""
    rng = np.random.default_rng(seed)
    n = n_train + n_dev + n_test
    y = np.array(list("abcdefg"[:classes]))[rng.integers(0, classes, n)]
    k = np.searchsorted(np.unique(y), y)
    means = rng.normal(size=(classes, dim)) * 0.12
    X = (rng.normal(size=(n, dim)) + means[k]) * rng.uniform(0.1, 30.0, dim)
    cut = np.cumsum([n_train, n_dev])
    parts = np.split(X, cut), np.split(y, cut)
    return [(parts[0][i], parts[1][i]) for i in range(3)]


@pytest.fixture(scope="module")
def wide():
    return wide_data()


def test_training_span_reproduces_every_inner_product():
    rng = np.random.default_rng(1)
    Z, other = rng.normal(size=(20, 300)), rng.normal(size=(7, 300))
    span = TrainingSpan(Z)
    assert span.rank == 20
    np.testing.assert_allclose(span.coords @ span.coords.T, Z @ Z.T, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(span.transform(Z), span.coords, atol=1e-9)
    w = rng.normal(size=(3, span.rank))  # span weights ↔ feature weights: same scores on any row
    np.testing.assert_allclose(other @ span.to_features(w).T, span.transform(other) @ w.T, atol=1e-9)
    centred = Z - Z.mean(0)  # standardised training rows lose one direction: the rank says so
    assert TrainingSpan(centred).rank == 19


def reference_logreg(data, grid):
    """scikit-learn on the standardised float64 features, converged tightly: (chosen C, test predictions, proba)."""
    (Xt, yt), (Xd, yd), (Xs, _) = data
    scaler = StandardScaler().fit(Xt)
    scores, models = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for C in grid:
            models[C] = LogisticRegression(C=C, class_weight="balanced", tol=1e-10, max_iter=20000)
            models[C].fit(scaler.transform(Xt), yt)
            scores[C] = balanced_accuracy_score(yd, models[C].predict(scaler.transform(Xd)))
    best = max(grid, key=lambda c: (scores[c], -c))
    return best, {str(c): s for c, s in scores.items()}, models[best].predict_proba(scaler.transform(Xs))


def test_gram_logreg_is_scikit_learns_model(wide):
    (Xt, yt), (Xd, yd), (Xs, _) = wide
    head = build_head("logreg", {"C_grid": C_GRID}).fit(Xt, yt, Xd, yd)
    assert head.selection["solve"] == "gram" and head.selection["rank"] == len(Xt) - 1  # auto: D > N
    best, scores, proba = reference_logreg(wide, C_GRID)
    assert head.selection["chosen"] == best and head.selection["dev_uar"] == scores
    ours = head.predict_proba(Xs)
    assert np.mean(ours.argmax(1) == proba.argmax(1)) >= 0.99
    np.testing.assert_allclose(ours, proba, atol=5e-4)
    # what is kept is an ordinary scikit-learn pipeline on the D features
    assert head.model[-1].coef_.shape == (3, Xt.shape[1])


def test_gram_logreg_matches_the_primal_head(wide):
    (Xt, yt), (Xd, yd), (Xs, _) = wide
    fast = build_head("logreg", {"C_grid": C_GRID, "solve": "gram"}).fit(Xt, yt, Xd, yd)
    ref = build_head("logreg", {"C_grid": C_GRID, "solve": "primal"}).fit(Xt, yt, Xd, yd)
    assert "solve" not in ref.selection and fast.selection["chosen"] == ref.selection["chosen"]
    assert np.mean(fast.predict(Xs) == ref.predict(Xs)) >= 0.99
    np.testing.assert_allclose(fast.predict_proba(Xs), ref.predict_proba(Xs), atol=2e-2)


def test_binary_gram_logreg_and_narrow_features_stay_primal():
    (Xt, yt), (Xd, yd), (Xs, _) = wide_data(classes=2, dim=300, seed=3)
    head = build_head("logreg", {"C_grid": [0.01, 1.0]}).fit(Xt, yt, Xd, yd)
    best, _, proba = reference_logreg(((Xt, yt), (Xd, yd), (Xs, None)), [0.01, 1.0])
    assert head.selection["chosen"] == best and head.model[-1].coef_.shape == (1, 300)
    np.testing.assert_allclose(head.predict_proba(Xs), proba, atol=5e-4)
    narrow = build_head("logreg", {"C_grid": [1.0]}).fit(Xt[:, :20], yt, Xd[:, :20], yd)
    assert "solve" not in narrow.selection  # D < N: the features themselves


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_svm_gram_path_equals_svc_on_the_features(wide, kernel):
    (Xt, yt), (Xd, yd), (Xs, _) = wide
    cfg = {"kernel": kernel, "C_grid": [0.01, 0.1, 1.0, 10.0], "gamma_grid": [0.3, 1.0, 3.0]}
    fast = build_head("svm", {**cfg, "solve": "gram"}).fit(Xt, yt, Xd, yd)
    ref = build_head("svm", {**cfg, "solve": "primal"}).fit(Xt, yt, Xd, yd)
    assert fast.selection["solve"] == "gram" and ref.selection["solve"] == "primal"
    assert fast.selection["dev_uar"] == ref.selection["dev_uar"] and fast.selection["chosen"] == ref.selection["chosen"]
    np.testing.assert_array_equal(fast.predict(Xs), ref.predict(Xs))
    np.testing.assert_allclose(fast.decision_function(Xs), ref.decision_function(Xs), atol=1e-6)
    np.testing.assert_allclose(fast.predict_proba(Xs), ref.predict_proba(Xs), atol=1e-5)
    # and both are scikit-learn's SVC with the recorded hyper-parameters, fitted on standardised features
    scaler = StandardScaler().fit(Xt)
    gamma = fast.selection.get("gamma", "scale")
    svc = SVC(kernel=kernel, C=fast.selection["chosen"], gamma=gamma, class_weight="balanced").fit(scaler.transform(Xt), yt)
    np.testing.assert_array_equal(fast.predict(Xs), svc.predict(scaler.transform(Xs)))
    if kernel == "rbf":  # gamma_grid holds multiples of gamma='scale' = 1 / (D · var) = 1 / D here
        assert fast.selection["gamma"] == pytest.approx(fast.selection["gamma_factor"] / Xt.shape[1], rel=1e-6)


def test_svm_is_class_balanced_and_chooses_gamma_on_dev():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 2))
    y = np.where((X**2).sum(1) < 1.0, "in", "out")  # a ring: no linear separator, imbalanced classes
    parts = [(X[i::3], y[i::3]) for i in range(3)]
    (Xt, yt), (Xd, yd), (Xs, ys) = parts
    rbf = build_head("svm", {"kernel": "rbf", "C_grid": [1.0, 10.0], "gamma_grid": [0.01, 1.0]}).fit(Xt, yt, Xd, yd)
    linear = build_head("svm", {"kernel": "linear", "C_grid": [1.0]}).fit(Xt, yt, Xd, yd)
    assert rbf.selection["gamma_factor"] == 1.0  # gamma 0.01×scale is near-linear: dev UAR says so
    assert balanced_accuracy_score(ys, rbf.predict(Xs)) > 0.9 > balanced_accuracy_score(ys, linear.predict(Xs)) + 0.2
    weights = rbf.model.svc.class_weight_
    np.testing.assert_allclose(weights, compute_class_weight("balanced", classes=np.unique(yt), y=yt))
    unweighted = build_head("svm", {"kernel": "rbf", "class_weight": "none", "C_grid": [1.0]}).fit(Xt, yt, Xd, yd)
    np.testing.assert_array_equal(unweighted.model.svc.class_weight_, [1.0, 1.0])


def test_svm_probe_writes_the_metrics_contract_and_selects_on_dev_only(tmp_path):
    corpus, store = feature_corpus(tmp_path)
    cfg = {"kernel": "rbf", "C_grid": [0.1, 1.0, 10.0], "gamma_grid": [0.3, 1.0]}
    first = run_head(tmp_path / "1", corpus, store, "svm", cfg)
    entry = first["tasks"]["emotion"]
    assert entry["test"]["uar"] > 0.7 and entry["folds"][0]["head"] == "svm"
    preds = pd.read_csv(tmp_path / "1" / "p" / "emotion.csv")
    proba = preds[["p_a", "p_b", "p_c"]]  # calibrated probabilities reach the predictions table
    assert np.allclose(proba.sum(1), 1.0) and proba.to_numpy().min() > 0
    model = joblib.load(tmp_path / "1" / "m" / "emotion.joblib")  # the saved model predicts raw features
    X = store.pooled(corpus.manifest["id"].tolist())
    test = (corpus.manifest["split"] == "test").to_numpy()
    assert (model.predict(X[test]) == preds.loc[preds["split"] == "test", "predicted"].to_numpy()).all()
    scrambled = corpus.manifest.copy()
    scrambled.loc[test, "emotion"] = np.random.default_rng(5).permutation(scrambled.loc[test, "emotion"].to_numpy())
    corpus.manifest = scrambled
    second = run_head(tmp_path / "2", corpus, store, "svm", cfg)
    assert entry["folds"][0]["selection"] == second["tasks"]["emotion"]["folds"][0]["selection"]
    assert entry["test"]["uar"] != second["tasks"]["emotion"]["test"]["uar"]


def test_probabilities_when_a_class_has_one_training_item():
    rng = np.random.default_rng(6)
    y = np.array(["a"] * 12 + ["b"] * 12 + ["c"])
    X = rng.normal(size=(25, 40)) + 3 * np.eye(40)[np.searchsorted(["a", "b", "c"], y)]
    head = build_head("svm", {"C_grid": [1.0]}).fit(X, y, X, y)
    assert "one training item" in head.selection["probability"]
    p = head.predict_proba(X)
    assert p.shape == (25, 3) and np.allclose(p.sum(1), 1.0)
    two = build_head("svm", {"C_grid": [1.0]}).fit(X[:24], y[:24], X[:24], y[:24])
    assert two.selection["probability"].startswith("sigmoid, 5-fold")


def test_svm_regression_is_ridge_and_typos_name_the_key():
    assert isinstance(build_head("svm", {"kernel": "rbf"}, task_type="regression"), RidgeHead)
    with pytest.raises(ConfigError, match="unknown key 'kernal'.*did you mean 'kernel'"):
        head_settings("svm_rbf", {"type": "svm", "kernal": "rbf"})
    with pytest.raises(ConfigError, match="kernel"):
        head_settings("svm_rbf", {"type": "svm", "kernel": "poly"})


def test_recommended_fusion_recipe_runs_speaker_normalised(tmp_path):
    """params.yaml's fusion_spknorm_svm (eGeMAPS + ComParE in the recipe) on two tiny members."""
    rng = np.random.default_rng(7)
    classes = ["a", "b", "c", "d"]
    rows = [(f"{spk}_{c}_{i}", spk, split, c) for split, spks in (("train", ("s1", "s2")), ("dev", ("s3",)),
            ("test", ("s4",))) for spk in spks for c in classes for i in range(6)]
    df = pd.DataFrame(rows, columns=["id", "speaker", "split", "emotion"]).assign(audio="", video="", text="")
    k = df["emotion"].map(classes.index).to_numpy()
    spk = df["speaker"].map({"s1": 0, "s2": 1, "s3": 2, "s4": 3}).to_numpy()
    members = {name: rng.normal(size=(len(df), dim)) + 3 * rng.normal(size=(4, dim))[spk]  # speaker offsets
               for name, dim in (("small", 8), ("wide", 300))}
    members["small"][:, :2] += 3 * (k % 2)[:, None]
    members["wide"][:, :30] += 2.0 * (k // 2)[:, None]
    corpus = Corpus("syn", df, [Task("emotion", "classification", classes)], str(tmp_path))
    stores = {}
    for name, X in members.items():
        write_store(tmp_path / f"{name}.zarr", ids=df["id"].tolist(), pooled=X.astype(np.float32), attrs={"backbone": name})
        stores[name] = FeatureStore(tmp_path / f"{name}.zarr")
    cfg = section(load_params(), "heads", "fusion_spknorm_svm")

    def fuse(name, cfg):
        return run_fusion(corpus, stores, name, cfg, model_dir=tmp_path / name / "m",
                          metrics_path=tmp_path / name / "e.json", predictions_dir=tmp_path / name / "p")["tasks"]["emotion"]

    entry = fuse("fusion_spknorm_svm", cfg)
    assert entry["norm"] == "speaker" and entry["folds"][0]["selection"]["probe"] == "svm"
    assert entry["folds"][0]["selection"]["kernel"] == "linear" and entry["test"]["uar"] > 0.9
    plain = fuse("plain", {**cfg, "speaker_norm": False})  # the test speaker's offset misleads it
    assert plain["norm"] == "global" and plain["test"]["uar"] < entry["test"]["uar"] - 0.2
