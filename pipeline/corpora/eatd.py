"""EATD-Corpus — Emotional Audio-Textual Depression corpus (Mandarin interviews).

Source: Shen, Yang & Lin, "Automatic Depression Detection: an Emotional Audio-Textual Corpus and a
GRU/BiLSTM-based Model", ICASSP 2022; https://github.com/speechandlanguageprocessing/ICASSP2022-Depression
(download links in its README; loader: ``DepressionCollected/Classification/*_features_whole.py``).
Licence: research use as granted by the authors.

162 volunteers (train 83 with 19 depressed, validation 79 with 11 depressed), each answering three
prompts. Two layouts are recognised automatically::

    <root>/t_N/  <root>/v_N/                     the downloaded corpus (t = train, v = validation)
    <root>/Data/N/  <root>/ValidationData/N/     the official code's renamed copy

    <subject>/positive.wav neutral.wav negative.wav               raw answers
    <subject>/positive_out.wav neutral_out.wav negative_out.wav   denoised, silences removed
    <subject>/positive.txt neutral.txt negative.txt               transcripts (UTF-8 Chinese)
    <subject>/label.txt                                           raw SDS score (may read "NN.0")
    <subject>/new_label.txt                                       index SDS = raw SDS × 1.25

Items are the three answers of each subject, ``<subject>_<prompt>`` (``t_12_positive``); ``speaker``
is the subject (``t_12``; ``Data/12`` maps to ``t_12`` and ``ValidationData/12`` to ``v_12``).
Option ``audio``: ``raw`` (default, ``positive.wav``) or ``denoised`` (``positive_out.wav``, what
the official code uses).

Tasks:

- ``depression`` (healthy / depressed, positive class ``depressed``, one label per subject):
  depressed ⇔ index SDS ≥ 53, the paper's cut-off;
- ``sds``: regression on the index SDS (per subject);
- ``emotion3``: which prompt (positive / neutral / negative) the answer responds to.

The index SDS comes from ``new_label.txt``, or from ``label.txt`` × 1.25 where ``new_label.txt`` is
missing; ``info["sds_source"]`` counts which, and ``info["sds_mismatch"]`` lists subjects whose two
files disagree by more than 0.5 points.

Protocol ``official`` (the only one): train (``t_``/``Data``) → train, with ``dev_fraction`` (0.1) of
the training answers carved out as whole subjects for dev; validation (``v_``/``ValidationData``) →
test. Speaker-independent by construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import Corpus, Task, display_path, validate
from pipeline.corpora.base import CorpusSettings, register_corpus
from pipeline.corpora.common import carve_dev, corpus_root, media, parse_float, split_counts

NAME = "eatd"
PROMPTS = ("positive", "neutral", "negative")
DEPRESSED_FROM = 53.0  # index SDS cut-off used by the corpus authors
INDEX_PER_RAW = 1.25  # index SDS = raw SDS × 1.25
AUDIO_SUFFIX = {"raw": "", "denoised": "_out"}
OFFICIAL_DIRS = {"Data": ("t", "train"), "ValidationData": ("v", "test")}
SHORT_PREFIX = {"t": "train", "v": "test"}


@dataclass
class Subject:
    sid: str  # t_12 / v_3
    folder: Path
    split: str


def find_subjects(root: Path) -> tuple[str, list[Subject]]:
    """The layout name and every subject folder, in either the ``t_N/v_N`` or ``Data/N`` layout."""
    short = [
        Subject(d.name, d, SHORT_PREFIX[d.name[0]])
        for d in root.iterdir()
        if d.is_dir() and re.fullmatch(r"[tv]_\d+", d.name)
    ]
    official = [
        Subject(f"{prefix}_{int(d.name)}", d, split)
        for part, (prefix, split) in OFFICIAL_DIRS.items()
        if (root / part).is_dir()
        for d in (root / part).iterdir()
        if d.is_dir() and d.name.isdigit()
    ]
    if short and official:
        raise ManifestError(f"{root}: holds both t_N/v_N folders and Data/ValidationData; keep one layout")
    if not short and not official:
        raise ManifestError(
            f"{root}: no EATD subject folders (expected t_N/ and v_N/, or Data/N/ and ValidationData/N/)"
        )
    layout, subjects = ("t_N/v_N", short) if short else ("Data/ValidationData", official)
    for split, side in (("train", "t_N / Data/N"), ("test", "v_N / ValidationData/N")):
        if not any(s.split == split for s in subjects):
            raise ManifestError(f"{root}: no {split} subjects ({side}) in the {layout} layout")
    subjects.sort(key=lambda s: (s.sid[0], int(s.sid.split("_")[1])))
    return layout, subjects


def read_score(path: Path) -> float:
    """The single number in an SDS label file ("52", "52.0"); anything else names the file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: not UTF-8 text ({err})") from err
    return parse_float(text, str(path), "SDS score")


