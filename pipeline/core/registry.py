"""One registry mechanism for corpus recipes, backbone types and head types.

An entry is registered with a decorator that also names its settings schema and a few facts for
``affectbench list`` and the README tables::

    BACKBONES = Registry("backbone type", package="pipeline.features.backbones", section="backbones")

    @BACKBONES.register("opensmile", settings=OpenSmileSettings, modality="audio", licence="...")
    class OpenSmileBackbone(Backbone): ...

Discovery: an entry named ``x`` is looked up in module ``<package>.x`` first (so the common case
imports one module); otherwise every module under ``package`` is imported once — modules whose
name starts with ``_`` are private helpers and skipped. Import errors are not swallowed: a module
that cannot be imported is a bug to fix, not an entry to hide. Modules therefore keep heavy or
optional imports (torch, transformers, funasr, ...) inside functions.
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

    def __init__(self, kind: str, package: str, section: str):
        self.kind = kind  # "corpus recipe", "backbone type", "head type" (used in messages)
        self.package = package  # where entries live (discovery)
        self.section = section  # params section whose entries these types configure
        self._entries: dict[str, Entry] = {}
        self._discovered = False

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

    def _discover(self) -> None:
        if not self._discovered:
            self._import_tree(self.package)
            self._discovered = True

    def get(self, name: str, where: str | None = None) -> Entry:
        """The entry called ``name``; an unknown name is a ConfigError listing the known ones (and
        naming ``where``, the params key that asked for it)."""
        if name not in self._entries and isinstance(name, str) and name.isidentifier():
            if importlib.util.find_spec(f"{self.package}.{name}") is not None:
                self._import_tree(f"{self.package}.{name}")
        if name not in self._entries:
            self._discover()
        if name not in self._entries:
            known = self.names()
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            at = f"{PARAMS_FILE}: {where} = {name!r}: " if where else ""
            raise ConfigError(f"{at}unknown {self.kind} {name!r}{hint}; known: {', '.join(known)}")
        return self._entries[name]

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def settings(self, name: str, data: Any, where: str, source: str = PARAMS_FILE) -> Settings:
        """Parse ``data`` (the params of ``where``, e.g. ``heads.mlp``) with entry ``name``'s schema."""
        return parse(self.get(name).settings, data, where, source)
