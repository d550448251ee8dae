"""Fine-tuning a transformers audio encoder end to end on the segments: LoRA adapters or full.

Where the probe trains a head on cached features, this head trains the encoder itself on
``data/<corpus>/segments.zarr`` audio, one model per task (and per fold), with labels, splits and
folds from the prepared manifest. Two modes (``heads.<name>.type``):

- ``lora``: peft LoRA adapters on the attention projections of an ``AutoModelForAudioClassification``
  (AST, HuBERT, WavLM, wav2vec2, data2vec-audio, ...); the classification head (``classifier``
  and, for the wav2vec2 family, ``projector``) is trained in full through ``modules_to_save``.
  ``target_modules`` defaults to ``q_proj``/``v_proj`` (HuBERT, WavLM, wav2vec2, and AST in
  transformers ≥ 5) or ``query``/``value`` (AST in transformers 4), whichever the model has.
- ``full``: every weight is trained (the AST ESC-50 tutorial recipe); the wav2vec2 family keeps its
  convolutional feature encoder frozen (``freeze_feature_encoder: true``), as is customary.

The encoder comes from ``source``: the head's own ``source`` or, by default, that of
``backbones.<backbone>`` (a local directory or a hub id already in the local cache; never
downloaded). For AST the input spectrogram is normalised with the training split's mean and std
(the tutorial's recipe: mean of per-clip means and of per-clip stds, on un-augmented training
audio), written into the saved feature extractor; dev and test audio never enter those statistics.
Augmentation (:mod:`pipeline.augment`) is applied to training examples only.

Training uses the transformers ``Trainer``: evaluation on dev after every epoch, and the weights of
the epoch with the best dev UAR (CCC for regression tasks) restored at the end — test data are not
even handed to the Trainer, so nothing selected can depend on them. Loss is cross-entropy (class
weights ``balanced`` by default, like the logistic probe) or MSE on standardised targets.
Training curves are logged with DVCLive, one directory per model, ``<live dir>/<task>[.<fold>]/``
(the stage uses ``metrics/dvclive/<corpus>/<backbone>/<head>``): ``plots/metrics/loss.tsv``,
``learning_rate.tsv``, ``grad_norm.tsv`` and ``plots/metrics/eval/{loss,uar,war,macro_f1}.tsv``
(``eval/ccc.tsv`` for regression), keyed by the global training step, plus ``params.yaml``.

Protocols are planned exactly as for the probe (:func:`pipeline.probe.plan_folds`). With a
cross-validation protocol (``fold`` column) ``folds: first`` (the default, for speed) trains and
scores only the first fold — its test fold is then the whole test set of the experiment and the
JSON says so (``folds_run``) — while ``folds: all`` trains one model per fold and pools the
out-of-fold predictions like the probe. Results follow the probe's metrics contract: the
experiment JSON, one predictions CSV per task, leaderboard rows through
:func:`pipeline.probe.leaderboard_rows`.

A fine-tuned model directory (``<model dir>/<task>`` or ``<task>.<fold>``) holds
``finetune.json`` (mode, task, classes, source, selection, target scaling),
``preprocessor_config.json`` (the feature extractor, AST statistics included) and either
``config.json`` + ``model.safetensors`` (full) or ``adapter_config.json`` +
``adapter_model.safetensors`` (LoRA: adapters plus the trained classification head; the base
encoder is reloaded from ``source``). :func:`load_finetuned` reads it back.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.augment import AugmentError, Augmenter, build_augmenter
from pipeline.io import atomic_dir, read_json, write_json
from pipeline.manifest import Corpus, Task
from pipeline.metrics import HEADLINE, ccc, classification_metrics, headline, mean_std
from pipeline.paths import METRICS
from pipeline.probe import Fold, ProbeError, _evaluate, per_class_order, plan_folds
from pipeline.segments import Segments

SAMPLE_RATE = 16000
MODES = ("lora", "full")
DEFAULT_LR = {"lora": 5e-4, "full": 5e-5}
# Attention projections LoRA adapts by default, first pair the model has wins.
LORA_TARGETS = (("q_proj", "v_proj"), ("query", "value"))
# Task heads AutoModelForAudioClassification adds on top of the encoder (trained in full under LoRA).
HEAD_MODULES = ("projector", "classifier")
META = "finetune.json"


class FinetuneError(ProbeError):
    """Bad fine-tuning params or inputs (a ProbeError, so stages print it as one line)."""


@dataclass
class Settings:
    """A fine-tuning head's params (``heads.<name>``) with their defaults."""

    mode: str  # ``type``: lora | full
    backbone: str  # backbones.<backbone> gives the encoder's source; names the output directories
    source: str | None = None  # overrides backbones.<backbone>.source
    epochs: float = 10
    batch_size: int = 8
    eval_batch_size: int = 8
    learning_rate: float | None = None  # default: DEFAULT_LR[mode]
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # linear warm-up over this fraction of the steps, then linear decay
    gradient_accumulation_steps: int = 1
    class_weight: str | None = "balanced"  # balanced | null
    max_seconds: float = 10.0  # longer utterances are cut (counted as n_cropped in finetune.json)
    min_seconds: float = 0.1  # shorter ones are zero-padded
    folds: str = "first"  # cross-validation protocols: first | all
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    logging_steps: int = 10
    freeze_feature_encoder: bool = True  # full mode, wav2vec2 family: keep the CNN front end fixed
    r: int = 8  # LoRA rank
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    target_modules: list[str] | None = None  # default: default_target_modules()
    modules_to_save: list[str] | None = None  # default: the model's HEAD_MODULES
    augment: list[dict] = field(default_factory=list)  # see pipeline.augment
    shuffle_augment: bool = False
    augment_p: float = 1.0
    cache_audio: bool = True  # keep train/dev audio in memory after the first epoch
    progress: bool = True

    @classmethod
    def from_params(cls, name: str, cfg: dict[str, Any]) -> "Settings":
        cfg = dict(cfg)
        mode = cfg.pop("type", name)
        if mode not in MODES:
            raise FinetuneError(f"heads.{name}: type must be one of {MODES}, got {mode!r}")
        if not cfg.get("backbone"):
            raise FinetuneError(f"heads.{name}: 'backbone' (the backbones.<name> entry of the encoder) is required")
        known = set(cls.__dataclass_fields__) - {"mode"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise FinetuneError(f"heads.{name}: unknown option(s) {unknown}; known: {sorted(known)}")
        s = cls(mode=mode, **cfg)
        if s.learning_rate is None:
            s.learning_rate = DEFAULT_LR[mode]
        try:  # YAML reads 5e-5 (no dot) as a string
            floats = ("epochs", "learning_rate", "weight_decay", "warmup_ratio", "max_seconds", "min_seconds",
                      "lora_dropout", "augment_p")
            for key in floats:
                setattr(s, key, float(getattr(s, key)))
            ints = ("batch_size", "eval_batch_size", "gradient_accumulation_steps", "seed", "logging_steps", "r", "lora_alpha")
            for key in ints:
                setattr(s, key, int(getattr(s, key)))
        except (TypeError, ValueError) as err:
            raise FinetuneError(f"heads.{name}: {key} must be a number ({err})") from err
        if s.folds not in ("first", "all"):
            raise FinetuneError(f"heads.{name}: folds must be 'first' or 'all', got {s.folds!r}")
        if s.class_weight not in (None, "balanced"):
            raise FinetuneError(f"heads.{name}: class_weight must be 'balanced' or null, got {s.class_weight!r}")
        try:  # fail on a bad augment list now, not after the first model has trained
            build_augmenter(vars(s))
        except AugmentError as err:
            raise FinetuneError(f"heads.{name}.{err}") from err
        return s


# ---------------------------------------------------------------------------------------------
# Data


class SegmentAudio:
    """Training/evaluation examples: audio of ``ids`` from a segments store, with targets.

    Audio is cut to ``max_seconds`` and zero-padded to ``min_seconds``; it is read once and kept
    in memory (``cache_audio``), since epochs re-read every item. Only a dataset given an
    ``augmenter`` augments; each draw of item ``i`` is keyed by ``(i, draw count)``, so augmented
    audio is reproducible and differs from epoch to epoch.
    """

    def __init__(
        self, segments: Segments, ids: Sequence[str], targets: np.ndarray, s: Settings, augmenter: Augmenter | None = None
    ):
        self.segments, self.ids, self.targets = segments, list(ids), np.asarray(targets)
        self.max_samples = int(s.max_seconds * SAMPLE_RATE)
        self.min_samples = int(s.min_seconds * SAMPLE_RATE)
        self.augmenter = augmenter
        self.draws = np.zeros(len(self.ids), dtype=np.int64)
        self._cache: dict[int, np.ndarray] | None = {} if s.cache_audio else None

    def __len__(self) -> int:
        return len(self.ids)

    def audio(self, i: int) -> np.ndarray:
        """Item ``i``'s (un-augmented) audio."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        audio = fit_length(self.segments.audio(self.ids[i]), self.max_samples, self.min_samples)
        if self._cache is not None:
            self._cache[i] = audio
        return audio

    def __getitem__(self, i: int) -> dict[str, Any]:
        audio = self.audio(i)
        if self.augmenter is not None:
            audio = self.augmenter(audio, key=(i, self.draws[i]))
            self.draws[i] += 1
        return {"audio": audio, "labels": self.targets[i]}

    def n_cropped(self) -> int:
        """How many items are longer than ``max_seconds`` (and were cut)."""
        return sum(self.segments.duration(u) * SAMPLE_RATE > self.max_samples for u in self.ids)


def fit_length(audio: np.ndarray, max_samples: int, min_samples: int) -> np.ndarray:
    """Keep the first ``max_samples``; zero-pad below ``min_samples`` (convolutional front ends need it)."""
    audio = np.asarray(audio, np.float32)[:max_samples]
    if len(audio) < min_samples:
        audio = np.pad(audio, (0, min_samples - len(audio)))
    return audio


def extract(extractor, audios: Sequence[np.ndarray]) -> dict[str, Any]:
    """Feature-extract a batch (padded to its longest item where the extractor pads)."""
    from transformers import Wav2Vec2FeatureExtractor

    kwargs = {"padding": True} if isinstance(extractor, Wav2Vec2FeatureExtractor) else {}
    return dict(extractor(list(audios), sampling_rate=SAMPLE_RATE, return_tensors="pt", **kwargs))


def unpadded_batches(extractor, batch_size: int) -> int:
    """wav2vec2-style extractors without an attention mask change outputs when padded: batch by one."""
    from transformers import Wav2Vec2FeatureExtractor

    if isinstance(extractor, Wav2Vec2FeatureExtractor) and not extractor.return_attention_mask:
        return 1
    return batch_size


class Collator:
    """Batches for the Trainer: feature-extracted audio plus ``labels`` (class index or target)."""

    def __init__(self, extractor, regression: bool):
        self.extractor, self.regression = extractor, regression

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = extract(self.extractor, [it["audio"] for it in items])
        dtype = torch.float32 if self.regression else torch.long
        batch["labels"] = torch.tensor(np.array([it["labels"] for it in items]), dtype=dtype)
        return batch


def is_ast(extractor) -> bool:
    from transformers import ASTFeatureExtractor

    return isinstance(extractor, ASTFeatureExtractor)


def fit_ast_normalisation(
    extractor, audios: Iterable[np.ndarray], total: int | None = None, progress: bool = True
) -> dict[str, float]:
    """Set AST's spectrogram ``mean``/``std`` from ``audios`` (pass the training split only).

    As in the AST fine-tuning tutorial: the mean of per-clip means and the mean of per-clip
    standard deviations of the un-normalised input spectrograms.
    """
    extractor.do_normalize = False
    means, stds = [], []
    for audio in tqdm(audios, total=total, desc="AST train-set mean/std", unit="utt", disable=not progress):
        x = extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np")["input_values"]
        means.append(float(x.mean()))
        stds.append(float(x.std(ddof=1)))
    if not means:
        raise FinetuneError("no training audio to compute AST normalisation statistics")
    extractor.mean, extractor.std = float(np.mean(means)), float(np.mean(stds))
    extractor.do_normalize = True
    return {"mean": extractor.mean, "std": extractor.std}


# ---------------------------------------------------------------------------------------------
# Models


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


def build_model(source: str | Path, task: Task, s: Settings):
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


# ---------------------------------------------------------------------------------------------
# Training


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


def _precision_flags(s: Settings, device: str) -> dict[str, bool]:
    import torch

    precision = s.precision
    if precision == "auto":
        precision = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise FinetuneError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
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
    s: Settings,
    *,
    source: str | Path,
    out_dir: Path,
    live_dir: Path,
):
    """Fine-tune one model on ``fold.train``, select its epoch on ``fold.dev``; save it to ``out_dir``.

    Returns ``(model, extractor, meta)``; test rows are never touched here.
    """
    from dvclive import Live
    from transformers import AutoFeatureExtractor, Trainer, TrainingArguments, set_seed

    from pipeline.backbones.base import resolve_device, resolve_revision

    regression = task.type == "regression"
    ids = rows.index.to_numpy()
    train_idx, dev_idx = np.flatnonzero(fold.train), np.flatnonzero(fold.dev)
    meta: dict[str, Any] = {
        "mode": s.mode,
        "backbone": s.backbone,
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
    if regression:
        mu, sd = float(np.mean(y[train_idx])), float(np.std(y[train_idx]))
        meta["target_scale"] = {"mean": mu, "std": sd if sd > 1e-8 else 1.0}
        targets = (y.astype(float) - mu) / meta["target_scale"]["std"]
    else:
        index = {c: i for i, c in enumerate(task.classes)}
        targets = np.array([index[v] for v in y], dtype=np.int64)

    set_seed(s.seed)  # the new classification head and the LoRA matrices start the same every run
    extractor = AutoFeatureExtractor.from_pretrained(source)
    train_ds = SegmentAudio(segments, ids[train_idx], targets[train_idx], s, build_augmenter(vars(s)))
    dev_ds = SegmentAudio(segments, ids[dev_idx], targets[dev_idx], s)
    if is_ast(extractor):
        meta["ast_normalisation"] = fit_ast_normalisation(
            extractor, (train_ds.audio(i) for i in range(len(train_ds))), len(train_ds), s.progress
        )
    model = build_model(source, task, s)
    weights = None if regression or s.class_weight is None else _class_weights(targets[train_idx], len(task.classes))

    device = resolve_device(s.device)
    has_dev = len(dev_ds) > 0
    metric = "ccc" if regression else "uar"
    work = out_dir.parent / f".{out_dir.name}.trainer"
    args = TrainingArguments(
        output_dir=str(work),
        num_train_epochs=s.epochs,
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=unpadded_batches(extractor, s.eval_batch_size),
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
    live.log_params({k: v for k, v in vars(s).items() if k != "progress"})
    best = _keep_best(metric)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=dev_ds if has_dev else None,
        data_collator=Collator(extractor, regression),
        compute_metrics=_metrics_fn(task),
        compute_loss_func=_loss_fn(regression, weights),
        callbacks=[_live_logger(live), best],
    )
    try:
        trainer.train()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    best.restore(trainer.model)
    meta["selection"] = _selection(trainer.state, metric, best.epoch)
    meta["n_cropped"] = train_ds.n_cropped() + dev_ds.n_cropped()
    meta["augment"] = train_ds.augmenter.names if train_ds.augmenter else []

    model = trainer.model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    extractor.save_pretrained(out_dir)
    write_json(out_dir / META, meta)
    return model, extractor, meta


# ---------------------------------------------------------------------------------------------
# Experiments (same contract as the probe)


def _split_table(task: Task, rows: pd.DataFrame, mask: np.ndarray, split: str, fold: str, pred, proba) -> pd.DataFrame:
    """Prediction rows in the probe's CSV layout: id, split, fold, speaker, actual, predicted[, p_<class>]."""
    frame = pd.DataFrame(
        {"speaker": rows["speaker"].to_numpy()[mask], "actual": rows[task.name].to_numpy()[mask], "predicted": pred}
    )
    frame.insert(0, "id", rows.index[mask])
    frame.insert(1, "split", split)
    frame.insert(2, "fold", fold)
    if proba is not None:
        for j, c in enumerate(task.classes):
            frame[f"p_{c}"] = proba[:, j]
    return frame


def _score(task: Task, table: pd.DataFrame) -> dict[str, Any]:
    """Full metrics of a prediction table through the probe's evaluation (per speaker where needed)."""
    classes = per_class_order(table) if task.type != "regression" else None
    proba = table[[f"p_{c}" for c in classes]].to_numpy() if classes else None
    actual = table["actual"].to_numpy(float if task.type == "regression" else object)
    return _evaluate(task, actual, table["predicted"].to_numpy(), proba, classes, table["speaker"].to_numpy())[0]


def finetune_task(
    task: Task, rows: pd.DataFrame, segments: Segments, s: Settings, *, source, model_dir: Path, live_dir: Path
):
    """Train (per fold), evaluate dev and test; return the experiment entry and the predictions table."""
    regression = task.type == "regression"
    y = rows[task.name].to_numpy(float if regression else object)
    planned = plan_folds(rows, y, s.seed, regression)
    folds = planned if s.folds == "all" else planned[:1]
    preds, per_fold = [], []
    for fold in folds:
        name = task.name if len(planned) == 1 else f"{task.name}.{fold.name}"
        model, extractor, meta = train_fold(
            task, rows, y, fold, segments, s, source=source, out_dir=model_dir / name, live_dir=live_dir / name
        )
        record = {"fold": fold.name, "dev_note": fold.dev_note, "selection": meta["selection"], "head": s.mode}
        for split, mask in (("dev", fold.dev), ("test", fold.test)):
            if not mask.any():
                continue
            clips = SegmentAudio(segments, rows.index[mask], np.zeros(mask.sum()), s)
            audios = (clips.audio(i) for i in range(len(clips)))
            logits = predict_outputs(model, extractor, audios, s.eval_batch_size, s.progress, len(clips))
            pred, proba = outputs_to_predictions(logits, meta)
            frame = _split_table(task, rows, mask, split, fold.name, pred, proba)
            record[split] = headline(_score(task, frame))
            preds.append(frame)
        per_fold.append(record)
    table = pd.concat(preds, ignore_index=True)
    entry: dict[str, Any] = {"type": task.type, "unit": task.unit, "classes": task.classes, "folds": per_fold}
    entry.update(folds_run=s.folds, n_folds_planned=len(planned))
    for split in ("dev", "test"):
        part = table[table["split"] == split]
        if not part.empty:
            entry[split] = _score(task, part)
    if len(folds) > 1:
        entry["fold_summary"] = {
            split: {k: mean_std([f[split][k] for f in per_fold if split in f]) for k in HEADLINE if k != "n"}
            for split in ("dev", "test")
        }
    return entry, table


def run_finetune(
    corpus: Corpus,
    segments: Segments,
    head_name: str,
    cfg: dict[str, Any],
    *,
    source: str | Path,
    model_dir: str | Path,
    metrics_path: str | Path,
    predictions_dir: str | Path,
    live_dir: str | Path,
) -> dict[str, Any]:
    """Fine-tune and evaluate ``head_name`` for every task of ``corpus``; write models, metrics,
    predictions and DVCLive training curves (``live_dir``).

    ``source`` is the encoder's local directory (the stage resolves it from params).
    """
    s = Settings.from_params(head_name, cfg)
    result: dict[str, Any] = {"corpus": corpus.name, "backbone": s.backbone, "head": head_name}
    known = set(corpus.manifest["id"])
    ids = [u for u in segments.ids if u in known]  # media skipped by `segment` are absent, as in the stores
    if not ids:
        raise FinetuneError(f"{segments.path}: no segmented utterance of corpus {corpus.name}")
    df = corpus.manifest.set_index("id").loc[ids]
    tasks: dict[str, Any] = {}
    with atomic_dir(model_dir) as mtmp, atomic_dir(predictions_dir) as ptmp, atomic_dir(live_dir) as ltmp:
        for task in corpus.tasks:
            labels = df[task.name]
            keep = (labels.notna() & (labels.astype(str) != "")).to_numpy()
            entry, table = finetune_task(task, df[keep], segments, s, source=source, model_dir=mtmp, live_dir=ltmp)
            entry.update(layer="", norm="global", n_unlabelled=int((~keep).sum()))
            table.to_csv(ptmp / f"{task.name}.csv", index=False)
            tasks[task.name] = entry
    result["tasks"] = tasks
    write_json(metrics_path, result)
    return result


def resolve_encoder(params: dict[str, Any], head_name: str, cfg: dict[str, Any]) -> Path:
    """The local encoder directory for a fine-tuning head: its ``source`` or its backbone's."""
    from pipeline.backbones.base import resolve_source

    backbone = cfg.get("backbone")
    if not backbone:
        raise FinetuneError(f"heads.{head_name}: 'backbone' is required")
    source = cfg.get("source") or params.get("backbones", {}).get(backbone, {}).get("source")
    if not source:
        raise FinetuneError(f"heads.{head_name}: no 'source' here nor in backbones.{backbone}")
    return resolve_source(backbone, source)



def curves_dir(corpus: str, backbone: str, head: str) -> Path:
    """Where the stage writes DVCLive training curves (beside ``metrics/experiments``)."""
    return METRICS / "dvclive" / corpus / backbone / head
