"""Probes on one backbone's pooled features, through the experiment runner.

Each task and fold gets a fresh head from a :class:`FeatureLearner` (:mod:`pipeline.experiment.runner`),
fitted on the fold's train rows with model selection on its dev rows, saved as
``<task>[.<fold>].joblib``. Fusion (:mod:`pipeline.heads.fusion.run`) reuses the learner.

Layered stores ([N, L, D]): ``layer: last`` or an index probes one layer; ``best`` lets the head
fit every layer and keep the best on dev, ``weighted`` learns layer weights with a torch head (see
:func:`pipeline.heads.probe.base.build_head`). The dev score per layer goes to the experiment JSON and to
``<task>_layers.csv`` beside the predictions. A ``best`` sweep of a head without its own layer
handling streams the store's layers (:mod:`pipeline.heads.probe.stream`): memory is about one layer
of every row plus the solver's, not [N, L, D]. Multi-seed heads (``seeds: [...]``) are scored per
seed; the headline is the mean over seeds (``seed_summary`` keeps mean, std and every value), and
the predictions table has one row per utterance and seed (a ``seed`` column).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.errors import HeadError
from pipeline.core.manifest import Corpus
from pipeline.core.store import FeatureStore
from pipeline.experiment.protocol import Fold
from pipeline.experiment.results import experiment_header, write_skipped
from pipeline.experiment.runner import Learner, Output, TaskData, run_experiment
from pipeline.heads.base import head_entry, head_settings
from pipeline.heads.probe.base import LAYER_MODES, build_head
from pipeline.heads.probe.stream import LayerSource, LayerView, is_view

# ``layer: best`` with a head that does not handle layers itself reads the store layer by layer (a
# block of layers for the batched sweep) instead of loading [N, L, D]: pipeline/heads/probe/stream.py
STREAM_LAYERS = True


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
        raise HeadError(f"{store.path}: layer {layer} out of range for {n} layers")
    idx %= n
    return idx, str(idx)


def store_view(store: FeatureStore) -> LayerView:
    """The layered store's pooled features as a :class:`LayerView` over its rows, in store order."""
    n_layers, dim = int(store.attrs["layers"]), int(store.attrs["dims"])
    return LayerView(LayerSource(store.layers, len(store.ids), n_layers, dim))


def speaker_normalise(X: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """z-score features within each speaker (label-free; a standard step in speech emotion work)."""
    out = np.empty_like(X, dtype=np.float32)
    for spk in pd.unique(speakers):
        m = speakers == spk
        mu, sd = X[m].mean(0), X[m].std(0)
        out[m] = (X[m] - mu) / np.where(sd > 1e-8, sd, 1.0)
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


class FeatureLearner(Learner):
    """A feature head per task and fold on ``X`` ([N, D], or [N, L, D] for ``layer: best|weighted``)."""

    def __init__(self, head_name: str, settings: Any, X: np.ndarray, *, layer_name: str, norm: str, **extra: Any):
        self.head_name, self.settings, self.X = head_name, settings, X
        self.layer_name, self.norm, self.extra = layer_name, norm, extra
        self.layers = settings.layer if X.ndim == 3 else None
        self._task_X: tuple[str, np.ndarray] | None = None
        self.head = None

    def _features(self, data: TaskData) -> np.ndarray:
        if self._task_X is None or self._task_X[0] != data.task.name:
            self._task_X = (data.task.name, self.X[data.keep])
        return self._task_X[1]

    def fit(self, data: TaskData, fold: Fold, model_path: Path) -> dict[str, Any]:
        X, y = self._features(data), data.y
        self.head = build_head(self.head_name, self.settings, data.task.type, layers=self.layers, **self.extra)
        self.head.fit(X[fold.train], y[fold.train], X[fold.dev], y[fold.dev])
        self.head.save(model_path.with_name(model_path.name + ".joblib"))
        record = {"selection": self.head.selection, "head": self.head.kind}
        if getattr(self.head, "layer_info", None):
            record["layer"] = self.head.layer_info
        return record

    def predict(self, data: TaskData, fold: Fold, mask: np.ndarray) -> list[Output]:
        X, head = self._features(data)[mask], self.head
        classes = getattr(head, "classes_", None)
        if hasattr(head, "member_outputs"):
            triples = head.member_outputs(X)
        else:
            triples = [(None, head.predict(X), None if data.regression else head.predict_proba(X))]
        return [Output(pred, proba, None if proba is None else classes, seed) for seed, pred, proba in triples]

    def finish_task(self, data: TaskData, entry: dict[str, Any], table: pd.DataFrame, out_dir: Path) -> None:
        entry.update(layer=layer_label(entry, self.layer_name), norm=self.norm)
        layers = layer_table(entry)
        if layers is not None:
            layers.to_csv(out_dir / f"{data.task.name}_layers.csv", index=False)


def run_features(corpus: Corpus, ids: list[str], X: np.ndarray, head_name: str, settings: Any, result: dict,
                  *, layer_name: str, model_dir, metrics_path, predictions_dir, **extra: Any) -> dict[str, Any]:
    rows = corpus.manifest.set_index("id").loc[ids]
    norm = "speaker" if settings.speaker_norm else "global"
    if norm == "speaker" and is_view(X):  # per feature, so per layer: applied to each layer as it is read
        X.source.transform = partial(speaker_normalise, speakers=rows["speaker"].to_numpy())
    elif norm == "speaker":
        X = speaker_normalise(X, rows["speaker"].to_numpy())
    learner = FeatureLearner(head_name, settings, X, layer_name=layer_name, norm=norm, **extra)
    return run_experiment(
        rows, corpus.tasks, learner, result, metrics_path=metrics_path, predictions_dir=predictions_dir,
        model_dir=model_dir, seed=settings.seed,
    )


def run_probe(
    corpus: Corpus,
    store: FeatureStore,
    head_name: str,
    head_cfg: Any,
    *,
    model_dir: str | Path,
    metrics_path: str | Path,
    predictions_dir: str | Path,
) -> dict[str, Any]:
    """Fit and evaluate probe head ``head_name`` for every task of ``corpus``; write model, metrics, predictions."""
    settings = head_settings(head_name, head_cfg, family="probe")
    backbone = store.attrs.get("backbone", store.path.stem)
    result: dict[str, Any] = experiment_header(corpus, backbone, head_name)
    outputs = {"model_dir": model_dir, "metrics_path": metrics_path, "predictions_dir": predictions_dir}
    if not store.applicable:
        return write_skipped(result, store.attrs.get("reason", "not applicable"), **outputs)
    layer, layer_name = select_layer(store, settings.layer)
    if STREAM_LAYERS and layer_name == "best" and not getattr(head_entry(head_name, head_cfg)[0].target,
                                                              "native_layers", False):
        X = store_view(store)  # a layer sweep: layers read from the store as the sweep reaches them
    else:
        X = store.pooled(store.ids, layer=layer).astype(np.float32)
    return run_features(corpus, store.ids, X, head_name, settings, result, layer_name=layer_name, **outputs)


