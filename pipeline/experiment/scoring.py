"""Scoring: one split's metrics (per utterance or per speaker), and their summaries over seeds and folds.

Metrics themselves come from :mod:`pipeline.core.metrics` (scikit-learn). Tasks labelled per speaker
(``unit: speaker``, e.g. EATD depression) are scored per speaker, on predictions averaged over that
speaker's utterances (mean value for regression, mean class probability for classification).

Pooled splits also get 95 % cluster-bootstrap intervals of every headline metric and per-class
recall (``ci``; :mod:`.stats`), resampling the independence unit: the prediction table's ``group``
column (session, dialogue, conversation) where it has one, else ``speaker``; a speaker-level task's
items are its speakers.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.manifest import Task
from pipeline.core.metrics import HEADLINE, classification_metrics, mean_std, regression_metrics
from pipeline.experiment.stats import (
    Clusters,
    UncertaintySettings,
    active,
    classification_resamples,
    interval,
    regression_resamples,
)

UNIT_COLUMNS = ("group", "speaker")  # the independence unit: the manifest's group column where it has one


def unit_column(table: pd.DataFrame) -> str:
    """The column of a prediction table that names each row's independence unit (``group``, else ``speaker``)."""
    return next(c for c in UNIT_COLUMNS if c in table.columns)


@dataclass
class Items:
    """What a split is scored on: one entry per utterance, or per speaker for speaker-level tasks."""

    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None
    classes: Sequence[str] | None  # column order of ``proba``
    units: np.ndarray  # each item's independence unit (the clusters of the bootstrap)
    ids: np.ndarray | None = None  # item ids (utterance ids, or speakers for speaker-level tasks)


def scored_items(task: Task, y_true, y_pred, proba, classes, speakers, units=None, ids=None) -> Items:
    """The items a split is scored on; speaker-level tasks average each speaker's predictions first
    (mean value for regression, mean class probability for classification)."""
    units = np.asarray(speakers if units is None else units)
    if task.unit != "speaker":
        return Items(np.asarray(y_true), np.asarray(y_pred), proba, classes, units, None if ids is None else np.asarray(ids))
    frame = pd.DataFrame({"speaker": speakers, "actual": y_true, "predicted": y_pred, "unit": units})
    by = frame.groupby("speaker")
    agg = pd.DataFrame({"actual": by["actual"].first(), "unit": by["unit"].first()})
    if task.type == "regression":
        agg["predicted"] = by["predicted"].mean()
    else:
        p = pd.DataFrame(proba, columns=classes).groupby(np.asarray(speakers)).mean()
        agg["predicted"] = p.idxmax(axis=1).reindex(agg.index)
        proba = p.reindex(agg.index).to_numpy()
    return Items(agg["actual"].to_numpy(), agg["predicted"].to_numpy(), proba, classes, agg["unit"].to_numpy(),
                 agg.index.to_numpy())


def _metrics(task: Task, items: Items) -> dict:
    if task.type == "regression":
        return regression_metrics(items.y_true, items.y_pred)
    return classification_metrics(items.y_true, items.y_pred, task.classes, positive=task.positive,
                                  scores=_positive_scores(task, items))


def _positive_scores(task: Task, items: Items) -> np.ndarray | None:
    if task.positive is None or items.proba is None or task.positive not in list(items.classes):
        return None
    return np.asarray(items.proba)[:, list(items.classes).index(task.positive)]


def evaluate(task: Task, y_true, y_pred, proba, classes, speakers) -> tuple[dict, pd.DataFrame]:
    """Metrics (per utterance, or per speaker for speaker-level tasks) and the prediction table."""
    frame = pd.DataFrame({"speaker": speakers, "actual": y_true, "predicted": y_pred})
    return _metrics(task, scored_items(task, y_true, y_pred, proba, classes, speakers)), frame


def per_class_order(table: pd.DataFrame) -> list[str]:
    """Class names in the order of a prediction table's ``p_<class>`` columns."""
    return [c[2:] for c in table.columns if c.startswith("p_")]


def table_items(task: Task, table: pd.DataFrame) -> Items:
    """The scored items of a prediction table (one fold or pooled, one seed): its ``actual``,
    ``predicted``, ``p_*`` columns and its unit column (see :func:`unit_column`)."""
    regression = task.type == "regression"
    classes = None if regression else per_class_order(table)
    proba = None if regression else table[[f"p_{c}" for c in classes]].to_numpy()
    actual = table["actual"].to_numpy(float if regression else object)
    ids = table["id"].to_numpy() if "id" in table.columns else None
    return scored_items(task, actual, table["predicted"].to_numpy(), proba, classes, table["speaker"].to_numpy(),
                        table[unit_column(table)].to_numpy(), ids)


class Scores(dict):
    """A split's metrics — a plain dict, as written to JSON — that also carries its bootstrap resamples
    (an attribute, never serialised), so that :func:`average_metrics` can give the interval of the
    mean over seeds: every seed is scored on the same clusters, hence on the same resamples."""

    resamples: dict[str, np.ndarray] | None = None
    clusters: np.ndarray | None = None


def score_table(task: Task, table: pd.DataFrame, settings: UncertaintySettings | None = None) -> dict[str, Any]:
    """Full metrics of a prediction table (one fold or pooled, one seed), with cluster-bootstrap
    intervals of every headline metric and per-class recall under ``ci`` (see :mod:`.stats`);
    ``settings`` default to the stage's ``evaluation`` params (:func:`.stats.configure`)."""
    settings = settings or active()
    items = table_items(task, table)
    out = Scores(_metrics(task, items))
    if settings.resamples and len(items.y_true):
        unit = unit_column(table)
        resamples, clusters = _resamples(task, items, settings)
        out.resamples, out.clusters = resamples, clusters.names
        out["ci"] = _ci_record(resamples, settings, unit, clusters.n, list(task.classes or []))
    return out


