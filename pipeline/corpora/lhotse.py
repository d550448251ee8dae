"""Interop recipe: a corpus described by lhotse manifests (RecordingSet + SupervisionSet, or a CutSet).

Source: the manifests that lhotse (https://github.com/lhotse-speech/lhotse, Apache-2.0) writes
— ``lhotse prepare <corpus>`` for its ~100 corpus recipes, or your own code — read with lhotse's
own :func:`lhotse.load_manifest` and checked with :mod:`lhotse.qa`. Licence: the corpus's own.

Format (lhotse's JSONL, one object a line, optionally gzipped):

- ``Recording``: ``id, sources [{type, channels, source}], sampling_rate, num_samples, duration,
  channel_ids[, transforms]``;
- ``SupervisionSegment``: ``id, recording_id, start, duration, channel, text, language, speaker,
  gender, custom {…}``;
- ``MonoCut`` / ``MultiCut``: ``id, start, duration, channel, recording, supervisions`` (a
  supervision's ``start`` is relative to its cut).

Layout (lhotse's file names: ``<prefix>_<type>_<part>.jsonl.gz``)::

    <root>/<manifest_dir>/<prefix>_recordings_<part>.jsonl[.gz]     one pair per part (train, dev, test, …)
    <root>/<manifest_dir>/<prefix>_supervisions_<part>.jsonl[.gz]
    <root>/<manifest_dir>/<prefix>_cuts_<part>.jsonl[.gz]           or cuts instead of the pair
    <root>/...                                                      the audio the recordings point at

Files without a part (``<prefix>_recordings.jsonl.gz``) hold the whole corpus. A source path that is
relative is relative to ``root``; an absolute one must lie under ``root`` (lexically: symlinks under
root are fine, ``..`` out of it is not).

Items: one per supervision, ``id`` = the supervision's id, audio = its recording's file, cut to its
window (``start`` = the supervision's start, ``end`` = start + duration, in seconds in the file;
for cuts the supervision's span clipped to its cut). ``speaker``, ``text`` and every task's label
are supervision fields named in the options: a top-level field (``speaker``, ``text``,
``language``, ``gender``, …) or else a key of ``custom``. A recording that is also a video
(lhotse's ``has_video``) gives the item a video too.

Options (``params.yaml`` → ``corpora.<name>``; ``recipe: lhotse``)::

    corpora:
      myemo:
        recipe: lhotse
        root: /data/myemo                # audio under here; manifests in root/manifest_dir
        manifest_dir: manifests          # default "."
        prefix: myemo                    # default: the only prefix there
        kind: auto                       # supervisions | cuts | auto (whichever is there)
        tasks:
          emotion: {type: classification}          # custom["emotion"] (or a top-level field)
          # arousal: {type: regression, column: A}   # label from the field "A"
        speaker: speaker                 # the field holding the speaker (null: none)
        text: text                       # the field holding the transcript (null: none)
        group: null                      # "recording", or a field: the unit kept on one side
        splits: null                     # part → train/dev/test (null: part not read); default by name
        multichannel: error              # downmix: accept supervisions on some channels of a multichannel file
        protocol: null                   # official (per-part manifests) | kfold | loso | random_split

Protocol: the parts are the official split when one of them is a test part (the default
protocol then; a dev part, or else dev carved from train by whole speakers), otherwise ``kfold``
by speaker; ``loso``, ``kfold``, ``random_split`` as in the ``manifest`` recipe. By default a part
is a split by its name — ``train*`` → train, ``dev*``/``val*`` → dev, ``test*``/``eval*`` → test
(``dev-clean`` → dev) — and any other part name is an error asking for ``splits``; with ``splits``
given, parts it does not name are not read and ``info["parts_skipped"]`` lists them.

Never silently dropped: a supervision whose recording is missing, outside it or on a channel it
does not have (lhotse's own checks, :func:`lhotse.qa.validate_recordings_and_supervisions`), a
recording whose audio is not one file (``url``/``command``/``memory`` sources, a supervision whose
channels span several files), a recording with transforms other than resampling (speed or volume
perturbation: the segment stage decodes the file as it is), a mixed or padding cut, duplicate
supervision ids — each an error naming the manifest file and the supervision. A supervision on
some channels of a multichannel file is an error too, since the segment stage averages all of a
file's channels, unless ``multichannel: downmix`` (counted in ``info["downmixed"]``); on a
recording whose file holds exactly its channels it is read from that file alone. Recordings (or
cuts) without supervisions are not items and are counted in ``info``; supervisions that lack a
task's field are unlabelled for that task (``info["unlabelled"]``), while a field no supervision
has is an error listing the fields there are.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import Corpus, display_path, inside
from pipeline.corpora.base import register_corpus
from pipeline.corpora.common import corpus_root, media
from pipeline.corpora.manifest import LabelSettings, corpus_name, labelled_corpus, parse_tasks

FILE_NAME = re.compile(r"(?:(?P<prefix>.+)_)?(?P<kind>recordings|supervisions|cuts)(?:_(?P<part>[^.]+))?\.jsonl(?:\.gz)?")
PART_SPLITS = ((("train",), "train"), (("dev", "val"), "dev"), (("test", "eval"), "test"))
SPLIT_ORDER = {"train": 0, "dev": 1, "test": 2}
HARMLESS_TRANSFORMS = {"Resample"}  # the segment stage resamples anyway


class LhotseSettings(LabelSettings):
    manifest_dir: str = "."  # where the manifests are: relative to root, or absolute
    prefix: str | None = None  # <prefix>_recordings_<part>.jsonl.gz (default: the only prefix found)
    kind: Literal["auto", "supervisions", "cuts"] = "auto"  # recordings + supervisions, or cuts
    splits: dict[str, Literal["train", "dev", "test"] | None] | None = None  # part → split (default: by name)
    speaker: str | None = "speaker"  # supervision field holding the speaker (None: no speakers)
    text: str | None = "text"  # supervision field holding the transcript (None: no text)
    group: str | None = None  # "recording" or a supervision field: the unit kept on one side of a split
    multichannel: Literal["error", "downmix"] = "error"  # supervisions on some channels of a multichannel file

    def files_outside_root(self) -> list[str]:
        folder = Path(self.manifest_dir).expanduser()
        if self.root and folder.is_absolute() and not inside(folder, Path(self.root).expanduser()):
            return [str(folder)]
        return []


# --- finding and loading the manifests ------------------------------------------------------------


def find_manifests(folder: Path, prefix: str | None, kind: str) -> tuple[str | None, str, dict[str | None, dict]]:
    """``(prefix, kind, {part: {type: file}})`` of the lhotse manifests in ``folder``."""
    if not folder.is_dir():
        raise ManifestError(f"{folder}: lhotse manifest folder not found")
    found: dict[str | None, dict[str | None, dict[str, Path]]] = {}
    for path in sorted(folder.iterdir()):
        m = FILE_NAME.fullmatch(path.name)
        if m and path.is_file():
            parts = found.setdefault(m["prefix"], {})
            parts.setdefault(m["part"], {})[m["kind"]] = path
    if not found:
        raise ManifestError(f"{folder}: no lhotse manifests (<prefix>_recordings_<part>.jsonl.gz, "
                            f"<prefix>_supervisions_<part>.jsonl.gz or <prefix>_cuts_<part>.jsonl.gz)")
    if prefix is None:
        if len(found) > 1:
            raise ManifestError(f"{folder}: manifests of several prefixes {sorted(map(str, found))}; set prefix")
        prefix = next(iter(found))
    elif prefix not in found:
        raise ManifestError(f"{folder}: no lhotse manifests with prefix {prefix!r} (found {sorted(map(str, found))})")
    parts = found[prefix]
    kinds = {k for files in parts.values() for k in files}
    if kind == "auto":
        if "cuts" in kinds and kinds & {"recordings", "supervisions"}:
            raise ManifestError(f"{folder}: holds both cuts and recordings/supervisions manifests for prefix "
                                f"{prefix!r}; set kind: supervisions or kind: cuts")
        kind = "cuts" if "cuts" in kinds else "supervisions"
    wanted = ("cuts",) if kind == "cuts" else ("recordings", "supervisions")
    chosen = {part: {k: f for k, f in files.items() if k in wanted} for part, files in parts.items()
              if set(wanted) & set(files)}
    if not chosen:
        raise ManifestError(f"{folder}: no {' or '.join(wanted)} manifests with prefix {prefix!r}")
    for part, files in chosen.items():
        for k in wanted:
            if k not in files:
                other = next(iter(files.values())).name
                raise ManifestError(f"{folder}: {other} has no {k} manifest beside it ({_file_name(prefix, k, part)})")
    return prefix, kind, chosen


def _file_name(prefix: str | None, kind: str, part: str | None) -> str:
    return "_".join(p for p in (prefix, kind, part) if p) + ".jsonl.gz"


def part_splits(parts: list[str | None], splits: dict[str, str | None] | None, folder: Path) -> dict:
    """``{part: split or None}`` for every part found (None: not read)."""
    if splits is not None:
        missing = sorted(set(splits) - {p for p in parts if p})
        if missing:
            raise ManifestError(f"{folder}: splits names parts {missing} that have no manifests "
                                f"(parts there: {sorted(p for p in parts if p)})")
        return {p: splits.get(p) if p else None for p in parts}
    out: dict[str | None, str | None] = {}
    for part in parts:
        if part is None:
            out[part] = "train" if len(parts) == 1 else None
            continue
        name = part.lower()
        split = next((s for starts, s in PART_SPLITS if name.startswith(starts)), None)
        if split is None:
            raise ManifestError(f"{folder}: part {part!r} is not train*, dev*/val* or test*/eval*; say which split "
                                f"it is with splits (e.g. splits: {{{part}: train}}), or null to leave it out")
        out[part] = split
    if None in out and out[None] is None:
        raise ManifestError(f"{folder}: holds manifests both with and without a part name; set splits")
    return out


def load(path: Path, expected: str):
    """A lhotse manifest of type ``expected`` (RecordingSet, SupervisionSet, CutSet), or an error naming the file."""
    from lhotse import load_manifest

    try:
        manifest = load_manifest(path)
    except (ValueError, OSError, EOFError, KeyError, TypeError) as err:
        raise ManifestError(f"{path}: cannot read the lhotse manifest ({_reason(path, err)})") from err
    got = type(manifest).__name__
    if len(manifest) == 0:
        raise ManifestError(f"{path}: the lhotse manifest is empty")
    if got != expected:
        raise ManifestError(f"{path}: holds a {got}, expected a {expected}")
    return manifest


def _reason(path: Path, err: Exception) -> str:
    """What is wrong with the file; for malformed JSON, which line."""
    import json

    if isinstance(err, json.JSONDecodeError):
        import gzip

        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                try:
                    json.loads(line) if line.strip() else None
                except json.JSONDecodeError as bad:
                    return f"line {number}: malformed JSON ({bad.msg})"
    if str(err).startswith("Unknown type of manifest"):
        return "not a lhotse RecordingSet, SupervisionSet or CutSet"
    return f"{type(err).__name__}: {err}"


def _checked(check, *args, where: str) -> None:
    """Run a :mod:`lhotse.qa` check; its AssertionError becomes an error naming the manifest file."""
    try:
        check(*args)
    except AssertionError as err:
        raise ManifestError(f"{where}: {err}") from None


# --- supervisions → items -----------------------------------------------------------------------


class Reader:
    """Turns supervisions into item rows and label cells, counting what it accepts on the way."""

    def __init__(self, s: LhotseSettings, root: Path, fields: set[str]):
        self.s, self.root, self.fields = s, root, fields
        self.columns = sorted({spec["column"] for spec in parse_tasks(s.tasks)})
        self.rows: list[dict[str, Any]] = []
        self.labels: list[dict[str, str]] = []
        self.where: list[str] = []
        self.first: dict[str, str] = {}
        self.custom_keys: set[str] = set()
        self.downmixed = 0

    def value(self, sup, name: str, where: str) -> str:
        """A supervision field as text ("" when absent): top-level first, else a key of ``custom``."""
        value = getattr(sup, name) if name in self.fields else (sup.custom or {}).get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if not isinstance(value, (str, int, float, bool)):
            raise ManifestError(f"{where}: field {name!r} is a {type(value).__name__}, not a label")
        return str(value).strip()

    def add(self, sup, rec, start: float, end: float, file: Path, split: str | None) -> None:
        where = f"{display_path(file)}: supervision {sup.id!r}"
        if sup.id in self.first:
            raise ManifestError(f"{where}: duplicate supervision id (first in {self.first[sup.id]})")
        self.first[sup.id] = display_path(file)
        self.custom_keys |= set(sup.custom or {})
        audio = media(self.root, self.source_file(rec, sup.channel, where), where)
        row = {"id": sup.id, "audio": audio, "video": audio if rec.has_video else "", "start": start, "end": end,
               "text": self.value(sup, self.s.text, where) if self.s.text else ""}
        if self.s.speaker:
            row["speaker"] = self.value(sup, self.s.speaker, where)
        if self.s.group:
            row["group"] = rec.id if self.s.group == "recording" else self.value(sup, self.s.group, where)
        if split is not None:
            row["split"] = split
        self.rows.append(row)
        self.labels.append({col: self.value(sup, col, where) for col in self.columns})
        self.where.append(where)

    def source_file(self, rec, channel, where: str) -> str:
        """The one audio file holding ``channel`` of ``rec`` (see the module docstring)."""
        transforms = [t.get("name") if isinstance(t, dict) else type(t).__name__ for t in rec.transforms or []]
        if set(transforms) - HARMLESS_TRANSFORMS:
            raise ManifestError(f"{where}: recording {rec.id!r} has transforms {transforms}, which the segment stage "
                                f"does not apply (it decodes the file as it is); use the unperturbed recordings")
        wanted = [channel] if isinstance(channel, int) else list(channel)
        holding = [src for src in rec.sources if set(src.channels) & set(wanted)]
        if len(holding) != 1:
            raise ManifestError(f"{where}: channel(s) {wanted} of recording {rec.id!r} lie in {len(holding)} audio "
                                f"sources; an item is read from one file")
        src = holding[0]
        if src.type != "file":
            raise ManifestError(f"{where}: recording {rec.id!r} has a {src.type!r} audio source; "
                                f"only files (type 'file') can be segmented")
        if set(src.channels) - set(wanted):
            if self.s.multichannel == "error":
                raise ManifestError(
                    f"{where}: lies on channel(s) {wanted} of recording {rec.id!r}, whose file {src.source} holds "
                    f"channels {src.channels}; the segment stage averages all of a file's channels "
                    f"(multichannel: downmix accepts that)"
                )
            self.downmixed += 1
        return os.fspath(src.source)

    def check_fields(self, source: str) -> None:
        """A named field that no supervision has is a typo, not a corpus without labels."""
        names = [*self.columns, *(n for n in (self.s.speaker, self.s.text) if n)]
        if self.s.group and self.s.group != "recording":
            names.append(self.s.group)
        for name in names:
            if name not in self.fields and name not in self.custom_keys:
                raise ManifestError(f"{source}: no supervision has a field {name!r} (top-level fields: "
                                    f"{sorted(self.fields - {'custom', 'alignment'})}; custom keys: "
                                    f"{sorted(self.custom_keys)})")


def read_supervisions(reader: Reader, files: dict[str, Path], split: str | None) -> int:
    """Add the items of one recordings + supervisions pair; returns the recordings without supervisions."""
    from lhotse.qa import validate_recordings_and_supervisions

    recordings = load(files["recordings"], "RecordingSet")
    supervisions = load(files["supervisions"], "SupervisionSet")
    where = f"{display_path(files['supervisions'])} (recordings: {display_path(files['recordings'])})"
    _checked(validate_recordings_and_supervisions, recordings, supervisions, where=where)
    by_id = {r.id: r for r in recordings}
    for sup in supervisions:
        reader.add(sup, by_id[sup.recording_id], sup.start, sup.start + sup.duration, files["supervisions"], split)
    return len(set(by_id) - {sup.recording_id for sup in supervisions})


def read_cuts(reader: Reader, file: Path, split: str | None) -> int:
    """Add the items of one cuts manifest; returns the cuts without supervisions."""
    from lhotse import MonoCut, MultiCut
    from lhotse.qa import validate

    cuts = load(file, "CutSet")
    empty = 0
    for cut in cuts:
        where = f"{display_path(file)}: cut {cut.id!r}"
        if not isinstance(cut, (MonoCut, MultiCut)):
            raise ManifestError(f"{where}: is a {type(cut).__name__}; only cuts of one recording "
                                f"(MonoCut, MultiCut) can be segmented")
        _checked(validate, cut, where=where)
        if not cut.has_recording:
            raise ManifestError(f"{where}: has no recording (features-only cuts have no audio to segment)")
        empty += not cut.supervisions
        for sup in cut.supervisions:
            start, end = cut.start + max(sup.start, 0.0), cut.start + min(sup.end, cut.duration)
            if end <= start:
                raise ManifestError(f"{where}: supervision {sup.id!r} lies outside its cut")
            reader.add(sup, cut.recording, start, end, file, split)
    return empty


@register_corpus(
    "lhotse", settings=LhotseSettings, tasks="supervision fields you name (top-level or `custom`)",
    protocol="per-part manifests (`<prefix>_supervisions_<part>`), else `kfold` (`loso`, `random_split`)",
    unit="supervision speaker (`group`: recording)",
)
def prepare_lhotse(s: LhotseSettings, out_dir: Path) -> Corpus:
    """Read lhotse manifests (recordings + supervisions, or cuts) into a validated corpus."""
    from lhotse import SupervisionSegment

    name = corpus_name(s, out_dir, "lhotse")
    root = corpus_root(s.root, name)
    folder = Path(s.manifest_dir).expanduser()
    folder = folder if folder.is_absolute() else root / folder
    prefix, kind, parts = find_manifests(folder, s.prefix, s.kind)
    split_of = part_splits(list(parts), s.splits, folder)
    read = sorted((p for p in parts if split_of[p] is not None), key=lambda p: (SPLIT_ORDER[split_of[p]], p or ""))
    if not read:
        raise ManifestError(f"{folder}: splits leaves out every part ({sorted(map(str, parts))})")
    splits = {split_of[p] for p in read}
    official = "test" in splits

    reader = Reader(s, root, {f.name for f in dataclasses.fields(SupervisionSegment)})
    without = 0
    for part in read:
        split = split_of[part] if official or s.protocol == "official" else None
        if kind == "cuts":
            without += read_cuts(reader, parts[part]["cuts"], split)
        else:
            without += read_supervisions(reader, parts[part], split)
    source = display_path(folder)
    reader.check_fields(source)

    info: dict[str, Any] = {
        "manifests": [display_path(f) for p in read for f in parts[p].values()],
        "kind": kind, "prefix": prefix, "parts": {p or "(no part)": split_of[p] for p in read},
    }
    skipped = sorted(str(p) for p in parts if p not in read)
    if skipped:
        info["parts_skipped"] = skipped
    if without:
        info[f"{'cuts' if kind == 'cuts' else 'recordings'}_without_supervisions"] = without
    if reader.downmixed:
        info["downmixed"] = reader.downmixed  # supervisions on some channels of a file read as its average
    items, labels = pd.DataFrame(reader.rows), pd.DataFrame(reader.labels, columns=reader.columns)
    return labelled_corpus(name, root, items, labels, reader.where, source, s, info=info)
