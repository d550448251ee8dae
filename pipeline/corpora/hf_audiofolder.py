"""Interop recipe: a Hugging Face ``datasets`` AudioFolder directory (audio files + optional metadata).

Source: the AudioFolder layout of Hugging Face ``datasets``
(https://huggingface.co/docs/datasets/audio_dataset#audiofolder, Apache-2.0), read with
``datasets.load_dataset("audiofolder", data_dir=root, streaming=True)``: datasets itself finds the
splits, the metadata files and the folder-name labels. Licence: the corpus's own.

Layout (what datasets recognises)::

    <root>/metadata.csv | metadata.jsonl | metadata.parquet    a ``file_name`` column (path relative to
                                                               the metadata file) + any label columns
    <root>/train/… <root>/validation/… <root>/test/…           optional split folders (also dev/, valid/,
                                                               eval/…; each may hold its own metadata)
    <root>/<split>/<label>/<file>.wav                          without metadata: the folder name is the
                                                               ``label`` column (a ClassLabel), when every
                                                               file is at the same depth under ≥ 2 folders

Items: one per audio file datasets lists (a metadata row, or every file in label mode); ``id`` =
the ``id`` column (or the column the ``id`` option names) when there is one, else the file's path
under root without extension, ``/`` → ``_``.
Every metadata column is read as text, exactly as written (speaker ``03`` stays ``03``; datasets
would otherwise infer ``3``); ClassLabel values become their names. A video container
(.mp4 .avi .mkv .mov .webm .flv) is an audio-visual item (``video`` = the same file).

Options (``params.yaml`` → ``corpora.<name>``; ``recipe: hf_audiofolder``)::

    corpora:
      myfolder:
        recipe: hf_audiofolder
        root: /data/my_audiofolder
        tasks:
          emotion: {type: classification}           # the metadata column "emotion"
          # emotion: {column: label}                # folder-name labels
          # valence: {type: regression, column: V}
        id: null                  # column holding item ids (default: "id" when present, else from the path)
        speaker: null             # column holding the speaker (default: "speaker" when present)
        text: null                # column holding the transcript (default: "text" when present)
        group: null               # column holding the unit kept on one side (session, dialogue)
        protocol: null            # official (split folders with a test split) | kfold | loso | random_split

Protocol: datasets' splits are the official split when there is a ``test`` split (the default then;
``validation`` → dev, or dev carved from train by whole speakers); otherwise ``kfold`` by speaker,
or ``loso``/``random_split`` as in the ``manifest`` recipe.

Reading: nothing is decoded (``torchcodec`` is not installed and not needed: the ``audio`` column
is cast to plain text, the file's path; the segment stage decodes with ffmpeg). Streaming mode
writes no Arrow cache; the lock files datasets still takes go to ``.cache/hf_datasets`` in the
working directory, never the home folder. Local folders need no network: datasets' packaged
``audiofolder`` builder runs offline (``HF_HUB_OFFLINE=1``, as the Makefile sets, is honoured too).

Errors, each one line naming the folder or file: what datasets refuses (no audio, no
``file_name`` column, malformed CSV/JSONL, a ``file_name`` that leaves its folder, metadata
files whose columns differ), an unknown column (the message lists the columns there are), a
non-scalar column, duplicate ids, a path outside the root. Audio files datasets does not list are
never dropped silently: in label mode (no metadata) every audio file under root must be listed —
datasets does not follow folder symlinks, so files under a linked folder are an error that says
so; with metadata, files no metadata row names are counted in ``info["not_in_metadata"]`` and
reported in a warning line.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import Corpus, display_path, inside
from pipeline.corpora.base import register_corpus
from pipeline.corpora.common import corpus_root, media, walk_files
from pipeline.corpora.manifest import VIDEO_SUFFIXES, LabelSettings, corpus_name, labelled_corpus, parse_tasks

CACHE_DIR = Path(".cache") / "hf_datasets"  # lock files only (streaming): kept out of ~/.cache
SPLITS = {"train": "train", "validation": "dev", "test": "test"}  # datasets' split names → ours
METADATA = ("metadata.csv", "metadata.jsonl", "metadata.parquet")


class HfAudioFolderSettings(LabelSettings):
    id: str | None = None  # column holding item ids (default: "id" when present, else the path without extension)
    speaker: str | None = None  # column holding the speaker (default: "speaker" when there is one)
    text: str | None = None  # column holding the transcript (default: "text" when there is one)
    group: str | None = None  # column holding the unit kept on one side of a split (session, dialogue)


def _hidden(path: Path, root: Path) -> bool:
    """Paths datasets skips: hidden files and folders, and ``__…`` folders (``__MACOSX``)."""
    return any(part.startswith((".", "__")) for part in path.relative_to(root).parts)


def audio_files(root: Path) -> set[str]:
    """Every audio file under ``root`` (folder links followed) as a manifest path, by datasets' extensions."""
    from datasets.packaged_modules.audiofolder.audiofolder import AudioFolder

    wanted = {e.lower() for e in AudioFolder.EXTENSIONS}
    return {media(root, p.relative_to(root).as_posix(), str(p))
            for p in walk_files(root) if p.suffix.lower() in wanted and not _hidden(p, root)}


