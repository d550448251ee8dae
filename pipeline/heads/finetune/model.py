"""Fine-tuned models: building the classifier (LoRA or full), saving and loading it, predicting.

A fine-tuned model directory (``<model dir>/<task>`` or ``<task>.<fold>``) holds ``finetune.json``
(mode, task, classes, source, selection, target scaling), ``preprocessor_config.json`` (the feature
extractor, AST statistics included) and either ``config.json`` + ``model.safetensors`` (full) or
``adapter_config.json`` + ``adapter_model.safetensors`` (LoRA: adapters plus the trained
classification head; the base encoder is reloaded from ``source``). :func:`load_finetuned` reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
from tqdm import tqdm

from pipeline.core.io import read_json
from pipeline.core.manifest import Task
from pipeline.heads.finetune.data import extract, unpadded_batches
from pipeline.heads.finetune.settings import FinetuneError, FinetuneSettings

# Attention projections LoRA adapts by default, first pair the model has wins.
LORA_TARGETS = (("q_proj", "v_proj"), ("query", "value"))
# Task heads AutoModelForAudioClassification adds on top of the encoder (trained in full under LoRA).
HEAD_MODULES = ("projector", "classifier")
META = "finetune.json"


def label_kwargs(task: Task) -> dict[str, Any]:
    """Config overrides giving the classification head the task's labels (one output for regression)."""
    if task.type == "regression":
        return {"num_labels": 1, "problem_type": "regression", "id2label": {0: task.name}, "label2id": {task.name: 0}}
    return {
        "num_labels": len(task.classes),
        "problem_type": "single_label_classification",
        "id2label": dict(enumerate(task.classes)),
        "label2id": {c: i for i, c in enumerate(task.classes)},
    }


def default_target_modules(model) -> list[str]:
    """The first of the usual attention-projection pairs the model has (see LORA_TARGETS)."""
    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for pair in LORA_TARGETS:
        if set(pair) <= leaves:
            return list(pair)
    raise FinetuneError(f"{type(model).__name__}: no default LoRA target modules; set target_modules in params")


def load_classifier(source: str | Path, task: Task):
    """``AutoModelForAudioClassification`` from ``source`` with a fresh head for the task's labels."""
    import torch
    from transformers import AutoModelForAudioClassification

    try:
        return AutoModelForAudioClassification.from_pretrained(
            source, ignore_mismatched_sizes=True, dtype=torch.float32, **label_kwargs(task)
        )
    except ValueError as err:  # e.g. a checkpoint with no audio-classification class (Whisper decoder, text)
        raise FinetuneError(f"{source}: cannot build an audio classifier ({err})") from err


def build_model(source: str | Path, task: Task, s: FinetuneSettings):
    """The model to train: a LoRA-wrapped classifier or the whole classifier."""
    model = load_classifier(source, task)
    if s.mode == "full":
        if s.freeze_feature_encoder and hasattr(model, "freeze_feature_encoder"):
            model.freeze_feature_encoder()
        return model
    from peft import LoraConfig, get_peft_model

    children = {name for name, _ in model.named_children()}
    config = LoraConfig(
        r=s.r,
        lora_alpha=s.lora_alpha,
        lora_dropout=s.lora_dropout,
        target_modules=s.target_modules or default_target_modules(model),
        modules_to_save=s.modules_to_save or [m for m in HEAD_MODULES if m in children],
        bias="none",
    )
    return get_peft_model(model, config)


def load_finetuned(path: str | Path, base: str | Path | None = None):
    """Reload a saved fine-tuned model: ``(model in eval mode, feature extractor, metadata)``.

    LoRA directories rebuild the base classifier from ``base`` (default: the ``source`` recorded at
    training time, resolved from the working directory) and load the adapters onto it.
    """
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    path = Path(path)
    if not (path / META).exists():
        raise FinetuneError(f"{path}: no {META}; not a fine-tuned model directory")
    meta = read_json(path / META)
    extractor = AutoFeatureExtractor.from_pretrained(path)
    task = Task(**meta["task"])
    if meta["mode"] == "full":
        model = AutoModelForAudioClassification.from_pretrained(path)
    else:
        from peft import PeftModel

        base = Path(base or meta["source"])
        if not base.is_dir():
            raise FinetuneError(f"{path}: base model {base} not found; pass the encoder's directory (--base)")
        model = PeftModel.from_pretrained(load_classifier(base, task), path)
    return model.eval(), extractor, meta


def predict_outputs(
    model, extractor, audios: Iterable[np.ndarray], batch_size: int = 8, progress: bool = False, total: int | None = None
) -> np.ndarray:
    """Raw model outputs (logits) [n, num_labels] for ``audios`` (16 kHz mono float32)."""
    import torch

    device = next(model.parameters()).device
    batch_size = unpadded_batches(extractor, batch_size)
    out, batch = [], []

    def flush() -> None:
        inputs = {k: v.to(device) for k, v in extract(extractor, batch).items()}
        with torch.inference_mode():
            out.append(model(**inputs).logits.float().cpu().numpy())
        batch.clear()

    for audio in tqdm(audios, total=total, desc="predict", unit="utt", disable=not progress):
        batch.append(audio)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), np.float32)


def outputs_to_predictions(logits: np.ndarray, meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """(predicted labels or values, class probabilities or None) from raw outputs."""
    if meta["task"]["type"] == "regression":
        scale = meta["target_scale"]
        return logits[:, 0] * scale["std"] + scale["mean"], None
    z = logits - logits.max(axis=1, keepdims=True)
    proba = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return np.asarray(meta["classes"], dtype=object)[proba.argmax(1)], proba
