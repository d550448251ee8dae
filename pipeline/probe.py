"""Probing: train a head per task on one (corpus, backbone) feature store, evaluate dev and test.

Protocols come from the manifest: an official train/dev/test split is one fold; a ``fold`` column
means cross-validation — each fold is the test set once, dev is the next fold (or, with only two
folds, a stratified 20 % of the training utterances), and the headline row pools the out-of-fold
predictions, with per-fold figures and mean ± std kept in the experiment JSON. Model selection only
ever sees train and dev. Tasks labelled per speaker (``unit: speaker``) are scored per speaker, on
predictions averaged over that speaker's utterances.

Layered stores ([N, L, D]): ``layer: last`` or an index probes one layer; ``best`` lets the head
fit every layer and keep the best on dev, ``weighted`` learns layer weights with a torch head (see
:func:`pipeline.heads.build_head`). The dev score per layer goes to the experiment JSON and to
``<task>_layers.csv`` beside the predictions. Multi-seed heads (``seeds: [...]``) are scored per
seed; the headline is the mean over seeds (``seed_summary`` keeps mean, std and every value), and
the predictions table has one row per utterance and seed (a ``seed`` column).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from pipeline.heads import LAYER_MODES, build_head
from pipeline.io import atomic_dir, write_json
from pipeline.manifest import Corpus, Task
from pipeline.metrics import HEADLINE, classification_metrics, headline, mean_std, regression_metrics
from pipeline.store import FeatureStore


class ProbeError(RuntimeError):
    pass


@dataclass
class Fold:
    name: str
    train: np.ndarray  # boolean masks over the task's rows
    dev: np.ndarray
    test: np.ndarray
    dev_note: str = ""


def select_layer(store: FeatureStore, layer: Any) -> tuple[int | None, str]:
    """Which layer of a layered store to probe (``last`` or an index); (None, '') otherwise.

    ``best`` and ``weighted`` give (None, mode): the head receives every layer, [N, L, D].
    """
    if not store.layered:
        return None, ""
    if layer in LAYER_MODES:
        return None, layer
    n = int(store.attrs["layers"])
    idx = n - 1 if layer in (None, "last") else int(layer)
    if not -n <= idx < n:
        raise ProbeError(f"{store.path}: layer {layer} out of range for {n} layers")
    idx %= n
    return idx, str(idx)


def _stratified_dev(train: np.ndarray, y: np.ndarray, seed: int, regression: bool) -> np.ndarray:
    idx = np.flatnonzero(train)
    strat = None if regression else y[idx]
    if strat is not None and min(pd.Series(strat).value_counts()) < 2:
        strat = None
    _, dev_idx = train_test_split(idx, test_size=0.2, random_state=seed, stratify=strat)
    dev = np.zeros_like(train)
    dev[dev_idx] = True
    return dev


def plan_folds(rows: pd.DataFrame, y: np.ndarray, seed: int = 0, regression: bool = False) -> list[Fold]:
    """Train/dev/test masks for every fold of the protocol the manifest encodes."""
    group = rows["group"].to_numpy() if "group" in rows else rows["speaker"].to_numpy()
    if "fold" in rows and rows["fold"].notna().any():
        fold = rows["fold"].to_numpy()
        ids = sorted(pd.unique(fold[pd.notna(fold)]))
        folds = []
        for i, k in enumerate(ids):
            test = fold == k
            if len(ids) >= 3:
                dev = fold == ids[(i + 1) % len(ids)]
                folds.append(Fold(f"fold{k}", ~test & ~dev, dev, test, f"dev = fold {ids[(i + 1) % len(ids)]}"))
            else:
                dev = _stratified_dev(~test, y, seed, regression)
                note = "dev = random 20% of training utterances (only 2 folds: no held-out group left)"
                folds.append(Fold(f"fold{k}", ~test & ~dev, dev, test, note))
        return folds
    split = rows["split"].to_numpy()
    train, dev, test = split == "train", split == "dev", split == "test"
    note = "official dev"
    if not dev.any():
        train_groups = pd.unique(group[train])
        if len(train_groups) >= 3:
            held = np.random.default_rng(seed).permutation(train_groups)[: max(1, len(train_groups) // 5)]
            dev = train & np.isin(group, held)
            note = f"dev = {len(held)} held-out training group(s)"
        else:
            dev = _stratified_dev(train, y, seed, regression)
            note = "dev = random 20% of training utterances"
        train = train & ~dev
    if not train.any():
        raise ProbeError("no training utterances")
    return [Fold("official", train, dev, test, note)]


def speaker_normalise(X: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """z-score features within each speaker (label-free; a standard step in speech emotion work)."""
    out = np.empty_like(X, dtype=np.float32)
    for spk in pd.unique(speakers):
        m = speakers == spk
        mu, sd = X[m].mean(0), X[m].std(0)
        out[m] = (X[m] - mu) / np.where(sd > 1e-8, sd, 1.0)
    return out


def _evaluate(task: Task, y_true, y_pred, proba, classes_, speakers) -> tuple[dict, pd.DataFrame]:
    """Metrics (per utterance, or per speaker for speaker-level tasks) and the prediction table."""
    frame = pd.DataFrame({"speaker": speakers, "actual": y_true, "predicted": y_pred})
    if task.unit == "speaker":
        if task.type == "regression":
            agg = frame.groupby("speaker").agg(actual=("actual", "first"), predicted=("predicted", "mean"))
        else:
            p = pd.DataFrame(proba, columns=classes_).groupby(np.asarray(speakers)).mean()
            agg = pd.DataFrame({"actual": frame.groupby("speaker")["actual"].first()})
            agg["predicted"] = p.idxmax(axis=1).reindex(agg.index)
            proba = p.reindex(agg.index).to_numpy()
        y_true, y_pred = agg["actual"].to_numpy(), agg["predicted"].to_numpy()
    if task.type == "regression":
        return regression_metrics(y_true, y_pred), frame
    scores = None
    if task.positive is not None and proba is not None and task.positive in list(classes_):
        scores = np.asarray(proba)[:, list(classes_).index(task.positive)]
    return classification_metrics(y_true, y_pred, task.classes, positive=task.positive, scores=scores), frame


def probe_task(task: Task, rows: pd.DataFrame, X: np.ndarray, head_name: str, head_cfg: dict, model_dir: Path):
    """Run every fold for one task; return the experiment entry and the predictions table.

    ``X`` is [N, D], or [N, L, D] when the head chooses or weights layers itself (``layer: best |
    weighted``).
    """
    regression = task.type == "regression"
    y = rows[task.name].to_numpy(float if regression else object)
    speakers = rows["speaker"].to_numpy()
    folds = plan_folds(rows, y, int(head_cfg.get("seed", 0)), regression)
    layers = head_cfg.get("layer") if X.ndim == 3 else None
    preds, per_fold = [], []
    for fold in tqdm(folds, desc=f"{head_name}/{task.name}", unit="fold", disable=len(folds) == 1, leave=False):
        head = build_head(head_name, head_cfg, task.type, layers=layers)
        head.fit(X[fold.train], y[fold.train], X[fold.dev], y[fold.dev])
        suffix = "" if len(folds) == 1 else f".{fold.name}"
        head.save(model_dir / f"{task.name}{suffix}.joblib")
        record = {"fold": fold.name, "dev_note": fold.dev_note, "selection": head.selection, "head": head.kind}
        if getattr(head, "layer_info", None):
            record["layer"] = head.layer_info
        classes = getattr(head, "classes_", None)
        for split, mask in (("dev", fold.dev), ("test", fold.test)):
            if not mask.any():
                continue
            per_seed = []
            for seed, y_pred, proba in member_outputs(head, X[mask], regression):
                metrics, frame = _evaluate(task, y[mask], y_pred, proba, classes, speakers[mask])
                per_seed.append(headline(metrics))
                frame.insert(0, "id", rows.index[mask])
                frame.insert(1, "split", split)
                frame.insert(2, "fold", fold.name)
                if seed is not None:
                    frame.insert(3, "seed", seed)
                if proba is not None:
                    for j, c in enumerate(classes):
                        frame[f"p_{c}"] = proba[:, j]
                preds.append(frame)
            record[split] = average_metrics(per_seed)
            if len(per_seed) > 1:
                record.setdefault("seeds", {})[split] = per_seed
        per_fold.append(record)
    table = pd.concat(preds, ignore_index=True)
    entry: dict[str, Any] = {"type": task.type, "unit": task.unit, "classes": task.classes, "folds": per_fold}
    for split in ("dev", "test"):
        part = table[table["split"] == split]
        if part.empty:
            continue
        groups = [g for _, g in part.groupby("seed", sort=True)] if "seed" in part else [part]
        classes = None if regression else per_class_order(part)
        per_seed = []
        for g in groups:
            proba = None if regression else g[[f"p_{c}" for c in classes]].to_numpy()
            actual, predicted, spk = g["actual"].to_numpy(), g["predicted"].to_numpy(), g["speaker"].to_numpy()
            per_seed.append(_evaluate(task, actual, predicted, proba, classes, spk)[0])
        entry[split] = average_metrics(per_seed)
        if len(per_seed) > 1:
            values = {k: [m[k] for m in per_seed] for k in HEADLINE if k != "n"}
            entry.setdefault("seed_summary", {})[split] = {k: {**mean_std(v), "values": v} for k, v in values.items()}
    if len(folds) > 1:
        entry["fold_summary"] = {
            split: {k: mean_std([f[split][k] for f in per_fold if split in f]) for k in HEADLINE if k != "n"}
            for split in ("dev", "test")
        }
    return entry, table


def member_outputs(head, X: np.ndarray, regression: bool) -> list[tuple[Any, np.ndarray, np.ndarray | None]]:
    """``(seed, predicted, proba)`` per trained seed; one ``(None, ...)`` for single-model heads."""
    if hasattr(head, "member_outputs"):
        return head.member_outputs(X)
    return [(None, head.predict(X), None if regression else head.predict_proba(X))]


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


def layer_label(entry: dict[str, Any], layer_name: str) -> str:
    """The leaderboard's ``layer``: an index, ``best=7`` (``best=5/7`` when folds differ) or ``weighted``."""
    if layer_name != "best":
        return layer_name
    chosen = [str(f["layer"]["chosen"]) for f in entry["folds"] if "layer" in f]
    return "best=" + "/".join(dict.fromkeys(chosen))


