"""DAIC-WOZ and E-DAIC — clinical interviews for depression detection (English), participant turns.

Source: the Distress Analysis Interview Corpus (Gratch et al., LREC 2014), USC Institute for
Creative Technologies, https://dcapswoz.ict.usc.edu/ — DAIC-WOZ as used by AVEC 2016/2017 (Valstar
et al. 2016; Ringeval et al. 2017) and the extended E-DAIC of AVEC 2019 (Ringeval et al. 2019).
Licence: the USC ICT end-user licence agreement (academic research only, no redistribution). The
corpus is never shipped with or downloaded by AffectBench: sign the EULA, download it yourself and
point ``corpora.daicwoz.root`` at it; the tests use a generated fake (``tests/data/daicwoz``).
Formats checked against public loaders: Jakidxav/DAIC_WOZ_NLP (``processing_scripts/
process_DAIC_WOZ.py``: tab-separated ``start_time stop_time speaker value``, speakers ``Ellie`` /
``Participant``; ``avec/processing_scripts/create_time_per_transcript.py``: E-DAIC's
``Start_Time, End_Time, Text, Confidence``, no speaker column, Ellie stripped),
kykiefer/depression-detect (``<id>_P`` archives, ``*_AUDIO.wav``, the AVEC2017 split files) and
MishaSadeghi/E-DAIC-multimodal-depression-detection (E-DAIC ``labels/{train,dev,test}_split.csv``,
``PHQ_Binary``/``PHQ_Score``); known errors from adbailey1/daic_woz_process
(``config_files/config_process.py``).

Layouts (``layout: auto`` tells them apart by their label files; label files are looked for in
``root`` and then in ``root/labels``, session folders in ``root``, or in ``root/data`` where ``root``
holds none, as some extracted copies have them)::

    DAIC-WOZ (189 sessions, 300–492; 342, 394, 398, 460 do not exist)
    <root>/<id>_P/<id>_AUDIO.wav                 the interview (16 kHz mono)
    <root>/<id>_P/<id>_TRANSCRIPT.csv            start_time<TAB>stop_time<TAB>speaker<TAB>value
    <root>/train_split_Depression_AVEC2017.csv   Participant_ID,PHQ8_Binary,PHQ8_Score,Gender,PHQ8_NoInterest,...
    <root>/dev_split_Depression_AVEC2017.csv     (same columns)
    <root>/full_test_split.csv                   Participant_ID,PHQ_Binary,PHQ_Score,Gender
    (test_split_Depression_AVEC2017.csv lists the test ids without labels and is not read)

    E-DAIC (275 sessions: 300–492 and the autonomous-agent sessions 600–718)
    <root>/<id>_P/<id>_AUDIO.wav
    <root>/<id>_P/<id>_Transcript.csv            Start_Time,End_Time,Text,Confidence (ASR, participant only)
    <root>/labels/{train,dev,test}_split.csv     Participant_ID,Gender,PHQ_Binary,PHQ_Score,PCL-C (PTSD),PTSD Severity

Items are the participant's transcript rows — the transcribers' (DAIC-WOZ) or the ASR's (E-DAIC)
utterances — cut from the interview wav by their ``start``/``end`` times; ``id`` =
``<participant>_<n>`` (``300_007``: the 7th participant row of session 300's transcript, counted
before any row is dropped, so ids do not move when options change). ``speaker`` = the participant
id (one session per participant). With ``merge_gap: <seconds>``, consecutive participant rows with
no interviewer row between them and at most that gap are joined into one turn (times span them,
texts joined); the default (``null``) keeps one item per row.

**The interviewer is excluded.** Ellie's rows are dropped and only the participant's stretches of
the audio are cut. Her prompts come from a script, but which follow-up questions she asks depends
on the participant's earlier answers (about past diagnoses of depression or PTSD, for instance), so
the prompts themselves carry the label: models given the interviewer's turns learn that shortcut
and score well by recognising her questions rather than anything the participant says (Burdisso
et al., "DAIC-WOZ: On the Validity of Using the Therapist's prompts in Automatic Depression
Detection from Clinical Interviews", ClinicalNLP 2024). ``info["interviewer_rows_excluded"]``
counts the rows left out.

Tasks, both labelled per session (``unit: speaker``: scored on the turn predictions averaged over
the participant's turns — mean class probability, mean score):

- ``depression`` (healthy / depressed, positive class ``depressed``): depressed ⇔ PHQ-8 ≥ 10,
  derived from the score column. Where a label file's binary column disagrees (DAIC-WOZ's
  participant 409: score 10, binary 0), the score wins and ``info["phq8_binary_mismatch"]`` lists it;
- ``phq8``: regression on the PHQ-8 total (0–24).

Protocol ``official`` (the only one): the label files' train / dev / test split (DAIC-WOZ 107 / 35
/ 47 sessions, E-DAIC 163 / 56 / 56). Model selection uses dev; participant-independent by
construction (a participant in two label files is an error). Session folders that no label file
lists are not read (``info["unlisted_sessions"]``).

Known DAIC-WOZ errors (``known_fixes: true``, the default; DAIC-WOZ transcripts only — E-DAIC's ASR
transcripts were made from the audio itself):

- transcripts of 318, 321, 341 and 362 run early against the audio by a fixed offset
  (:data:`MISALIGNED`), added to their times;
- 373 and 444 hold long interruptions (:data:`INTERRUPTIONS`); participant rows overlapping them
  are dropped (``info["dropped_turns"]["interruption"]``);
- 451, 458 and 480 lack Ellie's rows: nothing to exclude, and ``merge_gap`` never joins rows
  across more than its gap.

Rows always dropped, and counted in ``info["dropped_turns"]``: synchronisation markers
(``<sync>``, ``[syncing]``, … as the whole text) and zero-length rows. Bad input is an error that
names the file (and line): a missing participant folder, wav or transcript, a missing or malformed
label or transcript column, a time that is not a number, a row that stops before it starts, an
unknown speaker, a participant row outside the audio (starting at or after its end, or ending more
than ``end_tolerance`` seconds after it; within the tolerance the end is clipped to the audio and
``info["clipped_to_audio"]`` lists the item), or a session without any participant row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from pipeline.core.errors import ManifestError, MediaError
from pipeline.core.manifest import Corpus, Task, display_path, validate
from pipeline.core.media import probe
from pipeline.corpora.base import CorpusSettings, register_corpus
from pipeline.corpora.common import corpus_root, media, parse_float, read_table, split_counts

NAME = "daicwoz"
DEPRESSED_FROM = 10.0  # PHQ-8 cut-off of the AVEC challenges (and of the PHQ-8 itself)
LABEL_FILES = {
    "daicwoz": {
        "train": "train_split_Depression_AVEC2017.csv",
        "dev": "dev_split_Depression_AVEC2017.csv",
        "test": "full_test_split.csv",
    },
    "edaic": {"train": "train_split.csv", "dev": "dev_split.csv", "test": "test_split.csv"},
}
UNLABELLED_TEST = "test_split_Depression_AVEC2017.csv"  # DAIC-WOZ's test ids without labels
# The AVEC2017 train/dev files say PHQ8_*, full_test_split.csv and E-DAIC say PHQ_*.
SCORE_COLUMNS = ("PHQ8_Score", "PHQ_Score")
BINARY_COLUMNS = ("PHQ8_Binary", "PHQ_Binary")


@dataclass(frozen=True)
class TranscriptFormat:
    name: str  # file name pattern
    delimiter: str
    start: str
    end: str
    text: str
    speaker: str | None  # None: every row is the participant's


TRANSCRIPTS = {
    "daicwoz": TranscriptFormat("{pid}_TRANSCRIPT.csv", "\t", "start_time", "stop_time", "value", "speaker"),
    "edaic": TranscriptFormat("{pid}_Transcript.csv", ",", "Start_Time", "End_Time", "Text", None),
}
INTERVIEWER, PARTICIPANT = "ellie", "participant"
SYNC_MARKERS = {"<sync>", "<synch>", "[sync]", "[synch]", "[syncing]", "[synching]"}
# Known DAIC-WOZ errors (adbailey1/daic_woz_process, config_files/config_process.py):
MISALIGNED = {318: 34.319917, 321: 3.8379167, 341: 6.1892, 362: 16.8582}  # seconds to add to the times
INTERRUPTIONS = {373: (395.0, 428.0), 444: (286.0, 387.0)}  # seconds of the audio


@dataclass
class Session:
    pid: int
    split: str
    score: float
    label_file: str  # where the label came from (for errors)


@dataclass
class Row:
    number: int  # ordinal among the transcript's participant rows (1-based)
    line: int
    start: float
    end: float
    text: str
    block: int  # interviewer rows seen before this one: rows of one block have no interviewer row between them


class DaicWozSettings(CorpusSettings):
    protocol: Literal["official"] = "official"
    layout: Literal["auto", "daicwoz", "edaic"] = "auto"
    merge_gap: float | None = Field(None, ge=0)  # seconds; null: one item per participant row
    known_fixes: bool = True  # DAIC-WOZ: shift the misaligned transcripts, drop rows in the interruptions
    end_tolerance: float = Field(0.5, ge=0)  # seconds a row may end after the audio (then clipped)


# --- label files ---------------------------------------------------------------------------------


def find_labels(root: Path, layout: str) -> tuple[str, Path]:
    """The layout and the folder holding its label files (``root`` or ``root/labels``)."""
    found = {
        name: base
        for base in (root, root / "labels")
        for name, files in LABEL_FILES.items()
        if (base / files["train"]).is_file()
    }
    if layout == "auto":
        if len(found) > 1:
            raise ManifestError(
                f"{root}: holds both DAIC-WOZ ({LABEL_FILES['daicwoz']['train']}) and E-DAIC "
                f"({LABEL_FILES['edaic']['train']}) label files; set corpora.daicwoz.layout"
            )
        if not found:
            raise ManifestError(
                f"{root}: no DAIC-WOZ or E-DAIC label files here or in labels/ (expected "
                f"{LABEL_FILES['daicwoz']['train']} or {LABEL_FILES['edaic']['train']})"
            )
        layout = next(iter(found))
    elif layout not in found:
        raise ManifestError(f"{root}: {LABEL_FILES[layout]['train']} not found here or in labels/ (layout {layout})")
    return layout, found[layout]


def _column(df: pd.DataFrame, path: Path, choices: tuple[str, ...]) -> str:
    for c in choices:
        if c in df.columns:
            return c
    raise ManifestError(f"{path}: missing column {' or '.join(choices)} (has {list(df.columns)})")


def read_labels(path: Path, split: str) -> tuple[list[Session], list[dict[str, Any]]]:
    """The sessions one label file lists, and the rows whose binary label disagrees with the score."""
    if split == "test" and not path.is_file() and (path.parent / UNLABELLED_TEST).is_file():
        raise ManifestError(
            f"{path}: label file not found ({UNLABELLED_TEST} lists the test sessions without labels; "
            f"{path.name}, with the test PHQ-8 scores, comes with the corpus's labels release)"
        )
    df = read_table(path, [])
    df.columns = [c.strip() for c in df.columns]
    if "Participant_ID" not in df.columns:
        raise ManifestError(f"{path}: missing column Participant_ID (has {list(df.columns)})")
    score_col, binary_col = _column(df, path, SCORE_COLUMNS), _column(df, path, BINARY_COLUMNS)
    sessions, mismatched, seen = [], [], {}
    for i, row in enumerate(df.to_dict("records")):
        where = f"{path}: line {i + 2}"
        raw_id = row["Participant_ID"].strip()
        if not raw_id.isdigit():
            raise ManifestError(f"{where}: Participant_ID {raw_id!r} is not a participant number")
        pid = int(raw_id)
        if pid in seen:
            raise ManifestError(f"{path}: participant {pid} listed twice (lines {seen[pid]} and {i + 2})")
        seen[pid] = i + 2
        score = parse_float(row[score_col], where, score_col)
        if not (0 <= score <= 24 and score == int(score)):
            raise ManifestError(f"{where}: {score_col} {row[score_col].strip()!r} is not a PHQ-8 total (0–24)")
        binary = row[binary_col].strip()
        if binary not in ("0", "1"):
            raise ManifestError(f"{where}: {binary_col} {row[binary_col].strip()!r} is not 0 or 1")
        if (binary == "1") != (score >= DEPRESSED_FROM):
            mismatched.append({"participant": pid, "file": path.name, binary_col: int(binary), score_col: score})
        sessions.append(Session(pid, split, score, path.name))
    if not sessions:
        raise ManifestError(f"{path}: no participants")
    return sessions, mismatched


def read_sessions(base: Path, layout: str) -> tuple[list[Session], list[dict[str, Any]]]:
    """Every labelled session of the official split; a participant in two files is an error."""
    sessions, mismatched, first = [], [], {}
    for split, name in LABEL_FILES[layout].items():
        part, bad = read_labels(base / name, split)
        for s in part:
            if s.pid in first:
                raise ManifestError(f"{base / name}: participant {s.pid} is also in {first[s.pid]}")
            first[s.pid] = name
        sessions += part
        mismatched += bad
    return sessions, mismatched


def _session_folders(base: Path) -> list[Path]:
    return [d for d in base.iterdir() if d.is_dir() and d.name.endswith("_P") and d.name[:-2].isdigit()]


def find_session_dir(root: Path) -> Path:
    """Where the ``<id>_P`` session folders are: ``root``, or ``root/data`` when ``root`` holds none."""
    if not _session_folders(root) and (root / "data").is_dir() and _session_folders(root / "data"):
        return root / "data"
    return root


# --- transcripts ---------------------------------------------------------------------------------


def _decode(path: Path) -> str:
    if not path.is_file():
        raise ManifestError(f"{path}: transcript not found")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: transcript is not UTF-8 text ({err})") from err


def _records(path: Path, fmt: TranscriptFormat) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) for every non-blank transcript record; a malformed one names its line."""
    quoting = csv.QUOTE_NONE if fmt.delimiter == "\t" else csv.QUOTE_MINIMAL  # DAIC-WOZ's values hold bare quotes
    reader = csv.reader(io.StringIO(_decode(path), newline=""), delimiter=fmt.delimiter, quoting=quoting)
    header, line = None, 0
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if header is None:
                header = [f.strip() for f in fields]
                needed = [fmt.start, fmt.end, fmt.text] + ([fmt.speaker] if fmt.speaker else [])
                missing = [c for c in needed if c not in header]
                if missing:
                    raise ManifestError(f"{path}: missing columns {missing} (header {header})")
                continue
            if len(fields) != len(header):
                raise ManifestError(f"{path}: line {line}: expected {len(header)} fields, got {len(fields)}")
            yield line, dict(zip(header, fields))
    except csv.Error as err:
        raise ManifestError(f"{path}: line {line + 1}: cannot parse ({err})") from err
    if header is None:
        raise ManifestError(f"{path}: empty transcript")


