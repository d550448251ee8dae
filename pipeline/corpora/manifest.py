"""Generic recipe: any corpus described by one CSV or JSONL label file — no code needed.

Source: whatever the user has; this recipe only reads their label file. Licence: the corpus's own.

Layout::

    <root>/...                  media files, anywhere under root
    <file>                      labels: .csv / .tsv (header row) or .jsonl / .ndjson (one object a line);
                                relative to root, or absolute

Columns (keys, for JSONL):

- ``path`` (required): media file relative to ``root``, or absolute inside it; a path that leaves
  root lexically (``..``, an absolute path elsewhere) is refused, while symlinks under root (to
  files or directories of the real dataset) are accepted and kept as the links' paths;
- one column per task named in ``tasks`` (or the task's ``column``);
- optional ``id`` (default: ``path`` without extension, ``/`` → ``_``), ``speaker``, ``group``
  (the unit kept apart when it is not the speaker: session, conversation), ``split``
  (train/dev/test), ``text``, ``video`` (a separate video file; when absent and ``path`` is itself a
  video container — .mp4 .avi .mkv .mov .webm .flv — the clip is audio-visual: ``video = audio``),
  ``start`` / ``end`` (seconds, for segments inside longer files; kept as float columns).

Options (``params.yaml`` → ``corpora.<name>``; ``recipe: manifest``)::

    corpora:
      chiser5:                      # e.g. ChiSER5, or any corpus exported to a label table
        recipe: manifest
        root: /data/ChiSER5         # base directory of the media paths
        file: labels.csv            # path,speaker,emotion[,text,split,...]
        tasks:
          emotion: {type: classification}                 # classes: sorted unique labels
          # emotion: {type: classification, classes: [angry, happy, neutral, sad, surprise]}
          # arousal: {type: regression, column: A}       # label read from column A
        protocol: kfold             # official (needs a split column) | kfold | loso | random_split
        folds: 5                    # kfold
        fractions: {train: 0.8, dev: 0.1, test: 0.1}     # random_split, by speaker
        seed: 0

A task spec may also set ``positive`` (binary tasks) and ``unit: speaker`` (one label per
speaker). ``tasks`` may be a plain list of names (classification, classes from the data).

Protocol: ``official`` when the file has a ``split`` column (the default then; a dev set is carved
from train by whole speakers/groups when the file has none), otherwise ``kfold`` by speaker
(default) / ``loso`` / ``random_split`` (speakers dealt to train/dev/test by ``fractions``).
Folds and random splits keep whole ``group`` units (or speakers) together. ``kfold`` with fewer
units than ``folds`` makes one fold per unit (``info["folds_note"]`` says so); a protocol that
cannot be run — fewer than 2 speakers/groups to make folds, an official split without train or
test rows, a training set too small to carve a dev set from — is an error naming the corpus, the
protocol and what is missing (``check_protocol`` in :mod:`pipeline.core.manifest`).

Quirks handled: an empty classification cell means "unlabelled for this task" (stored as null, the
probe skips it), an empty regression cell is NaN. Without a ``speaker`` column every item is its
own speaker — ``info["speaker_independent"]`` is then false, because nothing can stop one person's
recordings from landing on both sides of a split. Errors name the label file and line: missing
required column, malformed JSONL line, unknown label (when ``classes`` are given), duplicate id,
path escaping the root, bad split value, non-numeric regression/segment value.

The second half of this recipe — :class:`LabelSettings` (tasks and protocol options) and
:func:`labelled_corpus` (labels, speakers, protocol, validation of an item table) — is shared by
the recipes that read other label formats: ``lhotse``, ``hf_audiofolder`` and ``audformat``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import SPLITS, Corpus, Task, display_path, inside, validate
from pipeline.core.settings import Settings
from pipeline.corpora.base import FoldSettings, register_corpus
from pipeline.corpora.common import assign_folds, carve_dev, corpus_root, media, read_table

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv"}
FRACTIONS = {"train": 0.8, "dev": 0.1, "test": 0.1}


class TaskSpec(Settings):
    """One task of a manifest corpus."""

    type: Literal["classification", "regression"] = "classification"
    column: str | None = None  # the label column (default: the task's name)
    classes: list[str] | None = None  # classification: class order (default: sorted labels)
    positive: str | None = None  # binary tasks: the class whose F1/precision/recall/AUROC are reported
    unit: Literal["utterance", "speaker"] = "utterance"


class LabelSettings(FoldSettings):
    """Options of every recipe that reads labels from a table the user names (this one, ``lhotse``,
    ``hf_audiofolder``, ``audformat``): the tasks, the protocol and its knobs."""

    tasks: dict[str, TaskSpec | None]  # task name → options (a list of names is accepted too)
    protocol: Literal["official", "kfold", "loso", "random_split"] | None = None  # default: official with splits
    name: str | None = None  # the corpus name in messages (default: the params section's name)
    seed: int = 0
    dev_fraction: float = Field(0.1, ge=0, lt=1)  # official without dev: carved from train by whole speakers
    fractions: dict[Literal["train", "dev", "test"], float] | None = None  # random_split (default 0.8/0.1/0.1)

    @field_validator("tasks", mode="before")
    @classmethod
    def _task_list(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return {str(t): None for t in value}
        return value

    @field_validator("tasks")
    @classmethod
    def _some_task(cls, value: dict) -> dict:
        if not value:
            raise ValueError("must name at least one task (mapping or list)")
        return value


class ManifestSettings(LabelSettings):
    file: str  # the CSV/TSV/JSONL label file (relative to root, or absolute)

    def files_outside_root(self) -> list[str]:
        path = Path(self.file).expanduser()
        if self.root and path.is_absolute() and not inside(path, Path(self.root).expanduser()):
            return [str(path)]
        return []


# --- the generic recipe -------------------------------------------------------------------------


def corpus_name(s: LabelSettings, out_dir: Path, recipe: str) -> str:
    # The params section's name is what error messages must point at; the prepare stage writes
    # into data/<name>/prepared, so that folder tells us when the settings do not.
    if s.name:
        return s.name
    out_dir = Path(out_dir)
    return out_dir.parent.name if out_dir.name == "prepared" else recipe


def _label_file(file: str, root: Path) -> Path:
    path = Path(file).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.exists():
        raise ManifestError(f"{path}: label file not found")
    return path


def read_rows(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """Read the label file as strings; returns the rows and each row's line number in the file."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        df = read_table(path, ["path"], sep="\t" if suffix == ".tsv" else ",")
        return df, list(range(2, len(df) + 2))  # line 1 is the header
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    raise ManifestError(f"{path}: unsupported label file type {suffix!r} (use .csv, .tsv, .jsonl or .ndjson)")


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, list[int]]:
    records, lines = [], []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{path}:{lineno}: malformed JSON line ({err.msg})") from err
        if not isinstance(obj, dict):
            raise ManifestError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        if "path" not in obj:
            raise ManifestError(f"{path}:{lineno}: missing required key 'path'")
        # Everything as strings, like the CSV reader, so both formats share one parser below.
        records.append({k: "" if v is None else str(v) for k, v in obj.items()})
        lines.append(lineno)
    if not records:
        raise ManifestError(f"{path}: no rows")
    return pd.DataFrame(records).fillna(""), lines