def layer_table(entry: dict[str, Any]) -> pd.DataFrame | None:
    """Per-layer dev scores of ``layer: best`` (plot data: layer, dev_score, metric, fold, chosen)."""
    rows = [
        {"layer": i, "dev_score": score, "metric": info["metric"], "fold": f["fold"], "chosen": i == info["chosen"]}
        for f in entry["folds"]
        if (info := f.get("layer", {})).get("mode") == "best"
        for i, score in enumerate(info["dev_scores"])
    ]
    return pd.DataFrame(rows) if rows else None


def per_class_order(table: pd.DataFrame) -> list[str]:
    return [c[2:] for c in table.columns if c.startswith("p_")]


def run_probe(
    corpus: Corpus,
    store: FeatureStore,
    head_name: str,
    head_cfg: dict[str, Any],
    *,
    model_dir: str | Path,
    metrics_path: str | Path,
    predictions_dir: str | Path,
) -> dict[str, Any]:
    """Fit and evaluate ``head_name`` for every task of ``corpus``; write model, metrics, predictions."""
    backbone = store.attrs.get("backbone", store.path.stem)
    result: dict[str, Any] = {"corpus": corpus.name, "backbone": backbone, "head": head_name}
    if not store.applicable:
        reason = store.attrs.get("reason", "not applicable")
        return write_skipped(result, reason, model_dir, metrics_path, predictions_dir)
    layer, layer_name = select_layer(store, head_cfg.get("layer", "last"))
    X_all = store.pooled(store.ids, layer=layer).astype(np.float32)
    result["tasks"] = run_tasks(
        corpus, store.ids, X_all, head_name, head_cfg,
        layer_name=layer_name, model_dir=model_dir, predictions_dir=predictions_dir,
    )
    write_json(metrics_path, result)
    return result