def load_folder(root: Path) -> tuple[dict[str, Any], str]:
    """``({split: streaming dataset}, mode)``: datasets' own reading of the folder, every metadata column
    as text and ``audio`` as the file's path (nothing decoded); ``mode`` is ``metadata``, ``folder
    labels`` or ``audio only``."""
    from datasets import ClassLabel, Features, Value, load_dataset

    def load(features=None):
        with refused(root):
            return load_dataset("audiofolder", data_dir=str(root), streaming=True, cache_dir=str(CACHE_DIR),
                                features=features)

    folder = load()
    first = next(iter(folder.values()))
    if "audio" not in first.features:
        raise ManifestError(f"{display_path(root)}: the audiofolder has no audio column (has {list(first.features)})")
    mode = "folder labels" if isinstance(first.features.get("label"), ClassLabel) else \
        "metadata" if metadata_files(root) else "audio only"
    if mode == "metadata":  # again, every plain column read as text: as written, the same type in every split
        as_text = Features({k: Value("string") if isinstance(v, Value) else v for k, v in first.features.items()})
        folder = load(as_text)
    return {name: ds.cast_column("audio", Value("string")) for name, ds in folder.items()}, mode


def metadata_files(root: Path) -> list[str]:
    return sorted(display_path(p) for p in walk_files(root) if p.name in METADATA and not _hidden(p, root))


@contextlib.contextmanager
def refused(root: Path):
    """What datasets raises while loading or reading the folder, as one error naming it and its metadata."""
    try:
        yield
    except (ValueError, OSError) as err:
        if isinstance(err, ManifestError):
            raise
        raise ManifestError(f"{display_path(root)}: datasets cannot read it as an audiofolder "
                            f"(metadata: {metadata_files(root) or 'none'}): {err}") from err


def examples(dataset, root: Path):
    """The dataset's examples; datasets' own errors while reading (a bad ``file_name``) name the folder."""
    with refused(root):
        yield from dataset


def _path_under(path: str, root: Path) -> str:
    """``path`` (as datasets gives it: absolute, and with a linked root resolved) relative to ``root``."""
    for base in (os.path.abspath(root), os.path.realpath(root)):
        if inside(path, base):
            return os.path.relpath(path, base)
    return path  # (media() names it as leaving the root)