def parse_tasks(specs: dict[str, TaskSpec | None]) -> list[dict[str, Any]]:
    """Task specs as dicts with name, column and type filled in."""
    tasks = []
    for task, spec in specs.items():
        opts = (spec or TaskSpec()).model_dump()
        tasks.append({**opts, "name": str(task), "column": str(opts["column"] or task)})
    return tasks


def _floats(values: Iterable[str], where: list[str], what: str) -> list[float]:
    out = []
    for v, at in zip(values, where):
        try:
            out.append(float(v) if str(v).strip() != "" else math.nan)
        except ValueError as err:
            raise ManifestError(f"{at}: {what} value {v!r} is not a number") from err
    return out


def _labels(df: pd.DataFrame, where: list[str], source: str, spec: dict[str, Any]) -> tuple[list, Task]:
    """One task's label column and its Task; empty cells are unlabelled (None / NaN)."""
    col, unit = spec["column"], spec["unit"]
    if col not in df.columns:
        raise ManifestError(f"{source}: missing label column {col!r} for task {spec['name']!r} (has {list(df.columns)})")
    if spec["type"] == "regression":
        return _floats(df[col], where, spec["name"]), Task(spec["name"], "regression", unit=unit)
    values = [v.strip() for v in df[col]]
    classes = [str(c) for c in spec["classes"] or sorted({v for v in values if v})]
    known = set(classes)
    for v, at in zip(values, where):
        if v and v not in known:
            raise ManifestError(f"{at}: unknown {spec['name']} label {v!r} (known: {classes})")
    task = Task(spec["name"], "classification", classes, positive=spec["positive"], unit=unit)
    return [v or None for v in values], task


