"""Content keys, params hashes and code versions — what decides whether a result is still current.

- :func:`content_key`: BLAKE2b of strings and buffers (decoded audio is hashed in place).
- :func:`params_hash`: a short hash of JSON-able settings (recorded in store attributes).
- :func:`import_closure`: the project files a module runs — every ``import`` in it (function-level
  ones included, resolved relative imports too), their parent packages, and, with
  ``follow_registries``, every module of a package a :class:`~pipeline.core.registry.Registry` in
  the closure discovers at run time (its ``package``, or for a scoped registry the packages
  declared with ``add_scope``). ``tests/test_import_closure.py`` checks that every DVC stage's
  ``deps`` cover its stage module's closure.
- :func:`code_version`: the library version plus a digest of a module's closure (registries not
  followed: a backbone's result depends on its own code, not on its siblings'). The digest hashes
  each file's code as :func:`ast.unparse` writes it back without docstrings, so editing a comment,
  a docstring or the layout does not invalidate computed features, while any change to code does.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[2]  # the repository: pipeline/ and stages/ live here
PROJECT_PACKAGES = ("pipeline", "stages")


def content_key(*parts: Any) -> str:
    """A 128-bit BLAKE2b hex digest of ``parts``: strings, or contiguous buffers such as decoded
    sample arrays (hashed in place, not copied)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()


def params_hash(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable config parts (recorded in store attributes)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# --- import closures ---------------------------------------------------------------------------


def module_path(name: str) -> Path | None:
    """The file of project module ``name`` (``pipeline.core.io`` → pipeline/core/io.py), or None."""
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imported(path: Path) -> tuple[set[str], set[str]]:
    """(project modules imported anywhere in ``path``, packages discovered by Registry calls in it)."""
    tree = _parse(path)
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    registries: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # submodules, when they exist
        elif isinstance(node, ast.Call) and _call_name(node) in ("Registry", "add_scope"):
            scoped = any(k.arg == "scoped" and isinstance(k.value, ast.Constant) and k.value.value for k in node.keywords)
            if _call_name(node) == "Registry" and scoped:
                continue  # a scoped registry discovers only the scopes its families declare (add_scope)
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and module_path(arg.value):
                    registries.add(arg.value)
    return {m for m in found if module_path(m) is not None}, registries


def _call_name(node: ast.Call) -> str | None:
    return getattr(node.func, "id", getattr(node.func, "attr", None))


def _package_modules(package: str) -> set[str]:
    root = module_path(package)
    if root is None or root.name != "__init__.py":
        return {package} if root else set()
    return {_module_name(p) for p in root.parent.rglob("*.py")}


def _with_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@functools.lru_cache(maxsize=None)
def import_closure(module: str, follow_registries: bool = True) -> tuple[Path, ...]:
    """Sorted project files that running ``module`` can execute (see the module docstring)."""
    todo, seen = [module], set()
    while todo:
        name = todo.pop()
        for part in _with_parents(name):
            if part in seen or module_path(part) is None:
                continue
            seen.add(part)
            modules, registries = _imported(module_path(part))
            todo.extend(modules)
            if follow_registries:
                for package in registries:
                    todo.extend(_package_modules(package))
    return tuple(sorted(module_path(m) for m in seen))


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def code_digest(paths: Iterable[Path]) -> str:
    """Digest of the code (syntax trees without docstrings) of ``paths``, keyed by their project paths."""
    h = hashlib.sha256()
    for path in sorted(paths):
        tree = _strip_docstrings(ast.parse(Path(path).read_text()))
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        # the code as ast.unparse writes it back: comments, docstrings and layout do not count, and
        # (unlike ast.dump, whose fields change between Python versions) it reads the same on 3.11+
        h.update(ast.unparse(tree).encode() + b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def code_version(module: str) -> str:
    """``<library version>+<10 hex>``: what the store attribute ``code_version`` and the embed cache
    key record for the code of ``module`` (its import closure, registries not followed)."""
    import pipeline

    return f"{pipeline.__version__}+{code_digest(import_closure(module, follow_registries=False))[:10]}"
