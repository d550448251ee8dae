"""A fine-tuning head's settings (``heads.<name>`` with ``type: lora | full``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.core.errors import HeadError
from pipeline.core.runtime import Device, Precision
from pipeline.heads.base import ClassWeightSettings, HeadSettings
from pipeline.heads.finetune.augment import AugmentError, build_augmenter

DEFAULT_LR = {"lora": 5e-4, "full": 5e-5}


class FinetuneError(HeadError):
    """Bad fine-tuning inputs (a HeadError, so stages print it as one line)."""


class FinetuneSettings(HeadSettings, ClassWeightSettings):
    """The encoder is the run item's backbone (``run.finetune: [{head: lora, backbone: ast}]``): its
    ``backbones.<backbone>.source`` unless ``source`` overrides it."""

    type: Literal["lora", "full"] | None = None  # lora: peft adapters + the head; full: every weight
    source: str | None = None  # overrides backbones.<backbone>.source
    epochs: float = Field(10, gt=0)
    batch_size: int = Field(8, ge=1)
    eval_batch_size: int = Field(8, ge=1)
    learning_rate: float | None = Field(None, gt=0)  # default: 5e-4 (lora), 5e-5 (full)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)  # linear warm-up over this fraction of the steps, then decay
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_seconds: float = Field(10.0, gt=0)  # longer utterances are cut (counted as n_cropped in finetune.json)
    min_seconds: float = Field(0.1, ge=0)  # shorter ones are zero-padded
    folds: Literal["first", "all"] = "first"  # cross-validation protocols: train the first fold or every fold
    device: Device = "auto"
    precision: Precision = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    logging_steps: int = Field(10, ge=1)
    freeze_feature_encoder: bool = True  # full mode, wav2vec2 family: keep the CNN front end fixed
    r: int = Field(8, ge=1)  # LoRA rank
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] | None = None  # default: the model's q_proj/v_proj (or query/value)
    modules_to_save: list[str] | None = None  # default: the model's classification head modules
    augment: list[dict[str, Any]] = Field(default_factory=list)  # audiomentations transforms (training only)
    shuffle_augment: bool = False
    augment_p: float = Field(1.0, ge=0, le=1)
    cache_audio: bool = True  # keep train/dev audio in memory after the first epoch
    progress: bool = True

    @property
    def mode(self) -> str:
        return self.type or "lora"

    @field_validator("augment")
    @classmethod
    def _augment_builds(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:  # fail on a bad augment list now, not after the first model has trained
            build_augmenter(value)
        except AugmentError as err:
            raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _learning_rate(self) -> "FinetuneSettings":
        if self.learning_rate is None:
            object.__setattr__(self, "learning_rate", DEFAULT_LR[self.mode])
        return self
