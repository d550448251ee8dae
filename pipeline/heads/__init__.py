"""Heads: models trained on top of features. Each registered by name, configured by ``heads.<name>``.

A head is built from its params section and exposes ``fit(X_train, y_train, X_dev, y_dev)`` (model
selection on dev only — a head never sees test data while choosing anything), ``predict(X)`` and
``save(dir)``; ``selection`` describes what was chosen and why.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

_HEADS: dict[str, type] = {}
_MODULES = {"logreg": "pipeline.heads.logreg", "ridge": "pipeline.heads.ridge"}
# A classification head asked to model a regression task uses its regression counterpart.
REGRESSION_COUNTERPART = {"logreg": "ridge"}


def register_head(kind: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.kind = kind
        _HEADS[kind] = cls
        return cls

    return deco


def build_head(name: str, cfg: dict[str, Any], task_type: str = "classification"):
    """Instantiate head ``name`` for a task; its ``type`` defaults to the name itself (``logreg``)."""
    kind = cfg.get("type", name)
    if task_type == "regression":
        kind = REGRESSION_COUNTERPART.get(kind, kind)
    if kind not in _HEADS:
        if kind not in _MODULES:
            raise KeyError(f"heads.{name}: unknown head type {kind!r}; known: {sorted(_MODULES)}")
        importlib.import_module(_MODULES[kind])
    return _HEADS[kind](cfg)