def participant_rows(path: Path, fmt: TranscriptFormat) -> tuple[list[Row], int]:
    """The participant's rows of one transcript and how many interviewer rows were left out."""
    rows, interviewer, number = [], 0, 0
    for line, rec in _records(path, fmt):
        if fmt.speaker is not None:
            speaker = rec[fmt.speaker].strip().lower()
            if speaker == INTERVIEWER:
                interviewer += 1
                continue
            if speaker != PARTICIPANT:
                raise ManifestError(
                    f"{path}: line {line}: unknown speaker {rec[fmt.speaker].strip()!r} (expected Ellie or Participant)"
                )
        where = f"{path}: line {line}"
        start, end = parse_float(rec[fmt.start], where, fmt.start), parse_float(rec[fmt.end], where, fmt.end)
        if end < start:
            raise ManifestError(f"{where}: {fmt.end} {end} is before {fmt.start} {start}")
        number += 1
        rows.append(Row(number, line, start, end, " ".join(rec[fmt.text].split()), interviewer))
    return rows, interviewer


def merge_rows(rows: list[Row], gap: float) -> list[Row]:
    """Join consecutive rows with no interviewer row between them and at most ``gap`` seconds apart."""
    merged: list[Row] = []
    for r in rows:
        last = merged[-1] if merged else None
        if last is not None and last.block == r.block and r.start - last.end <= gap:
            text = f"{last.text} {r.text}".strip()
            merged[-1] = Row(last.number, last.line, last.start, max(last.end, r.end), text, last.block)
        else:
            merged.append(r)
    return merged


