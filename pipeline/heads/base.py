"""The head registry and the settings every head shares.

A head type is registered with :func:`register_head` together with its settings schema and its
``family``, which says which run list may name it, which stage trains it and which package holds it:

=============  ============  ==============================  ====================================
family         run list      package                         trains on
=============  ============  ==============================  ====================================
``probe``      run.heads     :mod:`pipeline.heads.probe`     one backbone's pooled features
``fusion``     run.fusions   :mod:`pipeline.heads.fusion`    several backbones' pooled features
``finetune``   run.finetune  :mod:`pipeline.heads.finetune`  the segments, end to end (LoRA / full)
``audio_llm``  run.audio_llm :mod:`pipeline.heads.audio_llm` frame features as soft tokens of an LM
=============  ============  ==============================  ====================================

``params.yaml``'s ``heads.<name>`` gives a head's ``type`` (default: the name itself) and options.
The registry is scoped: a family package declares itself (``HEADS.add_scope(...)`` in its
``__init__``) and a stage finds head types only in the families it imports, so editing a probe head
never reruns a fine-tuning or Audio-LLM stage. Tools that list every head call ``HEADS.names()``.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from pydantic import field_validator

from pipeline.core.errors import ConfigError
from pipeline.core.registry import Entry, Registry
from pipeline.core.settings import Settings

# Scoped: a stage looks head types up only in the family packages it imports (each declares itself
# with HEADS.add_scope), so it runs — and depends on — its own family only.
HEADS = Registry("head type", package="pipeline.heads", scoped=True)
FAMILIES = ("probe", "fusion", "finetune", "audio_llm")
RUN_LISTS = {"probe": "heads", "fusion": "fusions", "finetune": "finetune", "audio_llm": "audio_llm"}


class HeadSettings(Settings):
    """Options of every head."""

    type: str | None = None  # the head type (default: the section's name)
    seed: int = 0


def optional_class_weight(value: Any) -> Any:
    """``class_weight: none`` / ``null`` mean unweighted; only ``balanced`` weights."""
    return None if value is None or (isinstance(value, str) and value.lower() == "none") else value


class ClassWeightSettings(Settings):
    class_weight: Literal["balanced"] | None = "balanced"  # balanced | none

    @field_validator("class_weight", mode="before")
    @classmethod
    def _none_means_unweighted(cls, value: Any) -> Any:
        return optional_class_weight(value)


def register_head(kind: str, *, settings: type[HeadSettings], family: str, **info: Any) -> Callable[[type], type]:
    """Register a head class (or factory) under ``kind`` with its settings schema and family."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}")

    def deco(target: Any) -> Any:
        if family in ("probe", "fusion"):  # feature heads are built per type and say which (``kind``);
            target.kind = kind  # finetune and audio_llm register one learner for several types
        return HEADS.register(kind, settings=settings, family=family, **info)(target)

    return deco


def head_entry(name: str, cfg: Any, family: str | None = None) -> tuple[Entry, HeadSettings]:
    """The registry entry of ``heads.<name>`` and the section validated with its type's schema
    (the section's name is its type unless it says ``type``); checks the type belongs to ``family``."""
    entry = HEADS.get(head_kind(name, cfg), where=f"heads.{name}.type")
    if family is not None and entry.info["family"] != family:
        run_list = RUN_LISTS[entry.info["family"]]
        raise ConfigError(
            f"params.yaml: heads.{name} has type {entry.name!r}, a {entry.info['family']} head: it belongs in "
            f"run.{run_list}, not run.{RUN_LISTS[family]}"
        )
    return HEADS.resolve(f"heads.{name}", cfg, "type", default=name, record_key=True)


def head_kind(name: str, cfg: Any) -> str:
    kind = cfg.get("type") if isinstance(cfg, dict) else getattr(cfg, "type", None)
    return kind or name


def head_settings(name: str, cfg: Any, family: str | None = None) -> HeadSettings:
    """Validate ``heads.<name>`` with its type's schema (and check it belongs to ``family``)."""
    return head_entry(name, cfg, family)[1]


def head_family(name: str, cfg: Any) -> str:
    return HEADS.get(head_kind(name, cfg)).info["family"]
