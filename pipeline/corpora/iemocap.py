"""IEMOCAP — Interactive Emotional Dyadic Motion Capture database (Busso et al., LRE 2008).

Source: https://sail.usc.edu/iemocap/ (``IEMOCAP_full_release``), by request. Licence: the USC
SAIL release agreement — research only, no redistribution. Format checked against public loaders
(e.g. s3prl's and SpeechBrain's IEMOCAP recipes).

Layout (``root`` = ``IEMOCAP_full_release``, or the folder holding it — detected)::

    Session{K}/sentences/wav/<dialog>/<utt>.wav          one utterance (16 kHz mono)
    Session{K}/dialog/EmoEvaluation/<dialog>.txt         labels, one block per utterance:
        [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
        C-E2:<TAB>Neutral;<TAB>()                        (annotator lines: skipped)
        A-E3:<TAB>val 3; act 2; dom  2;<TAB>()
    Session{K}/dialog/transcriptions/<dialog>.txt        Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.

Only the first line of each block (starting with ``[``) is read: consensus label and mean
[valence, arousal, dominance] on a 1–5 scale. Lines starting with ``%`` (header), ``C-``, ``A-`` or
blank ones are annotator details; a ``[`` line that does not parse is an error naming its line.
Files in ``EmoEvaluation``'s subfolders (``Categorical/``, ``Attribute/``, ``Self-evaluation/``) and
macOS ``._*`` shadows are not read. The bracketed times locate the utterance in the dialog
recording; each wav is already that segment, so they are not used as segment bounds.

Tasks (a row outside a task's set stays, with "" in that task's column, which the probe skips;
counts per excluded label in ``info["excluded"]``):

- ``emotion4``: neu, hap (= hap + exc), ang, sad — the standard 5,531-utterance set.
- ``emotion6``: neu, hap, ang, sad, exc, fru — the 6-class set of the conversational emotion
  recognition literature (DialogueRNN, DialogueGCN…; 7,433 utterances). Other 6-class sets exist
  (e.g. with fea or sur); this one keeps hap and exc apart and adds the frequent fru.
- ``valence``, ``arousal``, ``dominance``: regression on the consensus values, every utterance.

Speaker: ``Ses01F`` = session + gender of the *speaking* actor, which is the first letter of the
utterance id's last part (``F000`` / ``M012``), not the dialog's ``Ses01F`` prefix (the actor wearing
markers). Group: the session (``Session1``).

Protocols (``protocol``):

- ``loso`` (default): leave one session out, 5 folds, ``fold`` = session index − 1; both actors of
  a session are tested together.
- ``loso_speaker``: leave one speaker out, 10 folds (speakers sorted: Ses01F = 0, Ses01M = 1, …);
  ``group`` = speaker. The test speaker's dialog partner stays in training, as is usual for this
  protocol.
- ``emobox``: EmoBox's 5 published folds, exactly (:mod:`pipeline.corpora._emobox`): its 5,531
  4-class utterances (exc merged into hap), fold k = Session k (``fold`` = EmoBox's number, 1–5),
  task ``emotion4`` only; needs ``scripted: both``. Utterances outside the 4-class set are dropped
  and counted in ``info["emobox"]["not_listed"]["outside_label_set"]``.

Option ``scripted``: ``both`` (default) | ``true`` (scripted dialogs only) | ``false`` (improvised
only); the dialogs and utterances left out are counted in ``info``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import Corpus, Task, display_path, validate
from pipeline.corpora._emobox import EmoboxOptions, apply_emobox
from pipeline.corpora.base import register_corpus
from pipeline.corpora.common import corpus_root, folds_by_group, media

LABELS = ("neu", "hap", "exc", "ang", "sad", "fru", "fea", "sur", "dis", "oth", "xxx")
CLASSES = {"emotion4": ["neu", "hap", "ang", "sad"], "emotion6": ["neu", "hap", "ang", "sad", "exc", "fru"]}
MERGED = {"emotion4": {"exc": "hap"}}  # task -> {raw label: class}
DIMENSIONS = ("valence", "arousal", "dominance")
SCRIPTED = {"both": None, "true": "script", "false": "impro"}
NUMBER = r"(-?\d+(?:\.\d+)?)"
LABEL_LINE = re.compile(
    rf"^\[\s*{NUMBER}\s*-\s*{NUMBER}\s*\]\s+(\S+)\s+(\S+)\s+\[\s*{NUMBER}\s*,\s*{NUMBER}\s*,\s*{NUMBER}\s*\]\s*$"
)
TRANSCRIPT_LINE = re.compile(r"^(\S+)\s+\[[^\]]*\]:\s?(.*?)\s*$")


@dataclass
class Utterance:
    uid: str
    dialog: str
    session: int
    gender: str
    label: str
    vad: tuple[float, float, float]


def find_release(root: Path) -> Path:
    """The folder holding ``Session1``…``Session5``: ``root`` or ``root/IEMOCAP_full_release``."""
    for base in (root, root / "IEMOCAP_full_release"):
        if any(p.is_dir() for p in base.glob("Session[0-9]*")):
            return base
    raise ManifestError(f"{root}: no Session<K> folders here or in IEMOCAP_full_release/ (corpora.iemocap.root)")


def dialog_kind(path: Path) -> str:
    """``impro`` or ``script`` from a dialog name like ``Ses01F_impro01`` / ``Ses01F_script01_1``."""
    kinds = [k for k in ("impro", "script") if f"_{k}" in path.stem]
    if len(kinds) != 1:
        raise ManifestError(f"{path}: cannot tell an improvised from a scripted dialog by its name")
    return kinds[0]


def parse_label_file(path: Path, session: int) -> list[Utterance]:
    """Consensus label and V/A/D of every utterance in one EmoEvaluation file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: not a text label file ({err})") from err
    dialog = path.stem
    utterances = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith("["):
            continue  # header (%), annotator details (C-, A-) and blank lines
        m = LABEL_LINE.match(line)
        if not m:
            raise ManifestError(f"{path}: line {number}: malformed label line {line.strip()!r}")
        uid, label = m.group(3), m.group(4)
        gender = uid.rsplit("_", 1)[-1][:1]
        if not uid.startswith(f"{dialog}_") or gender not in ("F", "M"):
            raise ManifestError(f"{path}: line {number}: utterance id {uid!r} does not look like {dialog}_F000 / _M000")
        if label not in LABELS:
            raise ManifestError(f"{path}: line {number}: unknown emotion label {label!r}; known: {list(LABELS)}")
        vad = (float(m.group(5)), float(m.group(6)), float(m.group(7)))
        utterances.append(Utterance(uid, dialog, session, gender, label, vad))
    return utterances


