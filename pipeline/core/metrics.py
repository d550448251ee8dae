"""Metrics, from scikit-learn and scipy, in the shape the leaderboard expects."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    precision_score,
    recall_score,
    roc_auc_score,
)

HEADLINE = ("uar", "war", "macro_f1", "weighted_f1", "ccc", "n")


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    classes: Sequence[str],
    *,
    positive: str | None = None,
    scores: np.ndarray | None = None,
) -> dict:
    """UAR (balanced accuracy), WAR (accuracy), macro/weighted F1, per-class recall, confusion.

    For binary tasks with a ``positive`` class, also that class's F1/precision/recall and, given
    ``scores`` (probability of the positive class), AUROC.
    """
    y_true, y_pred, classes = list(y_true), list(y_pred), list(classes)
    present = [c for c in classes if c in set(y_true)]
    recall = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    out = {
        "n": len(y_true),
        # UAR over the classes that occur in this split (sklearn's balanced accuracy does the same).
        "uar": float(balanced_accuracy_score(y_true, y_pred)) if y_true else float("nan"),
        "war": float(accuracy_score(y_true, y_pred)) if y_true else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)),
        "ccc": None,
        "per_class_recall": {c: (float(r) if c in present else None) for c, r in zip(classes, recall)},
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        "classes": classes,
    }
    if positive is not None:
        kw = {"pos_label": positive, "average": "binary", "zero_division": 0}
        out[f"{positive}_f1"] = float(f1_score(y_true, y_pred, **kw))
        out[f"{positive}_precision"] = float(precision_score(y_true, y_pred, **kw))
        out[f"{positive}_recall"] = float(recall_score(y_true, y_pred, **kw))
        if scores is not None and len(present) == 2:
            out["auroc"] = float(roc_auc_score(np.asarray(y_true) == positive, scores))
    return out


def ccc(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Lin's concordance correlation coefficient."""
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    if len(t) < 2:
        return float("nan")
    cov = np.mean((t - t.mean()) * (p - p.mean()))
    denom = t.var() + p.var() + (t.mean() - p.mean()) ** 2
    return float(2 * cov / denom) if denom > 0 else float("nan")


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict:
    """MAE, RMSE, Pearson r and CCC (headline classification fields are None)."""
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    pearson = float(np.corrcoef(t, p)[0, 1]) if len(t) > 1 and t.std() > 0 and p.std() > 0 else float("nan")
    return {
        "n": len(t),
        "uar": None,
        "war": None,
        "macro_f1": None,
        "weighted_f1": None,
        "ccc": ccc(t, p),
        "mae": float(mean_absolute_error(t, p)) if len(t) else float("nan"),
        "rmse": float(np.sqrt(np.mean((t - p) ** 2))) if len(t) else float("nan"),
        "pearson": pearson,
    }


def headline(metrics: dict) -> dict:
    return {k: metrics.get(k) for k in HEADLINE}


def mean_std(values: Sequence[float]) -> dict:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return {"mean": None, "std": None}
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=0))}
