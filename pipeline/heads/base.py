"""The head registry, the settings every head shares, and building a head for a task.

A head type is registered with :func:`register_head` together with its settings schema and its
``family``, which says which run list may name it and which stage trains it:

=============  ============  ====================================================================
family         run list      trains on
=============  ============  ====================================================================
``probe``      run.heads     one backbone's pooled features (also the probe inside fusion heads)
``fusion``     run.fusions   several backbones' pooled features (``backbone: a+b+c``)
``finetune``   run.finetune  the segments, end to end (LoRA or full fine-tuning of an encoder)
``audio_llm``  run.audio_llm frame features as soft tokens of a causal LM (three stages)
=============  ============  ====================================================================

``params.yaml``'s ``heads.<name>`` gives a head's ``type`` (default: the name itself) and options.
The task type is a parameter, not a class: a probe head built for a regression task fits a
regression model (``logreg`` becomes ridge regression, ``mlp`` trains on MSE).

Feature heads (``probe`` and ``fusion``) expose ``fit(X_train, y_train, X_dev, y_dev)`` (model
selection on dev only), ``predict(X)``, ``predict_proba(X)`` + ``classes_`` (classification),
``save(path)``, ``selection`` (what was chosen and why) and optionally ``member_outputs(X)`` (one
``(seed, predicted, proba)`` per trained seed) and ``layer_info``. ``native_layers`` heads handle
``layer: best|weighted`` themselves on [N, L, D] input; others get ``best`` from
:class:`pipeline.heads.layers.BestLayer` and refuse ``weighted``.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from pydantic import field_validator

from pipeline.core.errors import ConfigError
from pipeline.core.registry import Registry
from pipeline.core.settings import Settings

HEADS = Registry("head type", package="pipeline.heads", section="heads")
FAMILIES = ("probe", "fusion", "finetune", "audio_llm")
RUN_LISTS = {"probe": "heads", "fusion": "fusions", "finetune": "finetune", "audio_llm": "audio_llm"}
LAYER_MODES = ("best", "weighted")  # layer choices made by training, not named in params

Layer = Literal["last", "best", "weighted"] | int
Device = Literal["auto", "cpu", "cuda"]


class HeadSettings(Settings):
    """Options of every head."""

    type: str | None = None  # the head type (default: the section's name)
    seed: int = 0


class FeatureHeadSettings(HeadSettings):
    """Options of heads trained on pooled features (probes and fusion)."""

    layer: Layer = "last"  # layered backbones: last | <index> | best (chosen on dev) | weighted (torch heads)
    speaker_norm: bool = False  # z-score every feature within each speaker first (label-free)
    standardize: bool = True  # z-score features with training statistics (off when the caller scales)
    device: Device = "auto"


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
        if isinstance(target, type):
            target.kind = kind
        return HEADS.register(kind, settings=settings, family=family, **info)(target)

    return deco


def head_kind(name: str, cfg: Any) -> str:
    kind = cfg.get("type") if isinstance(cfg, dict) else getattr(cfg, "type", None)
    return kind or name


def head_settings(name: str, cfg: Any, family: str | None = None) -> HeadSettings:
    """Validate ``heads.<name>`` with its type's schema (and check it belongs to ``family``)."""
    entry = HEADS.get(head_kind(name, cfg), where=f"heads.{name}.type")
    if family is not None and entry.info["family"] != family:
        run_list = RUN_LISTS[entry.info["family"]]
        raise ConfigError(
            f"params.yaml: heads.{name} has type {entry.name!r}, a {entry.info['family']} head: it belongs in "
            f"run.{run_list}, not run.{RUN_LISTS[family]}"
        )
    if isinstance(cfg, entry.settings):
        return cfg
    if isinstance(cfg, dict) and not cfg.get("type"):
        cfg = {**cfg, "type": entry.name}  # the section's name is its type: make that explicit
    return HEADS.settings(entry.name, cfg, f"heads.{name}")


def head_family(name: str, cfg: Any) -> str:
    return HEADS.get(head_kind(name, cfg)).info["family"]


def build_head(name: str, settings: Any, task_type: str = "classification", layers: str | None = None, **extra: Any):
    """Build feature head ``name`` for a task from its (validated or raw) settings.

    ``layers`` is ``best`` or ``weighted`` when the head will see every layer ([N, L, D]) and must
    choose or weight them itself; heads without their own layer handling get ``best`` by a sweep
    (one fit per layer) and cannot learn layer weights. ``extra`` are run-time inputs some heads need
    (fusion: ``member_dims``).
    """
    settings = head_settings(name, settings)
    entry = HEADS.get(head_kind(name, settings))

    def make(**overrides: Any):
        s = settings.replace(**overrides) if overrides else settings
        return entry.target.make(s, task_type, **extra)

    cls = entry.target
    if layers is None or getattr(cls, "native_layers", False):
        return make()
    if layers == "weighted":
        raise ConfigError(
            f"heads.{name}: layer: weighted learns layer weights jointly with a torch head (mlp, linear); "
            f"{entry.name} cannot — use layer: best, last or an index"
        )
    from pipeline.heads.layers import BestLayer

    return BestLayer(make, task_type)


class Head:
    """Base of the feature heads: ``make`` builds one for a task type (regression is a parameter)."""

    kind = ""
    task_type = "classification"

    @classmethod
    def make(cls, settings: Any, task_type: str = "classification", **extra: Any):
        return cls(settings, task_type, **extra)

