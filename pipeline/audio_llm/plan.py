"""What every Audio-LLM stage agrees on: stores, rows, tasks, folds, device and output paths.

The three stages (align → instruct → eval) each rebuild the same :class:`Plan` from the manifest
and params, so they see identical rows and folds: rows are the manifest utterances present in the
audio store (and the video store, when ``video_backbone`` is set); folds come from
:func:`pipeline.probe.plan_folds`, the probe's protocol logic (official split, carved dev, or
cross-validation with one fold per test partition).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.audio_llm import AudioLLMError
from pipeline.audio_llm.data import LANGUAGES, FrameBank
from pipeline.audio_llm.parse import LabelParser
from pipeline.manifest import Corpus, Task
from pipeline.paths import model_dir, store_path
from pipeline.probe import Fold, plan_folds
from pipeline.store import FeatureStore

HEAD = "audio_llm"
STAGE_KEYS = {"lr", "epochs", "batch_size", "weight_decay", "max_grad_norm"}
KNOWN_KEYS: dict[str, set[str] | None] = {  # None: a plain value; a set: the sub-keys a section takes
    "source": None, "backbone": None, "video_backbone": None, "tasks": None, "languages": None,
    "stage1_target": None, "max_new_tokens": None, "eval_batch_size": None, "device": None, "precision": None,
    "seed": None, "gradient_checkpointing": None,
    "projector": {"hidden", "downsample", "max_tokens"},
    "video_projector": {"hidden", "downsample", "max_tokens"},
    "align": STAGE_KEYS,
    "instruct": STAGE_KEYS | {"select_by"},
    "lora": {"r", "alpha", "dropout", "target_modules"},
}


def check_config(cfg: dict[str, Any]) -> None:
    """Refuse unknown keys: a typo (``epoch:``) would otherwise silently fall back to a default."""
    for key, value in cfg.items():
        if key not in KNOWN_KEYS:
            raise AudioLLMError(f"audio_llm.{key}: unknown key; known: {sorted(KNOWN_KEYS)}")
        allowed = KNOWN_KEYS[key]
        if allowed is not None and value is not None:
            extra = sorted(set(value) - allowed) if isinstance(value, dict) else ["(not a mapping)"]
            if extra:
                raise AudioLLMError(f"audio_llm.{key}: unknown key(s) {extra}; known: {sorted(allowed)}")


def backbone_tag(cfg: dict[str, Any]) -> str:
    """The experiment's ``backbone`` field: the audio store, ``+video`` for the multimodal model."""
    if not cfg.get("backbone"):
        raise AudioLLMError(
            "audio_llm.backbone: name the feature store with frame features (e.g. egemaps with lld: true)"
        )
    video = cfg.get("video_backbone")
    return f"{cfg['backbone']}+{video}" if video else str(cfg["backbone"])


def align_dir(corpus: str, cfg: dict[str, Any]) -> Path:
    """Stage-1 output: ``models/<corpus>/<tag>/audio_llm_align``."""
    return model_dir(corpus, backbone_tag(cfg), f"{HEAD}_align")


def instruct_dir(corpus: str, cfg: dict[str, Any]) -> Path:
    """Stage-2 output: ``models/<corpus>/<tag>/audio_llm`` (``merged/``, ``projector.pt``)."""
    return model_dir(corpus, backbone_tag(cfg), HEAD)


def fold_dir(base: Path, fold: Fold, n_folds: int) -> Path:
    """An official split writes straight into ``base``; cross-validation one sub-folder per fold."""
    return base if n_folds == 1 else base / fold.name


def languages(cfg: dict[str, Any]) -> list[str]:
    langs = list(cfg.get("languages", ["en"]))
    bad = [lang for lang in langs if lang not in LANGUAGES]
    if not langs or bad:
        raise AudioLLMError(f"audio_llm.languages: {bad or langs} not supported; choose from {list(LANGUAGES)}")
    return langs


def open_store(corpus: str, backbone: str) -> FeatureStore:
    store = FeatureStore(store_path(corpus, backbone))
    if store.applicable and not store.attrs.get("has_frames"):
        raise AudioLLMError(
            f"{store.path}: backbone {backbone} stored no frame features; the Audio-LLM needs frames "
            f"(opensmile: lld: true; hf_audio and fer always have them)"
        )
    return store


@dataclass
class Plan:
    corpus: Corpus
    cfg: dict[str, Any]
    tag: str
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


def make_plan(corpus: Corpus, cfg: dict[str, Any]) -> Plan:
    """Open the stores and work out rows, tasks and folds (or why this pair is skipped)."""
    check_config(cfg)
    tag = backbone_tag(cfg)
    languages(cfg)  # fail early on a bad language list
    stores = {"audio": open_store(corpus.name, cfg["backbone"])}
    if cfg.get("video_backbone"):
        stores["video"] = open_store(corpus.name, cfg["video_backbone"])
    plan = Plan(corpus, cfg, tag, corpus.manifest.set_index("id").iloc[:0], [], {}, [], stores, {})
    for group, store in stores.items():
        if not store.applicable:
            plan.skipped = f"{group} store {store.attrs.get('backbone')}: {store.attrs.get('reason', 'not applicable')}"
            return plan

    wanted = cfg.get("tasks") or [t.name for t in corpus.tasks]
    for name in wanted:
        try:
            task = corpus.task(name)
        except KeyError as err:
            raise AudioLLMError(f"audio_llm.tasks: {err.args[0]}") from err
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
    plan.folds = plan_folds(plan.rows, y, int(cfg.get("seed", 0)))
    return plan


def runtime(cfg: dict[str, Any]) -> tuple[str, Any]:
    """Device and dtype: fp32 on CPU (bit-stable), bf16 on CUDA unless ``precision`` says otherwise."""
    from pipeline.backbones.base import resolve_device, torch_dtype

    device = resolve_device(cfg.get("device", "auto"))
    return device, torch_dtype(device, cfg.get("precision", "auto"))


def llm_source(cfg: dict[str, Any]) -> Path:
    """The base LLM directory (local dir or hub id already in the local cache; never downloads)."""
    from pipeline.backbones.base import BackboneError, resolve_source

    try:
        return resolve_source("audio_llm", str(cfg.get("source") or ""))
    except BackboneError as err:  # its message names backbones.<name>; the key here is audio_llm.source
        raise AudioLLMError(str(err).replace("backbones.audio_llm", "audio_llm")) from err
