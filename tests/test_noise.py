"""Noise: scikit-learn warnings are summarised once per stage; progress moves per grid point.

A 2-speaker EmoDB run printed 13 "y_pred contains classes not in y_true" blocks: the heads score
their C / layer grid on dev inside ``fit``, outside the runner's warning summary. Now the runner
counts those too and prints one line (which warning, how many times, where). A probe on wide
features (ComParE) moved its bar once per fold; heads now advance a bar per grid point.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from pipeline.experiment.scoring import MetricWarnings
from pipeline.heads.probe import progress
from pipeline.heads.probe.base import build_head

ROOT = Path(__file__).resolve().parents[1]

# Three speakers, three classes; class c is absent from the dev speaker, so every dev score warns.
RUN = textwrap.dedent('''
    import sys, numpy as np, pandas as pd
    from pipeline.core.manifest import Task
    from pipeline.experiment.protocol import Fold
    from pipeline.experiment.runner import run_experiment
    from pipeline.heads.base import head_settings
    from pipeline.heads.probe.run import FeatureLearner

    head, out = sys.argv[1], sys.argv[2]
    n = 24
    emo = np.array(["a", "b", "c"] * 8, dtype=object)
    spk = np.array([f"s{i // 8}" for i in range(n)])
    rows = pd.DataFrame({"speaker": spk, "emotion": emo}, index=pd.Index([f"u{i}" for i in range(n)], name="id"))
    X = np.random.default_rng(0).normal(size=(n, 3, 8)).astype(np.float32) + (emo == "a")[:, None, None]

    def planner(task, r, y):
        s, e = r["speaker"].to_numpy(), r["emotion"].to_numpy()
        return [Fold("0", s == "s0", (s == "s1") & (e != "c"), s == "s2")]

    cfg = {"type": head, "layer": "best", "C_grid": [0.1, 1.0]}
    if head == "logreg":
        cfg["sweep"] = "sklearn"
    settings = head_settings(head, cfg, family="probe")
    learner = FeatureLearner(head, settings, X, layer_name="best", norm="global")
    run_experiment(rows, [Task("emotion", classes=["a", "b", "c"])], learner,
                   {"corpus": "fake", "backbone": "bb", "head": head},
                   metrics_path=out + "/m.json", predictions_dir=out + "/p", model_dir=out + "/models",
                   planner=planner)
''')


@pytest.mark.parametrize("head", ["logreg", "svm"])
def test_a_class_absent_from_dev_gives_one_summary_line_and_no_warning_block(tmp_path, head):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"}
    proc = subprocess.run([sys.executable, "-c", RUN, head, str(tmp_path)], capture_output=True, text=True, check=False,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "UserWarning" not in proc.stderr and "warnings.warn(" not in proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "not shown one by one" in ln]
    assert len(lines) == 1, proc.stdout + proc.stderr
    # which warning, how many times, where (counts depend on what the heads predict for dev)
    m = re.fullmatch(rf"fake/bb/{head}: warnings \(scikit-learn, not shown one by one\): (\d+)× y_pred contains "
                     r"classes not in y_true \[dev selection: (\d+), scoring: (\d+)\]", lines[0])
    assert m, lines[0]
    total, dev_selection, scoring = map(int, m.groups())
    assert total == dev_selection + scoring and dev_selection >= 3  # at least one per layer's dev score


def test_warnings_that_are_not_scikit_learns_pass_through():
    import warnings

    caught = MetricWarnings()
    with pytest.warns(UserWarning, match="ours"), caught("dev selection"):
        warnings.warn("ours", UserWarning, stacklevel=1)
    assert caught.summary() is None


class Recorder:
    """Stands in for tqdm: records every bar's total and how far it got."""

    bars: ClassVar[list[Recorder]] = []

    def __init__(self, total=None, desc="", **kw):
        self.total, self.desc, self.n = total, desc, 0
        Recorder.bars.append(self)

    def update(self, k=1):
        self.n += k

    def close(self):
        pass


@pytest.fixture
def bars(monkeypatch):
    Recorder.bars = []
    monkeypatch.setattr(progress, "tqdm", Recorder)
    return Recorder.bars


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    y = np.array(["a", "b"] * 12, dtype=object)
    X = rng.normal(size=(24, 3, 10)).astype(np.float32) + (y == "a")[:, None, None]
    return X[:16], y[:16], X[16:], y[16:]


@pytest.mark.parametrize(
    "name, cfg, points",
    [
        ("logreg", {"C_grid": [0.01, 0.1, 1.0], "solve": "primal"}, 3),
        ("logreg", {"C_grid": [0.01, 0.1, 1.0], "solve": "gram"}, 3),  # the ComParE path (D > N)
        ("svm", {"kernel": "rbf", "C_grid": [0.1, 1.0], "gamma_grid": [0.5, 1.0]}, 4),
        ("svm", {"kernel": "linear", "C_grid": [0.1, 1.0, 10.0]}, 3),
    ],
    ids=["logreg-primal", "logreg-gram", "svm-rbf", "svm-linear"],
)
def test_progress_total_counts_grid_points(bars, data, name, cfg, points):
    Xtr, ytr, Xdv, ydv = data
    head = build_head(name, {"type": name, **cfg})
    head.fit(Xtr[:, 0], ytr, Xdv[:, 0], ydv)
    assert [(b.total, b.n) for b in bars] == [(points, points)]


def test_ridge_progress_counts_alphas(bars, data):
    Xtr, _, Xdv, _ = data
    rng = np.random.default_rng(2)
    head = build_head("ridge", {"type": "ridge", "alpha_grid": [0.1, 1.0, 10.0, 100.0]}, "regression")
    head.fit(Xtr[:, 0], rng.normal(size=len(Xtr)), Xdv[:, 0], rng.normal(size=len(Xdv)))
    assert [(b.total, b.n) for b in bars] == [(4, 4)]


def test_best_layer_sweep_is_one_bar_over_layers_times_grid(bars, data):
    Xtr, ytr, Xdv, ydv = data
    head = build_head("logreg", {"type": "logreg", "C_grid": [0.1, 1.0], "sweep": "sklearn", "solve": "primal"},
                      layers="best")
    head.fit(Xtr, ytr, Xdv, ydv)
    assert [(b.total, b.n) for b in bars] == [(3 * 2, 3 * 2)]  # no second bar per layer
