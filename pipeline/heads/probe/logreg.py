"""Logistic-regression probe: standardise, class-balanced multinomial logistic regression.

For regression tasks the same head is ridge regression (:class:`~pipeline.heads.probe.ridge.RidgeHead`,
``alpha`` from ``alpha_grid`` chosen by dev CCC).

``C`` is chosen from ``C_grid`` by dev UAR (ties go to the smaller, more regularised C); the model
is then the one trained on the training split with that C. Test data never enter the selection.

With ``layer: best`` the head also provides ``layer_scores``: every (layer, C) pair scored on dev in
one batched solve (:mod:`pipeline.heads.probe.batched_logreg`, same objective), after which only the
winning (layer, C) is refitted here with scikit-learn, the reference implementation. ``sweep: sklearn``
does the layer sweep with scikit-learn fits instead; ``device`` (auto | cpu | cuda) and ``threads``
(auto | n CPU threads) apply to the batched sweep. ``standardize: false`` skips the scaler (for
callers that scale features themselves, e.g. early fusion).

``solve: auto`` (the default) fits in the N×N Gram space of the training data when there are more
features than training items (ComParE: 6373-d on a few hundred utterances): scikit-learn's own
solver, same objective, on the training rows' coordinates in their span
(:class:`~pipeline.heads.probe.gram.TrainingSpan`) — exact, since the L2-optimal weights lie in that
span — and the kept model is an ordinary ``StandardScaler → LogisticRegression`` pipeline whose
coefficients are mapped back to feature space. ``solve: primal`` always fits on the features,
``gram`` always in the span.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
from pydantic import Field
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.heads.base import ClassWeightSettings, register_head
from pipeline.heads.probe.base import FeatureHeadSettings, Head
from pipeline.heads.probe.progress import grid_bar

DEFAULT_C_GRID = [0.001, 0.01, 0.1, 1.0, 10.0]
DEFAULT_ALPHA_GRID = [0.1, 1.0, 10.0, 100.0, 1000.0]
# The Gram path's iterations are cheap: it stops at a 100x smaller gradient than scikit-learn's default
# (1e-4), so at weak regularisation (large C, separable data) it lands on the optimum where the default
# fit on float32 features stops early; where that fit has converged the two agree.
GRAM_TOL = 1e-6


class LogRegSettings(FeatureHeadSettings, ClassWeightSettings):
    C_grid: list[float] = Field(default_factory=lambda: list(DEFAULT_C_GRID), min_length=1)  # chosen by dev UAR
    max_iter: int = Field(2000, ge=1)
    sweep: Literal["batched", "sklearn"] = "batched"  # layer: best — one batched solve, or sklearn fits
    threads: Literal["auto"] | int | None = "auto"  # CPU threads of the batched sweep
    alpha_grid: list[float] = Field(default_factory=lambda: list(DEFAULT_ALPHA_GRID), min_length=1)  # regression
    solve: Literal["auto", "primal", "gram"] = "auto"  # auto: Gram space when features outnumber training items


@register_head(
    "logreg", settings=LogRegSettings, family="probe",
    description="scikit-learn logistic regression, C by dev UAR; ridge for regression",
)
class LogRegHead(Head):
    @classmethod
    def make(cls, settings: LogRegSettings, task_type: str = "classification", **extra: Any):
        if task_type == "regression":
            from pipeline.heads.probe.ridge import ridge_for_regression

            return ridge_for_regression(settings)
        return cls(settings, task_type)

    def __init__(self, settings: LogRegSettings, task_type: str = "classification"):
        self.settings = settings
        self.grid = [float(c) for c in settings.C_grid]
        self.max_iter = settings.max_iter
        self.class_weight = settings.class_weight
        self.seed = settings.seed
        self.standardize = settings.standardize
        self.sweep = settings.sweep
        self.device = settings.device
        self.threads = settings.threads
        self.solve = settings.solve
        self.model = None
        self.selection: dict[str, Any] = {}

    @property
    def grid_points(self) -> int:
        """Fits one ``fit`` makes (its progress bar's total)."""
        return len(self.grid)

    def _make(self, C: float):
        steps = [StandardScaler()] if self.standardize else []
        return make_pipeline(*steps, self._logreg(C))

    def _logreg(self, C: float, tol: float = 1e-4) -> LogisticRegression:
        return LogisticRegression(C=C, max_iter=self.max_iter, class_weight=self.class_weight, random_state=self.seed,
                                  tol=tol)

    def fit(self, X_train: np.ndarray, y_train: np.ndarray, X_dev: np.ndarray, y_dev: np.ndarray) -> LogRegHead:
        if self.solve == "gram" or (self.solve == "auto" and X_train.shape[1] > X_train.shape[0]):
            return self._fit_gram(X_train, y_train, X_dev, y_dev)
        scores = {}
        models = {}
        with warnings.catch_warnings(), grid_bar(f"{self.kind}: C", self.grid_points) as step:
            warnings.simplefilter("ignore", ConvergenceWarning)
            for C in self.grid:
                model = self._make(C).fit(X_train, y_train)
                scores[C] = float(balanced_accuracy_score(y_dev, model.predict(X_dev)))
                models[C] = model
                step()
        best = max(self.grid, key=lambda c: (scores[c], -c))
        self.model = models[best]
        self.selection = {"param": "C", "chosen": best, "dev_uar": {str(c): s for c, s in scores.items()}}
        return self

    def _fit_gram(self, X_train: np.ndarray, y_train, X_dev: np.ndarray, y_dev) -> LogRegHead:
        """The same selection, each fit on the training rows' span coordinates ([N, r], r ≤ N)."""
        from pipeline.heads.probe.gram import small_problem_blas

        with small_problem_blas(len(X_train)):
            return self._fit_span(X_train, y_train, X_dev, y_dev)

    def _fit_span(self, X_train: np.ndarray, y_train, X_dev: np.ndarray, y_dev) -> LogRegHead:
        from pipeline.heads.probe.gram import TrainingSpan

        scaler = StandardScaler().fit(X_train) if self.standardize else None
        scaled = (lambda X: scaler.transform(X)) if scaler is not None else (lambda X: X)
        span = TrainingSpan(scaled(X_train))
        R, R_dev = span.coords, span.transform(scaled(X_dev))
        scores, models = {}, {}
        with warnings.catch_warnings(), grid_bar(f"{self.kind}: C", self.grid_points) as step:
            warnings.simplefilter("ignore", ConvergenceWarning)
            for C in self.grid:
                models[C] = self._logreg(C, tol=GRAM_TOL).fit(R, y_train)
                scores[C] = float(balanced_accuracy_score(y_dev, models[C].predict(R_dev)))
                step()
        best = max(self.grid, key=lambda c: (scores[c], -c))
        model = models[best]
        model.coef_ = span.to_features(model.coef_)  # an ordinary fitted LogisticRegression on the features
        model.n_features_in_ = X_train.shape[1]
        self.model = make_pipeline(scaler, model) if scaler is not None else make_pipeline(model)
        self.selection = {
            "param": "C", "chosen": best, "dev_uar": {str(c): s for c, s in scores.items()},
            "solve": "gram", "rank": span.rank,
        }
        return self

    @property
    def sweeps_layers(self) -> bool:
        """Whether :meth:`layer_scores` scores layers (``sweep: batched``) rather than declining."""
        return self.sweep != "sklearn"

    def layer_scores(self, X_train: np.ndarray, y_train, X_dev: np.ndarray, y_dev) -> dict[str, Any] | None:
        """Best dev UAR over the C grid for every layer of [N, L, D] features (None: sweep with sklearn)."""
        if self.sweep == "sklearn":
            return None
        from pipeline.heads.probe.batched_logreg import layer_sweep

        out = layer_sweep(
            X_train, np.asarray(y_train), X_dev, np.asarray(y_dev), self.grid,
            class_weight="balanced" if self.class_weight else None, max_iter=self.max_iter, device=self.device,
            threads=self.threads,
        )
        uar = out["dev_uar"]  # [L, len(grid)]
        # per layer, the C the head itself would pick (ties → smaller C): the refit needs no grid
        chosen = [max(range(len(self.grid)), key=lambda j: (row[j], -self.grid[j])) for row in uar]
        return {
            "scores": uar.max(1).tolist(),
            "refit": [{"C_grid": [self.grid[j]]} for j in chosen],
            "sweep": "batched",
            "dev_uar_by_C": {str(c): uar[:, j].tolist() for j, c in enumerate(self.grid)},
            "unconverged": int((~out["converged"]).sum()),
        }

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(X)

    @property
    def classes_(self) -> list[str]:
        return list(self.model.classes_)

    def save(self, path: str | Path) -> None:
        joblib.dump(self.model, path)