def write_skipped(result: dict[str, Any], reason: str, model_dir, metrics_path, predictions_dir) -> dict[str, Any]:
    """Record a combination that does not apply (empty outputs plus a reason the report lists)."""
    result["skipped"] = reason
    with atomic_dir(model_dir) as tmp:
        write_json(tmp / "skipped.json", result)
    with atomic_dir(predictions_dir):
        pass
    write_json(metrics_path, result)
    return result


def run_tasks(
    corpus: Corpus,
    ids: list[str],
    X_all: np.ndarray,
    head_name: str,
    head_cfg: dict[str, Any],
    *,
    layer_name: str,
    model_dir: str | Path,
    predictions_dir: str | Path,
) -> dict[str, Any]:
    """Probe every task on features ``X_all`` (rows = ``ids``); write models and prediction tables.

    Shared by the single-backbone probe and fusion (whose ``X_all`` is the members' concatenation).
    """
    norm = "speaker" if head_cfg.get("speaker_norm", False) else "global"
    df = corpus.manifest.set_index("id").loc[ids]
    if norm == "speaker":
        X_all = speaker_normalise(X_all, df["speaker"].to_numpy())
    tasks: dict[str, Any] = {}
    with atomic_dir(model_dir) as mtmp, atomic_dir(predictions_dir) as ptmp:
        for task in corpus.tasks:
            labels = df[task.name]
            keep = (labels.notna() & (labels.astype(str) != "")).to_numpy()
            entry, table = probe_task(task, df[keep], X_all[keep], head_name, head_cfg, mtmp)
            entry.update(layer=layer_label(entry, layer_name), norm=norm, n_unlabelled=int((~keep).sum()))
            table.to_csv(ptmp / f"{task.name}.csv", index=False)
            layers = layer_table(entry)
            if layers is not None:
                layers.to_csv(ptmp / f"{task.name}_layers.csv", index=False)
            tasks[task.name] = entry
    return tasks


def leaderboard_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten one experiment result into leaderboard rows (one per task and split)."""
    rows = []
    for task, entry in result.get("tasks", {}).items():
        for split in ("dev", "test"):
            if split in entry:
                row = {"corpus": result["corpus"], "task": task, "backbone": result["backbone"], "head": result["head"], "split": split}
                row.update(headline(entry[split]))
                row["layer"] = entry.get("layer", "")
                row["norm"] = entry.get("norm", "global")
                rows.append(row)
    return rows


def summary_lines(result: dict[str, Any]) -> list[str]:
    """One printable line per leaderboard row (what the probe and fuse stages print)."""
    lines = []
    for row in leaderboard_rows(result):
        metric = "uar" if row["uar"] is not None else "ccc"
        value = row[metric]
        shown = "n/a" if value is None or value != value else f"{value:.3f}"
        name = f"{row['corpus']}/{row['task']}/{row['backbone']}/{row['head']}"
        lines.append(f"{name} {row['split']}: {metric.upper()} {shown} (n={row['n']})")
    return lines
