"""Backbones: pretrained encoders that turn segments into features.

Each type is one class in one module of this package, registered with ``@register_backbone("type")``;
params name a backbone (``backbones.<name>``) and give its ``type`` plus options. The smallest example
is ``opensmile_fn.py``. Modules are discovered automatically; they keep heavy imports (torch, models)
inside methods, so importing all of them is cheap and a missing optional dependency only matters
for the backbones that need it.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

from pipeline.backbones.base import Backbone, BackboneError

_TYPES: dict[str, type[Backbone]] = {}
_SKIP = {"base"}
_IMPORT_ERRORS: dict[str, str] = {}


def register_backbone(type_name: str) -> Callable[[type[Backbone]], type[Backbone]]:
    def deco(cls: type[Backbone]) -> type[Backbone]:
        cls.type_name = type_name
        _TYPES[type_name] = cls
        return cls

    return deco


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name in _SKIP or info.name.startswith("_") or info.name in _IMPORT_ERRORS:
            continue
        try:
            importlib.import_module(f"{__name__}.{info.name}")
        except ImportError as err:  # an optional dependency of that module only
            _IMPORT_ERRORS[info.name] = str(err)


def backbone_class(type_name: str) -> type[Backbone]:
    if type_name not in _TYPES:
        _load_all()
    if type_name not in _TYPES:
        hint = f" (modules that failed to import: {_IMPORT_ERRORS})" if _IMPORT_ERRORS else ""
        raise BackboneError(f"unknown backbone type {type_name!r}; known: {sorted(_TYPES)}{hint}")
    return _TYPES[type_name]


def list_types() -> list[str]:
    _load_all()
    return sorted(_TYPES)


def build_backbone(name: str, cfg: dict[str, Any]) -> Backbone:
    """Instantiate backbone ``name`` from its params section (must contain ``type``)."""
    if "type" not in cfg:
        raise BackboneError(f"backbones.{name}: missing 'type' (one of {list_types()})")
    return backbone_class(cfg["type"])(name, cfg)


__all__ = ["Backbone", "BackboneError", "build_backbone", "backbone_class", "register_backbone", "list_types"]
