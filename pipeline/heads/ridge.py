"""Ridge-regression probe for regression tasks (valence, SDS, sentiment score).

``alpha`` is chosen from ``alpha_grid`` by dev CCC (ties go to the larger, more regularised alpha);
test data never enter the selection. ``standardize: false`` skips the scaler (features already scaled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.heads import register_head
from pipeline.metrics import ccc


@register_head("ridge")
class RidgeHead:
    task_type = "regression"

    def __init__(self, cfg: dict[str, Any]):
        self.grid = [float(a) for a in cfg.get("alpha_grid", [0.1, 1.0, 10.0, 100.0, 1000.0])]
        self.standardize = bool(cfg.get("standardize", True))
        self.model = None
        self.selection: dict[str, Any] = {}

    def fit(self, X_train, y_train, X_dev, y_dev) -> "RidgeHead":
        y_train, y_dev = np.asarray(y_train, float), np.asarray(y_dev, float)
        scores, models = {}, {}
        for alpha in self.grid:
            steps = [StandardScaler()] if self.standardize else []
            models[alpha] = make_pipeline(*steps, Ridge(alpha=alpha)).fit(X_train, y_train)
            scores[alpha] = ccc(y_dev, models[alpha].predict(X_dev))
        best = max(self.grid, key=lambda a: (np.nan_to_num(scores[a], nan=-2.0), a))
        self.model = models[best]
        self.selection = {"param": "alpha", "chosen": best, "dev_ccc": {str(a): s for a, s in scores.items()}}
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(X)

    def save(self, path: str | Path) -> None:
        joblib.dump(self.model, path)