def read_transcripts(path: Path) -> dict[str, str]:
    """utterance id → text; lines that are not ``<id> [start-end]: text`` are ignored."""
    if not path.is_file():
        return {}
    texts = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = TRANSCRIPT_LINE.match(line)
        if m:
            texts[m.group(1)] = m.group(2)
    return texts


def session_number(folder: Path) -> int:
    m = re.fullmatch(r"Session(\d+)", folder.name)
    if not m:
        raise ManifestError(f"{folder}: expected a folder named Session<K>")
    return int(m.group(1))


class IemocapSettings(EmoboxOptions):
    protocol: Literal["loso", "loso_speaker", "emobox"] = "loso"
    scripted: Literal["both"] | bool = "both"  # true: scripted dialogs only; false: improvised only


def _scripted_filter(s: IemocapSettings) -> str | None:
    """The dialog kind to keep (None = both)."""
    return SCRIPTED[str(s.scripted).lower()]


def read_release(base: Path, keep_kind: str | None) -> tuple[list[dict[str, Any]], Counter, int]:
    """Rows of every kept dialog, what ``scripted`` left out, and how many rows lack a transcript."""
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    left_out: Counter = Counter()
    missing_text = 0
    for folder in sorted((p for p in base.glob("Session[0-9]*") if p.is_dir()), key=lambda p: p.name):
        session = session_number(folder)
        label_dir = folder / "dialog" / "EmoEvaluation"
        label_files = sorted(p for p in label_dir.glob("*.txt") if not p.name.startswith("."))
        if not label_files:
            raise ManifestError(f"{label_dir}: no EmoEvaluation/<dialog>.txt label files")
        for label_file in label_files:
            kind = dialog_kind(label_file)
            utterances = parse_label_file(label_file, session)
            if keep_kind and kind != keep_kind:
                left_out[f"{kind}_dialogs"] += 1
                left_out[f"{kind}_utterances"] += len(utterances)
                continue
            texts = read_transcripts(folder / "dialog" / "transcriptions" / label_file.name)
            for u in utterances:
                if u.uid in seen:
                    raise ManifestError(f"{label_file}: duplicate utterance id {u.uid} (also in {seen[u.uid]})")
                seen[u.uid] = label_file.name
                missing_text += u.uid not in texts
                wav = media(base, f"{folder.name}/sentences/wav/{u.dialog}/{u.uid}.wav", str(label_file))
                rows.append(_row(u, wav, texts.get(u.uid, "")))
    return rows, left_out, missing_text


