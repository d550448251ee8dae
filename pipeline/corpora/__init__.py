"""Corpus recipes: one module per corpus, each registering a ``prepare`` function.

A recipe turns a corpus on disk (or, for ``demo``, one it synthesises) into a validated
:class:`pipeline.manifest.Corpus`. A new corpus is one module in this package with a function
decorated ``@register_corpus("name")``; modules are discovered automatically. See ``demo.py``
for the template and ``common.py`` for shared helpers.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any, Callable

from pipeline.manifest import Corpus

PrepareFn = Callable[[dict[str, Any], Path], Corpus]
_RECIPES: dict[str, PrepareFn] = {}
_HELPERS = {"common", "demo_synth"}  # modules that register no recipe


def register_corpus(name: str) -> Callable[[PrepareFn], PrepareFn]:
    def deco(fn: PrepareFn) -> PrepareFn:
        _RECIPES[name] = fn
        return fn

    return deco


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _HELPERS and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def list_corpora() -> list[str]:
    _load_all()
    return sorted(_RECIPES)


def get_recipe(name: str) -> PrepareFn:
    """The prepare function registered under ``name`` (a corpus ``recipe`` key in params)."""
    # By convention recipe ``x`` lives in module ``x``: import just that one when it exists, so a
    # recipe whose optional dependencies are missing cannot break the others.
    if name not in _RECIPES:
        if any(info.name == name for info in pkgutil.iter_modules(__path__)):
            importlib.import_module(f"{__name__}.{name}")
    if name not in _RECIPES:
        _load_all()
    if name not in _RECIPES:
        raise KeyError(f"unknown corpus recipe {name!r}; available: {sorted(_RECIPES)}")
    return _RECIPES[name]
