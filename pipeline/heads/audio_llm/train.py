"""Training: stage 1 (projector alignment, LLM frozen) and stage 2 (projector + LoRA, then merge).

Both stages run ``epochs`` passes of AdamW over shuffled mini-batches and keep the epoch that scores
best on dev (stage 1: dev caption loss; stage 2: mean dev UAR over tasks × languages by default,
``select_by: loss`` for dev answer loss). Ties go to the earlier epoch. Dev only scores epochs and
test rows are never touched, so scrambling test labels cannot change what is trained or chosen.
Only trainable tensors are snapshotted for the best epoch (the projector and LoRA weights: small).

Outputs per fold (cross-validation: one sub-folder per fold, see :func:`~pipeline.heads.audio_llm.plan.fold_dir`):

- align: ``projector.pt`` + ``align.json`` (loss curve, chosen epoch, what the data were);
- instruct: ``merged/`` (LoRA merged into the base weights, plus the tokenizer), ``projector.pt``,
  ``adapter/`` (the LoRA adapter alone, for provenance and the merge check) + ``train.json``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from pipeline.core.io import atomic_dir, read_json, write_json
from pipeline.core.manifest import Corpus
from pipeline.heads.audio_llm import AudioLLMError
from pipeline.heads.audio_llm.data import (
    Example,
    FrameBank,
    chunks,
    describe_counts,
    instruct_examples,
    stage1_examples,
)
from pipeline.heads.audio_llm.evaluate import dev_uar
from pipeline.heads.audio_llm.model import AudioLLM, build_projectors, load_llm, load_projectors, save_projectors
from pipeline.heads.audio_llm.plan import Plan, fold_dir, llm_source, make_plan, runtime
from pipeline.heads.audio_llm.settings import StageSettings


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def mean_loss(model: AudioLLM, examples: Sequence[Example], bank: FrameBank, batch_size: int) -> float:
    """Answer-token loss averaged over examples (eval mode)."""
    if not examples:
        return float("nan")
    model.eval()
    total = 0.0
    for batch in chunks(examples, batch_size):
        total += float(model.loss(batch, [bank.get(e.uid) for e in batch])) * len(batch)
    return total / len(examples)


def fit(
    model: AudioLLM,
    train: Sequence[Example],
    bank: FrameBank,
    stage: StageSettings,
    score: Callable[[], dict[str, float]],
    *,
    seed: int,
    llm_trains: bool,
    desc: str,
) -> dict[str, Any]:
    """Train the model's trainable tensors; keep the epoch with the highest ``score()["score"]``."""
    params = [p for p in model.parameters() if p.requires_grad]
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)
    batch_size, epochs = stage.batch_size, stage.epochs
    rng = np.random.default_rng(seed)
    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for epoch in range(1, epochs + 1):
        model.train()
        if not llm_trains:
            model.llm.eval()  # frozen LLM: no dropout either
        order = [train[i] for i in rng.permutation(len(train))]
        losses = []
        for batch in tqdm(chunks(order, batch_size), desc=f"{desc} epoch {epoch}/{epochs}", leave=False):
            loss = model.loss(batch, [bank.get(e.uid) for e in batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, stage.max_grad_norm)
            opt.step()
            losses.append(float(loss.detach()))
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan"), **score()}
        history.append(record)
        if best is None or record["score"] > best[0]:
            best = (record["score"], epoch, {n: p.detach().clone() for n, p in named.items()})
    if best is not None:
        for n, p in named.items():
            p.data.copy_(best[2][n])
    model.eval()
    return {"history": history, "chosen_epoch": best[1] if best else 0}


def _require_source_and_plan(corpus: Corpus, cfg: Any, backbone: str, head: str) -> Plan:
    plan = make_plan(corpus, cfg, backbone, head)
    if not plan.skipped:
        llm_source(plan)  # fail before any work when the LLM is not available offline
    return plan


def _skip(tmp: Path, plan: Plan) -> dict[str, Any]:
    info = {"corpus": plan.corpus.name, "backbone": plan.tag, "skipped": plan.skipped}
    write_json(tmp / "skipped.json", info)
    return info


def align_fold(model: AudioLLM, plan: Plan, bank: FrameBank, fold_index: int) -> dict[str, Any]:
    """Stage 1 on one fold: captions of its training rows; best epoch by dev caption loss."""
    s, fold = plan.settings, plan.folds[fold_index]
    stage = s.align
    task = plan.tasks[0]
    target = stage.stage1_target
    train = stage1_examples(plan.rows[fold.train], task, plan.parsers[task.name], target)
    dev = stage1_examples(plan.rows[fold.dev], task, plan.parsers[task.name], target)
    if not train:
        raise AudioLLMError(f"fold {fold.name}: no stage-1 training captions (stage1_target: {target})")
    model.llm.requires_grad_(False)
    batch_size = stage.batch_size

    def score() -> dict[str, float]:
        loss = mean_loss(model, dev, bank, batch_size)
        return {"dev_loss": loss, "score": -loss if dev else 0.0}

    seed = s.llm.seed + fold_index
    result = fit(model, train, bank, stage, score, seed=seed, llm_trains=False, desc="align")
    return {
        **result, "select_by": "dev caption loss", "target": target,
        "train": describe_counts(train), "dev": describe_counts(dev),
    }


def run_align(corpus: Corpus, cfg: Any, backbone: str, out_dir: str | Path, head: str = "audio_llm") -> dict[str, Any]:
    """Stage 1 for every fold: train projector(s) against the frozen LLM, save ``projector.pt``."""
    plan = _require_source_and_plan(corpus, cfg, backbone, head)
    s = plan.settings
    summary: dict[str, Any] = {"corpus": corpus.name, "backbone": plan.tag, "folds": {}}
    with atomic_dir(out_dir) as tmp:
        if plan.skipped:
            return _skip(tmp, plan)
        bank = plan.bank()
        device, dtype = runtime(s)
        llm, tokenizer = load_llm(llm_source(plan), device, dtype)  # frozen: shared by every fold
        hidden = llm.get_input_embeddings().weight.shape[-1]
        for i, fold in enumerate(plan.folds):
            set_seed(s.llm.seed + i)
            projectors = build_projectors({g: bank.dim(g) for g in bank.groups}, hidden, s)
            for group, proj in projectors.items():  # normalise with training frames only
                proj.set_normalisation(*bank.stats(group, plan.ids(fold.train)))
            model = AudioLLM(llm, tokenizer, projectors).to(device)
            report = align_fold(model, plan, bank, i)
            out = fold_dir(tmp, fold, len(plan.folds))
            out.mkdir(parents=True, exist_ok=True)
            save_projectors(out / "projector.pt", dict(model.projectors.items()), {"stage": "align", "fold": fold.name})
            write_json(out / "align.json", {"fold": fold.name, "dev_note": fold.dev_note, "token_groups": bank.sources,
                                            **report})
            summary["folds"][fold.name] = {"chosen_epoch": report["chosen_epoch"], "history": report["history"]}
    return summary


def apply_lora(llm, lora):
    """Wrap the LLM with a LoRA adapter (``instruct.lora`` settings)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules), task_type="CAUSAL_LM",
    )
    return get_peft_model(llm, config)


def instruct_fold(model: AudioLLM, plan: Plan, bank: FrameBank, fold_index: int) -> dict[str, Any]:
    """Stage 2 on one fold: instructions on its training rows; best epoch by dev UAR (or loss)."""
    s, fold = plan.settings, plan.folds[fold_index]
    stage = s.instruct
    langs = list(s.languages)
    train = instruct_examples(plan.rows[fold.train], plan.tasks, plan.parsers, langs)
    dev = instruct_examples(plan.rows[fold.dev], plan.tasks, plan.parsers, langs)
    if not train:
        raise AudioLLMError(f"fold {fold.name}: no labelled training utterances for {[t.name for t in plan.tasks]}")
    select_by = stage.select_by
    batch_size = stage.batch_size

    def score() -> dict[str, float]:
        if not dev:
            return {"score": 0.0}
        if select_by == "loss":
            loss = mean_loss(model, dev, bank, batch_size)
            return {"dev_loss": loss, "score": -loss}
        scores = dev_uar(model, dev, bank, plan.parsers, s.generate)
        return {**scores, "score": scores["dev_uar"]}

    seed = s.llm.seed + fold_index
    result = fit(model, train, bank, stage, score, seed=seed, llm_trains=True, desc="instruct")
    return {**result, "select_by": f"dev {select_by}", "train": describe_counts(train), "dev": describe_counts(dev)}


def run_instruct(
    corpus: Corpus, cfg: Any, backbone: str, align_dir: str | Path, out_dir: str | Path, head: str = "audio_llm"
) -> dict[str, Any]:
    """Stage 2 for every fold, from the stage-1 projector; merge LoRA and save the model for inference."""
    plan = _require_source_and_plan(corpus, cfg, backbone, head)
    s = plan.settings
    align_dir = Path(align_dir)
    summary: dict[str, Any] = {"corpus": corpus.name, "backbone": plan.tag, "folds": {}}
    with atomic_dir(out_dir) as tmp:
        if plan.skipped:
            return _skip(tmp, plan)
        bank = plan.bank()
        device, dtype = runtime(s)
        source = llm_source(plan)
        for i, fold in enumerate(plan.folds):
            start = fold_dir(align_dir, fold, len(plan.folds)) / "projector.pt"
            if not start.exists():
                raise AudioLLMError(f"{start}: stage-1 projector not found; run audio_llm_align first")
            set_seed(s.llm.seed + i)
            llm, tokenizer = load_llm(source, device, dtype)  # fresh base weights for every fold
            if s.instruct.gradient_checkpointing:
                llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            peft_model = apply_lora(llm, s.instruct.lora)
            model = AudioLLM(peft_model, tokenizer, load_projectors(start)).to(device)
            report = instruct_fold(model, plan, bank, i)

            out = fold_dir(tmp, fold, len(plan.folds))
            out.mkdir(parents=True, exist_ok=True)
            peft_model.save_pretrained(out / "adapter")
            merged = peft_model.merge_and_unload()
            if s.instruct.gradient_checkpointing:
                merged.gradient_checkpointing_disable()
            merged.save_pretrained(out / "merged")
            tokenizer.save_pretrained(out / "merged")
            meta = {"stage": "instruct", "fold": fold.name}
            save_projectors(out / "projector.pt", dict(model.projectors.items()), meta)
            selection = {
                "instruct_epoch": report["chosen_epoch"],
                "align_epoch": read_json(start.parent / "align.json")["chosen_epoch"],
                "select_by": report["select_by"],
            }
            info = {"fold": fold.name, "dev_note": fold.dev_note, "selection": selection, **report}
            write_json(out / "train.json", info)
            summary["folds"][fold.name] = {"selection": selection, "history": report["history"]}
    return summary
