"""``lora_multimodal``: LoRA on LanguageBind's towers end to end, their pooled embeddings concatenated, a linear head.

The end-to-end variant of the SemEval-2024 Task 3 seed (ECF text + video (+ audio) LanguageBind concat with
a linear head; the seed trained the head on frozen features and suggested LoRA against its overfitting).
The run item's backbone names LanguageBind backbones joined by ``+``
(``run.finetune: [{head: lora_multimodal, backbone: languagebind_text+languagebind_video}]``); each
``backbones.<name>`` section (``type: languagebind_text | languagebind_video | languagebind_audio``,
``source``, ``normalize``, ``max_length``, ``crop_seed``) builds its tower with the backbones' own code
(:mod:`pipeline.models.languagebind`: strict loading of the published checkpoint, LoRA factors merged) and
feeds it its own preprocessing: the manifest's ``text`` through the CLIP tokenizer, the segments store's
frames through LanguageBind's video transform (8 linspace frames; an utterance without frames gives a zero
video embedding), its 16-kHz audio through the Kaldi-fbank "image". Their projected embeddings
(L2-normalised where the backbone says ``normalize: true``) are concatenated in the item's order and a
``head`` (``nn.Linear``) gives the logits.

peft ``LoraConfig`` puts adapters on ``target_modules`` (default ``q_proj``/``v_proj``: every attention's
query and value projection: the text encoder's, the vision encoder's spatial and temporal attention);
``head`` is trained in full (``modules_to_save``); every other tower weight stays frozen. Training, dev-only
epoch selection (best dev UAR, CCC for regression), class weights, DVCLive curves and bf16-on-CUDA are the
``lora`` head's (:func:`pipeline.heads.finetune.trainer.fit`). Options: the Trainer settings (``epochs``,
``batch_size``, ``gradient_accumulation_steps``, ``learning_rate``, ``warmup_ratio``, ``weight_decay``,
``precision``, ``device``), ``r``, ``lora_alpha``, ``lora_dropout``, ``target_modules``, ``folds``,
``cache_inputs`` (keep the sampled frames / audio in memory across epochs).

A saved model directory holds ``finetune.json`` (mode, task, classes, the towers' names, types, sources,
revisions and options, selection), ``adapter_config.json`` + ``adapter_model.safetensors`` (the adapters
and the head); :func:`load_multimodal` rebuilds the towers from the recorded sources (or ``sources``) and
loads the adapters onto them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from tqdm import tqdm

from pipeline.core.io import read_json, write_json
from pipeline.core.manifest import Task
from pipeline.core.runtime import Device, Precision
from pipeline.heads.base import ClassWeightSettings, HeadSettings
from pipeline.heads.finetune.settings import FinetuneError

KINDS = {"languagebind_text": "text", "languagebind_video": "video", "languagebind_audio": "audio"}
TOWER_OPTIONS = {"text": {"max_length": 77}, "video": {}, "audio": {"crop_seed": 0}}
META = "finetune.json"


class MultimodalLoraSettings(HeadSettings, ClassWeightSettings):
    """The towers are the run item's backbones (``languagebind_text+languagebind_video``), each read from
    its ``backbones.<name>`` section."""

    type: Literal["lora_multimodal"] | None = None
    epochs: float = Field(10, gt=0)
    batch_size: int = Field(4, ge=1)
    eval_batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    folds: Literal["first", "all"] = "first"
    device: Device = "auto"
    precision: Precision = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    logging_steps: int = Field(10, ge=1)
    r: int = Field(8, ge=1)  # LoRA rank
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)
    cache_inputs: bool = True  # keep each item's sampled frames / audio in memory after the first epoch
    progress: bool = True

    @property
    def mode(self) -> str:
        return "lora_multimodal"


@dataclass(frozen=True)
class TowerSpec:
    """One tower of the item: its backbone name, kind (text/video/audio), checkpoint directory and options."""

    name: str
    kind: str
    source: str
    normalize: bool = False
    max_length: int = 77
    crop_seed: int = 0


def tower_names(backbone: str, sections: dict[str, Any], where: str = "run.finetune",
                error: type[Exception] = FinetuneError) -> list[str]:
    """The towers run item backbone ``a+b(+c)`` names, each a LanguageBind backbone section in ``sections``."""
    from pipeline.core.config import split_members

    names = split_members(backbone, where, f"lora_multimodal trains LanguageBind towers ({', '.join(sorted(KINDS))}) "
                          f"joined by '+', each once", error=error)
    for name in names:
        if name not in sections:
            raise error(f"params.yaml: {where} names {name!r}, but there is no backbones.{name} section")
        kind = (sections[name] or {}).get("type")
        if kind not in KINDS:
            raise error(f"params.yaml: backbones.{name}.type is {kind!r}; lora_multimodal trains LanguageBind "
                        f"towers: one of {sorted(KINDS)}")
    return names


def tower_specs(backbone: str, sections: dict[str, Any]) -> list[TowerSpec]:
    """The towers of run item backbone ``a+b(+c)`` from their ``backbones.<name>`` sections (a dict per name)."""
    from pipeline.core.runtime import resolve_source

    specs = []
    for name in tower_names(backbone, sections):
        cfg = dict(sections[name])
        kind = KINDS[cfg["type"]]
        if not cfg.get("source"):
            raise FinetuneError(f"params.yaml: backbones.{name} has no source (the LanguageBind checkpoint)")
        options = {k: cfg.get(k, default) for k, default in TOWER_OPTIONS[kind].items()}
        specs.append(TowerSpec(name, kind, str(resolve_source(name, cfg["source"])),
                               bool(cfg.get("normalize", False)), **options))
    return specs


# --- the model -----------------------------------------------------------------------------------------


def load_tower(spec: TowerSpec) -> tuple[Any, dict[str, Any], Any]:
    """``(module, checkpoint config, tokenizer or None)`` of one tower, via the backbones' loaders."""
    from pipeline.core.errors import BackboneError
    from pipeline.models.languagebind import load_text_tower, load_vision_tower

    try:
        if spec.kind == "text":
            model, tokenizer, config, _ = load_text_tower(spec.name, Path(spec.source))
            return model, config, tokenizer
        tower, config, _ = load_vision_tower(spec.name, Path(spec.source), spec.kind)
        return tower, config, None
    except BackboneError as err:  # one line naming the backbone and the file, as a fine-tuning error
        raise FinetuneError(str(err)) from err


