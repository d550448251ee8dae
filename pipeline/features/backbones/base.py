"""The backbone interface, its settings and registry, and the pooling every backbone shares.

A backbone type is one class registered with :func:`register_backbone` together with its settings
schema (a :class:`BackboneSettings` subclass: the only place its defaults live). ``params.yaml``
names backbones (``backbones.<name>``) and gives each a ``type`` plus that type's options;
:func:`build_backbone` validates them and builds the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, Sequence

import numpy as np
from pydantic import Field

from pipeline.core.errors import BackboneError
from pipeline.core.runtime import Device, Precision
from pipeline.core.registry import Registry
from pipeline.core.settings import Settings

BACKBONES = Registry("backbone type", package="pipeline.features.backbones")

Pooling = Literal["mean", "mean+std", "max"]


class BackboneSettings(Settings):
    """Options of every backbone type."""

    type: str
    batch_size: int = Field(8, ge=1, description="items per embed() call (scheduling only)")


class FetchSettings(Settings):
    """Where ``python -m pipeline.tools.models fetch <name>`` downloads a model from (never read at run time)."""

    hub: str | None = None  # org/name (Hugging Face), modelscope:org/name
    hub_revision: str | None = None
    hub_allow: list[str] | None = None
    hub_ignore: list[str] | None = None


class ModelSettings(BackboneSettings, FetchSettings):
    """Model-backed backbones: a local ``source`` directory, device and numeric precision."""

    source: str  # local dir, package:<module>, or a hub id already in the local cache
    device: Device = "auto"
    precision: Precision = "auto"  # fp32 on CPU; bf16 on CUDA


# Settings that decide how work is scheduled or where weights were fetched from, not what is computed:
# they are left out of the embed cache key and of the store's params_hash. ``strict`` decides only
# whether a checkpoint that does not fit may load at all; what did load is in the key through the
# checkpoint's revision and recorded in the store's attributes (``load_report`` / ``conversion``).
NON_RESULT_KEYS = ("batch_size", "batch_seconds", "hub", "hub_revision", "hub_allow", "hub_ignore", "strict")
# describe() keys that count what one run computed (inputs padded, windowed, empty, without a face,
# ...): they depend on what the embed cache already held, so the engine prints them after the run
# and never stores them (a resumed store must equal an uninterrupted one, attributes included).
RUN_COUNTERS = ("n_padded", "n_windowed", "n_empty", "n_clips", "n_repeated", "n_multi_clip", "n_vad_fallback", "n_long",
                "frames_total", "frames_without_face", "utterances_without_face")


def result_settings(settings: BackboneSettings) -> dict[str, Any]:
    """The settings that decide a backbone's output (``NON_RESULT_KEYS`` left out)."""
    return settings.dump(exclude=set(NON_RESULT_KEYS) & set(type(settings).model_fields))


@dataclass
class Embedding:
    """One utterance's output: ``pooled`` [D] or [L, D]; ``frames`` [T, D] or None."""

    pooled: np.ndarray
    frames: np.ndarray | None = None


class Backbone:
    """Base class. Subclasses set ``modality`` and implement :meth:`embed`.

    ``embed`` receives a batch of inputs of the backbone's modality — 16 kHz mono float32 arrays for
    ``audio``, strings for ``text``, uint8 [T, H, W, 3] frame stacks for ``video`` — and returns one
    :class:`Embedding` per input. ``settings`` is the validated ``backbones.<name>`` section.
    """

    type_name: ClassVar[str] = ""
    modality: ClassVar[str] = "audio"
    has_frames: ClassVar[bool] = False
    # No backbone here produces NaN or infinity, so a store holding one is damaged and is not sealed;
    # a backbone whose outputs may legitimately be non-finite says so here.
    nonfinite_ok: ClassVar[bool] = False

    def __init__(self, name: str, settings: BackboneSettings):
        self.name = name
        self.settings = settings
        self.batch_size = settings.batch_size

    def load_runtime(self) -> None:
        """Common setup of model-backed backbones: ``model_dir``, ``device``, ``dtype`` (and ``pooling``)."""
        from pipeline.core.runtime import resolve_device, resolve_source, torch_dtype

        s = self.settings
        self.model_dir = resolve_source(self.name, s.source)
        self.device = resolve_device(s.device)
        self.dtype = torch_dtype(self.device, s.precision)
        if "pooling" in type(s).model_fields:
            self.pooling = s.pooling

    def embed(self, batch: Sequence[Any]) -> list[Embedding]:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Provenance recorded in the store: source, revision, frame rate, ..."""
        return {"source": getattr(self.settings, "source", None), "revision": None, "frame_rate": None}


def register_backbone(type_name: str, *, settings: type[BackboneSettings], **info: Any) -> Callable[[type], type]:
    """Register a backbone class under ``type_name`` with its settings schema (and facts for listings:
    ``licence``, ``weights``)."""

    def deco(cls: type) -> type:
        cls.type_name = type_name
        return BACKBONES.register(type_name, settings=settings, modality=cls.modality, **info)(cls)

    return deco


def backbone_settings(name: str, cfg: Any) -> BackboneSettings:
    """Validate ``backbones.<name>`` with the schema of its ``type``."""
    if isinstance(cfg, BackboneSettings):
        return cfg
    return BACKBONES.resolve(f"backbones.{name}", cfg, "type")[1]


def backbone_class(type_name: str) -> type[Backbone]:
    return BACKBONES.get(type_name).target


def build_backbone(name: str, cfg: Any) -> Backbone:
    """Instantiate backbone ``name`` from its params section (validated against its type's schema)."""
    settings = backbone_settings(name, cfg)
    return backbone_class(settings.type)(name, settings)


POOLINGS = ("mean", "mean+std", "max")


def pool(frames: np.ndarray, how: str = "mean") -> np.ndarray:
    """Pool [T, D] (or [L, T, D]) over time (axis -2)."""
    if how not in POOLINGS:
        raise BackboneError(f"pooling must be one of {POOLINGS}, got {how!r}")
    if frames.shape[-2] == 0:
        dim = frames.shape[-1] * (2 if how == "mean+std" else 1)
        return np.zeros((*frames.shape[:-2], dim), np.float32)
    if how == "mean":
        return frames.mean(axis=-2)
    if how == "max":
        return frames.max(axis=-2)
    return np.concatenate([frames.mean(axis=-2), frames.std(axis=-2)], axis=-1)
