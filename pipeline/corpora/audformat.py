"""Interop recipe: an audformat database (``db.yaml`` + tables), as audEERING's audb publishes corpora.

Source: audformat (https://audeering.github.io/audformat/, MIT), the format of every database
in audb (audb.load(..., only_metadata=False) puts one on disk); read with
:meth:`audformat.Database.load` and labels fetched with :meth:`audformat.Database.get`, which joins
a scheme's columns across tables and maps labels (``gender`` from a ``speaker`` scheme's label
dictionary). Licence: the database's own (``db.license``).

Layout::

    <root>/db.yaml                       header: schemes, splits, raters, tables
    <root>/db.<table>.parquet|csv|pkl    one file per table; index ``file`` (filewise) or
                                         ``file, start, end`` (segmented)
    <root>/<file>                        media, paths relative to root (or absolute inside it)

Items: one per index entry that carries a label of at least one task; ``id`` = the file path
without extension, ``/`` → ``_`` (segmented: ``_<start ms>-<end ms>``, ``end`` for an open end).
Segments are windows: ``start``/``end`` in seconds; a whole-file label of a file that also has
segments (a speaker's gender) is carried onto its segments, not an item of its own. Items are in
file order. Video files (.mp4 .avi .mkv .mov .webm .flv) are audio-visual items.

Options (``params.yaml`` → ``corpora.<name>``; ``recipe: audformat``)::

    corpora:
      emodb_audb:
        recipe: audformat
        root: ~/audb/emodb/1.4.1           # the folder holding db.yaml
        tasks:
          emotion: {type: classification}  # scheme (or column) "emotion"; classes: the scheme's labels
          # arousal: {type: regression, column: arousal.mean}
        tables: null                       # tables the task labels are read from (default: all)
        speaker: null                      # scheme/column with the speaker (default: "speaker" when present)
        text: null                         # scheme/column with the transcript (default: transcription/text)
        group: null                        # scheme/column with the unit kept on one side
        splits: null                       # audformat split id → train/dev/test/null (default: by split type)
        protocol: null                     # official (the database's splits) | kfold | loso | random_split

``column`` (default: the task's name) names a scheme, a column of that name, or a key of a scheme's
label dictionary — whatever :meth:`~audformat.Database.get` accepts; speaker, text and group come
from all tables (``additional_schemes``). A classification task's classes default to its scheme's
labels, in the scheme's order.

Protocol: the database's splits (tables carry a ``split_id``; split types ``train``, ``dev``,
``test``) are the official split when there is a test split (the default then; dev carved from
train by whole speakers when there is none); otherwise ``kfold`` by speaker, or ``loso`` /
``random_split`` as in the ``manifest`` recipe. ``splits`` maps split ids to our splits, ``null``
leaving a split out (its items are counted in ``info["left_out"]``); a split of another type
(``other``) must be mapped.

Errors, each one line naming ``db.yaml`` (and the item): a missing or unreadable header or table, an
unknown table or scheme/column (listing the known ones), a task label in a table without a split
while the database has splits, an item in two splits, labels that disagree between tables (as
audformat reports them), a path outside the root, duplicate ids.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import Corpus, display_path
from pipeline.corpora.base import register_corpus
from pipeline.corpora.common import corpus_root, media
from pipeline.corpora.manifest import VIDEO_SUFFIXES, LabelSettings, corpus_name, labelled_corpus, parse_tasks

SPLIT_TYPES = {"train": "train", "dev": "dev", "test": "test"}  # audformat.define.SplitType → ours
TEXT_SCHEMES = ("transcription", "text")

Key = tuple[str, float | None, float | None]  # file, start, end (seconds; None: filewise / open end)


class AudformatSettings(LabelSettings):
    tables: list[str] | None = None  # tables the task labels are read from (default: every table)
    speaker: str | None = None  # scheme/column with the speaker (default: "speaker" when there is one)
    text: str | None = None  # scheme/column with the transcript (default: "transcription" or "text")
    group: str | None = None  # scheme/column with the unit kept on one side of a split
    splits: dict[str, Literal["train", "dev", "test"] | None] | None = None  # split id → ours (default: by type)


def load_database(root: Path):
    """The database under ``root`` with every table read (a missing table file fails here, named)."""
    import audformat
    import yaml

    header = root / "db.yaml"
    if not header.is_file():
        raise ManifestError(f"{header}: audformat database header not found")
    try:
        return audformat.Database.load(str(root), load_data=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())
        raise ManifestError(f"{header}: cannot load the audformat database ({type(err).__name__}: {reason})") from err


def known_names(db) -> set[str]:
    """What ``Database.get`` can find: schemes, column ids, and keys of schemes' label dictionaries."""
    names = set(db.schemes)
    for table in db.tables.values():
        names |= set(table.columns)
    for scheme in db.schemes.values():
        if isinstance(scheme.labels, dict):
            names |= {k for v in scheme.labels.values() if isinstance(v, dict) for k in v}
    return names