def index_sds(folder: Path) -> tuple[float, str, float | None]:
    """(index SDS, where it came from, raw SDS or None) for one subject folder."""
    new, raw = folder / "new_label.txt", folder / "label.txt"
    raw_score = read_score(raw) if raw.exists() else None  # always checked, even when unused
    if new.exists():
        return read_score(new), "new_label.txt", raw_score
    if raw_score is not None:
        return raw_score * INDEX_PER_RAW, "label.txt×1.25", raw_score
    raise ManifestError(f"{folder}: neither new_label.txt nor label.txt present")


def transcript(path: Path) -> str | None:
    """The answer's transcript (one line of Chinese), or None when the file is absent."""
    if not path.exists():
        return None
    try:
        return " ".join(path.read_text(encoding="utf-8-sig").split())
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: transcript is not UTF-8 ({err})") from err


def subject_rows(root: Path, subject: Subject, suffix: str) -> tuple[list[dict], dict[str, Any]]:
    """The three manifest rows of one subject and its label provenance."""
    sds, source, raw = index_sds(subject.folder)
    rel = subject.folder.relative_to(root).as_posix()
    rows = []
    for prompt in PROMPTS:
        text = transcript(subject.folder / f"{prompt}.txt")
        rows.append(
            {
                "id": f"{subject.sid}_{prompt}",
                "speaker": subject.sid,
                "split": subject.split,
                "audio": media(root, f"{rel}/{prompt}{suffix}.wav", str(subject.folder)),
                "video": "",
                "text": text or "",
                "missing_text": text is None,
                "depression": "depressed" if sds >= DEPRESSED_FROM else "healthy",
                "sds": sds,
                "emotion3": prompt,
            }
        )
    mismatch = raw is not None and source == "new_label.txt" and abs(sds - raw * INDEX_PER_RAW) > 0.5
    return rows, {"source": source, "mismatch": mismatch}


class EatdSettings(CorpusSettings):
    protocol: Literal["official"] = "official"
    audio: Literal["raw", "denoised"] = "raw"  # denoised: the *_out.wav files
    dev_fraction: float = Field(0.1, ge=0, lt=1)  # of training subjects, carved as dev
    seed: int = 0


@register_corpus(
    NAME, settings=EatdSettings, tasks="depression (per subject; depressed F1/precision/recall, AUROC), sds (regression), emotion3",
    protocol="official t/v (Data/ValidationData), dev carved from train", unit="subject",
)
def prepare_eatd(s: EatdSettings, out_dir: Path) -> Corpus:
    """Walk the subject folders into a manifest of three answers per subject."""
    root = corpus_root(s.root, NAME)
    protocol = s.protocol
    audio = s.audio
    seed = s.seed
    layout, subjects = find_subjects(root)

    rows, sources, mismatched = [], {}, []
    for subject in subjects:
        subject_part, label = subject_rows(root, subject, AUDIO_SUFFIX[audio])
        rows += subject_part
        sources[label["source"]] = sources.get(label["source"], 0) + 1
        if label["mismatch"]:
            mismatched.append(subject.sid)
    df = pd.DataFrame(rows)
    missing_text = df.loc[df.pop("missing_text"), "id"].tolist()
    df["split"] = carve_dev(df, s.dev_fraction, seed, group="speaker")

    per_subject = df.drop_duplicates("speaker")
    corpus = Corpus(
        name=NAME,
        manifest=df,
        tasks=[
            Task("depression", "classification", ["healthy", "depressed"], positive="depressed", unit="speaker"),
            Task("sds", "regression", unit="speaker"),
            Task("emotion3", "classification", list(PROMPTS)),
        ],
        root=display_path(root),
        info={
            "protocol": protocol,
            "layout": layout,
            "audio": audio,
            "seed": seed,
            "depressed_if_index_sds_at_least": DEPRESSED_FROM,
            "sds_source": sources,
            "sds_mismatch": mismatched,
            "missing_text": missing_text,
            "splits": split_counts(df),
            "subjects": split_counts(per_subject),
            "depressed_subjects": split_counts(per_subject[per_subject["depression"] == "depressed"]),
        },
    )
    validate(corpus, str(root))
    return corpus