class Columns:
    """The columns the options name, checked against the dataset's features, and their text values."""

    def __init__(self, s: HfAudioFolderSettings, features, root: Path):
        self.features, self.source = features, display_path(root)
        present = set(features) - {"audio"}
        self.id = self.named(s.id) if s.id else "id" if "id" in present else None
        self.speaker = self.named(s.speaker) if s.speaker else "speaker" if "speaker" in present else None
        self.text = self.named(s.text) if s.text else "text" if "text" in present else None
        self.group = self.named(s.group)
        self.labels = [self.named(col) for col in sorted({spec["column"] for spec in parse_tasks(s.tasks)})]

    def named(self, column: str | None) -> str | None:
        if column is None:
            return None
        if column not in self.features or column == "audio":
            hint = ("; folder-name labels (column 'label') need no metadata file and every audio file at the same "
                    "depth under at least two folders") if column == "label" else ""
            raise ManifestError(f"{self.source}: no column {column!r} in the audiofolder "
                                f"(columns: {sorted(set(self.features) - {'audio'})}){hint}")
        return column

    def text_of(self, example: dict, column: str, where: str) -> str:
        value, feature = example.get(column), self.features[column]
        if value is None:
            return ""
        if hasattr(feature, "int2str"):  # a ClassLabel: -1 is "no label"
            return "" if value < 0 else feature.int2str(value)
        if not isinstance(value, (str, int, float, bool)):
            raise ManifestError(f"{where}: column {column!r} holds a {type(value).__name__}, not a label")
        return str(value).strip()


@register_corpus(
    "hf_audiofolder", settings=HfAudioFolderSettings, tasks="metadata columns you name, or folder-name `label`",
    protocol="split folders (`train/` `validation/` `test/`), else `kfold` (`loso`, `random_split`)",
    unit="speaker column",
)
def prepare_hf_audiofolder(s: HfAudioFolderSettings, out_dir: Path) -> Corpus:
    """Read a Hugging Face AudioFolder directory into a validated corpus."""
    name = corpus_name(s, out_dir, "hf_audiofolder")
    root = corpus_root(s.root, name)
    folder, mode = load_folder(root)
    unknown = sorted(set(folder) - set(SPLITS))
    if unknown:
        raise ManifestError(f"{display_path(root)}: datasets found splits {unknown}; known: {list(SPLITS)}")
    columns = Columns(s, next(iter(folder.values())).features, root)
    official = "test" in folder or s.protocol == "official"

    rows, labels, where, first = [], [], [], {}
    for split_name in sorted(folder, key=list(SPLITS).index):
        for example in examples(folder[split_name], root):
            rel = _path_under(example["audio"], root)
            at = f"{display_path(root)}: {split_name} file {Path(rel).as_posix()}"
            audio = media(root, rel, at)
            uid = columns.text_of(example, columns.id, at) if columns.id else ""
            uid = uid or str(Path(rel).with_suffix("")).replace("\\", "/").replace("/", "_")
            if uid in first:
                raise ManifestError(f"{at}: duplicate id {uid!r} (first: {first[uid]})")
            first[uid] = Path(rel).as_posix()
            row = {"id": uid, "audio": audio, "video": audio if Path(rel).suffix.lower() in VIDEO_SUFFIXES else "",
                   "text": columns.text_of(example, columns.text, at) if columns.text else ""}
            for key in ("speaker", "group"):
                if getattr(columns, key):
                    row[key] = columns.text_of(example, getattr(columns, key), at)
            if official:
                row["split"] = SPLITS[split_name]
            rows.append(row)
            labels.append({col: columns.text_of(example, col, at) for col in columns.labels})
            where.append(at)
    if not rows:
        raise ManifestError(f"{display_path(root)}: the audiofolder lists no audio files")

    info: dict[str, Any] = {"mode": mode, "splits": sorted(folder, key=list(SPLITS).index)}
    unlisted = sorted(audio_files(root) - {r["audio"] for r in rows})
    if unlisted and mode != "metadata":
        raise ManifestError(f"{display_path(root)}: datasets did not list {len(unlisted)} audio file(s) under the "
                            f"root, e.g. {unlisted[:3]} (it does not follow symlinked folders; copy or bind-mount "
                            f"them, or list the files in a metadata file)")
    if unlisted:
        info["not_in_metadata"] = len(unlisted)
        print(f"warning: {display_path(root)}: {len(unlisted)} audio file(s) are in no metadata file and are not "
              f"items, e.g. {unlisted[:3]}")
    return labelled_corpus(name, root, pd.DataFrame(rows), pd.DataFrame(labels, columns=columns.labels), where,
                           root, s, info=info)
