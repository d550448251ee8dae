"""Training one fine-tuned model with the transformers ``Trainer``: dev after every epoch, best epoch kept.

Evaluation on dev after every epoch; the weights of the epoch with the best dev UAR (CCC for
regression tasks) are restored at the end — test data are not even handed to the Trainer, so
nothing selected can depend on them. Loss is cross-entropy (class weights ``balanced`` by
default, like the logistic probe) or MSE on standardised targets. Training curves are logged with
DVCLive, one directory per model: ``plots/metrics/loss.tsv``, ``learning_rate.tsv``,
``grad_norm.tsv`` and ``plots/metrics/eval/{loss,uar,war,macro_f1}.tsv`` (``eval/ccc.tsv`` for
regression), keyed by the global training step, plus ``params.yaml``.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.audio import SAMPLE_RATE
from pipeline.core.io import write_json
from pipeline.core.manifest import Task
from pipeline.core.metrics import ccc, classification_metrics
from pipeline.core.segments import Segments
from pipeline.experiment.protocol import Fold
from pipeline.heads.finetune.augment import build_augmenter
from pipeline.heads.finetune.data import Collator, SegmentAudio, fit_ast_normalisation, is_ast, unpadded_batches
from pipeline.heads.finetune.model import META, build_model
from pipeline.heads.finetune.settings import FinetuneError, FinetuneSettings


def _loss_fn(regression: bool, weights):
    """Cross-entropy (optionally class-weighted) or MSE, normalised the way Trainer expects."""
    import torch.nn.functional as F

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"].float()
        if regression:
            total = F.mse_loss(logits.squeeze(-1), labels.float(), reduction="sum")
        else:
            w = None if weights is None else weights.to(logits.device)
            total = F.cross_entropy(logits, labels, weight=w, reduction="sum")
        return total / (num_items_in_batch if num_items_in_batch is not None else len(labels))

    return loss


def _metrics_fn(task: Task):
    """Dev metric(s) the Trainer logs each epoch; the first key selects the best checkpoint."""

    def compute(pred) -> dict[str, float]:
        logits, labels = np.asarray(pred.predictions), np.asarray(pred.label_ids)
        if task.type == "regression":
            return {"ccc": float(np.nan_to_num(ccc(labels, logits[:, 0]), nan=-1.0))}
        names = np.asarray(task.classes, dtype=object)
        m = classification_metrics(names[labels], names[logits.argmax(1)], task.classes)
        return {"uar": m["uar"], "war": m["war"], "macro_f1": m["macro_f1"]}

    return compute


def _class_weights(y: np.ndarray, n_classes: int):
    """'balanced' weights n / (k · count) over the classes present in training (absent: 0)."""
    import torch

    counts = np.bincount(y, minlength=n_classes).astype(float)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(w, dtype=torch.float32)


_UNPLOTTED = {"epoch", "total_flos", "train_loss"}


def _live_logger(live):
    """A Trainer callback writing every logged scalar to DVCLive, keyed by the global step.

    DVCLive's stock callback re-reads its whole log directory after every log call (quadratic in
    the number of logs) and records every TrainingArguments field as a param; this one writes one
    TSV row per curve point and syncs once, at the end. Throughput figures, the epoch counter and
    the end-of-training summary are left out so that ``dvc plots show`` shows learning curves only.
    """
    from dvclive.utils import standardize_metric_name
    from transformers import TrainerCallback

    class LiveLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            live.step = state.global_step
            for key, value in (logs or {}).items():
                if key in _UNPLOTTED or key.endswith(("_runtime", "_per_second")):
                    continue
                if isinstance(value, (int, float)) and np.isfinite(value):
                    live.log_metric(standardize_metric_name(key, "dvclive.huggingface"), value)

        def on_train_end(self, args, state, control, **kwargs):
            live.end()

    return LiveLogger()


def _keep_best(metric: str):
    """A Trainer callback keeping, in memory, the weights of the epoch with the best dev ``metric``.

    Ties keep the earlier epoch. Trainer's own ``load_best_model_at_end`` is not used: it reloads
    full checkpoints with ``load_state_dict(strict=False)``, and transformers 5 saves some models
    (AST) under converted parameter names, so it silently restores almost nothing. Only trainable
    parameters and buffers are copied (LoRA: the adapters and the head), and nothing touches disk.
    """
    from transformers import TrainerCallback

    class KeepBest(TrainerCallback):
        score: float | None = None
        epoch: float | None = None
        weights: dict | None = None

        def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
            score = metrics[f"eval_{metric}"]
            if self.score is None or score > self.score:
                self.score, self.epoch = score, state.epoch
                self.weights = snapshot(model)

        def restore(self, model) -> None:
            if self.weights is not None:
                unexpected = model.load_state_dict(self.weights, strict=False).unexpected_keys
                if unexpected:  # pragma: no cover - the snapshot comes from this very model
                    raise FinetuneError(f"best-epoch weights do not fit the model: {unexpected[:3]}")

    return KeepBest()


def snapshot(model) -> dict[str, Any]:
    """CPU copies of a model's trainable parameters and buffers (what training can change)."""
    changing = {n for n, p in model.named_parameters() if p.requires_grad} | {n for n, _ in model.named_buffers()}
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items() if k in changing}


def _precision_flags(s: FinetuneSettings, device: str) -> dict[str, bool]:
    import torch

    precision = s.precision
    if precision == "auto":
        precision = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def _selection(state, metric: str, chosen) -> dict[str, Any]:
    """What was chosen and why: the dev metric after every epoch and the epoch kept."""
    evals = [e for e in state.log_history if f"eval_{metric}" in e]
    return {
        "param": "epoch",
        "metric": f"dev_{metric}",
        "epochs": [_epoch(e["epoch"]) for e in evals],
        f"dev_{metric}": [e[f"eval_{metric}"] for e in evals],
        "chosen": _epoch(chosen) if chosen is not None else "last (no dev data)",
    }


