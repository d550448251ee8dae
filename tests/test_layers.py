"""Layer choice on layered stores (best / weighted) and the batched logistic-regression sweep."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.core.errors import ConfigError
from pipeline.heads.probe.batched_logreg import balanced_weights, fit_grid, layer_sweep, predict_grid, standardise_layers
from pipeline.experiment.results import leaderboard_rows
from pipeline.report.layers import plot_layer_scores
from tests.factories import feature_corpus as synthetic, run_head

C_GRID = [0.01, 0.1, 1.0, 10.0]


def toy(n, n_classes, seed, L=3, D=12):
    """Layered toy features: class signal grows with depth; imbalanced classes."""
    rng = np.random.default_rng(seed)
    y = rng.choice(n_classes, size=n, p=np.linspace(2, 1, n_classes) / np.linspace(2, 1, n_classes).sum())
    means = rng.normal(size=(L, n_classes, D)) * np.linspace(0.2, 0.8, L)[:, None, None]
    X = rng.normal(size=(n, L, D)) * rng.uniform(0.5, 3, D) + means[:, y].transpose(1, 0, 2)  # unequal scales
    return X.astype(np.float32), y


@pytest.mark.parametrize("n_classes", [2, 4])
def test_batched_solver_matches_sklearn(n_classes):
    Xtr, ytr = toy(300, n_classes, 0)
    Xdv, _ = toy(200, n_classes, 1)
    tr, dv = standardise_layers(Xtr, Xdv, dtype=torch.float64)
    sw = torch.as_tensor(balanced_weights(ytr, n_classes), dtype=torch.float64)
    fit = fit_grid(tr, torch.as_tensor(ytr), C_GRID, n_classes, sw)
    assert fit.converged.all()
    batched = predict_grid(fit, dv).numpy()
    agree = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for layer in range(Xtr.shape[1]):
            for j, C in enumerate(C_GRID):
                ref = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=2000))
                ref.fit(Xtr[:, layer], ytr)
                agree.append((ref.predict(Xdv[:, layer]) == batched[layer, j]).mean())
    assert min(agree) >= 0.95, agree


def test_layer_sweep_scores_match_the_sklearn_loop(tmp_path):
    corpus, store = synthetic(tmp_path, layers=4)
    runs = {}
    for sweep in ("batched", "sklearn"):
        cfg = {"C_grid": C_GRID, "layer": "best", "sweep": sweep}
        runs[sweep] = run_head(tmp_path / sweep, corpus, store, "logreg", cfg)
    a, b = (runs[s]["tasks"]["emotion"]["folds"][0]["layer"] for s in ("batched", "sklearn"))
    np.testing.assert_allclose(a["dev_scores"], b["dev_scores"], atol=0.03)
    assert a["chosen"] == b["chosen"] == int(np.argmax(a["dev_scores"]))
    assert set(a["dev_uar_by_C"]) == {str(c) for c in C_GRID} and a["sweep"] == "batched"


def test_best_layer_is_recorded_everywhere(tmp_path):
    corpus, store = synthetic(tmp_path, layers=4)
    res = run_head(tmp_path, corpus, store, "logreg", {"C_grid": [0.1, 1.0], "layer": "best"})
    entry = res["tasks"]["emotion"]
    chosen = entry["folds"][0]["layer"]["chosen"]
    assert chosen >= 3  # the informative end of the stack
    assert entry["layer"] == f"best={chosen}"
    assert {r["layer"] for r in leaderboard_rows(res)} == {f"best={chosen}"}
    table = pd.read_csv(tmp_path / "p" / "emotion_layers.csv")
    assert list(table["layer"]) == list(range(5)) and table.loc[table["chosen"], "layer"].tolist() == [chosen]
    assert (table["metric"] == "uar").all()
    assert entry["test"]["uar"] > 0.7
    plot_layer_scores([tmp_path / "p" / "emotion_layers.csv"], tmp_path / "layers.png")
    assert (tmp_path / "layers.png").read_bytes()[:4] == b"\x89PNG"


def test_layer_choice_never_sees_test_labels(tmp_path):
    corpus, store = synthetic(tmp_path, layers=3)
    cfg = {"C_grid": [0.1, 1.0], "layer": "best"}
    first = run_head(tmp_path / "1", corpus, store, "logreg", cfg)
    df = corpus.manifest
    test = df["split"] == "test"
    df.loc[test, "emotion"] = np.random.default_rng(3).permutation(df.loc[test, "emotion"].to_numpy())
    second = run_head(tmp_path / "2", corpus, store, "logreg", cfg)
    a, b = first["tasks"]["emotion"], second["tasks"]["emotion"]
    assert a["folds"][0]["layer"] == b["folds"][0]["layer"] and a["folds"][0]["selection"] == b["folds"][0]["selection"]
    assert a["test"]["uar"] != b["test"]["uar"]


def test_torch_head_best_and_weighted_layers(tmp_path):
    corpus, store = synthetic(tmp_path, layers=4, n_per=20)
    fast = {"type": "mlp", "epochs": 25, "patience": 5, "batch_size": 32, "lr": 5e-3, "seeds": [0, 1]}
    out = {}
    for mode in ("best", "weighted"):
        out[mode] = run_head(tmp_path / mode, corpus, store, f"mlp_{mode}", {**fast, "layer": mode})["tasks"]["emotion"]
    best = out["best"]["folds"][0]["layer"]
    assert best["mode"] == "best" and len(best["dev_scores"]) == 5 and best["chosen"] >= 3
    weighted = out["weighted"]["folds"][0]["layer"]
    weights = np.asarray(weighted["weights"])  # one row per seed
    assert out["weighted"]["layer"] == "weighted" and weights.shape == (2, 5)
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-5)
    assert weights[:, -1].mean() > weights[:, 0].mean()  # learned to lean on the informative layers
    assert out["weighted"]["test"]["uar"] > 0.7 and out["best"]["test"]["uar"] > 0.7


def test_weighted_layers_need_a_torch_head(tmp_path):
    corpus, store = synthetic(tmp_path, layers=2)
    with pytest.raises(ConfigError, match="weighted"):
        run_head(tmp_path, corpus, store, "logreg", {"layer": "weighted"})


def test_layer_sweep_reports_every_C():
    Xtr, ytr = toy(200, 3, 5)
    Xdv, ydv = toy(100, 3, 6)
    labels = np.array(["x", "y", "z"], object)
    out = layer_sweep(Xtr, labels[ytr], Xdv, labels[ydv], C_GRID, device="cpu")
    assert out["dev_uar"].shape == (3, len(C_GRID)) and out["classes"] == ["x", "y", "z"]
    assert ((out["dev_uar"] >= 0) & (out["dev_uar"] <= 1)).all()
