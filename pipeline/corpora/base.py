"""The corpus-recipe registry, the settings every recipe shares, and the prepare entry point.

A recipe is a function ``prepare_<name>(settings, out_dir) -> Corpus`` registered with
:func:`register_corpus` together with its settings schema (a :class:`CorpusSettings` subclass: the
recipe's options and their defaults). ``params.yaml``'s ``corpora.<name>`` section holds those
options; ``recipe`` (default: the section's name) says which recipe reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import Field

from pipeline.core.manifest import Corpus
from pipeline.core.registry import Registry
from pipeline.core.settings import Settings

CORPORA = Registry("corpus recipe", package="pipeline.corpora", section="corpora")

PrepareFn = Callable[[Any, Path], Corpus]


class CorpusSettings(Settings):
    """Options of every corpus section."""

    recipe: str | None = None  # which recipe reads this section (default: the section's name)
    root: str | None = None  # where the corpus lives on disk


class FoldSettings(CorpusSettings):
    """Recipes with a ``kfold`` protocol: how many actor/speaker-independent folds."""

    folds: int = Field(5, ge=2)


def register_corpus(name: str, *, settings: type[CorpusSettings], **info: Any) -> Callable[[PrepareFn], PrepareFn]:
    """Register ``prepare_<name>`` with its settings schema (and facts for listings: ``tasks``, ``protocol``)."""
    return CORPORA.register(name, settings=settings, **info)


def recipe_name(name: str, cfg: Any) -> str:
    recipe = cfg.get("recipe") if isinstance(cfg, dict) else getattr(cfg, "recipe", None)
    return recipe or name


def corpus_settings(name: str, cfg: Any) -> CorpusSettings:
    """Validate ``corpora.<name>`` with its recipe's schema."""
    entry = CORPORA.get(recipe_name(name, cfg), where=f"corpora.{name}.recipe")
    if isinstance(cfg, entry.settings):
        return cfg
    return CORPORA.settings(entry.name, cfg, f"corpora.{name}")


def prepare_corpus(name: str, cfg: Any, out_dir: str | Path) -> Corpus:
    """Run corpus ``name``'s recipe (validated options ``cfg``) into ``out_dir``; the corpus is named ``name``."""
    settings = corpus_settings(name, cfg)
    corpus = CORPORA.get(recipe_name(name, settings)).target(settings, Path(out_dir))
    corpus.name = name
    return corpus


def get_recipe(name: str) -> Callable[[Any, Path], Corpus]:
    """Recipe ``name`` as a callable ``(options, out_dir) -> Corpus`` that validates a dict of options first."""
    entry = CORPORA.get(name)

    def prepare(cfg: Any, out_dir: Path) -> Corpus:
        settings = cfg if isinstance(cfg, entry.settings) else CORPORA.settings(name, cfg, f"corpora.{name}")
        return entry.target(settings, Path(out_dir))

    return prepare
