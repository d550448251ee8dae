"""Training: stage 1 (projector alignment, LLM frozen) and stage 2 (projector + LoRA, then merge).

Both stages run ``epochs`` passes of AdamW over shuffled mini-batches and keep the epoch that scores
best on dev (stage 1: dev caption loss; stage 2: mean dev UAR over tasks × languages by default,
``select_by: loss`` for dev answer loss). Ties go to the earlier epoch. Dev only scores epochs and
test rows are never touched, so scrambling test labels cannot change what is trained or chosen.
Only trainable tensors are snapshotted for the best epoch (the projector and LoRA weights: small).

Outputs per fold (cross-validation: one sub-folder per fold, see :func:`~pipeline.audio_llm.plan.fold_dir`):

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

from pipeline.audio_llm import AudioLLMError
from pipeline.audio_llm.data import (
    Example,
    FrameBank,
    chunks,
    describe_counts,
    instruct_examples,
    stage1_examples,
)
from pipeline.audio_llm.evaluate import dev_uar
from pipeline.audio_llm.model import AudioLLM, build_projectors, load_llm, load_projectors, save_projectors
from pipeline.audio_llm.plan import Plan, fold_dir, languages, llm_source, make_plan, runtime
from pipeline.io import atomic_dir, read_json, write_json
from pipeline.manifest import Corpus

DEFAULT_LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


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
    stage: dict[str, Any],
    score: Callable[[], dict[str, float]],
    *,
    seed: int,
    llm_trains: bool,
    desc: str,
) -> dict[str, Any]:
    """Train the model's trainable tensors; keep the epoch with the highest ``score()["score"]``."""
    params = [p for p in model.parameters() if p.requires_grad]
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(params, lr=float(stage.get("lr", 1e-4)), weight_decay=float(stage.get("weight_decay", 0.0)))
    batch_size, epochs = int(stage.get("batch_size", 8)), int(stage.get("epochs", 1))
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
            torch.nn.utils.clip_grad_norm_(params, float(stage.get("max_grad_norm", 1.0)))
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


def _require_source_and_plan(corpus: Corpus, cfg: dict[str, Any]) -> Plan:
    plan = make_plan(corpus, cfg)
    if not plan.skipped:
        llm_source(cfg)  # fail before any work when the LLM is not available offline
    return plan


def _skip(tmp: Path, plan: Plan) -> dict[str, Any]:
    info = {"corpus": plan.corpus.name, "backbone": plan.tag, "skipped": plan.skipped}
    write_json(tmp / "skipped.json", info)
    return info


def align_fold(model: AudioLLM, plan: Plan, bank: FrameBank, fold_index: int) -> dict[str, Any]:
    """Stage 1 on one fold: captions of its training rows; best epoch by dev caption loss."""
    cfg, fold = plan.cfg, plan.folds[fold_index]
    stage = cfg.get("align", {})
    task = plan.tasks[0]
    target = cfg.get("stage1_target", "auto")
    train = stage1_examples(plan.rows[fold.train], task, plan.parsers[task.name], target)
    dev = stage1_examples(plan.rows[fold.dev], task, plan.parsers[task.name], target)
    if not train:
        raise AudioLLMError(f"fold {fold.name}: no stage-1 training captions (stage1_target: {target})")
    model.llm.requires_grad_(False)
    batch_size = int(stage.get("batch_size", 8))

    def score() -> dict[str, float]:
        loss = mean_loss(model, dev, bank, batch_size)
        return {"dev_loss": loss, "score": -loss if dev else 0.0}

    seed = int(cfg.get("seed", 0)) + fold_index
    result = fit(model, train, bank, stage, score, seed=seed, llm_trains=False, desc="align")
    return {
        **result, "select_by": "dev caption loss", "target": target,
        "train": describe_counts(train), "dev": describe_counts(dev),
    }