def assign_folds(df: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """``group`` and ``fold``: session index − 1 (``loso``) or sorted speaker index (``loso_speaker``)."""
    if protocol == "loso":
        df["group"] = df["session"]
        df["fold"] = df["session"].str.removeprefix("Session").astype(int) - 1
    else:
        df["group"] = df["speaker"]
        df["fold"] = df["speaker"].map(folds_by_group(df["speaker"])).astype(int)
    return df


@register_corpus(
    "iemocap", settings=IemocapSettings, tasks="emotion4 (neu, hap+exc, ang, sad), emotion6, valence/arousal/dominance",
    protocol="`loso` = leave-one-session-out, 5 folds (`loso_speaker`, `emobox`)", unit="session",
)
def prepare_iemocap(s: IemocapSettings, out_dir: Path) -> Corpus:
    """Read every EmoEvaluation file into one manifest with session or speaker folds."""
    protocol = s.protocol
    keep_kind = _scripted_filter(s)
    if protocol == "emobox" and keep_kind:
        raise ManifestError(f"params.yaml: corpora.iemocap: protocol emobox uses every dialog; scripted must be "
                            f"'both', not {s.scripted!r}")
    base = find_release(corpus_root(s.root, "iemocap"))
    rows, left_out, missing_text = read_release(base, keep_kind)
    if not rows:
        raise ManifestError(f"{base}: no utterances left (corpora.iemocap.scripted = {s.scripted!r})")
    tasks = [
        *(Task(name, "classification", classes) for name, classes in CLASSES.items()),
        *(Task(name, "regression") for name in DIMENSIONS),
    ]
    emobox = {}
    if protocol == "emobox":
        df, emobox["emobox"] = apply_emobox(pd.DataFrame(rows).assign(group=lambda d: d["session"]), "iemocap", s,
                                            display_path(base))
        df = df.drop(columns=["session", "label"])
        tasks = [t for t in tasks if t.name == "emotion4"]
    else:
        df = assign_folds(pd.DataFrame(rows), protocol).drop(columns=["session", "label"])
    corpus = Corpus(
        name="iemocap",
        manifest=df,
        tasks=tasks,
        root=display_path(base),
        info={
            "protocol": protocol,
            "scripted": s.scripted,
            "folds": {str(k): int(v) for k, v in df["fold"].value_counts().sort_index().items()},
            "labels": dict(sorted(Counter(r["label"] for r in rows).items())),
            "excluded": {task: _excluded(rows, task) for task in CLASSES},
            "left_out_by_scripted": dict(left_out),
            "missing_text": missing_text,
            **emobox,
        },
    )
    validate(corpus, display_path(base))
    return corpus


def _row(u: Utterance, wav: str, text: str) -> dict[str, Any]:
    """One manifest row; a label outside a task's set becomes "" (unlabelled for that task)."""
    row = {
        "id": u.uid,
        "speaker": f"Ses{u.session:02d}{u.gender}",
        "split": "train",
        "audio": wav,
        "video": "",
        "text": text,
        "session": f"Session{u.session}",
        "label": u.label,
    }
    row |= {task: task_label(task, u.label) or "" for task in CLASSES}
    row |= dict(zip(DIMENSIONS, u.vad))
    return row


def task_label(task: str, label: str) -> str | None:
    """The class of a raw IEMOCAP label in ``task``, or None when the task leaves it out."""
    label = MERGED.get(task, {}).get(label, label)
    return label if label in CLASSES[task] else None


def _excluded(rows: list[dict[str, Any]], task: str) -> dict[str, int]:
    """Raw label → number of utterances that ``task`` leaves unlabelled."""
    return dict(sorted(Counter(r["label"] for r in rows if task_label(task, r["label"]) is None).items()))