def _ids(df: pd.DataFrame, lines: list[int], path: Path) -> list[str]:
    given = df["id"] if "id" in df.columns else [""] * len(df)
    ids, first_line = [], {}
    for uid, rel, line in zip(given, df["path"], lines):
        uid = uid.strip() or str(Path(rel).with_suffix("")).replace("\\", "/").replace("/", "_")
        if uid in first_line:
            raise ManifestError(f"{path}:{line}: duplicate id {uid!r} (first at line {first_line[uid]})")
        first_line[uid] = line
        ids.append(uid)
    return ids


def _media_columns(df: pd.DataFrame, lines: list[int], path: Path, root: Path) -> tuple[list[str], list[str]]:
    audio, video = [], []
    videos = df["video"] if "video" in df.columns else [""] * len(df)
    for rel, vid, line in zip(df["path"], videos, lines):
        if not rel.strip():
            raise ManifestError(f"{path}:{line}: empty path")
        source = f"{path}:{line}"
        audio.append(media(root, rel.strip(), source))
        if vid.strip():
            video.append(media(root, vid.strip(), source))
        else:
            video.append(audio[-1] if Path(rel).suffix.lower() in VIDEO_SUFFIXES else "")
    return audio, video


def _check_splits(split: pd.Series, lines: list[int], path: Path) -> None:
    for value, line in zip(split, lines):
        if value not in SPLITS:
            raise ManifestError(f"{path}:{line}: unknown split {value!r} (expected one of {list(SPLITS)})")


def _check_splits(split: pd.Series, where: list[str]) -> None:
    for value, at in zip(split, where):
        if value not in SPLITS:
            raise ManifestError(f"{at}: unknown split {value!r} (expected one of {list(SPLITS)})")


def random_split(units: pd.Series, fractions: dict[str, float] | None, seed: int, name: str) -> pd.Series:
    """Deal whole units (speakers/groups) to train/dev/test in a seeded order by ``fractions``."""
    frac = {**FRACTIONS, **(fractions or {})}
    if set(frac) != set(SPLITS) or any(f < 0 for f in frac.values()) or not math.isclose(sum(frac.values()), 1.0):
        raise ManifestError(f"params.yaml: corpora.{name}.fractions must give train/dev/test summing to 1, got {frac}")
    order = list(np.random.default_rng(seed).permutation(sorted(units.unique())))
    n = len(order)
    # Every split asked for gets at least one unit; train keeps the rest.
    n_test = max(1, round(frac["test"] * n)) if frac["test"] > 0 else 0
    n_dev = max(1, round(frac["dev"] * n)) if frac["dev"] > 0 else 0
    if n - n_test - n_dev < 1:
        raise ManifestError(f"params.yaml: corpora.{name}: {n} speakers cannot fill train/dev/test by {frac}")
    split_of = {u: "test" for u in order[:n_test]}
    split_of |= {u: "dev" for u in order[n_test : n_test + n_dev]}
    split_of |= {u: "train" for u in order[n_test + n_dev :]}
    return units.map(split_of)


def _segment_bounds(df: pd.DataFrame, rows: pd.DataFrame, where: list[str]) -> None:
    """Copy ``start``/``end`` (seconds) as floats; a segment must end after it starts."""
    for col in ("start", "end"):
        if col in rows.columns:
            df[col] = _floats(rows[col], where, col)
    if "start" in df.columns and "end" in df.columns:
        bad = df.index[df["end"] <= df["start"]]
        if len(bad):
            i = bad[0]
            raise ManifestError(f"{where[i]}: segment end {df['end'][i]} is not after start {df['start'][i]}")


