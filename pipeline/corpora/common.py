"""Helpers shared by corpus recipes: checked table reading, paths, folds, dev carving, coded file names."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import display_path, inside


def corpus_root(root: str | None, name: str) -> Path:
    """``root`` (``corpora.<name>.root``) as an existing directory, or a ManifestError saying what to set."""
    if not root:
        raise ManifestError(f"params.yaml: corpora.{name}.root is not set (where is the corpus on disk?)")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ManifestError(f"{path}: corpus root for {name} does not exist")
    return path


def read_table(path: Path, required: Sequence[str], **kw) -> pd.DataFrame:
    """Read a CSV with all columns as strings; errors name the file and the missing columns."""
    if not path.exists():
        raise ManifestError(f"{path}: label file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, **kw)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path}: cannot parse ({err})") from err
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: missing columns {missing} (has {list(df.columns)})")
    return df


def media(root: Path, relative: str, source: str) -> str:
    """Manifest path of a media file under ``root``; refuses paths that escape the root.

    The check is lexical: ``..`` components and absolute paths that leave ``root`` are errors, but
    symlinks are not followed, so a corpus folder of links into the real dataset (files or whole
    directories, or a root that is itself a link) is accepted and its paths stay the links' paths.
    """
    path = os.path.normpath(os.path.join(os.path.abspath(root), relative))
    if not inside(path, root):
        raise ManifestError(f"{source}: media path {relative!r} escapes the corpus root {root}")
    return display_path(path)


def folds_by_group(groups: Iterable[str], n_folds: int | None = None) -> dict[str, int]:
    """Deterministic group → fold map: one fold per group (LOSO) or groups dealt round-robin."""
    ordered = sorted(set(groups))
    if n_folds is None or n_folds >= len(ordered):
        return {g: i for i, g in enumerate(ordered)}
    return {g: i % n_folds for i, g in enumerate(ordered)}


def carve_dev(df: pd.DataFrame, fraction: float, seed: int, group: str = "speaker") -> pd.Series:
    """Move whole groups from ``train`` to ``dev`` until about ``fraction`` of train is dev.

    Returns the new split column. Groups are drawn in a seeded random order, so the carve is
    reproducible and never splits a speaker (or subject, or conversation).
    """
    split = df["split"].copy()
    train_groups = sorted(df.loc[split == "train", group].unique())
    order = np.random.default_rng(seed).permutation(train_groups)
    target = fraction * int((split == "train").sum())
    moved = 0
    for g in order:
        if moved >= target or len(order) < 2:
            break
        rows = (df[group] == g) & (split == "train")
        split[rows] = "dev"
        moved += int(rows.sum())
    return split


def assign_folds(df: pd.DataFrame, unit: str, protocol: str, folds: int) -> dict[str, Any]:
    """Turn ``df`` into a cross-validation manifest, in place: every row ``train`` plus a ``fold``.

    ``loso`` gives each ``unit`` (speaker, session) its own fold; ``kfold`` deals the sorted units
    round-robin into ``folds`` folds (fewer when there are fewer units, which ``folds_note`` then
    says). Returns the fold facts for ``Corpus.info``. Whether the folds can be run at all (at
    least two) is :func:`pipeline.core.manifest.check_protocol`'s to say, in ``validate``.
    """
    n_folds = folds if protocol == "kfold" else None
    fold_of = folds_by_group(df[unit], n_folds)
    df["split"] = "train"
    df["fold"] = df[unit].map(fold_of).astype(int)
    units = {int(k): sorted(g) for k, g in df.groupby("fold")[unit].unique().items()}
    rows = df["fold"].value_counts().sort_index().tolist()
    info: dict[str, Any] = {"folds": len(units), f"{unit}s_per_fold": units, "rows_per_fold": rows}
    if n_folds is not None and len(units) < n_folds:
        info["folds_note"] = f"{len(units)} {unit}(s): {len(units)} fold(s) instead of {n_folds}"
    return info


# --- checked parsing: every error names the file (and line) and the bad value -------------------


def parse_float(value: str, where: str, what: str) -> float:
    """``value`` as a finite float; ``where`` (file, and line where there is one) prefixes any error."""
    try:
        number = float(value.strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ManifestError(f"{where}: {what} {value.strip()!r} is not a number")
    return number


def lookup_label(value: str, mapping: Mapping[str, str], where: str, what: str) -> str:
    """Map a raw label through ``mapping``; an unknown value names the file/line and the known ones."""
    key = value.strip()
    if key not in mapping:
        raise ManifestError(f"{where}: unknown {what} {key!r} (known: {sorted(mapping)})")
    return mapping[key]


def check_unique(keys: pd.Series, path: Path, what: str) -> None:
    """Fail on the first key that repeats in a table, naming both lines (header is line 1)."""
    seen: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key in seen:
            raise ManifestError(f"{path}: duplicate {what} {key!r} on lines {seen[key]} and {i + 2}")
        seen[key] = i + 2


def split_counts(df: pd.DataFrame) -> dict[str, int]:
    """Rows per split (of items, or of per-subject/per-session rows), for ``Corpus.info``."""
    return {s: int(n) for s, n in df["split"].value_counts().sort_index().items()}


# --- filename-code helpers shared by the coded-filename recipes ---------------------------------

CodeTables = Mapping[str, Mapping[str, str] | None]


def _expected(table: Mapping[str, str]) -> str:
    codes = sorted(table)
    return f"{codes[0]}..{codes[-1]}" if len(codes) > 12 else ", ".join(codes)


def parse_code(path: Path, pattern: re.Pattern[str], scheme: str, tables: CodeTables) -> dict[str, str]:
    """Decode the fields of a coded file name (its stem must fully match ``pattern``).

    Each named group is looked up in ``tables[name]`` (code → value); a group without a table is
    returned as is. Errors start with the file path: a name that does not follow ``scheme`` (e.g. a
    wrong field count) or a code outside its table.
    """
    m = pattern.fullmatch(path.stem)
    if m is None:
        raise ManifestError(f"{path}: file name does not follow the naming scheme {scheme}")
    fields = {}
    for key, code in m.groupdict().items():
        table = tables.get(key)
        if table is None:
            fields[key] = code
        elif code in table:
            fields[key] = table[code]
        else:
            raise ManifestError(f"{path}: unknown {key} code {code!r} in {scheme} (expected {_expected(table)})")
    return fields


def media_dir(root: Path, sub: str) -> Path:
    """``root/sub`` when the release's folder is there, else ``root`` itself (flat copies)."""
    return root / sub if (root / sub).is_dir() else root


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # follows links: the directory a link leads to
    except OSError:
        return None
    return st.st_dev, st.st_ino


