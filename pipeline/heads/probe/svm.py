"""Support-vector-machine probe: scikit-learn's ``SVC``, linear or RBF kernel, C (and gamma) chosen on dev.

The classical strong baseline for openSMILE features (nkululeko and the ComParE challenge baselines
use SVMs): standardise with training statistics, then ``SVC(kernel=..., class_weight='balanced')``.
``C`` from ``C_grid`` and, for ``kernel: rbf``, gamma from ``gamma_grid`` are chosen by dev UAR
(ties go to the smaller C, then the smaller gamma: the smoother model); test data never enter.
``gamma_grid`` holds multiples of scikit-learn's ``gamma='scale'`` (1 / (n_features · X.var()),
which is 1 / n_features on standardised features), so one grid fits eGeMAPS (88-d) and ComParE
(6373-d); the absolute value chosen is recorded as ``gamma``.

Predictions are ``SVC.predict`` (one-vs-one votes on the decision function) of the model selected
on dev. Probabilities (AUROC, late fusion) are what scikit-learn recommends in place of the
deprecated ``SVC(probability=True)``: ``CalibratedClassifierCV(SVC(...), method='sigmoid',
ensemble=False)`` — Platt scaling of decision values cross-validated on the training split
(stratified, ``min(5, smallest class)`` folds, shuffled with ``seed``), one SVC on all training rows.
As with ``probability=True``, the argmax of ``predict_proba`` can differ from ``predict`` for items
near the boundary; the selection record says how probabilities were calibrated.

``solve: auto`` (default) passes libsvm the kernel matrix (``kernel='precomputed'``, computed once
from one [N, D] × [D, N] product for the whole grid, :mod:`pipeline.heads.probe.gram`) up to
``gram_max_n`` training items — the same problem libsvm solves from the features, faster when D is
large (single-threaded BLAS up to 2000 items: see :func:`~pipeline.heads.probe.gram.small_problem_blas`);
``solve: primal`` fits ``SVC(kernel=...)`` on the features (the reference). Regression tasks
use the ridge probe (``alpha_grid``, by dev CCC), as ``logreg`` does.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
from pydantic import Field
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from pipeline.heads.base import ClassWeightSettings, register_head
from pipeline.heads.probe.base import FeatureHeadSettings, Head
from pipeline.heads.probe.gram import FittedSVM, KernelSVM, rbf_from_sqdist, scale_gamma, small_problem_blas, sqdist
from pipeline.heads.probe.logreg import DEFAULT_ALPHA_GRID
from pipeline.heads.probe.progress import grid_bar

DEFAULT_SVM_C_GRID = [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0]
DEFAULT_GAMMA_GRID = [0.1, 0.3, 1.0, 3.0]  # × gamma='scale'


class ScaledSVM(FittedSVM):
    """The fitted SVC (predictions) and its calibrator (probabilities) behind the training scaler."""

    def __init__(self, svc: SVC, calibrated: Any, scaler: Any = None):
        self.svc, self.calibrated, self.scaler = svc, calibrated, scaler

    def inputs(self, X: np.ndarray) -> np.ndarray:
        return X if self.scaler is None else self.scaler.transform(X)


class SVMSettings(FeatureHeadSettings, ClassWeightSettings):
    kernel: Literal["linear", "rbf"] = "linear"
    C_grid: list[float] = Field(default_factory=lambda: list(DEFAULT_SVM_C_GRID), min_length=1)  # by dev UAR
    gamma_grid: list[float] = Field(default_factory=lambda: list(DEFAULT_GAMMA_GRID), min_length=1)  # rbf: × 'scale'
    solve: Literal["auto", "primal", "gram"] = "auto"  # auto: precomputed kernel up to gram_max_n training items
    gram_max_n: int = Field(6000, ge=1)  # an [N, N] float64 kernel: 6000 items = 288 MB
    tol: float = Field(1e-3, gt=0)  # libsvm's stopping tolerance (scikit-learn's default)
    alpha_grid: list[float] = Field(default_factory=lambda: list(DEFAULT_ALPHA_GRID), min_length=1)  # regression


@register_head(
    "svm", settings=SVMSettings, family="probe",
    description="scikit-learn SVC (linear or RBF), class-balanced, C (and gamma) by dev UAR; ridge for regression",
)
class SVMHead(Head):
    @classmethod
    def make(cls, settings: SVMSettings, task_type: str = "classification", **extra: Any):
        if task_type == "regression":
            from pipeline.heads.probe.ridge import ridge_for_regression

            return ridge_for_regression(settings)
        return cls(settings, task_type)

    def __init__(self, settings: SVMSettings, task_type: str = "classification"):
        self.settings = settings
        self.kernel = settings.kernel
        self.C_grid = [float(c) for c in settings.C_grid]
        self.gamma_grid = [float(g) for g in settings.gamma_grid] if self.kernel == "rbf" else [None]
        self.model = None
        self.selection: dict[str, Any] = {}

    @property
    def grid_points(self) -> int:
        """Fits one ``fit`` makes (its progress bar's total)."""
        return len(self.C_grid) * len(self.gamma_grid)

    def _svc(self, C: float, gamma: float | None, kernel: str) -> SVC:
        s = self.settings
        return SVC(C=C, kernel=kernel, gamma=gamma if gamma is not None else "scale", class_weight=s.class_weight,
                   tol=s.tol, random_state=s.seed)

    def _calibrate(self, svc: SVC, K: np.ndarray, y: np.ndarray) -> tuple[Any, str]:
        """scikit-learn's replacement for ``SVC(probability=True)``: Platt scaling on cross-validated
        decision values, one SVC on all training rows (``ensemble=False``)."""
        smallest = int(np.unique(y, return_counts=True)[1].min())
        if smallest >= 2:
            folds = min(5, smallest)
            cv = StratifiedKFold(folds, shuffle=True, random_state=self.settings.seed)
            calibrated = CalibratedClassifierCV(clone(svc), method="sigmoid", cv=cv, ensemble=False).fit(K, y)
            return calibrated, f"sigmoid, {folds}-fold cross-validated on train"
        # a class with one training item cannot be held out: calibrate on the fitted model's training scores
        everything = np.arange(len(y))  # one "split" whose held-out part is the whole training set
        calibrated = CalibratedClassifierCV(
            FrozenEstimator(svc), method="sigmoid", cv=[(everything, everything)], ensemble=False
        ).fit(K, y)
        return calibrated, "sigmoid on training decision values (a class has one training item)"

    def fit(self, X_train: np.ndarray, y_train, X_dev: np.ndarray, y_dev) -> SVMHead:
        s = self.settings
        gram = s.solve == "gram" or (s.solve == "auto" and len(X_train) <= s.gram_max_n)
        with small_problem_blas(len(X_train)) if gram else contextlib.nullcontext():
            return self._fit(X_train, y_train, X_dev, y_dev, gram)

    def _fit(self, X_train: np.ndarray, y_train, X_dev: np.ndarray, y_dev, gram: bool) -> SVMHead:
        s = self.settings
        scaler = StandardScaler().fit(X_train) if s.standardize else None
        Z = np.asarray(scaler.transform(X_train) if scaler is not None else X_train, np.float64)
        Z_dev = np.asarray(scaler.transform(X_dev) if scaler is not None else X_dev, np.float64)
        y_train, y_dev = np.asarray(y_train), np.asarray(y_dev)
        unit = scale_gamma(Z)
        if gram:  # the cross products every grid value shares
            G, G_dev = Z @ Z.T, Z_dev @ Z.T
            if self.kernel == "rbf":
                D, D_dev = sqdist(Z, Z, G), sqdist(Z_dev, Z, G_dev)

        def inputs(gamma: float | None) -> tuple[np.ndarray, np.ndarray]:
            if not gram:
                return Z, Z_dev
            if self.kernel == "linear":
                return G, G_dev
            return rbf_from_sqdist(D, gamma), rbf_from_sqdist(D_dev, gamma)

        kernel = "precomputed" if gram else self.kernel
        scores: dict[tuple[float, float | None], float] = {}
        fitted: dict[tuple[float, float | None], SVC] = {}
        desc = f"{self.kind}: C" if self.kernel == "linear" else f"{self.kind}: C × gamma"
        with grid_bar(desc, self.grid_points) as step:
            for factor in self.gamma_grid:
                gamma = None if factor is None else factor * unit
                K, K_dev = inputs(gamma)
                for C in self.C_grid:
                    svc = self._svc(C, gamma, kernel).fit(K, y_train)
                    scores[(C, factor)] = float(balanced_accuracy_score(y_dev, svc.predict(K_dev)))
                    fitted[(C, factor)] = svc
                    step()
        best = max(scores, key=lambda k: (scores[k], -k[0], -(k[1] or 0.0)))
        C, factor = best
        gamma = None if factor is None else factor * unit
        svc = fitted[best]
        calibrated, how = self._calibrate(svc, inputs(gamma)[0], y_train)
        if gram:
            self.model = KernelSVM(svc, calibrated, Z, self.kernel, gamma, scaler)
        else:
            self.model = ScaledSVM(svc, calibrated, scaler)
        key = (lambda c, f: f"C={c}") if self.kernel == "linear" else (lambda c, f: f"C={c},gamma={f}x")
        self.selection = {
            "param": "C" if self.kernel == "linear" else "C,gamma", "kernel": self.kernel, "chosen": C,
            "dev_uar": {key(c, f): v for (c, f), v in scores.items()}, "solve": "gram" if gram else "primal",
            "n_support": int(svc.n_support_.sum()), "probability": how,
        }
        if self.kernel == "rbf":
            self.selection.update(gamma_factor=factor, gamma=gamma, gamma_scale=unit)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(X)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.model.decision_function(X)

    @property
    def classes_(self) -> list[str]:
        return list(self.model.classes_)

    def save(self, path: str | Path) -> None:
        joblib.dump(self.model, path)
