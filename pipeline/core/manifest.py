"""The corpus manifest: one row per utterance, the contract between recipes and stages.

Columns: ``id, speaker, split, audio, video, text`` and one column per task label. ``audio`` and
``video`` are paths (relative to the repository when inside it, absolute otherwise; ``video`` may be
empty); ``split`` is ``train``/``dev``/``test``. Paths are lexical: a file reached through a symlink
keeps the link's path, and it is that path, normalised but not resolved, that must lie under the
corpus root (links into a dataset elsewhere are fine, ``..`` out of the root is not). Optional columns:

- ``group``: the unit that must never straddle train/test (session, conversation, dialogue);
  defaults to ``speaker``;
- ``fold``: integer fold for cross-validation protocols (``loso``, ``kfold``, official folds);
  each fold is the test set once, the probe pools out-of-fold predictions;
- ``start``/``end``: segment bounds in seconds inside a longer file.

Task definitions (classification classes or regression) and the protocol travel beside the
manifest in ``corpus.json``.

The protocol the rows encode must be runnable (:func:`check_protocol`, called by :func:`validate`):
cross-validation needs at least two folds and, with exactly two, at least two training utterances
per fold (the dev set is carved from them); an official split needs train and test rows and, when
it has no dev rows, at least two training utterances to carve a dev set from. The same rules hold
for each task's labelled rows, except that a task may leave its test rows unlabelled. Smaller
protocols run with fallbacks that each fold's ``dev_note`` names.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.errors import ManifestError
from pipeline.core.io import atomic_file, read_json, write_json

REQUIRED_COLUMNS = ["id", "speaker", "split", "audio", "video", "text"]
SPLITS = ("train", "dev", "test")


@dataclass
class Task:
    """A prediction target: ``classification`` with ``classes``, or ``regression``."""

    name: str
    type: str = "classification"
    classes: list[str] = field(default_factory=list)
    positive: str | None = None  # binary tasks: the class whose F1/precision/recall/AUROC are reported
    unit: str = "utterance"  # "speaker": one label per speaker, predictions averaged per speaker


@dataclass
class Corpus:
    """A prepared corpus: manifest rows plus task definitions and provenance."""

    name: str
    manifest: pd.DataFrame
    tasks: list[Task]
    root: str
    info: dict[str, Any] = field(default_factory=dict)

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"corpus {self.name} has no task {name!r}")

    @property
    def has_text(self) -> bool:
        return bool(self.manifest["text"].fillna("").str.strip().ne("").any())

    @property
    def has_video(self) -> bool:
        return bool(self.manifest["video"].fillna("").ne("").any())


def display_path(path: str | Path) -> str:
    """Path relative to the working directory when inside it (portable across clones), else absolute.

    Lexical: ``..`` and ``.`` are normalised away but symlinks are not followed, so a file reached
    through a link keeps the link's path (and a symlinked corpus root stays the root).
    """
    path = Path(os.path.abspath(path))
    try:
        return path.relative_to(os.getcwd()).as_posix()
    except ValueError:
        return path.as_posix()


def inside(path: str | Path, root: str | Path) -> bool:
    """Whether ``path`` lies under ``root`` lexically (``..`` normalised, symlinks not followed)."""
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(root))


def validate(corpus: Corpus, source: str, speakers_shared: bool = False) -> None:
    """Check ids, paths, labels and the speaker-independence of the split.

    ``source`` is the file the rows came from, so every error can name it.
    """
    df = corpus.manifest
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{source}: manifest lacks columns {missing}")
    dup = df["id"][df["id"].duplicated()].tolist()
    if dup:
        raise ManifestError(f"{source}: duplicate utterance ids {dup[:5]}")
    bad_split = sorted(set(df["split"]) - set(SPLITS))
    if bad_split:
        raise ManifestError(f"{source}: unknown split values {bad_split} (expected {SPLITS})")
    for col in ("audio", "video"):
        for uid, p in zip(df["id"], df[col]):
            if p and not inside(p, corpus.root):
                raise ManifestError(f"{source}: {col} path of {uid} ({p}) escapes the corpus root {corpus.root}")
    for task in corpus.tasks:
        if task.name not in df.columns:
            raise ManifestError(f"{source}: no label column for task {task.name!r}")
        if task.type == "classification":
            labels = df[task.name].dropna()
            labels = labels[labels.astype(str) != ""]  # "" = no label for this task (multi-task corpora)
            unknown = sorted(set(labels) - set(task.classes))
            if unknown:
                first = df.loc[df[task.name].isin(unknown), "id"].iloc[0]
                raise ManifestError(
                    f"{source}: unknown {task.name} label(s) {unknown} (first at {first}); "
                    f"known: {task.classes}"
                )
    if "group" in df.columns:
        check_independent(df, source, "group")
    if not speakers_shared:
        check_independent(df, source, "speaker")
    check_protocol(corpus)


def check_independent(df: pd.DataFrame, source: str, group: str = "speaker") -> None:
    """Fail if any speaker (or session/conversation) appears on both sides of a split or fold.

    With a ``fold`` column, the unit must stay inside one fold (and one split); without it, inside
    one split.
    """
    keys = ["split", "fold"] if "fold" in df.columns else ["split"]
    cell = df[keys].astype(str).agg("/".join, axis=1)
    per = cell.groupby(df[group]).nunique()
    leaked = per[per > 1].index.tolist()
    if leaked:
        where = {s: sorted(cell[df[group] == s].unique()) for s in leaked[:3]}
        raise ManifestError(
            f"{source}: {group}s appear on both sides of the {'/'.join(keys)} partition {where}; "
            f"the protocol is {group}-independent (speakers_shared: true only where the protocol shares them)"
        )


def _listed(values, limit: int = 5) -> str:
    values = [str(v) for v in values]
    more = f", … ({len(values)} in all)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


def protocol_problem(rows: pd.DataFrame, need_test: bool = True) -> str | None:
    """Why the protocol ``rows`` encode cannot be run, or None when it can (see the module docstring).

    The answer completes "protocol P …" ("needs at least 2 speakers to make folds; found 1 (s1)").
    ``need_test=False`` accepts an official split without test rows (a task whose test set is
    unlabelled). :func:`pipeline.experiment.protocol.plan_folds` applies the same rules.
    """
    if rows.empty:
        return "has no utterances"
    unit = "group" if "group" in rows.columns else "speaker"
    if "fold" in rows.columns and rows["fold"].notna().any():
        fold = rows["fold"]
        ids = sorted(pd.unique(fold[fold.notna()]))
        if len(ids) < 2:
            units = sorted(pd.unique(rows[unit].astype(str)))
            if len(units) < 2:
                return f"needs at least 2 {unit}s to make folds; found {len(units)} ({_listed(units)})"
            return f"needs at least 2 folds; all {len(units)} {unit}s are in fold {ids[0]}"
        if len(ids) == 2:  # dev is carved from the other fold's utterances: they must be able to split
            for k in ids:
                n_train = int((fold != k).sum())
                if n_train < 2:
                    return (f"needs at least 2 training utterances per fold to carve a dev set; "
                            f"fold {k} leaves {n_train}")
        return None
    split = rows["split"]
    counts = ", ".join(f"{s} {int((split == s).sum())}" for s in SPLITS)
    if not (split == "train").any():
        return f"needs training rows; the split has none ({counts})"
    if need_test and not (split == "test").any():
        return f"needs test rows; the split has none ({counts})"
    train = rows[split == "train"]
    if not (split == "dev").any() and len(train) < 2:  # nothing to carve dev (held-out groups or 20 %) from
        return (f"needs at least 2 training utterances to carve a dev set (the split has no dev rows); "
                f"found {len(train)} ({_listed(train['id'] if 'id' in train.columns else train.index)})")
    return None


def labelled_rows(df: pd.DataFrame, task: Task) -> pd.DataFrame:
    """The rows that carry a label for ``task`` (multi-task corpora leave some cells empty)."""
    labels = df[task.name]
    return df[(labels.notna() & (labels.astype(str) != "")).to_numpy()]


def check_protocol(corpus: Corpus) -> None:
    """Fail, naming the corpus, the protocol and what is missing, when the protocol cannot be run.

    Checks the whole manifest, then each task's labelled rows (the rows the probe plans folds on).
    """
    df = corpus.manifest
    protocol = corpus.info.get("protocol") or ("cross-validation" if "fold" in df.columns else "official")
    problem = protocol_problem(df)
    if problem:
        raise ManifestError(f"corpus {corpus.name}: protocol {protocol} {problem}")
    for task in corpus.tasks:
        if task.name not in df.columns:
            continue
        problem = protocol_problem(labelled_rows(df, task), need_test=False)
        if problem:
            problem = "has no labelled utterances" if problem == "has no utterances" else problem
            raise ManifestError(f"corpus {corpus.name}: protocol {protocol} {problem} (task {task.name}, labelled rows)")


def save(corpus: Corpus, out_dir: str | Path) -> None:
    """Write ``manifest.parquet`` and ``corpus.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    with atomic_file(out_dir / "manifest.parquet", "wb") as f:
        corpus.manifest.to_parquet(f, index=False)
    write_json(
        out_dir / "corpus.json",
        {"name": corpus.name, "root": corpus.root, "tasks": [asdict(t) for t in corpus.tasks], "info": corpus.info},
    )


def load(prepared_dir: str | Path) -> Corpus:
    """Read a prepared corpus written by :func:`save`."""
    prepared_dir = Path(prepared_dir)
    meta_path = prepared_dir / "corpus.json"
    if not meta_path.exists():
        raise ManifestError(f"{meta_path}: not found; run the prepare stage first")
    meta = read_json(meta_path)
    df = pd.read_parquet(prepared_dir / "manifest.parquet")
    for col in ("video", "text"):
        df[col] = df[col].fillna("")
    return Corpus(
        name=meta["name"],
        manifest=df,
        tasks=[Task(**t) for t in meta["tasks"]],
        root=meta["root"],
        info=meta.get("info", {}),
    )

