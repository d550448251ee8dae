"""Probing: train a head per task on one (corpus, backbone) feature store, evaluate dev and test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.heads import build_head
from pipeline.io import atomic_dir, write_json
from pipeline.manifest import Corpus
from pipeline.metrics import classification_metrics, headline
from pipeline.store import FeatureStore


class ProbeError(RuntimeError):
    pass


def select_layer(store: FeatureStore, layer: Any) -> tuple[int | None, str]:
    """Which layer of a layered store to probe (``last`` or an index); (None, '') otherwise."""
    if not store.layered:
        return None, ""
    n = int(store.attrs["layers"])
    idx = n - 1 if layer in (None, "last") else int(layer)
    if not -n <= idx < n:
        raise ProbeError(f"{store.path}: layer {layer} out of range for {n} layers")
    idx %= n
    return idx, str(idx)


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
        result["skipped"] = store.attrs.get("reason", "not applicable")
        with atomic_dir(model_dir) as tmp:
            write_json(tmp / "skipped.json", result)
        with atomic_dir(predictions_dir):
            pass
        write_json(metrics_path, result)
        return result

    layer, layer_name = select_layer(store, head_cfg.get("layer", "last"))
    df = corpus.manifest.set_index("id").loc[store.ids]
    tasks: dict[str, Any] = {}
    with atomic_dir(model_dir) as mtmp, atomic_dir(predictions_dir) as ptmp:
        for task in corpus.tasks:
            if task.type != "classification":
                continue  # regression heads arrive with the corpus-recipes work
            rows = df[df[task.name].notna() & (df[task.name] != "")]
            X_all = store.pooled(list(rows.index), layer=layer)
            y_all = rows[task.name].to_numpy()
            split = rows["split"].to_numpy()
            parts = {s: split == s for s in ("train", "dev", "test")}
            for s in ("train", "dev"):
                if not parts[s].any():
                    raise ProbeError(f"corpus {corpus.name}: task {task.name} has no {s} utterances")
            head = build_head(head_name, head_cfg)
            head.fit(X_all[parts["train"]], y_all[parts["train"]], X_all[parts["dev"]], y_all[parts["dev"]])
            head.save(mtmp / f"{task.name}.joblib")
            entry: dict[str, Any] = {"selection": head.selection, "layer": layer_name, "classes": task.classes}
            preds = []
            for s in ("dev", "test"):
                if not parts[s].any():
                    continue
                y_pred = head.predict(X_all[parts[s]])
                entry[s] = classification_metrics(y_all[parts[s]], y_pred, task.classes)
                preds.append(pd.DataFrame({"id": rows.index[parts[s]], "split": s, "actual": y_all[parts[s]], "predicted": y_pred}))
            pd.concat(preds).to_csv(ptmp / f"{task.name}.csv", index=False)
            tasks[task.name] = entry
    result["tasks"] = tasks
    write_json(metrics_path, result)
    return result


def leaderboard_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten one experiment result into leaderboard rows (one per task and split)."""
    rows = []
    for task, entry in result.get("tasks", {}).items():
        for split in ("dev", "test"):
            if split in entry:
                row = {"corpus": result["corpus"], "task": task, "backbone": result["backbone"], "head": result["head"], "split": split}
                row.update(headline(entry[split]))
                row["layer"] = entry.get("layer", "")
                rows.append(row)
    return rows

