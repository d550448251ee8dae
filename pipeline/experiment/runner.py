"""The experiment runner: one loop over tasks and folds, shared by every head family.

Probes, fusion, fine-tuning and the Audio-LLM differ only in how they learn and predict; that part
is a :class:`Learner` (fit on a fold's train/dev rows, predict a split). Everything else lives here,
once: which rows carry a label for each task, the protocol's folds (:mod:`.protocol`), scoring each
split per seed and pooling the out-of-fold predictions (:mod:`.scoring`), the prediction tables,
the per-fold, seed and fold summaries and the experiment JSON (:mod:`.results`). Test rows are only
ever passed to :meth:`Learner.predict`; nothing a learner selects can see them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.core.io import atomic_dir
from pipeline.core.manifest import Task
from pipeline.core.metrics import headline
from pipeline.experiment.protocol import Fold, plan_folds
from pipeline.experiment.results import write_result
from pipeline.experiment.scoring import (
    MetricWarnings,
    average_metrics,
    evaluate,
    fold_summary,
    score_table,
    seed_summary,
)


@dataclass
class Output:
    """One model's predictions for the rows of a split (one per seed for multi-seed heads)."""

    predicted: np.ndarray
    proba: np.ndarray | None = None  # [n, classes] (classification)
    classes: Sequence[str] | None = None  # column order of ``proba``
    seed: int | None = None  # set for multi-seed heads: the table gets a ``seed`` column
    columns: dict[str, Sequence[Any]] = field(default_factory=dict)  # extra prediction columns (raw answers, ...)


@dataclass
class TaskData:
    """A task's labelled rows (indexed by id, in experiment order), their targets and planned folds."""

    task: Task
    rows: pd.DataFrame
    keep: np.ndarray  # boolean mask over the experiment's rows: the ones labelled for this task
    y: np.ndarray
    folds: list[Fold] = field(default_factory=list)  # every fold the protocol plans (maybe more than run)

    @property
    def regression(self) -> bool:
        return self.task.type == "regression"

    @property
    def speakers(self) -> np.ndarray:
        return self.rows["speaker"].to_numpy()


class Learner:
    """How a head family learns and predicts. ``fit`` sees only ``fold.train`` and ``fold.dev``."""

    # Order of the (task, fold) runs: task by task (default), or fold by fold — every task of a fold
    # before the next fold, for a learner that loads one model per fold (the Audio-LLM's evaluation).
    fold_major = False

    def fit(self, data: TaskData, fold: Fold, model_path: Path | None) -> dict[str, Any]:  # pragma: no cover
        """Train (selecting on dev), save under ``model_path`` (+ the learner's suffix; None when the
        experiment writes no models); return the fold record's fields (``head``: the head kind,
        ``selection``: what dev chose and why, ...)."""
        raise NotImplementedError

    def predict(self, data: TaskData, fold: Fold, mask: np.ndarray) -> list[Output]:  # pragma: no cover
        """Predictions of the fold's model for the rows ``mask`` selects."""
        raise NotImplementedError

    def split_metrics(self, data: TaskData, table: pd.DataFrame) -> dict[str, Any]:
        """Extra figures for a split's metrics (e.g. the Audio-LLM's unparsed answers)."""
        return {}

    def finish_task(self, data: TaskData, entry: dict[str, Any], table: pd.DataFrame, out_dir: Path) -> None:
        """Add task-level fields to the experiment entry (``layer``, ``norm``, ...); may write files."""
        entry.update(layer="", norm="global")


Planner = Callable[[Task, pd.DataFrame, np.ndarray], list[Fold]]


def labelled(rows: pd.DataFrame, task: Task) -> np.ndarray:
    """Mask of rows that carry a label for ``task`` (multi-task corpora leave some empty)."""
    labels = rows[task.name]
    return (labels.notna() & (labels.astype(str) != "")).to_numpy()


def task_data(rows: pd.DataFrame, task: Task) -> TaskData:
    keep = labelled(rows, task)
    sub = rows[keep]
    y = sub[task.name].to_numpy(float if task.type == "regression" else object)
    return TaskData(task, sub, keep, y)


