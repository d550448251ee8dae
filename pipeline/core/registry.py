"""One registry mechanism for corpus recipes, backbone types and head types.

An entry is registered with a decorator that also names its settings schema and a few facts for
``python -m pipeline.tools.catalog`` and the README tables::

    BACKBONES = Registry("backbone type", package="pipeline.features.backbones")

    @BACKBONES.register("opensmile", settings=OpenSmileSettings, modality="audio", licence="...")
    class OpenSmileBackbone(Backbone): ...

Discovery: an entry named ``x`` is looked up in module ``<package>.x`` first (so the common case
imports one module); otherwise every module under ``package`` is imported once — modules whose
name starts with ``_`` are private helpers and skipped. Import errors are not swallowed: a module
that cannot be imported is a bug to fix, not an entry to hide. Modules therefore keep heavy or
optional imports (torch, transformers, funasr, ...) inside functions.

A *scoped* registry (``scoped=True``; the heads) looks names up only in the scopes that imported
code declared with :meth:`Registry.add_scope` — each head family's package declares itself — so a
stage runs, and depends on, its own family's modules and not its siblings'. Listing
(:meth:`Registry.names`, the tools) still discovers the whole package. The import-closure analysis
(:func:`pipeline.core.hashing.import_closure`) follows exactly these two kinds of declaration.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from pipeline.core.errors import ConfigError
from pipeline.core.settings import PARAMS_FILE, Settings, parse

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """A registered corpus recipe, backbone type or head type."""

    name: str
    target: Any  # the class or function registered
    settings: type[Settings]
    module: str
    info: dict[str, Any] = field(default_factory=dict)  # description, modality, licence, ...

    @property
    def summary(self) -> str:
        """First line of the target's docstring (or of its module's)."""
        doc = self.target.__doc__ or importlib.import_module(self.module).__doc__ or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


class Registry:
    """Name → :class:`Entry` for one family; see the module docstring for discovery."""

    def __init__(self, kind: str, package: str, *, scoped: bool = False):
        self.kind = kind  # "corpus recipe", "backbone type", "head type" (used in messages)
        self.package = package  # where entries live (listing; lookup too unless scoped)
        self.scoped = scoped
        self._scopes: list[str] = []  # scoped: the packages get() may discover, as declared
        self._entries: dict[str, Entry] = {}
        self._discovered = False

    def add_scope(self, package: str) -> None:
        """Declare ``package`` (a string constant, so the import-closure analysis sees it) as a place
        where :meth:`get` may discover entries of this scoped registry."""
        if package not in self._scopes:
            self._scopes.append(package)

    def register(self, name: str, *, settings: type[Settings], **info: Any) -> Callable[[T], T]:
        """Decorator registering a class or function under ``name`` with its settings schema."""

        def deco(target: T) -> T:
            module = getattr(target, "__module__", "")
            if name in self._entries and self._entries[name].module != module:
                raise RuntimeError(f"{self.kind} {name!r} registered twice ({self._entries[name].module}, {module})")
            self._entries[name] = Entry(name, target, settings, module, dict(info))
            return target

        return deco

    @staticmethod
    def _import_tree(name: str) -> None:
        """Import module ``name`` and, for a package, every public module below it."""
        module = importlib.import_module(name)
        for mod in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=f"{name}."):
            if not any(part.startswith("_") for part in mod.name.split(".")):
                importlib.import_module(mod.name)

    def discover(self) -> None:
        """Import every module of the package once (listing, validation of a whole params file)."""
        if not self._discovered:
            self._import_tree(self.package)
            self._discovered = True

    def get(self, name: str, where: str | None = None) -> Entry:
        """The entry called ``name``; an unknown name is a ConfigError listing the known ones (and
        naming ``where``, the params key that asked for it)."""
        packages = self._scopes if self.scoped else [self.package]
        if name not in self._entries and isinstance(name, str) and name.isidentifier():
            for package in packages:
                if importlib.util.find_spec(f"{package}.{name}") is not None:
                    self._import_tree(f"{package}.{name}")
        if name not in self._entries:
            for package in packages:
                self._import_tree(package)
        if name not in self._entries:
            # scoped: only what this process may run (the validate stage, first in the DAG, lists all)
            known = sorted(self._entries) if self.scoped else self.names()
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            at = f"{PARAMS_FILE}: {where} = {name!r}: " if where else ""
            raise ConfigError(f"{at}unknown {self.kind} {name!r}{hint}; known: {', '.join(known)}")
        return self._entries[name]

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def settings(self, name: str, data: Any, where: str, source: str = PARAMS_FILE) -> Settings:
        """Parse ``data`` (the params of ``where``, e.g. ``heads.mlp``) with entry ``name``'s schema."""
        return parse(self.get(name).settings, data, where, source)

    def resolve(self, where: str, cfg: Any, key: str, default: str | None = None,
                record_key: bool = False) -> tuple[Entry, Settings]:
        """The entry params section ``where`` selects with ``key`` (``type``, ``recipe``) and the section
        validated by that entry's schema. Without ``key`` the entry is ``default`` (the section's own
        name), or an error when there is none; ``record_key`` writes the chosen name into the settings."""
        chosen = cfg.get(key) if isinstance(cfg, dict) else getattr(cfg, key, None)
        if not chosen and default is None:
            raise ConfigError(f"{PARAMS_FILE}: {where}: missing {key!r} (one of {', '.join(self.names())})")
        entry = self.get(chosen or default, where=f"{where}.{key}")
        if isinstance(cfg, entry.settings):
            return entry, cfg
        if record_key and isinstance(cfg, dict) and not cfg.get(key):
            cfg = {**cfg, key: entry.name}
        return entry, parse(entry.settings, cfg, where)
