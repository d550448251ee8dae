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

CORPORA = Registry("corpus recipe", package="pipeline.corpora")

PrepareFn = Callable[[Any, Path], Corpus]


class CorpusSettings(Settings):
    """Options of every corpus section."""

    recipe: str | None = None  # which recipe reads this section (default: the section's name)
    root: str | None = None  # where the corpus lives on disk

    def files_outside_root(self) -> list[str]:
        """Files the recipe reads that lie outside ``root``: DVC watches the root only
        (:mod:`pipeline.core.inputs`), so the ``inputs`` stage warns about these."""
        return []


class FoldSettings(CorpusSettings):
    """Recipes with a ``kfold`` protocol: how many actor/speaker-independent folds."""

    folds: int = Field(5, ge=2)


def register_corpus(name: str, *, settings: type[CorpusSettings], **info: Any) -> Callable[[PrepareFn], PrepareFn]:
    """Register ``prepare_<name>`` with its settings schema (and facts for listings: ``tasks``, ``protocol``)."""
    return CORPORA.register(name, settings=settings, **info)


def corpus_settings(name: str, cfg: Any) -> CorpusSettings:
    """Validate ``corpora.<name>`` with its recipe's schema."""
    return CORPORA.resolve(f"corpora.{name}", cfg, "recipe", default=name)[1]


def prepare_corpus(name: str, cfg: Any, out_dir: str | Path) -> Corpus:
    """Run corpus ``name``'s recipe (validated options ``cfg``) into ``out_dir``; the corpus is named ``name``."""
    entry, settings = CORPORA.resolve(f"corpora.{name}", cfg, "recipe", default=name)
    corpus = entry.target(settings, Path(out_dir))
    corpus.name = name
    return corpus


def get_recipe(name: str) -> Callable[[Any, Path], Corpus]:
    """Recipe ``name`` as ``(options, out_dir) -> Corpus`` (tests, notebooks): options validated first;
    the corpus keeps the name its recipe gives it."""

    def prepare(cfg: Any, out_dir: str | Path) -> Corpus:
        entry, settings = CORPORA.resolve(f"corpora.{name}", cfg, "recipe", default=name)
        return entry.target(settings, Path(out_dir))

    return prepare
