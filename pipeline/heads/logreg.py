"""Logistic-regression probe: standardise, class-balanced multinomial logistic regression.

``C`` is chosen from ``C_grid`` by dev UAR (ties go to the smaller, more regularised C); the model
is then the one trained on the training split with that C. Test data never enter the selection.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.heads import register_head


@register_head("logreg")
class LogRegHead:
    task_type = "classification"

    def __init__(self, cfg: dict[str, Any]):
        self.grid = [float(c) for c in cfg.get("C_grid", [0.01, 0.1, 1.0, 10.0])]
        self.max_iter = int(cfg.get("max_iter", 2000))
        self.class_weight = "balanced" if cfg.get("class_weight", "balanced") == "balanced" else None
        self.seed = int(cfg.get("seed", 0))
        self.model = None
        self.selection: dict[str, Any] = {}

    def _make(self, C: float):
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(C=C, max_iter=self.max_iter, class_weight=self.class_weight, random_state=self.seed),
        )

    def fit(self, X_train: np.ndarray, y_train: np.ndarray, X_dev: np.ndarray, y_dev: np.ndarray) -> "LogRegHead":
        scores = {}
        models = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for C in self.grid:
                model = self._make(C).fit(X_train, y_train)
                scores[C] = float(balanced_accuracy_score(y_dev, model.predict(X_dev)))
                models[C] = model
        best = max(self.grid, key=lambda c: (scores[c], -c))
        self.model = models[best]
        self.selection = {"param": "C", "chosen": best, "dev_uar": {str(c): s for c, s in scores.items()}}
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(X)

    @property
    def classes_(self) -> list[str]:
        return list(self.model.classes_)

    def save(self, path: str | Path) -> None:
        joblib.dump(self.model, path)
