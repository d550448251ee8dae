"""Every corpus recipe runs through the real `dvc repro` on its fake tree (one repro for all)."""

from __future__ import annotations

import importlib
import json

import pytest

from tests.dvc_util import make_repo, sh

pytestmark = pytest.mark.dvc

RECIPES = ["eatd", "meld", "ecf", "mer2023", "iemocap", "ravdess", "cremad", "emodb", "esc50", "chsims", "manifest"]
EXTRA_CFG = {
    "manifest": {"file": "labels.csv", "tasks": {"emotion": {"type": "classification"}, "valence": {"type": "regression"}}},
}


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("fake")
    cfgs = {}
    for name in RECIPES:
        root = importlib.import_module(f"tests.data.{name}.data").generate(base / name, seed=0)
        cfgs[name] = {"root": str(root), **EXTRA_CFG.get(name, {})}
    return cfgs


def test_every_recipe_through_dvc_repro(trees, tmp_path):
    params = {
        "run": {"corpora": RECIPES, "backbones": ["egemaps"], "heads": ["logreg"]},
        "corpora": trees,
        "segment": {"fps": 1, "frame_size": 32},
    }
    repo = make_repo(tmp_path / "repo", tmp_path / "remote", **params)
    sh(repo, "dvc", "repro")
    rows = json.loads((repo / "metrics/leaderboard.json").read_text())
    for name in RECIPES:
        corpus = json.loads((repo / f"data/{name}/prepared/corpus.json").read_text())
        for task in corpus["tasks"]:
            got = [r for r in rows if r["corpus"] == name and r["task"] == task["name"] and r["split"] == "test"]
            assert len(got) == 1, (name, task["name"])
            metric = "ccc" if task["type"] == "regression" else "uar"
            assert got[0]["n"] > 0 and got[0][metric] is not None, got[0]
