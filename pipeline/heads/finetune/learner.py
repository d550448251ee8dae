"""The fine-tuning heads (``lora``, ``full``, ``lora_multimodal``) as experiments: one trained model per task (and fold).

Protocols, scoring and results come from the experiment runner, as for every head: with a
cross-validation protocol ``folds: first`` (the default, for speed) trains and scores only the first
fold — its test fold is then the whole test set of the experiment and the JSON says so
(``folds_run``, ``n_folds_planned``) — while ``folds: all`` trains one model per fold and pools the
out-of-fold predictions like the probe. The DVCLive curves of each model go to
``<live dir>/<task>[.<fold>]/`` (the stage uses ``metrics/dvclive/<corpus>/<backbone>/<head>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.io import atomic_dir
from pipeline.core.manifest import Corpus
from pipeline.core.paths import METRICS
from pipeline.core.segments import Segments
from pipeline.experiment.protocol import Fold
from pipeline.experiment.results import experiment_header
from pipeline.experiment.runner import Learner, Output, TaskData, run_experiment
from pipeline.heads.base import head_settings, register_head
from pipeline.heads.finetune.data import SegmentAudio
from pipeline.heads.finetune.model import outputs_to_predictions, predict_outputs
from pipeline.heads.finetune.multimodal import (
    MultimodalItems,
    MultimodalLoraSettings,
    predict_multimodal,
    texts_of,
    tower_specs,
    train_fold_multimodal,
)
from pipeline.heads.finetune.settings import FinetuneError, FinetuneSettings
from pipeline.heads.finetune.trainer import train_fold


@register_head("lora", settings=FinetuneSettings, family="finetune",
               description="LoRA (peft) on a transformers audio encoder + classification head, from segments")
@register_head("full", settings=FinetuneSettings, family="finetune",
               description="full fine-tuning of a transformers audio encoder (the AST ESC-50 recipe)")
class FinetuneLearner(Learner):
    """Trains the fold's model in ``fit``; ``predict`` runs it on a split's audio."""

    def __init__(self, segments: Segments, settings: FinetuneSettings, *, backbone: str, source: str | Path,
                 live_dir: Path):
        self.segments, self.s, self.backbone = segments, settings, backbone
        self.source, self.live_dir = source, Path(live_dir)
        self.trained: tuple[Any, Any, dict[str, Any]] | None = None

    def fit(self, data: TaskData, fold: Fold, model_path: Path) -> dict[str, Any]:
        self.trained = train_fold(
            data.task, data.rows, data.y, fold, self.segments, self.s, source=self.source, out_dir=model_path,
            live_dir=self.live_dir / model_path.name, backbone=self.backbone,
        )
        return {"selection": self.trained[2]["selection"], "head": self.s.mode}

    def predict(self, data: TaskData, fold: Fold, mask: np.ndarray) -> list[Output]:
        model, extractor, meta = self.trained
        clips = SegmentAudio(self.segments, data.rows.index[mask], np.zeros(int(mask.sum())), self.s)
        audios = (clips.audio(i) for i in range(len(clips)))
        logits = predict_outputs(model, extractor, audios, self.s.eval_batch_size, self.s.progress, len(clips))
        pred, proba = outputs_to_predictions(logits, meta)
        return [Output(pred, proba, None if proba is None else list(data.task.classes))]

    def finish_task(self, data: TaskData, entry: dict[str, Any], table: pd.DataFrame, out_dir: Path) -> None:
        super().finish_task(data, entry, table, out_dir)
        entry.update(folds_run=self.s.folds, n_folds_planned=len(data.folds))


@register_head("lora_multimodal", settings=MultimodalLoraSettings, family="finetune",
               description="LoRA (peft) on LanguageBind text/video/audio towers end to end, embeddings concatenated, "
                           "a linear head (the SemEval-2024 Task 3 seed's end-to-end variant)")
class MultimodalLearner(FinetuneLearner):
    """``fit`` trains the towers' adapters and the head on the fold; ``predict`` runs them on a split."""

    def __init__(self, segments: Segments, settings: MultimodalLoraSettings, *, backbone: str,
                 towers: dict[str, Any], live_dir: Path):
        self.segments, self.s, self.backbone, self.live_dir = segments, settings, backbone, Path(live_dir)
        self.specs = tower_specs(backbone, towers)
        self.trained = None

    def fit(self, data: TaskData, fold: Fold, model_path: Path) -> dict[str, Any]:
        self.trained = train_fold_multimodal(
            data.task, data.rows, data.y, fold, self.segments, self.s, specs=self.specs, out_dir=model_path,
            live_dir=self.live_dir / model_path.name, backbone=self.backbone,
        )
        return {"selection": self.trained[2]["selection"], "head": self.s.mode}

    def predict(self, data: TaskData, fold: Fold, mask: np.ndarray) -> list[Output]:
        model, prep, meta = self.trained
        ids = data.rows.index[mask]
        items = MultimodalItems(self.segments, ids, texts_of(data.rows, ids), None, prep, cache=False)
        pred, proba = outputs_to_predictions(predict_multimodal(model, prep, items, self.s.eval_batch_size,
                                                                self.s.progress), meta)
        return [Output(pred, proba, None if proba is None else list(data.task.classes))]