def walk_files(folder: Path) -> Iterator[Path]:
    """Every non-directory entry under ``folder``, following directory symlinks (datasets are often
    linked in), with the links' paths. A link back to one of its own ancestors (a loop) is not
    entered; two links to the same directory are both walked (their files then repeat)."""
    ancestors: dict[str, frozenset] = {str(folder): frozenset({_identity(str(folder))})}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        chain = ancestors.pop(dirpath, frozenset())
        keep = []
        for d in dirnames:
            sub = os.path.join(dirpath, d)
            key = _identity(sub)
            if key is None or key in chain:
                continue
            ancestors[sub] = chain | {key}
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            yield Path(dirpath, f)


def find_media(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Media files under ``folder`` (recursive, sorted); ids are file stems, so they must be unique.

    Symlinked files and directories are followed (a loop is walked once). Dot-files are skipped:
    they are never corpus items (macOS ``._*`` resource forks, editor leftovers) and would otherwise
    fail the name check.
    """
    wanted = {s.lower() for s in suffixes}
    files = sorted(
        p for p in walk_files(folder) if p.suffix.lower() in wanted and not p.name.startswith(".") and p.is_file()
    )
    seen: dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise ManifestError(f"{p}: duplicate id {p.stem!r} (also {seen[p.stem]})")
        seen[p.stem] = p
    return files
