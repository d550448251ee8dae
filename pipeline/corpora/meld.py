"""MELD — Multimodal EmotionLines Dataset (Poria et al., ACL 2019).

Source: https://affective-meld.github.io/ — raw release ``MELD.Raw.tar.gz`` from
https://web.eecs.umich.edu/~mihalcea/downloads/MELD.Raw.tar.gz; the CSVs are also in
https://github.com/declare-lab/MELD (``data/MELD/``). Licence: GPL-3.0 for the annotations (per the
declare-lab/MELD repository); the clips are excerpts of the TV series *Friends*, for research use.

Layout (``root`` may point at ``MELD.Raw/`` itself or at the folder holding it; the recipe
detects which by looking for ``train_sent_emo.csv``)::

    MELD.Raw/train_sent_emo.csv    Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,
    MELD.Raw/dev_sent_emo.csv      Utterance_ID,Season,Episode,StartTime,EndTime
    MELD.Raw/test_sent_emo.csv
    MELD.Raw/train_splits/dia{D}_utt{U}.mp4                   (from train.tar.gz)
    MELD.Raw/dev_splits_complete/dia{D}_utt{U}.mp4            (from dev.tar.gz)
    MELD.Raw/output_repeated_splits_test/dia{D}_utt{U}.mp4    (from test.tar.gz)

Tasks: ``emotion`` (neutral, joy, surprise, anger, sadness, disgust, fear) and ``sentiment``
(neutral, positive, negative). Protocol: ``official`` (default) — the released
train/dev/test split (9,989 / 1,109 / 2,610 utterances) — or ``emobox``: EmoBox's published split
(:mod:`pipeline.corpora._emobox`), which is the official one less the two utterances without a clip
(9,988 / 1,108 / 2,610; the two are dropped and named in ``info["emobox"]["not_listed"]``), task
``emotion`` only. Rows: ``id`` = ``<split>_dia<D>_utt<U>``
(dialogue numbers restart in every split, so the split is part of the id), ``group`` =
``<split>_dia<D>`` (the dialogue), ``speaker`` = the character name as written in the CSV. The main
characters recur in every split, so the manifest is validated with ``speakers_shared=True``.

Quirks handled:

- CSV encoding: the files are mostly UTF-8 holding double-encoded punctuation (``â€™``), and some
  copies are cp1252. Each file is decoded as UTF-8 (BOM tolerated), else cp1252, else latin-1; the
  text is kept exactly as decoded (no mojibake repair) and the encoding used is recorded in
  ``info["encodings"]``.
- ``StartTime``/``EndTime`` are positions in the episode, not inside the clip, so they are not
  used as segment bounds.
- Some clips carry 6-channel (5.1) audio; the segment stage downmixes every track to mono.
- ``output_repeated_splits_test/`` also holds re-extracted copies named
  ``final_videos_testdia{D}_utt{U}.mp4``. Public loaders disagree on which copy is right: the plain
  name is used when it exists, the prefixed one otherwise (option ``prefer_final_videos_test: true``
  reverses that); how many rows took the prefixed file is recorded in ``info``.
- The release lacks a few clips (train ``dia125_utt3``, dev ``dia110_utt7``); their rows are kept and
  the segment stage reports the missing files (``on_bad_media``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable, Literal

import pandas as pd

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import Corpus, Task, display_path, validate
from pipeline.corpora._emobox import EmoboxOptions, apply_emobox
from pipeline.corpora.base import register_corpus
from pipeline.corpora.common import corpus_root, media

EMOTIONS = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
SENTIMENTS = ["neutral", "positive", "negative"]
COLUMNS = [
    "Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
    "Season", "Episode", "StartTime", "EndTime",
]  # fmt: skip
# split -> (label file, clip folder), as in the MELD.Raw release.
SPLITS = {
    "train": ("train_sent_emo.csv", "train_splits"),
    "dev": ("dev_sent_emo.csv", "dev_splits_complete"),
    "test": ("test_sent_emo.csv", "output_repeated_splits_test"),
}
TEST_PREFIX = "final_videos_test"
# latin-1 decodes any byte string, so it is the last resort that always succeeds.
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


def find_release(root: Path) -> Path:
    """The folder holding the MELD CSVs: ``root`` itself or ``root/MELD.Raw``."""
    for base in (root, root / "MELD.Raw"):
        if (base / SPLITS["train"][0]).is_file():
            return base
    raise ManifestError(
        f"{root}: no {SPLITS['train'][0]} here or in MELD.Raw/ (point corpora.meld.root at the MELD.Raw release)"
    )


def decode_csv(path: Path) -> tuple[str, str]:
    """The text of ``path`` and the first encoding in :data:`ENCODINGS` that decodes it."""
    if not path.is_file():
        raise ManifestError(f"{path}: label file not found")
    data = path.read_bytes()
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


def csv_records(path: Path, text: str) -> Iterable[tuple[int, dict[str, str]]]:
    """(first line number, row) for every CSV record; malformed records raise with their line."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ManifestError(f"{path}: missing columns {missing} (has {reader.fieldnames})")
    line = reader.line_num + 1
    try:
        for row in reader:
            # DictReader files surplus fields under None and fills absent ones with None.
            if None in row or None in row.values():
                n_fields = len(reader.fieldnames)
                raise ManifestError(f"{path}: line {line}: expected {n_fields} fields, got a different count")
            yield line, row
            line = reader.line_num + 1
    except csv.Error as err:
        raise ManifestError(f"{path}: line {line}: cannot parse ({err})") from err


