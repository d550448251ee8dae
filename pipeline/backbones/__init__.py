"""Backbones: pretrained encoders that turn segments into features.

Each type is one class in one module, registered with ``@register_backbone("type")``; params name a
backbone (``backbones.<name>``) and give its ``type`` plus options. ``template.py``-style minimal
example: see ``opensmile_fn.py``. Modules are imported lazily so a missing optional dependency only
matters for the backbones that need it.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from pipeline.backbones.base import Backbone, BackboneError

_TYPES: dict[str, type[Backbone]] = {}
# type name → module that registers it (imported on first use).
_MODULES = {
    "opensmile": "pipeline.backbones.opensmile_fn",
    "hf_audio": "pipeline.backbones.hf_audio",
    "hf_text": "pipeline.backbones.hf_text",
    "fer": "pipeline.backbones.fer_video",
}


def register_backbone(type_name: str) -> Callable[[type[Backbone]], type[Backbone]]:
    def deco(cls: type[Backbone]) -> type[Backbone]:
        cls.type_name = type_name
        _TYPES[type_name] = cls
        return cls

    return deco


def backbone_class(type_name: str) -> type[Backbone]:
    if type_name not in _TYPES:
        if type_name not in _MODULES:
            raise BackboneError(f"unknown backbone type {type_name!r}; known: {sorted(_MODULES)}")
        importlib.import_module(_MODULES[type_name])
    return _TYPES[type_name]


def list_types() -> list[str]:
    return sorted(_MODULES)


def build_backbone(name: str, cfg: dict[str, Any]) -> Backbone:
    """Instantiate backbone ``name`` from its params section (must contain ``type``)."""
    if "type" not in cfg:
        raise BackboneError(f"backbones.{name}: missing 'type' (one of {list_types()})")
    return backbone_class(cfg["type"])(name, cfg)


__all__ = ["Backbone", "BackboneError", "build_backbone", "backbone_class", "register_backbone", "list_types"]
