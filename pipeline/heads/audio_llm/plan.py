"""What every Audio-LLM stage agrees on: stores, rows, tasks, folds, device and output paths.

The three stages (align → instruct → eval) each rebuild the same :class:`Plan` from the manifest,
the head's settings and the run item's ``backbone``, so they see identical rows and folds: rows are
the manifest utterances present in the audio store (and the video store, for ``audio+video``);
folds come from :func:`pipeline.experiment.protocol.plan_folds` (official split, carved dev, or
cross-validation with one fold per test partition).

Token groups (Emotion-LLaMA style): the run item's ``backbone`` joins stores with ``+``. The first is the
``audio`` group and must hold frame features; a single second store is the ``video`` group
(``egemaps+fer``); with more, each further store is a group named after its backbone
(``hubert_zh_large+eva_clip_g+mae_face+videomae_base``: audio, then ``eva_clip_g``, ``mae_face``,
``videomae_base``), each with its own projector, in that order in the prompt. A further store without
frame features (``videomae``: one clip vector per utterance) gives one token per utterance, its pooled
vector (the last layer of a layered store), as Emotion-LLaMA feeds its utterance-level MAE, VideoMAE and
HuBERT features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.config import split_members
from pipeline.core.errors import BackboneError
from pipeline.core.manifest import Corpus, Task
from pipeline.core.paths import model_dir, store_path
from pipeline.core.settings import parse
from pipeline.core.store import FeatureStore
from pipeline.experiment.protocol import Fold, plan_folds
from pipeline.heads.audio_llm import AudioLLMError
from pipeline.heads.audio_llm.data import FrameBank
from pipeline.heads.audio_llm.parse import LabelParser
from pipeline.heads.audio_llm.settings import AudioLLMSettings
from pipeline.heads.base import register_head

AUDIO, VIDEO = "audio", "video"  # the first store's group; the only further store's group (audio+video)


@register_head(
    "audio_llm", settings=AudioLLMSettings, family="audio_llm",
    description="frame features → MLP projector → Qwen2.5; stage 1 projector, stage 2 + LoRA, merged + projector.pt",
)
class AudioLLMHead:
    """The two-stage Audio-LLM: :func:`~pipeline.heads.audio_llm.train.run_align`,
    :func:`~pipeline.heads.audio_llm.train.run_instruct`, :func:`~pipeline.heads.audio_llm.evaluate.run_eval`."""


def audio_llm_settings(cfg: Any, head: str = "audio_llm") -> AudioLLMSettings:
    return parse(AudioLLMSettings, cfg, f"heads.{head}")


def members(backbone: str) -> dict[str, str]:
    """Token group → feature store of a run item's ``backbone`` (``egemaps``, ``egemaps+fer``, or
    ``hubert+eva+mae+videomae``: audio, then one group per further store, named after it)."""
    names = split_members(backbone, "run.audio_llm", "name the audio store with frame features, optionally "
                          "'+' further stores for extra token groups (e.g. egemaps+fer), each once", error=AudioLLMError)
    if len(names) == 2:
        return {AUDIO: names[0], VIDEO: names[1]}
    if AUDIO in names[1:]:
        raise AudioLLMError(f"params.yaml: run.audio_llm backbone {backbone!r}: a further store named {AUDIO!r} "
                            "would clash with the audio token group; rename that backbone")
    return {AUDIO: names[0], **{name: name for name in names[1:]}}


def align_dir(corpus: str, backbone: str, head: str = "audio_llm") -> Path:
    """Stage-1 output: ``models/<corpus>/<backbone>/<head>_align``."""
    return model_dir(corpus, backbone, f"{head}_align")


def instruct_dir(corpus: str, backbone: str, head: str = "audio_llm") -> Path:
    """Stage-2 output: ``models/<corpus>/<backbone>/<head>`` (``merged/``, ``projector.pt``)."""
    return model_dir(corpus, backbone, head)


def fold_dir(base: Path, fold: Fold, n_folds: int) -> Path:
    """An official split writes straight into ``base``; cross-validation one sub-folder per fold."""
    return base if n_folds == 1 else base / fold.name


def open_store(corpus: str, backbone: str, pooled_ok: bool = False) -> FeatureStore:
    """The store of a token group; without frame features only where ``pooled_ok`` (a further group)."""
    store = FeatureStore(store_path(corpus, backbone))
    if store.applicable and not store.attrs.get("has_frames") and not pooled_ok:
        raise AudioLLMError(
            f"{store.path}: backbone {backbone} stored no frame features; the Audio-LLM's audio store needs frames "
            f"(opensmile: lld: true; hf_audio and fer always have them)"
        )
    return store


@dataclass
class Plan:
    corpus: Corpus
    settings: AudioLLMSettings
    head: str  # the heads.<name> section
    tag: str  # the run item's backbone: the experiment's ``backbone`` field
    rows: pd.DataFrame  # manifest indexed by id, restricted to utterances with features
    tasks: list[Task]
    parsers: dict[str, LabelParser]
    folds: list[Fold]
    stores: dict[str, FeatureStore]
    skipped_tasks: dict[str, str]
    skipped: str | None = None  # why the whole (corpus, backbone) pair does not apply

    def ids(self, mask: np.ndarray) -> list[str]:
        return self.rows.index[mask].tolist()

    def bank(self) -> FrameBank:
        return FrameBank.load(self.stores, self.rows.index.tolist())

    def folds_for(self, rows: pd.DataFrame) -> list[Fold]:
        """The plan's folds over a subset of its rows (a task's labelled rows)."""
        keep = self.rows.index.isin(rows.index)
        return [fold.restrict(keep) for fold in self.folds]


def make_plan(corpus: Corpus, cfg: Any, backbone: str, head: str = "audio_llm") -> Plan:
    """Open the stores and work out rows, tasks and folds (or why this pair is skipped)."""
    settings = audio_llm_settings(cfg, head)
    stores = {group: open_store(corpus.name, name, pooled_ok=group != AUDIO) for group, name in members(backbone).items()}
    plan = Plan(corpus, settings, head, backbone, corpus.manifest.set_index("id").iloc[:0], [], {}, [], stores, {})
    for group, store in stores.items():
        if not store.applicable:
            plan.skipped = f"{group} store {store.attrs.get('backbone')}: {store.attrs.get('reason', 'not applicable')}"
            return plan

    wanted = settings.tasks or [t.name for t in corpus.tasks]
    for name in wanted:
        try:
            task = corpus.task(name)
        except KeyError as err:
            raise AudioLLMError(f"params.yaml: heads.{head}.tasks: {err.args[0]}") from err
        if task.type != "classification":
            plan.skipped_tasks[name] = "regression task: the Audio-LLM answers with class labels only"
        else:
            plan.tasks.append(task)
    if not plan.tasks:
        plan.skipped = f"corpus {corpus.name} has no classification task among {wanted}"
        return plan

    common = set.intersection(*(set(s.ids) for s in stores.values()))
    ids = [u for u in stores["audio"].ids if u in common]
    plan.rows = corpus.manifest.set_index("id").loc[ids]
    plan.parsers = {t.name: LabelParser(t.classes) for t in plan.tasks}
    primary = plan.tasks[0]
    y = plan.rows[primary.name].fillna("").astype(str).to_numpy(object)
    plan.folds = plan_folds(plan.rows, y, settings.llm.seed)
    return plan


def runtime(settings: AudioLLMSettings) -> tuple[str, Any]:
    """Device and dtype: fp32 on CPU (bit-stable), bf16 on CUDA unless ``precision`` says otherwise."""
    from pipeline.core.runtime import resolve_device, torch_dtype

    device = resolve_device(settings.llm.device)
    return device, torch_dtype(device, settings.llm.precision)


def llm_source(plan: Plan) -> Path:
    """The base LLM directory (local dir or hub id already in the local cache; never downloads)."""
    from pipeline.core.runtime import resolve_source

    try:
        return resolve_source(plan.head, plan.settings.llm.source, where=f"heads.{plan.head}.llm")
    except BackboneError as err:
        raise AudioLLMError(str(err)) from err