def _epoch(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def train_fold(
    task: Task,
    rows: pd.DataFrame,
    y: np.ndarray,
    fold: Fold,
    segments: Segments,
    s: FinetuneSettings,
    *,
    source: str | Path,
    out_dir: Path,
    live_dir: Path,
    backbone: str = "",
):
    """Fine-tune one model on ``fold.train``, select its epoch on ``fold.dev``; save it to ``out_dir``.

    Returns ``(model, extractor, meta)``; test rows are never touched here.
    """
    from transformers import AutoFeatureExtractor, set_seed

    from pipeline.core.runtime import resolve_revision

    regression = task.type == "regression"
    ids = rows.index.to_numpy()
    train_idx, dev_idx = np.flatnonzero(fold.train), np.flatnonzero(fold.dev)
    meta: dict[str, Any] = {
        "mode": s.mode,
        "backbone": backbone,
        "source": str(source),
        "revision": resolve_revision(Path(source)),
        "task": asdict(task),
        "classes": list(task.classes),
        "fold": fold.name,
        "sample_rate": SAMPLE_RATE,
        "max_seconds": s.max_seconds,
        "min_seconds": s.min_seconds,
        "n_train": len(train_idx),
        "n_dev": len(dev_idx),
    }
    targets = encode_targets(task, y, train_idx, meta)

    set_seed(s.seed)  # the new classification head and the LoRA matrices start the same every run
    extractor = AutoFeatureExtractor.from_pretrained(source)
    augmenter = build_augmenter(s.augment, shuffle=s.shuffle_augment, p=s.augment_p, seed=s.seed)
    train_ds = SegmentAudio(segments, ids[train_idx], targets[train_idx], s, augmenter)
    dev_ds = SegmentAudio(segments, ids[dev_idx], targets[dev_idx], s)
    if is_ast(extractor):
        meta["ast_normalisation"] = fit_ast_normalisation(
            extractor, (train_ds.audio(i) for i in range(len(train_ds))), len(train_ds), s.progress
        )
    model = build_model(source, task, s)
    trainer, meta["selection"] = fit(
        model, train_ds, dev_ds, Collator(extractor, regression), task, targets[train_idx], s, out_dir=out_dir,
        live_dir=live_dir, eval_batch_size=unpadded_batches(extractor, s.eval_batch_size),
    )
    meta["n_cropped"] = train_ds.n_cropped() + dev_ds.n_cropped()
    meta["augment"] = train_ds.augmenter.names if train_ds.augmenter else []

    model = trainer.model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    extractor.save_pretrained(out_dir)
    write_json(out_dir / META, meta)
    return model, extractor, meta


def encode_targets(task: Task, y: np.ndarray, train_idx: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """Class indices, or regression targets standardised with the training split (recorded in ``meta``)."""
    if task.type == "regression":
        mu, sd = float(np.mean(y[train_idx])), float(np.std(y[train_idx]))
        meta["target_scale"] = {"mean": mu, "std": sd if sd > 1e-8 else 1.0}
        return (y.astype(float) - mu) / meta["target_scale"]["std"]
    index = {c: i for i, c in enumerate(task.classes)}
    return np.array([index[v] for v in y], dtype=np.int64)


def fit(model, train_ds, dev_ds, collator, task: Task, train_targets: np.ndarray, s, *, out_dir: Path, live_dir: Path,
        eval_batch_size: int):
    """Train ``model`` with the transformers Trainer (dev after every epoch, DVCLive curves in ``live_dir``) and
    restore the best dev epoch's weights; returns ``(trainer, selection)`` (what :func:`_selection` records). ``s``: the head's settings
    (epochs, batches, learning rate, precision, ...); shared by every fine-tuning head."""
    from dvclive import Live
    from transformers import Trainer, TrainingArguments

    from pipeline.core.runtime import resolve_device

    regression = task.type == "regression"
    weights = None if regression or s.class_weight is None else _class_weights(train_targets, len(task.classes))

    device = resolve_device(s.device)
    has_dev = len(dev_ds) > 0
    metric = "ccc" if regression else "uar"
    work = out_dir.parent / f".{out_dir.name}.trainer"
    args = TrainingArguments(
        output_dir=str(work),
        num_train_epochs=s.epochs,
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=eval_batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps,
        learning_rate=s.learning_rate,
        weight_decay=s.weight_decay,
        warmup_steps=s.warmup_ratio,  # a float < 1 is a fraction of the training steps
        eval_strategy="epoch" if has_dev else "no",
        save_strategy="no",  # the best epoch is kept in memory (see _keep_best)
        logging_strategy="steps",
        logging_steps=s.logging_steps,
        report_to="none",  # the DVCLive callback below is the only logger
        seed=s.seed,
        data_seed=s.seed,
        use_cpu=device == "cpu",
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=0,  # augmentation keys count draws in this process
        disable_tqdm=not s.progress,
        **_precision_flags(s, device),
    )
    # No dvc.yaml of its own and no experiment commit: the DVC stage declares these plots.
    live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None)
    live.log_params({k: v for k, v in s.dump().items() if k != "progress"})
    best = _keep_best(metric)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=dev_ds if has_dev else None,
        data_collator=collator,
        compute_metrics=_metrics_fn(task),
        compute_loss_func=_loss_fn(regression, weights),
        callbacks=[_live_logger(live), best],
    )
    try:
        trainer.train()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    best.restore(trainer.model)
    return trainer, _selection(trainer.state, metric, best.epoch)