@functools.cache
def _model_class():
    import torch
    from torch import nn

    from pipeline.models.languagebind import text_features

    class MultimodalClassifier(nn.Module):
        """Towers (``towers.<backbone>``) → projected embeddings, concatenated → ``head`` → ``{"logits"}``."""

        def __init__(self, specs: Sequence[TowerSpec], towers: dict[str, nn.Module], dims: Sequence[int],
                     num_labels: int):
            super().__init__()
            self.specs = list(specs)
            self.towers = nn.ModuleDict(towers)
            self.head = nn.Linear(int(sum(dims)), num_labels)

        def forward(self, labels=None, **inputs):
            parts = []
            for spec in self.specs:
                tower = self.towers[spec.name]
                if spec.kind == "text":
                    v = text_features(tower, inputs[f"{spec.name}.input_ids"], inputs[f"{spec.name}.attention_mask"])
                elif spec.kind == "video":
                    v = tower(inputs[f"{spec.name}.pixel_values"])[0]
                    v = v * inputs[f"{spec.name}.present"].to(v.dtype)[:, None]  # no frames: a zero embedding
                else:
                    v = tower(inputs[f"{spec.name}.pixel_values"])[0]
                if spec.normalize:
                    v = torch.nn.functional.normalize(v.float(), dim=-1).to(v.dtype)
                parts.append(v)
            return {"logits": self.head(torch.cat(parts, dim=-1))}

    return MultimodalClassifier


def build_base(specs: Sequence[TowerSpec], num_labels: int):
    """The classifier before LoRA, and its preprocessing (a :class:`Preprocess`)."""
    towers, configs, tokenizers, dims = {}, {}, {}, []
    for spec in specs:
        module, configs[spec.name], tokenizers[spec.name] = load_tower(spec)
        towers[spec.name] = module
        dims.append(module.text_projection.out_features if spec.kind == "text" else module.visual_projection.out_features)
    return _model_class()(specs, towers, dims, num_labels), Preprocess(specs, configs, tokenizers)


