"""Classification metrics, all from scikit-learn, in the shape the leaderboard expects."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, recall_score

HEADLINE = ("uar", "war", "macro_f1", "weighted_f1", "n")


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict:
    """UAR (balanced accuracy), WAR (accuracy), macro/weighted F1, per-class recall, confusion."""
    y_true, y_pred, classes = list(y_true), list(y_pred), list(classes)
    present = [c for c in classes if c in set(y_true)]
    recall = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    return {
        "n": len(y_true),
        # UAR over the classes that occur in this split (sklearn's balanced accuracy does the same).
        "uar": float(balanced_accuracy_score(y_true, y_pred)) if y_true else float("nan"),
        "war": float(accuracy_score(y_true, y_pred)) if y_true else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)),
        "per_class_recall": {c: (float(r) if c in present else None) for c, r in zip(classes, recall)},
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        "classes": classes,
    }


def headline(metrics: dict) -> dict:
    return {k: metrics[k] for k in HEADLINE}


def mean_std(values: Sequence[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=0))}
