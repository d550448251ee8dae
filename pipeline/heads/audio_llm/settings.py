"""The Audio-LLM head's settings (``heads.<name>`` with ``type: audio_llm``), grouped by stage.

The groups are what lets each DVC stage depend on only what it reads (dvc.yaml lists them):
``align`` reads ``llm``, ``tasks``, ``projector``, ``video_projector`` and ``align``; ``instruct``
reads ``llm``, ``tasks``, ``languages``, ``instruct`` and ``generate`` (dev selection generates
answers); ``eval`` reads ``llm``, ``tasks``, ``languages`` and ``generate``. Which feature stores
feed the model is the run item's ``backbone``: ``egemaps`` (audio tokens), ``egemaps+fer``
(audio tokens + projected video tokens), or several further stores, one token group each
(``hubert_zh_large+eva_clip_g+mae_face+videomae_base``, Emotion-LLaMA style; see :mod:`.plan`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.core.settings import Settings
from pipeline.core.runtime import Device, Precision


class LLMSettings(Settings):
    source: str  # local dir or a cached hub id (Qwen/Qwen2.5-0.5B-Instruct, -3B-Instruct)
    device: Device = "auto"
    precision: Precision = "auto"  # fp32 on CPU; bf16 on CUDA
    seed: int = 0


class ProjectorSettings(Settings):
    hidden: int = Field(1024, ge=1)  # the MLP's hidden width
    downsample: int = Field(1, ge=1)  # frames averaged into one soft token
    max_tokens: int | None = Field(None, ge=1)  # longer sequences are pooled down to this many tokens


class StageSettings(Settings):
    lr: float = Field(1e-4, gt=0)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)


class AlignSettings(StageSettings):
    """Stage 1: the projector(s) learn against the frozen LLM; best epoch by dev caption loss."""

    stage1_target: Literal["auto", "transcript", "description"] = "auto"


class LoraSettings(Settings):
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1)


class InstructSettings(StageSettings):
    """Stage 2: projector(s) + LoRA on answer tokens; best epoch by dev UAR (or loss)."""

    select_by: Literal["uar", "loss"] = "uar"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    gradient_checkpointing: bool = False


class GenerateSettings(Settings):
    max_new_tokens: int = Field(8, ge=1)
    eval_batch_size: int = Field(16, ge=1)


class AudioLLMSettings(Settings):
    type: str | None = None
    llm: LLMSettings
    tasks: list[str] | None = None  # classification tasks to instruct (null: all)
    languages: list[Literal["en", "zh"]] = Field(default_factory=lambda: ["en"], min_length=1)  # first = headline
    projector: ProjectorSettings = Field(default_factory=ProjectorSettings)
    video_projector: ProjectorSettings | None = None  # every further token group's projector (null: as projector)
    align: AlignSettings = Field(default_factory=AlignSettings)
    instruct: InstructSettings = Field(default_factory=InstructSettings)
    generate: GenerateSettings = Field(default_factory=GenerateSettings)
