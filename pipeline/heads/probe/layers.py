"""``layer: best`` for heads that do not choose layers themselves: fit on every layer, keep the best on dev.

The head is trained on each layer's training features and scored on that layer's dev features
(UAR for classification, CCC for regression); the winning layer's model is kept. Test data never
enter. A head class may provide ``layer_scores(X_train, y_train, X_dev, y_dev)`` (features
[N, L, D]) that scores all layers at once — the logistic-regression head does this with a batched
solver — in which case only the winning layer is refitted with the head itself, with the
hyper-parameters the sweep chose there (``refit``: params overrides per layer). Ties go to the
lower layer (cheaper to compute when a model is cut after it).

Features may be a :class:`pipeline.heads.probe.stream.LayerView` (a store's layers read on demand)
instead of an array: the reference path then reads one layer at a time, and ``layer_scores`` is
called on consecutive blocks of layers (:func:`pipeline.heads.probe.stream.block_layers`) whose
results are merged (:func:`pipeline.heads.probe.stream.merge_details`: per-layer values are lists,
counts are ints), so the sweep's memory does not grow with the number of layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import joblib
import numpy as np
from sklearn.metrics import balanced_accuracy_score

from pipeline.core.metrics import ccc
from pipeline.heads.probe.progress import grid_bar
from pipeline.heads.probe.stream import block_layers, is_view, merge_details


def dev_score(head, X_dev: np.ndarray, y_dev: np.ndarray, task_type: str) -> float:
    """The dev figure a layer is chosen by: UAR (classification) or CCC (regression); NaN → -inf."""
    pred = head.predict(X_dev)
    score = ccc(y_dev, pred) if task_type == "regression" else balanced_accuracy_score(y_dev, pred)
    return float(score) if np.isfinite(score) else float("-inf")


def best_index(scores) -> int:
    """Index of the highest score; the lowest index among ties."""
    scores = np.nan_to_num(np.asarray(scores, float), nan=-np.inf)
    return int(np.flatnonzero(scores == scores.max())[0])


class BestLayer:
    """Wraps a head: ``fit`` on [N, L, D] picks the layer by dev score, then behaves as the inner head."""

    def __init__(self, make: Callable[..., Any], task_type: str):
        self.make = make  # make(**params_overrides) -> a fresh head
        self.task_type = task_type
        self.head = make()
        self.kind = self.head.kind
        self.layer: int | None = None
        self.layer_info: dict[str, Any] = {}

    def fit(self, X_train: np.ndarray, y_train, X_dev: np.ndarray, y_dev) -> "BestLayer":
        metric = "ccc" if self.task_type == "regression" else "uar"
        # (``sweeps_layers`` False: the head's layer_scores would decline; say so before any layer is read)
        sweep = getattr(self.head, "layer_scores", None) if getattr(self.head, "sweeps_layers", True) else None
        detail = None
        if sweep is not None and is_view(X_train):
            n_rows, n_layers, dim = X_train.source.n_rows, X_train.shape[1], X_train.shape[2]
            per = block_layers(n_rows, dim, n_layers)
            parts = []
            for a in range(0, n_layers, per):
                b = min(a + per, n_layers)
                train, dev = X_train.layers(a, b), X_dev.layers(a, b)
                X_train.source.release()  # (the block of every row: not needed while the solver runs)
                part = sweep(train, y_train, dev, y_dev)
                del train, dev
                if part is None:  # the head sweeps with ordinary fits after all
                    parts = []
                    break
                parts.append(part)
            detail = merge_details(parts) if parts else None
        elif sweep is not None:
            detail = sweep(X_train, y_train, X_dev, y_dev)
        best_head = None
        if detail is not None:
            scores = list(detail.pop("scores"))
        else:  # the reference path: one ordinary fit per layer
            scores = []
            n_layers, points = X_train.shape[1], getattr(self.head, "grid_points", None)
            # one bar over layers × the head's grid points (the head's own loop advances it), else layers
            desc, total = (f"{self.kind}: layers × grid", n_layers * points) if points else (
                f"{self.kind}: layers", n_layers)
            with grid_bar(desc, total, unit="fit" if points else "layer", per_point=bool(points)) as step:
                for layer in range(n_layers):
                    head = self.make().fit(X_train[:, layer], y_train, X_dev[:, layer], y_dev)
                    scores.append(dev_score(head, X_dev[:, layer], y_dev, self.task_type))
                    if best_head is None or scores[-1] > max(scores[:-1]):
                        best_head = head
                    if not points:
                        step()
        self.layer = best_index(scores)
        if best_head is None:
            refit = (detail or {}).pop("refit", None)
            overrides = refit[self.layer] if refit else {}
            best_head = self.make(**overrides).fit(X_train[:, self.layer], y_train, X_dev[:, self.layer], y_dev)
        self.head = best_head
        self.layer_info = {"mode": "best", "metric": metric, "chosen": self.layer, "dev_scores": scores}
        self.layer_info.update(detail or {})
        return self

    @property
    def selection(self) -> dict[str, Any]:
        return self.head.selection

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.head.predict(X[:, self.layer])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.head.predict_proba(X[:, self.layer])

    @property
    def classes_(self) -> list:
        return self.head.classes_

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("make")  # a closure over params: not needed once fitted, and not picklable
        return state

    def save(self, path: str | Path) -> None:
        """The whole wrapper: ``joblib.load(path).predict_proba(X)`` takes [N, L, D] features."""
        joblib.dump(self, path)
