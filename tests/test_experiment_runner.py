"""The experiment runner's loop: which (task, fold) runs happen in which order, and what they write.

A learner that loads one model per fold (the Audio-LLM's evaluation) asks for fold-major order so
that every task of a fold is answered by one load; the results must not depend on the order.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.core.manifest import Task
from pipeline.experiment.protocol import Fold
from pipeline.experiment.runner import Learner, Output, run_experiment

TASKS = [Task("emotion", classes=["a", "b"]), Task("arousal", classes=["lo", "hi"])]
N_FOLDS = 3


def rows() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 30
    return pd.DataFrame(
        {
            "speaker": [f"s{i % 6}" for i in range(n)],
            "emotion": rng.choice(["a", "b"], n),
            "arousal": rng.choice(["lo", "hi"], n),
            "fold": [i % N_FOLDS for i in range(n)],
        },
        index=pd.Index([f"u{i}" for i in range(n)], name="id"),
    )


def planner(task, r, y):
    fold = r["fold"].to_numpy()
    dev = [(k + 1) % N_FOLDS for k in range(N_FOLDS)]
    return [Fold(str(k), (fold != k) & (fold != dev[k]), fold == dev[k], fold == k) for k in range(N_FOLDS)]


class Counting(Learner):
    """Predicts the training majority class; records the order of its fits and its model loads."""

    def __init__(self, fold_major: bool):
        self.fold_major = fold_major
        self.fits, self.loads, self.loaded = [], 0, None
        self.majority = None

    def fit(self, data, fold, model_path):
        self.fits.append((data.task.name, fold.name))
        if self.loaded != fold.name:
            self.loads, self.loaded = self.loads + 1, fold.name
        values, counts = np.unique(data.y[fold.train], return_counts=True)
        self.majority = values[np.argmax(counts)]
        return {"head": "majority", "selection": {}}

    def predict(self, data, fold, mask):
        pred = np.full(int(mask.sum()), self.majority, dtype=object)
        classes = list(data.task.classes)
        return [Output(pred, (pred[:, None] == np.asarray(classes, dtype=object)[None]).astype(float), classes)]


@pytest.mark.parametrize("fold_major", [False, True])
def test_run_order_and_model_loads(tmp_path, fold_major):
    learner = Counting(fold_major)
    run_experiment(rows(), TASKS, learner, {"head": "majority"}, metrics_path=tmp_path / "m.json",
                   predictions_dir=tmp_path / "p", planner=planner)
    pairs = [(t.name, str(k)) for t in TASKS for k in range(N_FOLDS)]
    if fold_major:
        assert learner.fits == sorted(pairs, key=lambda p: (int(p[1]), [t.name for t in TASKS].index(p[0])))
        assert learner.loads == N_FOLDS  # one load per fold, shared by both tasks
    else:
        assert learner.fits == pairs
        assert learner.loads == N_FOLDS * len(TASKS)


def test_the_order_does_not_change_the_results(tmp_path):
    outs = {}
    for fold_major in (False, True):
        out = tmp_path / str(fold_major)
        run_experiment(rows(), TASKS, Counting(fold_major), {"head": "majority"}, metrics_path=out / "m.json",
                       predictions_dir=out / "p", planner=planner)
        outs[fold_major] = (json.loads((out / "m.json").read_text()),
                            {t.name: (out / "p" / f"{t.name}.csv").read_text() for t in TASKS})
    assert outs[False] == outs[True]
    assert [f["fold"] for f in outs[True][0]["tasks"]["emotion"]["folds"]] == ["0", "1", "2"]