def audio_seconds(wav: Path, session: Session, transcript: Path) -> float:
    """The declared length of a session's wav; a missing or unreadable one names the file."""
    if not wav.is_file():
        raise ManifestError(f"{wav}: audio file not found (participant {session.pid}, transcript {transcript.name})")
    try:
        seconds = probe(wav).duration
    except MediaError as err:
        raise ManifestError(f"{wav}: {err.reason}") from err
    if seconds is None:
        raise ManifestError(f"{wav}: cannot tell the audio's duration")
    return seconds


def session_turns(root: Path, s: Session, layout: str, st: DaicWozSettings, notes: dict[str, Any]) -> list[dict]:
    """The manifest rows of one session: its participant turns, checked against the audio."""
    fmt = TRANSCRIPTS[layout]
    folder = root / f"{s.pid}_P"
    if not folder.is_dir():
        raise ManifestError(f"{folder}: session folder for participant {s.pid} (listed in {s.label_file}) not found")
    transcript = folder / fmt.name.format(pid=s.pid)
    rows, interviewer = participant_rows(transcript, fmt)
    notes["interviewer_rows_excluded"] += interviewer
    kept = []
    for r in rows:
        if r.text.lower() in SYNC_MARKERS:
            notes["dropped_turns"]["sync"] += 1
        elif r.end == r.start:
            notes["dropped_turns"]["zero_length"] += 1
        else:
            kept.append(r)
    if layout == "daicwoz" and st.known_fixes:
        if s.pid in MISALIGNED:
            shift = MISALIGNED[s.pid]
            kept = [Row(r.number, r.line, r.start + shift, r.end + shift, r.text, r.block) for r in kept]
            notes["misalignment_fixed"][str(s.pid)] = shift
        if s.pid in INTERRUPTIONS:
            lo, hi = INTERRUPTIONS[s.pid]
            cut = [r for r in kept if r.start < hi and r.end > lo]
            notes["dropped_turns"]["interruption"] += [f"{s.pid}_{r.number:03d}" for r in cut]
            kept = [r for r in kept if not (r.start < hi and r.end > lo)]
    if not kept:
        raise ManifestError(f"{transcript}: no participant rows to cut (session {s.pid})")
    wav = folder / f"{s.pid}_AUDIO.wav"
    seconds = audio_seconds(wav, s, transcript)
    for r in kept:
        if r.start >= seconds or r.end > seconds + st.end_tolerance:
            raise ManifestError(
                f"{transcript}: line {r.line}: participant row [{r.start:g}, {r.end:g}] s lies outside the audio "
                f"({wav.name} is {seconds:.3f} s)"
            )
    if st.merge_gap is not None:
        kept = merge_rows(kept, st.merge_gap)
    audio = media(root, f"{folder.name}/{wav.name}", str(transcript))
    depressed = "depressed" if s.score >= DEPRESSED_FROM else "healthy"
    out = []
    for r in kept:
        uid = f"{s.pid}_{r.number:03d}"
        end = r.end
        if end > seconds:
            end = seconds
            notes["clipped_to_audio"].append(uid)
        out.append({"id": uid, "speaker": str(s.pid), "split": s.split, "audio": audio, "video": "", "text": r.text,
                    "start": r.start, "end": end, "depression": depressed, "phq8": s.score})
    return out