def run_finetune(
    corpus: Corpus,
    segments: Segments,
    head_name: str,
    cfg: Any,
    *,
    backbone: str,
    source: str | Path | None,
    model_dir: str | Path,
    metrics_path: str | Path,
    predictions_dir: str | Path,
    live_dir: str | Path,
    towers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune and evaluate ``head_name`` on encoder ``backbone`` (local dir ``source``) for every task of
    ``corpus``; write models, metrics, predictions and DVCLive training curves (``live_dir``).
    ``lora_multimodal`` reads its towers from ``towers`` (``{name: backbones.<name> section}`` for each
    ``+``-joined name of ``backbone``) instead of ``source``."""
    s = head_settings(head_name, cfg, family="finetune")
    result: dict[str, Any] = experiment_header(corpus, backbone, head_name)
    known = set(corpus.manifest["id"])
    ids = [u for u in segments.ids if u in known]  # media skipped by `segment` are absent, as in the stores
    if not ids:
        raise FinetuneError(f"{segments.path}: no segmented utterance of corpus {corpus.name}")
    rows = corpus.manifest.set_index("id").loc[ids]
    with atomic_dir(live_dir) as ltmp:
        if isinstance(s, MultimodalLoraSettings):
            learner = MultimodalLearner(segments, s, backbone=backbone, towers=towers or {}, live_dir=ltmp)
        else:
            learner = FinetuneLearner(segments, s, backbone=backbone, source=source, live_dir=ltmp)
        return run_experiment(
            rows, corpus.tasks, learner, result, metrics_path=metrics_path, predictions_dir=predictions_dir,
            model_dir=model_dir, seed=s.seed, max_folds=None if s.folds == "all" else 1,
        )


def resolve_encoder(head_name: str, settings: FinetuneSettings, backbone: str, backbone_source: str | None) -> Path:
    """The local encoder directory of a fine-tuning run item: the head's ``source``, else its backbone's
    (``backbones.<backbone>.source``, validated with the rest of params.yaml by the validate stage)."""
    from pipeline.core.runtime import resolve_source

    source = settings.source or backbone_source
    if not source:
        raise FinetuneError(f"params.yaml: no heads.{head_name}.source and no backbones.{backbone}.source "
                            f"(the encoder to fine-tune)")
    return resolve_source(backbone, source)


def curves_dir(corpus: str, backbone: str, head: str) -> Path:
    """Where the stage writes DVCLive training curves (beside ``metrics/experiments``)."""
    return METRICS / "dvclive" / corpus / backbone / head
