"""Ridge-regression probe for regression tasks (valence, SDS, sentiment score).

``alpha`` is chosen from ``alpha_grid`` by dev CCC (ties go to the larger, more regularised alpha);
test data never enter the selection. ``standardize: false`` skips the scaler (features already scaled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
from pydantic import Field
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.core.errors import ConfigError
from pipeline.core.metrics import ccc
from pipeline.heads.base import register_head
from pipeline.heads.probe.base import FeatureHeadSettings, Head
from pipeline.heads.probe.logreg import DEFAULT_ALPHA_GRID
from pipeline.heads.probe.progress import grid_bar


class RidgeSettings(FeatureHeadSettings):
    alpha_grid: list[float] = Field(default_factory=lambda: list(DEFAULT_ALPHA_GRID), min_length=1)  # by dev CCC


@register_head(
    "ridge", settings=RidgeSettings, family="probe", description="scikit-learn ridge regression, alpha by dev CCC"
)
class RidgeHead(Head):
    task_type = "regression"

    def __init__(self, settings: RidgeSettings, task_type: str = "regression"):
        if task_type != "regression":
            raise ConfigError("the ridge head models regression tasks; use logreg for classification")
        self.grid = [float(a) for a in settings.alpha_grid]
        self.standardize = settings.standardize
        self.model = None
        self.selection: dict[str, Any] = {}

    @property
    def grid_points(self) -> int:
        """Fits one ``fit`` makes (its progress bar's total)."""
        return len(self.grid)

    def fit(self, X_train, y_train, X_dev, y_dev) -> "RidgeHead":
        y_train, y_dev = np.asarray(y_train, float), np.asarray(y_dev, float)
        scores, models = {}, {}
        with grid_bar(f"{self.kind}: alpha", self.grid_points) as step:
            for alpha in self.grid:
                steps = [StandardScaler()] if self.standardize else []
                models[alpha] = make_pipeline(*steps, Ridge(alpha=alpha)).fit(X_train, y_train)
                scores[alpha] = ccc(y_dev, models[alpha].predict(X_dev))
                step()
        best = max(self.grid, key=lambda a: (np.nan_to_num(scores[a], nan=-2.0), a))
        self.model = models[best]
        self.selection = {"param": "alpha", "chosen": best, "dev_ccc": {str(a): s for a, s in scores.items()}}
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(X)

    def save(self, path: str | Path) -> None:
        joblib.dump(self.model, path)


def ridge_for_regression(settings: Any) -> RidgeHead:
    """The ridge head a classification probe (logreg, svm) runs on a regression task: its
    ``alpha_grid`` and every other option the two settings share."""
    fields = set(RidgeSettings.model_fields) - {"type"}
    return RidgeHead(RidgeSettings(**settings.model_dump(include=fields)), "regression")