def add_lora(model, s: MultimodalLoraSettings):
    """peft LoRA on the towers' ``target_modules``; the head trained in full; everything else frozen."""
    from peft import LoraConfig, get_peft_model

    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.towers.named_modules()}
    missing = sorted(set(s.target_modules) - leaves)
    if missing:
        raise FinetuneError(f"heads lora_multimodal: target_modules {missing} are not modules of the towers "
                            f"(attention projections are q_proj, k_proj, v_proj, out_proj)")
    # a regex over the towers only, so that the head is never adapted
    pattern = r"towers\..*\.(" + "|".join(s.target_modules) + r")"
    config = LoraConfig(r=s.r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout, target_modules=pattern,
                        modules_to_save=["head"], bias="none")
    return get_peft_model(model, config)


# --- data ------------------------------------------------------------------------------------------------


class Preprocess:
    """Each tower's own input transform (the backbones' code), batched into the model's keyword inputs."""

    def __init__(self, specs: Sequence[TowerSpec], configs: dict[str, dict], tokenizers: dict[str, Any]):
        self.specs, self.configs, self.tokenizers = list(specs), configs, tokenizers

    def num_frames(self, spec: TowerSpec) -> int:
        return int(self.configs[spec.name]["vision_config"].get("num_frames", 8))

    def raw(self, spec: TowerSpec, uid: str, text: str, segments) -> Any:
        """What the tower reads of one item: its text, its sampled frames (uint8) or its audio."""
        from pipeline.models.languagebind import sample_frame_ids

        if spec.kind == "text":
            return text
        if spec.kind == "video":
            frames = segments.frames(uid)
            return frames[sample_frame_ids(len(frames), self.num_frames(spec))] if len(frames) else frames
        return np.asarray(segments.audio(uid), np.float32)

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        from pipeline.models.languagebind import audio_image, text_inputs, video_pixels

        batch: dict[str, Any] = {}
        for spec in self.specs:
            values = [it[spec.name] for it in items]
            if spec.kind == "text":
                enc = text_inputs(self.tokenizers[spec.name], values, spec.max_length)
                batch.update({f"{spec.name}.{k}": v for k, v in enc.items()})
            elif spec.kind == "video":
                size, k = int(self.configs[spec.name]["vision_config"]["image_size"]), self.num_frames(spec)
                empty = torch.zeros(3, k, size, size)
                batch[f"{spec.name}.pixel_values"] = torch.stack(
                    [video_pixels(f, k, size) if len(f) else empty for f in values])
                batch[f"{spec.name}.present"] = torch.tensor([len(f) > 0 for f in values])
            else:
                vision = self.configs[spec.name]["vision_config"]
                batch[f"{spec.name}.pixel_values"] = torch.from_numpy(
                    np.stack([audio_image(w, vision, spec.crop_seed)[0] for w in values]))
        if "labels" in items[0]:
            dtype = torch.long if np.issubdtype(np.asarray(items[0]["labels"]).dtype, np.integer) else torch.float32
            batch["labels"] = torch.tensor(np.array([it["labels"] for it in items]), dtype=dtype)
        return batch