@register_corpus(
    NAME, settings=DaicWozSettings,
    tasks="depression (PHQ-8 ≥ 10, per session; depressed F1/precision/recall, AUROC), phq8 (regression, per session)",
    protocol="official train/dev/test (AVEC 2017 / AVEC 2019 E-DAIC), interviewer excluded", unit="participant",
)
def prepare_daicwoz(s: DaicWozSettings, out_dir: Path) -> Corpus:
    """Read the label files and transcripts into a manifest of participant turns (interviewer excluded)."""
    root = corpus_root(s.root, NAME)
    layout, label_dir = find_labels(root, s.layout)
    sessions, mismatched = read_sessions(label_dir, layout)
    notes: dict[str, Any] = {
        "interviewer_rows_excluded": 0,
        "dropped_turns": {"sync": 0, "zero_length": 0, "interruption": []},
        "misalignment_fixed": {},
        "clipped_to_audio": [],
    }
    session_dir = find_session_dir(root)
    rows = []
    for session in sorted(sessions, key=lambda x: x.pid):
        rows += session_turns(session_dir, session, layout, s, notes)
    df = pd.DataFrame(rows)
    listed = {x.pid for x in sessions}
    present = sorted(int(d.name[:-2]) for d in _session_folders(session_dir))
    per_session = df.drop_duplicates("speaker")
    seconds = df["end"] - df["start"]
    corpus = Corpus(
        name=NAME,
        manifest=df,
        tasks=[
            Task("depression", "classification", ["healthy", "depressed"], positive="depressed", unit="speaker"),
            Task("phq8", "regression", unit="speaker"),
        ],
        root=display_path(root),
        info={
            "protocol": s.protocol,
            "layout": layout,
            "label_files": {split: display_path(label_dir / name) for split, name in LABEL_FILES[layout].items()},
            "depressed_if_phq8_at_least": DEPRESSED_FROM,
            "known_fixes": s.known_fixes and layout == "daicwoz",
            "merge_gap": s.merge_gap,
            "splits": split_counts(df),
            "sessions": split_counts(per_session),
            "depressed_sessions": split_counts(per_session[per_session["depression"] == "depressed"]),
            "turn_seconds": {"total": round(float(seconds.sum()), 3), "median": round(float(seconds.median()), 3)},
            "phq8_binary_mismatch": mismatched,
            "unlisted_sessions": [p for p in present if p not in listed],
            **notes,
        },
    )
    validate(corpus, display_path(label_dir))
    return corpus
