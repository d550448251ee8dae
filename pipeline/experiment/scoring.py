"""Scoring: one split's metrics (per utterance or per speaker), and their summaries over seeds and folds.

Metrics themselves come from :mod:`pipeline.core.metrics` (scikit-learn). Tasks labelled per speaker
(``unit: speaker``, e.g. EATD depression) are scored per speaker, on predictions averaged over that
speaker's utterances (mean value for regression, mean class probability for classification).
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from typing import Any, Iterator

import numpy as np
import pandas as pd

from pipeline.core.manifest import Task
from pipeline.core.metrics import HEADLINE, classification_metrics, mean_std, regression_metrics


def evaluate(task: Task, y_true, y_pred, proba, classes, speakers) -> tuple[dict, pd.DataFrame]:
    """Metrics (per utterance, or per speaker for speaker-level tasks) and the prediction table."""
    frame = pd.DataFrame({"speaker": speakers, "actual": y_true, "predicted": y_pred})
    if task.unit == "speaker":
        if task.type == "regression":
            agg = frame.groupby("speaker").agg(actual=("actual", "first"), predicted=("predicted", "mean"))
        else:
            p = pd.DataFrame(proba, columns=classes).groupby(np.asarray(speakers)).mean()
            agg = pd.DataFrame({"actual": frame.groupby("speaker")["actual"].first()})
            agg["predicted"] = p.idxmax(axis=1).reindex(agg.index)
            proba = p.reindex(agg.index).to_numpy()
        y_true, y_pred = agg["actual"].to_numpy(), agg["predicted"].to_numpy()
    if task.type == "regression":
        return regression_metrics(y_true, y_pred), frame
    scores = None
    if task.positive is not None and proba is not None and task.positive in list(classes):
        scores = np.asarray(proba)[:, list(classes).index(task.positive)]
    return classification_metrics(y_true, y_pred, task.classes, positive=task.positive, scores=scores), frame


def per_class_order(table: pd.DataFrame) -> list[str]:
    """Class names in the order of a prediction table's ``p_<class>`` columns."""
    return [c[2:] for c in table.columns if c.startswith("p_")]


def score_table(task: Task, table: pd.DataFrame) -> dict[str, Any]:
    """Full metrics of a prediction table (one fold or pooled): its ``predicted`` and ``p_*`` columns."""
    regression = task.type == "regression"
    classes = None if regression else per_class_order(table)
    proba = None if regression else table[[f"p_{c}" for c in classes]].to_numpy()
    actual = table["actual"].to_numpy(float if regression else object)
    return evaluate(task, actual, table["predicted"].to_numpy(), proba, classes, table["speaker"].to_numpy())[0]


def average_metrics(per_seed: list[dict]) -> dict:
    """Metrics averaged over seeds: scores and per-class recalls are means, confusions are summed.

    The mean of per-seed UAR equals the mean of per-seed per-class recalls averaged over classes,
    so the averaged entry stays self-consistent; the summed confusion matches the predictions table,
    which holds every seed's rows. A single entry is returned unchanged.
    """
    if len(per_seed) == 1:
        return per_seed[0]
    first = per_seed[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        values = [m[key] for m in per_seed]
        if key == "confusion":
            out[key] = np.sum(values, axis=0).tolist()
        elif isinstance(value, dict):
            out[key] = average_metrics(values)
        elif isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool) and key != "n"):
            out[key] = mean_std(values)["mean"]
        else:  # n, classes, None (metrics that do not apply)
            out[key] = value
    return out


def seed_summary(per_seed: list[dict]) -> dict[str, Any]:
    """Per headline metric: mean, std and every seed's value."""
    values = {k: [m[k] for m in per_seed] for k in HEADLINE if k != "n"}
    return {k: {**mean_std(v), "values": v} for k, v in values.items()}


def fold_summary(per_fold: list[dict]) -> dict[str, Any]:
    """Per split and headline metric: mean and std over the folds."""
    return {
        split: {k: mean_std([f[split][k] for f in per_fold if split in f]) for k in HEADLINE if k != "n"}
        for split in ("dev", "test")
    }


class MetricWarnings:
    """Collects scikit-learn's metric warnings (an absent class, an undefined score) so that a stage
    prints one summary line instead of a warning block per fold and split."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        """Count the UserWarnings raised inside the block; other warnings pass through."""
        with warnings.catch_warnings(record=True) as log:
            warnings.simplefilter("always", UserWarning)
            try:
                yield
            finally:
                caught = list(log)
        for w in caught:
            if issubclass(w.category, UserWarning):
                self.counts[str(w.message).split(". ")[0][:120]] += 1
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def summary(self) -> str | None:
        if not self.counts:
            return None
        parts = [f"{n}× {msg}" for msg, n in self.counts.most_common(3)]
        return "metric warnings (scikit-learn): " + "; ".join(parts)

