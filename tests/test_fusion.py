"""Fusion heads (concat, late, attention), member alignment, the fuse stage and the report."""

import argparse

import numpy as np
import pandas as pd
import pytest

from pipeline.core import manifest
from pipeline.core.errors import ConfigError
from pipeline.heads.fusion.run import run_fusion
from pipeline.heads.fusion.heads import apply_temperature, fit_temperature
from pipeline.core.io import read_json
from pipeline.core.manifest import Corpus, Task
from pipeline.report.build import build_report
from pipeline.core.store import FeatureStore, write_not_applicable, write_store
from stages import fuse

CLASSES = ["a", "b", "c", "d"]


def two_member_corpus(root, n_per=20, seed=0):
    """Each member sees one 'bit' of the 4-class label: alone ~50 % UAR, together ~100 %."""
    rng = np.random.default_rng(seed)
    rows = [(f"{split}_{c}_{i}", spk, split, c) for split, spk in (("train", "s1"), ("dev", "s2"), ("test", "s3"))
            for c in CLASSES for i in range(n_per)]
    df = pd.DataFrame(rows, columns=["id", "speaker", "split", "emotion"]).assign(audio="", video="", text="")
    k = df["emotion"].map(CLASSES.index).to_numpy()
    A = rng.normal(size=(len(df), 5)); A[:, 0] += 4 * (k % 2)
    B = rng.normal(size=(len(df), 9)); B[:, 0] += 4 * (k // 2)
    return Corpus("syn", df, [Task("emotion", "classification", CLASSES)], str(root)), {"a": A, "b": B}


def stores_for(tmp_path, corpus, feats, missing=()):
    ids = corpus.manifest["id"].tolist()
    out = {}
    for name, X in feats.items():
        keep = [i for i, uid in enumerate(ids) if not (name == "b" and uid in missing)]
        write_store(tmp_path / f"{name}.zarr", ids=[ids[i] for i in keep], pooled=X[keep], attrs={"backbone": name})
        out[name] = FeatureStore(tmp_path / f"{name}.zarr")
    return out


def fuse_run(tmp_path, corpus, stores, name, cfg):
    return run_fusion(corpus, stores, name, cfg, model_dir=tmp_path / "m" / name,
                      metrics_path=tmp_path / f"{name}.json", predictions_dir=tmp_path / "p" / name)


@pytest.fixture
def member_data(tmp_path):
    corpus, feats = two_member_corpus(tmp_path)
    return corpus, feats, stores_for(tmp_path, corpus, feats)


@pytest.mark.parametrize("cfg", [
    {"type": "concat", "probe": {"type": "logreg", "C_grid": [0.1, 1.0]}},
    {"type": "concat", "probe": {"type": "mlp", "epochs": 30, "patience": 5, "lr": 5e-3}},
    {"type": "late", "probe": {"type": "logreg", "C_grid": [0.1, 1.0]}},
    {"type": "attention", "epochs": 60, "patience": 10, "lr": 1e-2, "hidden": 16, "seeds": [0, 1]},
], ids=["concat-logreg", "concat-mlp", "late", "attention"])
def test_fusion_beats_every_member(tmp_path, member_data, cfg):
    corpus, _, stores = member_data
    res = fuse_run(tmp_path, corpus, stores, "fusion", cfg)
    assert res["backbone"] == "a+b" and res["dropped"]["n"] == 0
    assert res["tasks"]["emotion"]["test"]["uar"] > 0.8  # each member alone is capped near 0.5
    preds = pd.read_csv(tmp_path / "p" / "fusion" / "emotion.csv")
    assert {"id", "split", "fold", "actual", "predicted", "p_a"} <= set(preds.columns)
    if cfg["type"] == "attention":
        weights = res["tasks"]["emotion"]["folds"][0]["selection"]["dev_member_weights"]
        assert set(weights) == {"a", "b"} and sum(weights.values()) == pytest.approx(1, abs=1e-5)


def test_single_members_alone_stay_near_chance(tmp_path, member_data):
    from pipeline.heads.probe.run import run_probe

    corpus, _, stores = member_data
    res = run_probe(corpus, stores["a"], "logreg", {"C_grid": [1.0]}, model_dir=tmp_path / "m",
                    metrics_path=tmp_path / "r.json", predictions_dir=tmp_path / "p")
    assert res["tasks"]["emotion"]["test"]["uar"] < 0.6


def test_items_missing_from_a_member_are_dropped_and_counted(tmp_path):
    corpus, feats = two_member_corpus(tmp_path)
    missing = {"train_a_0", "test_b_3", "test_c_7"}
    stores = stores_for(tmp_path, corpus, feats, missing)
    cfg = {"type": "late", "probe": {"C_grid": [1.0]}}
    res = fuse_run(tmp_path, corpus, stores, "late", cfg)
    assert res["dropped"]["n"] == 3 and res["dropped"]["per_member"] == {"a": 0, "b": 3}
    assert set(res["dropped"]["examples"]) == missing
    assert res["tasks"]["emotion"]["test"]["n"] == 4 * 20 - 2
    assert read_json(tmp_path / "late.json")["dropped"]["n"] == 3


def test_member_not_applicable_skips_the_fusion(tmp_path, member_data):
    corpus, _, stores = member_data
    reason = "corpus syn has no transcripts (text backbone)"
    write_not_applicable(tmp_path / "t.zarr", reason=reason, attrs={"backbone": "t"})
    stores = {"a": stores["a"], "t": FeatureStore(tmp_path / "t.zarr")}
    res = fuse_run(tmp_path, corpus, stores, "concat", {"type": "concat"})
    assert "no transcripts" in res["skipped"] and "tasks" not in res
    for folder in (tmp_path / "m" / "concat", tmp_path / "p" / "concat"):  # never an empty DVC output
        assert [p.name for p in folder.iterdir()] == ["skipped.json"]
        assert read_json(folder / "skipped.json")["skipped"] == res["skipped"]


def test_late_fusion_calibration_uses_dev_only(tmp_path, member_data):
    corpus, _, stores = member_data
    cfg = {"type": "late", "probe": {"C_grid": [0.1, 1.0]}}
    first = fuse_run(tmp_path / "1", corpus, stores, "late", cfg)
    df = corpus.manifest
    test = df["split"] == "test"
    df.loc[test, "emotion"] = np.random.default_rng(2).permutation(df.loc[test, "emotion"].to_numpy())
    second = fuse_run(tmp_path / "2", corpus, stores, "late", cfg)
    a, b = first["tasks"]["emotion"], second["tasks"]["emotion"]
    assert a["folds"][0]["selection"] == b["folds"][0]["selection"]  # probes' C and temperatures
    assert a["test"]["uar"] != b["test"]["uar"]


def test_temperature_scaling_softens_overconfidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    correct = rng.random(400) < 0.6  # 60 % accurate but ~99 % confident
    pred = np.where(correct, y, (y + 1) % 3)
    proba = np.full((400, 3), 0.005)
    proba[np.arange(400), pred] = 0.99
    T = fit_temperature(proba, y)
    assert T > 2
    calibrated = apply_temperature(proba, T)
    assert (calibrated.argmax(1) == proba.argmax(1)).all() and calibrated.max(1).mean() < 0.8


def test_fuse_stage_writes_where_the_report_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus, feats = two_member_corpus(tmp_path)
    manifest.save(corpus, tmp_path / "data" / "syn" / "prepared")
    ids = corpus.manifest["id"].tolist()
    for name, X in feats.items():
        write_store(tmp_path / "features" / "syn" / f"{name}.zarr", ids=ids, pooled=X, attrs={"backbone": name})
    params = {"heads": {"fusion_concat": {"type": "concat", "probe": {"C_grid": [1.0]}}}}
    fuse.main(argparse.Namespace(corpus="syn", head="fusion_concat", backbone="a+b"), params)
    assert (tmp_path / "metrics" / "experiments" / "syn" / "a+b" / "fusion_concat.json").exists()
    assert (tmp_path / "metrics" / "predictions" / "syn" / "a+b" / "fusion_concat" / "emotion.csv").exists()
    assert (tmp_path / "models" / "syn" / "a+b" / "fusion_concat" / "emotion.joblib").exists()
    out = build_report(tmp_path / "metrics", ["syn"], [("a+b", "fusion_concat", "fuse")])
    assert {(r["backbone"], r["head"]) for r in out["rows"]} == {("a+b", "fusion_concat")}
    # the members are named once, by the run item: another order is another (valid) experiment
    fuse.main(argparse.Namespace(corpus="syn", head="fusion_concat", backbone="b+a"), params)
    result = read_json(tmp_path / "metrics" / "experiments" / "syn" / "b+a" / "fusion_concat.json")
    assert result["members"] == ["b", "a"]


def test_fusion_params_are_validated(tmp_path, member_data):
    corpus, _, stores = member_data
    with pytest.raises(ConfigError, match="joined by"):
        fuse.main(argparse.Namespace(corpus="syn", head="f", backbone="a"), {"heads": {"f": {"type": "concat"}}})
    with pytest.raises(ConfigError, match="heads.c.layer = 'best'"):
        fuse_run(tmp_path, corpus, stores, "c", {"type": "concat", "layer": "best"})
    with pytest.raises(ConfigError, match="unknown key 'members'"):  # members come from the run item now
        fuse_run(tmp_path, corpus, stores, "c", {"type": "concat", "members": ["a", "b"]})
    with pytest.raises(ConfigError, match="not a probe head"):
        fuse_run(tmp_path, corpus, stores, "c", {"type": "concat", "probe": {"type": "late"}})