def _int_field(path: Path, line: int, row: dict[str, str], column: str) -> int:
    value = row[column].strip()
    if not value.isdigit():
        raise ManifestError(f"{path}: line {line}: {column} {row[column]!r} is not a non-negative integer")
    return int(value)


def _label_field(path: Path, line: int, row: dict[str, str], column: str, known: list[str]) -> str:
    value = row[column].strip().lower()
    if value not in known:
        raise ManifestError(f"{path}: line {line}: unknown {column} label {row[column]!r}; known: {known}")
    return value


def _clip_name(clip_dir: Path, split: str, dia: int, utt: int, prefer_prefixed: bool) -> tuple[str, bool]:
    """The clip file name for one row, and whether it is the ``final_videos_test`` copy."""
    plain = f"dia{dia}_utt{utt}.mp4"
    if split != "test":
        return plain, False
    prefixed = TEST_PREFIX + plain
    first, second = (prefixed, plain) if prefer_prefixed else (plain, prefixed)
    name = first if (clip_dir / first).exists() or not (clip_dir / second).exists() else second
    return name, name == prefixed


def read_split(base: Path, split: str, prefer_prefixed: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Manifest rows of one official split, plus what was noticed while reading it."""
    label_file, clip_folder = SPLITS[split]
    path = base / label_file
    text, encoding = decode_csv(path)
    clip_dir = base / clip_folder
    if not clip_dir.is_dir():
        raise ManifestError(f"{clip_dir}: clip folder for {path.name} not found (extract {split}.tar.gz here)")
    rows, first_line, prefixed = [], {}, 0
    for line, row in csv_records(path, text):
        dia = _int_field(path, line, row, "Dialogue_ID")
        utt = _int_field(path, line, row, "Utterance_ID")
        uid = f"{split}_dia{dia}_utt{utt}"
        if uid in first_line:
            raise ManifestError(
                f"{path}: line {line}: duplicate utterance dia{dia}_utt{utt} (first at line {first_line[uid]})"
            )
        first_line[uid] = line
        name, is_prefixed = _clip_name(clip_dir, split, dia, utt, prefer_prefixed)
        prefixed += is_prefixed
        clip = media(base, f"{clip_folder}/{name}", str(path))
        rows.append(
            {
                "id": uid,
                "speaker": row["Speaker"].strip(),
                "split": split,
                "audio": clip,
                "video": clip,
                "text": row["Utterance"],
                "emotion": _label_field(path, line, row, "Emotion", EMOTIONS),
                "sentiment": _label_field(path, line, row, "Sentiment", SENTIMENTS),
                "group": f"{split}_dia{dia}",
            }
        )
    if not rows:
        raise ManifestError(f"{path}: no utterances")
    return pd.DataFrame(rows), {"encoding": encoding, "prefixed_clips": prefixed}


class MeldSettings(EmoboxOptions):
    protocol: Literal["official", "emobox"] = "official"
    prefer_final_videos_test: bool = False  # test clips: prefer the final_videos_test* names where both exist


@register_corpus(
    "meld", settings=MeldSettings, tasks="emotion (7), sentiment (3)", protocol="official train/dev/test (`emobox`)",
    unit="dialogue (speakers recur)",
)
def prepare_meld(s: MeldSettings, out_dir: Path) -> Corpus:
    """Read the three MELD CSVs into one manifest with the official train/dev/test split."""
    protocol = s.protocol
    base = find_release(corpus_root(s.root, "meld"))
    prefer_prefixed = s.prefer_final_videos_test
    frames, notes = [], {}
    for split in SPLITS:
        df, notes[split] = read_split(base, split, prefer_prefixed)
        frames.append(df)
    manifest = pd.concat(frames, ignore_index=True)
    tasks = [Task("emotion", "classification", EMOTIONS), Task("sentiment", "classification", SENTIMENTS)]
    emobox = {}
    if protocol == "emobox":
        manifest, emobox["emobox"] = apply_emobox(manifest, "meld", s, display_path(base))
        tasks = tasks[:1]  # EmoBox evaluates emotion only
    corpus = Corpus(
        name="meld",
        manifest=manifest,
        tasks=tasks,
        root=display_path(base),
        info={
            "protocol": protocol,
            "speakers_shared": True,
            "utterances": {s: int((manifest["split"] == s).sum()) for s in SPLITS},
            "dialogues": {s: int(manifest.loc[manifest["split"] == s, "group"].nunique()) for s in SPLITS},
            "encodings": {SPLITS[s][0]: notes[s]["encoding"] for s in SPLITS},
            "test_clips_final_videos_test": notes["test"]["prefixed_clips"],
            **emobox,
        },
    )
    validate(corpus, display_path(base), speakers_shared=True)
    return corpus