def _keys(index: pd.Index) -> list[Key]:
    """Index entries as ``(file, start, end)``; a segment from 0 to an open end is the whole file."""
    if not isinstance(index, pd.MultiIndex):
        return [(str(f), None, None) for f in index]
    keys = []
    for file, start, end in index:
        start, end = start.total_seconds(), None if pd.isna(end) else end.total_seconds()
        keys.append((str(file), None, None) if start == 0 and end is None else (str(file), start, end))
    return keys


def _text(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    return str(value).strip()


def _ms(seconds: float | None) -> str:
    return "end" if seconds is None else str(round(seconds * 1000))


class Reader:
    """Labels of the tasks per index entry, by split, through ``Database.get``."""

    def __init__(self, db, s: AudformatSettings, header: Path):
        self.db, self.s, self.header = db, s, header
        names = known_names(db)
        if s.tables is not None:
            unknown = sorted(set(s.tables) - set(db.tables))
            if unknown:
                raise ManifestError(f"{header}: no tables {unknown} (tables: {sorted(db.tables)})")
        self.speaker = s.speaker or ("speaker" if "speaker" in names else None)
        self.text = s.text or next((n for n in TEXT_SCHEMES if n in names), None)
        self.columns = sorted({spec["column"] for spec in parse_tasks(s.tasks)})
        for name in [*self.columns, s.speaker, s.text, s.group]:
            if name is not None and name not in names:
                raise ManifestError(f"{header}: no scheme or column {name!r} (schemes: {sorted(db.schemes)}; "
                                    f"columns: {sorted(names - set(db.schemes))})")
        self.extras = [n for n in (self.speaker, self.text, s.group) if n and n not in self.columns]

    def get(self, column: str) -> pd.DataFrame:
        """``column``'s labels, with the other tasks' and speaker/text/group joined onto its index."""
        extras = [c for c in self.columns if c != column] + self.extras
        try:
            return self.db.get(column, extras, tables=self.s.tables)
        except (ValueError, TypeError, KeyError) as err:
            raise ManifestError(f"{self.header}: audformat cannot read {column!r} ({' '.join(str(err).split())})") \
                from err

    def items(self) -> dict[Key, dict[str, Any]]:
        """``{key: {column: text…}}`` of every index entry labelled for at least one task.

        A whole-file entry of a file that also has segments is no item of its own: ``Database.get``
        has already carried its labels onto the segments (a speaker's gender onto each utterance).
        """
        items: dict[Key, dict[str, Any]] = {}
        for column in self.columns:
            got = self.get(column)
            for key, row in zip(_keys(got.index), got.to_dict("records")):
                if not _text(row.get(column)):
                    continue
                item = items.setdefault(key, {})
                for col, value in row.items():
                    if _text(value) and not item.get(col):
                        item[col] = _text(value)
        segmented = {file for file, start, _ in items if start is not None}
        return {key: item for key, item in items.items() if key[1] is not None or key[0] not in segmented}

    def split_ids(self) -> dict[str, str | None]:
        """Our split for each of the database's split ids (None: left out)."""
        if self.s.splits is not None:
            unknown = sorted(set(self.s.splits) - set(self.db.splits))
            if unknown:
                raise ManifestError(f"{self.header}: splits names {unknown}, not splits of the database "
                                    f"({sorted(self.db.splits)})")
            return {sid: self.s.splits.get(sid) for sid in self.db.splits}
        ours = {}
        for sid, split in self.db.splits.items():
            if split.type not in SPLIT_TYPES:
                raise ManifestError(f"{self.header}: split {sid!r} has type {split.type!r}; say which split it is "
                                    f"with splits (e.g. splits: {{{sid}: train}}), or null to leave it out")
            ours[sid] = SPLIT_TYPES[split.type]
        return ours

    def assign_splits(self, items: dict[Key, dict[str, Any]]) -> dict[str, Any]:
        """Put each item in the split whose tables list it (its segment, else its file); drop those of
        left-out splits. Returns facts for ``info``."""
        ours = self.split_ids()
        exact: dict[Key, set[str]] = {}
        by_file: dict[str, set[str]] = {}
        for table in self.db.tables.values():
            if table.split_id is not None:
                for key in _keys(table.index):
                    exact.setdefault(key, set()).add(table.split_id)
                    by_file.setdefault(key[0], set()).add(table.split_id)
        left_out = 0
        for key in list(items):
            sids = exact.get(key) or by_file.get(key[0], set())
            if len(sids) != 1:
                where = f"lies in the tables of splits {sorted(sids)}" if sids else "lies in no split's table"
                raise ManifestError(f"{self.header}: {key[0]} {where}, so it has no split (the database's splits "
                                    f"are {sorted(self.db.splits)}; protocol kfold, loso or random_split ignore them)")
            split = ours[next(iter(sids))]
            if split is None:
                del items[key]
                left_out += 1
            else:
                items[key]["split"] = split
        return {"splits": {sid: split for sid, split in sorted(ours.items())}, "left_out": left_out}

    def classes(self) -> dict[str, Any]:
        """The task options with each classification task's classes defaulting to its scheme's labels."""
        tasks = {}
        for name, spec in self.s.tasks.items():
            opts = spec.model_dump(exclude_unset=True) if spec else {}
            column = opts.get("column") or name
            scheme = self.db.schemes.get(column) or next(
                (self.db.schemes.get(t.columns[column].scheme_id) for t in self.db.tables.values()
                 if column in t.columns and t.columns[column].scheme_id), None)
            if opts.get("type", "classification") == "classification" and not opts.get("classes") and scheme \
                    and scheme.labels is not None:
                opts["classes"] = [str(label) for label in scheme.labels_as_list]
            tasks[name] = opts
        return tasks


@register_corpus(
    "audformat", settings=AudformatSettings, tasks="schemes/columns you name (classes: the scheme's labels)",
    protocol="the database's splits, else `kfold` (`loso`, `random_split`)", unit="speaker scheme",
)
def prepare_audformat(s: AudformatSettings, out_dir: Path) -> Corpus:
    """Read an audformat database into a validated corpus."""
    name = corpus_name(s, out_dir, "audformat")
    root = corpus_root(s.root, name)
    header = root / "db.yaml"
    db = load_database(root)
    reader = Reader(db, s, header)
    found = reader.items()
    if not found:
        raise ManifestError(f"{header}: no entry carries a label of {reader.columns}")
    info: dict[str, Any] = {"database": db.name}
    if db.splits and s.protocol in (None, "official"):
        info.update(reader.assign_splits(found))
    elif s.splits:
        raise ManifestError(f"{header}: splits is set, but " + (f"protocol {s.protocol} does not use them"
                            if db.splits else "the database has no splits"))
    official = s.protocol == "official" or "test" in {item.get("split") for item in found.values()}

    rows, labels, where, first = [], [], [], {}
    for (file, start, end), item in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0.0)):
        at = f"{display_path(header)}: {file}" + ("" if start is None else f" [{start:g}, {_ms(end)}]")
        base = str(Path(file).with_suffix("")).replace("\\", "/").replace("/", "_")
        uid = base if start is None else f"{base}_{_ms(start)}-{_ms(end)}"
        if uid in first:
            raise ManifestError(f"{at}: duplicate id {uid!r} (also {first[uid]})")
        first[uid] = at
        audio = media(root, file, at)
        row = {"id": uid, "audio": audio, "video": audio if Path(file).suffix.lower() in VIDEO_SUFFIXES else "",
               "text": item.get(reader.text, "") if reader.text else "",
               "start": math.nan if start is None else start, "end": math.nan if end is None else end}
        if reader.speaker:
            row["speaker"] = item.get(reader.speaker, "")
        if s.group:
            row["group"] = item.get(s.group, "")
        if official:
            row["split"] = item.get("split", "train")
        rows.append(row)
        labels.append({col: item.get(col, "") for col in reader.columns})
        where.append(at)
    items = pd.DataFrame(rows)
    if items[["start", "end"]].isna().all().all():
        items = items.drop(columns=["start", "end"])  # filewise: whole files
    s = s.replace(tasks=reader.classes())
    return labelled_corpus(name, root, items, pd.DataFrame(labels, columns=reader.columns), where, header, s,
                           info=info)