class MultimodalItems:
    """Training/evaluation examples: each tower's raw input for ``ids`` (text from ``texts``), with targets."""

    def __init__(self, segments, ids: Sequence[str], texts: Sequence[str], targets: np.ndarray | None,
                 prep: Preprocess, cache: bool = True):
        self.segments, self.ids, self.texts, self.prep = segments, list(ids), list(texts), prep
        self.targets = None if targets is None else np.asarray(targets)
        self._cache: dict[int, dict[str, Any]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self._cache is not None and i in self._cache:
            item = self._cache[i]
        else:
            item = {s.name: self.prep.raw(s, self.ids[i], self.texts[i], self.segments) for s in self.prep.specs}
            if self._cache is not None:
                self._cache[i] = item
        return item if self.targets is None else {**item, "labels": self.targets[i]}


def texts_of(rows, ids: Sequence[str]) -> list[str]:
    """The manifest's ``text`` of ``ids`` (empty where missing)."""
    if "text" not in rows.columns:
        return [""] * len(ids)
    return [str(t) if isinstance(t, str) else "" for t in rows.loc[list(ids), "text"]]


# --- training, saving, reloading -----------------------------------------------------------------------


def train_fold_multimodal(task: Task, rows, y: np.ndarray, fold, segments, s: MultimodalLoraSettings, *,
                          specs: Sequence[TowerSpec], out_dir: Path, live_dir: Path, backbone: str):
    """Train on ``fold.train``, pick the epoch on ``fold.dev``, save to ``out_dir``: ``(model, prep, meta)``."""
    from transformers import set_seed

    from pipeline.core.runtime import resolve_revision
    from pipeline.heads.finetune.trainer import encode_targets, fit

    ids = rows.index.to_numpy()
    train_idx, dev_idx = np.flatnonzero(fold.train), np.flatnonzero(fold.dev)
    meta: dict[str, Any] = {
        "mode": s.mode, "backbone": backbone, "task": asdict(task), "classes": list(task.classes), "fold": fold.name,
        "towers": [{**asdict(sp), "revision": resolve_revision(Path(sp.source))} for sp in specs],
        "n_train": len(train_idx), "n_dev": len(dev_idx),
    }
    targets = encode_targets(task, y, train_idx, meta)
    set_seed(s.seed)  # the head and the LoRA matrices start the same every run
    num_labels = 1 if task.type == "regression" else len(task.classes)
    base, prep = build_base(specs, num_labels)
    model = add_lora(base, s)
    texts = texts_of(rows, ids)
    train_ds = MultimodalItems(segments, ids[train_idx], [texts[i] for i in train_idx], targets[train_idx], prep,
                               s.cache_inputs)
    dev_ds = MultimodalItems(segments, ids[dev_idx], [texts[i] for i in dev_idx], targets[dev_idx], prep,
                             s.cache_inputs)
    meta["n_trainable"] = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    trainer, meta["selection"] = fit(model, train_ds, dev_ds, prep, task, targets[train_idx], s, out_dir=out_dir,
                                     live_dir=live_dir, eval_batch_size=s.eval_batch_size)
    model = trainer.model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    write_json(out_dir / META, meta)
    return model, prep, meta


def load_multimodal(path: str | Path, sources: dict[str, str | Path] | None = None):
    """Reload a saved ``lora_multimodal`` model: ``(model in eval mode, preprocessing, metadata)``.

    The towers are rebuilt from the sources recorded at training time (``sources``: ``{backbone: dir}``
    overrides, e.g. on another machine) and the adapters and head are loaded onto them.
    """
    from peft import PeftModel

    path = Path(path)
    if not (path / META).exists():
        raise FinetuneError(f"{path}: no {META}; not a fine-tuned model directory")
    meta = read_json(path / META)
    if meta.get("mode") != "lora_multimodal":
        raise FinetuneError(f"{path}: {META} says mode {meta.get('mode')!r}, not lora_multimodal")
    specs = []
    for t in meta["towers"]:
        fields = {k: v for k, v in t.items() if k in TowerSpec.__dataclass_fields__}
        source = Path((sources or {}).get(t["name"], t["source"]))
        if not source.is_dir():
            raise FinetuneError(f"{path}: tower {t['name']}'s checkpoint {source} not found; pass its directory")
        specs.append(TowerSpec(**{**fields, "source": str(source)}))
    num_labels = 1 if meta["task"]["type"] == "regression" else len(meta["classes"])
    base, prep = build_base(specs, num_labels)
    return PeftModel.from_pretrained(base, path).eval(), prep, meta


def predict_multimodal(model, prep: Preprocess, items: MultimodalItems, batch_size: int = 8,
                       progress: bool = False) -> np.ndarray:
    """Raw outputs (logits) [n, num_labels] of ``items`` (built without targets)."""
    import torch

    device = next(model.parameters()).device
    out = []
    for start in tqdm(range(0, len(items), batch_size), desc="predict", unit="batch", disable=not progress):
        batch = prep([items[i] for i in range(start, min(start + batch_size, len(items)))])
        with torch.inference_mode():
            out.append(model(**{k: v.to(device) for k, v in batch.items()})["logits"].float().cpu().numpy())
    if out:
        return np.concatenate(out)
    return np.zeros((0, model.base_model.model.head.out_features), np.float32)
