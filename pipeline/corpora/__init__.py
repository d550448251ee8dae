"""Corpus recipes: one module per corpus, each registering a ``prepare`` function.

A recipe turns a corpus on disk (or, for ``demo``, one it synthesises) into a validated
:class:`pipeline.manifest.Corpus`. Register a new corpus with ``@register_corpus("name")`` in a
module listed in ``_MODULES``; see ``demo.py`` for the template.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from pipeline.manifest import Corpus

PrepareFn = Callable[[dict[str, Any], Path], Corpus]
_RECIPES: dict[str, PrepareFn] = {}
_MODULES = ["pipeline.corpora.demo"]


def register_corpus(name: str) -> Callable[[PrepareFn], PrepareFn]:
    def deco(fn: PrepareFn) -> PrepareFn:
        _RECIPES[name] = fn
        return fn

    return deco


def _load_all() -> None:
    for mod in _MODULES:
        importlib.import_module(mod)


def list_corpora() -> list[str]:
    _load_all()
    return sorted(_RECIPES)


def get_recipe(name: str) -> PrepareFn:
    """The prepare function registered under ``name`` (a corpus ``recipe`` key in params)."""
    _load_all()
    if name not in _RECIPES:
        raise KeyError(f"unknown corpus recipe {name!r}; available: {sorted(_RECIPES)}")
    return _RECIPES[name]