def _resamples(task: Task, items: Items, settings: UncertaintySettings) -> tuple[dict[str, np.ndarray], Clusters]:
    if task.type == "regression":
        return regression_resamples(items.y_true.astype(float), items.y_pred.astype(float), items.units,
                                    settings=settings)
    positive = task.positive if task.positive in task.classes else None
    scores = _positive_scores(task, items)
    present = set(items.y_true)
    res, clusters = classification_resamples(
        items.y_true, items.y_pred, task.classes, items.units, positive=positive,
        scores=scores if len(present) == 2 else None, settings=settings)
    named = {k: v for k, v in res.items() if not k.startswith("positive_")}
    if positive is not None:  # the names classification_metrics gives them
        named.update({f"{positive}_{k.removeprefix('positive_')}": v for k, v in res.items() if k.startswith("positive_")})
    return named, clusters


def _ci_record(resamples: dict[str, np.ndarray], settings: UncertaintySettings, unit: str, clusters: int,
               classes: list[str], seeds: int = 1) -> dict[str, Any]:
    intervals = {k: interval(v, settings.level) for k, v in resamples.items() if k != "per_class_recall"}
    record: dict[str, Any] = {
        "method": "cluster bootstrap, percentile" + (f"; mean over {seeds} seeds per resample" if seeds > 1 else ""),
        "level": settings.level, "resamples": settings.resamples, "seed": settings.seed,
        "unit": unit, "clusters": clusters, "intervals": intervals,
    }
    if "per_class_recall" in resamples:
        recall = resamples["per_class_recall"]
        record["per_class_recall"] = {c: interval(recall[:, i], settings.level) for i, c in enumerate(classes)}
    return record


def average_metrics(per_seed: list[dict]) -> dict:
    """Metrics averaged over seeds: scores and per-class recalls are means, confusions are summed.

    The mean of per-seed UAR equals the mean of per-seed per-class recalls averaged over classes,
    so the averaged entry stays self-consistent; the summed confusion matches the predictions table,
    which holds every seed's rows. Intervals (``ci``) are those of the mean over seeds: each
    resample's metric is averaged over the seeds (the seeds share their resamples). A single entry
    is returned unchanged.
    """
    if len(per_seed) == 1:
        return per_seed[0]
    first = per_seed[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        values = [m[key] for m in per_seed]
        if key == "ci":
            out[key] = _seed_mean_ci(per_seed)
        elif key == "confusion":
            out[key] = np.sum(values, axis=0).tolist()
        elif isinstance(value, dict):
            out[key] = average_metrics(values)
        elif isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool) and key != "n"):
            out[key] = mean_std(values)["mean"]
        else:  # n, classes, None (metrics that do not apply)
            out[key] = value
    return out


def _seed_mean_ci(per_seed: list[dict]) -> dict[str, Any] | None:
    first = per_seed[0]
    same = all(
        getattr(m, "resamples", None) is not None and np.array_equal(m.clusters, first.clusters) for m in per_seed
    ) and all("ci" in m for m in per_seed)
    if not same:  # not scored on the same clusters: no resample-wise mean exists
        return None
    ci = first["ci"]
    mean = {k: np.mean([m.resamples[k] for m in per_seed], axis=0) for k in first.resamples}
    settings = UncertaintySettings(resamples=ci["resamples"], level=ci["level"], seed=ci["seed"])
    classes = list(ci.get("per_class_recall", {}))
    return _ci_record(mean, settings, ci["unit"], ci["clusters"], classes, seeds=len(per_seed))


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
    """Collects scikit-learn's warnings (an absent class, an undefined score, a solver that did not
    converge) so that a stage prints one summary line instead of a warning block per fold, split,
    layer and grid value: which warning, how many times, and where (``dev selection``: the heads'
    scoring of their C / layer grid on dev inside ``fit``; ``scoring``: the runner's own scoring)."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()

    @contextlib.contextmanager
    def __call__(self, where: str = "scoring") -> Iterator[None]:
        """Count the UserWarnings scikit-learn raises inside the block; other warnings pass through."""
        with warnings.catch_warnings(record=True) as log:
            warnings.simplefilter("always", UserWarning)
            try:
                yield
            finally:
                caught = list(log)
        for w in caught:
            if issubclass(w.category, UserWarning) and _from_sklearn(w.filename):
                self.counts[(str(w.message).split(". ")[0][:120], where)] += 1
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def summary(self) -> str | None:
        """One line: ``warnings (scikit-learn, not shown one by one): 18× y_pred contains ... [dev selection]``."""
        if not self.counts:
            return None
        by_message: dict[str, Counter] = {}
        for (msg, where), n in self.counts.items():
            by_message.setdefault(msg, Counter())[where] += n
        ranked = sorted(by_message.items(), key=lambda kv: -sum(kv[1].values()))
        parts = [
            f"{sum(wheres.values())}× {msg} [{', '.join(f'{w}: {n}' for w, n in wheres.most_common())}]"
            for msg, wheres in ranked[:3]
        ]
        if len(ranked) > 3:
            parts.append(f"{len(ranked) - 3} other kind(s), {sum(sum(w.values()) for _, w in ranked[3:])}×")
        return "warnings (scikit-learn, not shown one by one): " + "; ".join(parts)


def _from_sklearn(filename: str) -> bool:
    return f"{os.sep}sklearn{os.sep}" in filename