def _apply_protocol(df: pd.DataFrame, protocol: str, s: LabelSettings, name: str, where: list[str]) -> dict[str, Any]:
    """Fill ``split`` (and ``fold``) in place by the protocol, keeping whole groups/speakers apart."""
    unit = "group" if "group" in df.columns else "speaker"
    seed = s.seed
    info: dict[str, Any] = {}
    if protocol == "official":
        _check_splits(df["split"], where)
        if not (df["split"] == "dev").any():
            df["split"] = carve_dev(df, s.dev_fraction, seed, group=unit)
            info["dev"] = f"carved from train by whole {unit}s"
    elif protocol == "random_split":
        df["split"] = random_split(df[unit], s.fractions, seed, name)
    else:
        info.update(assign_folds(df, unit, protocol, s.folds))
    info["rows_per_split"] = df["split"].value_counts().to_dict()
    return info


def labelled_corpus(
    name: str, root: Path, items: pd.DataFrame, labels: pd.DataFrame, where: list[str], source: str | Path,
    s: LabelSettings, *, info: dict[str, Any] | None = None,
) -> Corpus:
    """The part every label-table recipe shares: task labels, speakers, the protocol, validation.

    ``items`` (one row per item, in order) holds ``id``, ``audio``, ``video``, ``text`` and, when the
    source has them, ``speaker`` (an empty one: the item is its own speaker), ``split`` (the official
    split, ``train``/``dev``/``test``), ``group`` (empty: the speaker), ``start``/``end``. ``labels``
    holds the task columns as strings ("" = unlabelled for that task). ``where[i]`` starts row i's
    error messages (``file:line``, ``file: supervision 'x'``); ``source`` names the file (or folder)
    for errors about the whole table. The default protocol is ``official`` when ``items`` has a split.
    """
    df = items.reset_index(drop=True).copy()
    labels = labels.reset_index(drop=True)
    has_split = "split" in df.columns
    protocol = s.protocol or ("official" if has_split else "kfold")
    if protocol == "official" and not has_split:
        raise ManifestError(f"params.yaml: corpora.{name}.protocol is 'official' but {source} has no split column; "
                            f"allowed without one: ['kfold', 'loso', 'random_split']")
    has_speaker = "speaker" in df.columns and bool(df["speaker"].astype(str).str.strip().ne("").any())
    if has_speaker:
        df["speaker"] = [str(spk).strip() or uid for spk, uid in zip(df["speaker"], df["id"])]
    else:
        df["speaker"] = df["id"]
    if not has_split:
        df["split"] = "train"
    if "group" in df.columns:
        df["group"] = [str(g).strip() or spk for g, spk in zip(df["group"], df["speaker"])]
    columns = ["id", "speaker", "split", "audio", "video", "text"]
    df = df[columns + [c for c in df.columns if c not in columns]]

    tasks, unlabelled = [], {}
    for spec in parse_tasks(s.tasks):
        df[spec["name"]], task = _labels(labels, where, str(source), spec)
        tasks.append(task)
        missing = int(df[spec["name"]].isna().sum())
        if missing:
            unlabelled[task.name] = missing

    info = {"protocol": protocol, **(info or {}), "speaker_independent": has_speaker}
    if not has_speaker:
        info["note"] = "no speakers: each item is its own speaker, speaker independence cannot be enforced"
    if unlabelled:
        info["unlabelled"] = unlabelled  # items without a label for a task (the probe skips them there)
    info.update(_apply_protocol(df, protocol, s, name, where))
    corpus = Corpus(name=name, manifest=df, tasks=tasks, root=display_path(root), info=info)
    validate(corpus, display_path(source))
    return corpus


@register_corpus(
    "manifest", settings=ManifestSettings, tasks="whatever your CSV/JSONL declares",
    protocol="`split` column, else `kfold` (`loso`, `random_split`)", unit="speaker column",
)
def prepare_manifest(s: ManifestSettings, out_dir: Path) -> Corpus:
    """Read a user's CSV/JSONL label file into a validated corpus."""
    name = corpus_name(s, out_dir, "manifest")
    root = corpus_root(s.root, name)
    path = _label_file(s.file, root)
    rows, lines = read_rows(path)
    where = [f"{path}:{line}" for line in lines]
    audio, video = _media_columns(rows, lines, path, root)
    ids = _ids(rows, lines, path)
    items = pd.DataFrame({"id": ids, "audio": audio, "video": video,
                          "text": rows["text"] if "text" in rows.columns else ""})
    for col in ("speaker", "split", "group"):
        if col in rows.columns:
            items[col] = rows[col].str.strip()
    _segment_bounds(items, rows, where)
    return labelled_corpus(name, root, items, rows, where, path, s, info={"file": display_path(path)})