def run_experiment(
    rows: pd.DataFrame,
    tasks: Sequence[Task],
    learner: Learner,
    result: dict[str, Any],
    *,
    metrics_path: str | Path,
    predictions_dir: str | Path,
    model_dir: str | Path | None = None,
    seed: int = 0,
    planner: Planner | None = None,
    max_folds: int | None = None,
) -> dict[str, Any]:
    """Run ``learner`` on every task and fold; write predictions, models and the experiment JSON.

    ``rows`` are the manifest rows of the items that have inputs (indexed by id). ``planner`` plans
    a task's folds (default: :func:`~pipeline.experiment.protocol.plan_folds` with ``seed``);
    ``max_folds`` runs only the first folds of a cross-validation protocol (fine-tuning's
    ``folds: first``). ``result`` holds ``corpus``, ``backbone``, ``head`` and any extras; the
    runner adds ``tasks`` and writes it to ``metrics_path`` (and its headline file:
    :func:`~pipeline.experiment.results.write_result`).
    """
    plan = planner or (lambda task, r, y: plan_folds(r, y, seed, task.type == "regression"))
    caught = MetricWarnings()
    tasks_out: dict[str, Any] = {}
    datas = []
    for task in tasks:
        data = task_data(rows, task)
        data.folds = plan(task, data.rows, data.y)
        datas.append(data)
    runs = [(d, i) for d in datas for i in range(len(d.folds[:max_folds] if max_folds else d.folds))]
    if learner.fold_major:
        runs.sort(key=lambda run: run[1])  # stable: tasks keep their order within a fold
    done: dict[str, list] = {d.task.name: [] for d in datas}
    with contextlib.ExitStack() as stack:  # a failure anywhere leaves none of the outputs behind
        mtmp = stack.enter_context(atomic_dir(model_dir)) if model_dir is not None else None
        ptmp = stack.enter_context(atomic_dir(predictions_dir))
        bar = tqdm(runs, desc=result["head"], unit="fold", disable=len(runs) == 1, leave=False)
        for data, i in bar:
            done[data.task.name].append(_run_fold(data, data.folds[i], learner, mtmp, caught))
        for data in datas:
            entry, table = _task_entry(data, done[data.task.name], learner, caught)
            entry["n_unlabelled"] = int((~data.keep).sum())
            learner.finish_task(data, entry, table, ptmp)
            table.to_csv(ptmp / f"{data.task.name}.csv", index=False)
            tasks_out[data.task.name] = entry
    if caught.summary():  # once per stage, naming the experiment (a `dvc repro` log interleaves stages)
        where = "/".join(str(result[k]) for k in ("corpus", "backbone", "head") if result.get(k))
        print(f"{where}: {caught.summary()}", flush=True)
    result["tasks"] = tasks_out
    write_result(result, metrics_path)  # the detailed JSON and its headline file
    return result


def _run_fold(data: TaskData, fold: Fold, learner: Learner, model_dir: Path | None,
              caught: MetricWarnings) -> tuple[dict[str, Any], list[pd.DataFrame]]:
    """Fit on one fold of one task and predict its dev and test rows: (fold record, prediction frames)."""
    task, y, speakers = data.task, data.y, data.speakers
    name = task.name if len(data.folds) == 1 else f"{task.name}.{fold.name}"
    record: dict[str, Any] = {"fold": fold.name, "dev_note": fold.dev_note}
    with caught("dev selection"):  # the heads score their C / layer grid on dev: counted, not printed
        record.update(learner.fit(data, fold, None if model_dir is None else model_dir / name))
    frames = []
    for split, mask in (("dev", fold.dev), ("test", fold.test)):
        if not mask.any():
            continue
        per_seed, split_frames = [], []
        for out in learner.predict(data, fold, mask):
            with caught():
                metrics, frame = evaluate(task, y[mask], out.predicted, out.proba, out.classes, speakers[mask])
            per_seed.append(headline(metrics))
            frame.insert(0, "id", data.rows.index[mask])
            frame.insert(1, "split", split)
            frame.insert(2, "fold", fold.name)
            if "group" in data.rows.columns:  # the independence unit the intervals resample (scoring.unit_column)
                frame["group"] = data.rows["group"].to_numpy()[mask]
            if out.seed is not None:
                frame.insert(3, "seed", out.seed)
            for column, values in out.columns.items():
                frame[column] = list(values)
            if out.proba is not None:
                for j, c in enumerate(out.classes):
                    frame[f"p_{c}"] = out.proba[:, j]
            split_frames.append(frame)
        record[split] = {**average_metrics(per_seed), **learner.split_metrics(data, pd.concat(split_frames))}
        if len(per_seed) > 1:
            record.setdefault("seeds", {})[split] = per_seed
        frames += split_frames
    return record, frames


def _task_entry(data: TaskData, runs: list[tuple[dict[str, Any], list[pd.DataFrame]]], learner: Learner,
                caught: MetricWarnings) -> tuple[dict[str, Any], pd.DataFrame]:
    """A task's experiment entry from its fold runs: per-fold records, pooled scores, summaries."""
    task = data.task
    per_fold = [record for record, _ in runs]
    table = pd.concat([frame for _, frames in runs for frame in frames], ignore_index=True)
    entry: dict[str, Any] = {"type": task.type, "unit": task.unit, "classes": task.classes, "positive": task.positive,
                             "folds": per_fold}
    for split in ("dev", "test"):
        part = table[table["split"] == split]
        if part.empty:
            continue
        groups = [g for _, g in part.groupby("seed", sort=True)] if "seed" in part else [part]
        with caught():
            per_seed = [score_table(task, g) for g in groups]
        entry[split] = {**average_metrics(per_seed), **learner.split_metrics(data, part)}
        if len(per_seed) > 1:
            entry.setdefault("seed_summary", {})[split] = seed_summary(per_seed)
    if len(per_fold) > 1:
        entry["fold_summary"] = fold_summary(per_fold)
    return entry, table