def run_align(corpus: Corpus, cfg: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Stage 1 for every fold: train projector(s) against the frozen LLM, save ``projector.pt``."""
    plan = _require_source_and_plan(corpus, cfg)
    summary: dict[str, Any] = {"corpus": corpus.name, "backbone": plan.tag, "folds": {}}
    with atomic_dir(out_dir) as tmp:
        if plan.skipped:
            return _skip(tmp, plan)
        bank = plan.bank()
        device, dtype = runtime(cfg)
        llm, tokenizer = load_llm(llm_source(cfg), device, dtype)  # frozen: shared by every fold
        hidden = llm.get_input_embeddings().weight.shape[-1]
        for i, fold in enumerate(plan.folds):
            set_seed(int(cfg.get("seed", 0)) + i)
            projectors = build_projectors({g: bank.dim(g) for g in bank.groups}, hidden, cfg)
            for group, proj in projectors.items():  # normalise with training frames only
                proj.set_normalisation(*bank.stats(group, plan.ids(fold.train)))
            model = AudioLLM(llm, tokenizer, projectors).to(device)
            report = align_fold(model, plan, bank, i)
            out = fold_dir(tmp, fold, len(plan.folds))
            out.mkdir(parents=True, exist_ok=True)
            save_projectors(out / "projector.pt", dict(model.projectors.items()), {"stage": "align", "fold": fold.name})
            write_json(out / "align.json", {"fold": fold.name, "dev_note": fold.dev_note, **report})
            summary["folds"][fold.name] = {"chosen_epoch": report["chosen_epoch"], "history": report["history"]}
    return summary


def apply_lora(llm, cfg: dict[str, Any]):
    """Wrap the LLM with a LoRA adapter from ``audio_llm.lora``."""
    from peft import LoraConfig, get_peft_model

    lora = {**DEFAULT_LORA, **(cfg.get("lora") or {})}
    config = LoraConfig(
        r=int(lora["r"]), lora_alpha=int(lora["alpha"]), lora_dropout=float(lora["dropout"]),
        target_modules=list(lora["target_modules"]), task_type="CAUSAL_LM",
    )
    return get_peft_model(llm, config)


def instruct_fold(model: AudioLLM, plan: Plan, bank: FrameBank, fold_index: int) -> dict[str, Any]:
    """Stage 2 on one fold: instructions on its training rows; best epoch by dev UAR (or loss)."""
    cfg, fold = plan.cfg, plan.folds[fold_index]
    stage = cfg.get("instruct", {})
    langs = languages(cfg)
    train = instruct_examples(plan.rows[fold.train], plan.tasks, plan.parsers, langs)
    dev = instruct_examples(plan.rows[fold.dev], plan.tasks, plan.parsers, langs)
    if not train:
        raise AudioLLMError(f"fold {fold.name}: no labelled training utterances for {[t.name for t in plan.tasks]}")
    select_by = stage.get("select_by", "uar")
    if select_by not in ("uar", "loss"):
        raise AudioLLMError(f"audio_llm.instruct.select_by must be 'uar' or 'loss', got {select_by!r}")
    batch_size = int(stage.get("batch_size", 8))

    def score() -> dict[str, float]:
        if not dev:
            return {"score": 0.0}
        if select_by == "loss":
            loss = mean_loss(model, dev, bank, batch_size)
            return {"dev_loss": loss, "score": -loss}
        scores = dev_uar(model, dev, bank, plan.parsers, cfg)
        return {**scores, "score": scores["dev_uar"]}

    seed = int(cfg.get("seed", 0)) + fold_index
    result = fit(model, train, bank, stage, score, seed=seed, llm_trains=True, desc="instruct")
    return {**result, "select_by": f"dev {select_by}", "train": describe_counts(train), "dev": describe_counts(dev)}


def run_instruct(corpus: Corpus, cfg: dict[str, Any], align_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Stage 2 for every fold, from the stage-1 projector; merge LoRA and save the model for inference."""
    plan = _require_source_and_plan(corpus, cfg)
    align_dir = Path(align_dir)
    summary: dict[str, Any] = {"corpus": corpus.name, "backbone": plan.tag, "folds": {}}
    with atomic_dir(out_dir) as tmp:
        if plan.skipped:
            return _skip(tmp, plan)
        bank = plan.bank()
        device, dtype = runtime(cfg)
        source = llm_source(cfg)
        for i, fold in enumerate(plan.folds):
            start = fold_dir(align_dir, fold, len(plan.folds)) / "projector.pt"
            if not start.exists():
                raise AudioLLMError(f"{start}: stage-1 projector not found; run audio_llm_align first")
            set_seed(int(cfg.get("seed", 0)) + i)
            llm, tokenizer = load_llm(source, device, dtype)  # fresh base weights for every fold
            if cfg.get("gradient_checkpointing"):
                llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            peft_model = apply_lora(llm, cfg)
            model = AudioLLM(peft_model, tokenizer, load_projectors(start)).to(device)
            report = instruct_fold(model, plan, bank, i)

            out = fold_dir(tmp, fold, len(plan.folds))
            out.mkdir(parents=True, exist_ok=True)
            peft_model.save_pretrained(out / "adapter")
            merged = peft_model.merge_and_unload()
            if cfg.get("gradient_checkpointing"):
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
