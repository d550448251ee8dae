"""Fake DAIC-WOZ / E-DAIC tree in the real layouts (see pipeline/corpora/daicwoz.py).

Twelve sessions — train 300–305, dev 310–311, test 318, 320, 322, 323 — plus session 399, whose
folder no label file lists. Each interview alternates Ellie's prompts (a 1200 Hz tone) with the
participant's answers (250 Hz, or 160 Hz for PHQ-8 ≥ 10), with near-silence between, so a test
can tell from the cut audio whose voice it holds. Every session has, in this order: a participant
``<sync>`` row, a two-row answer (rows 0.25 s apart, no Ellie row between: what ``merge_gap``
joins), and two single-row answers.

``layout="daicwoz"``: ``<id>_P/<id>_AUDIO.wav`` + tab-separated ``<id>_TRANSCRIPT.csv`` with
Ellie's rows, the AVEC2017 label files (``PHQ8_*`` columns in train/dev, ``PHQ_*`` in
``full_test_split.csv``) and the unlabelled ``test_split_Depression_AVEC2017.csv``. Session 318
is one of the known misaligned ones: its audio has :data:`MISALIGNED_318` seconds more lead-in
than its transcript's times say, as in the real corpus. Participant 304 has PHQ-8 10 but binary 0
(the real corpus's participant 409 error).

``layout="edaic"``: ``<id>_P/<id>_Transcript.csv`` (``Start_Time,End_Time,Text,Confidence``,
participant rows only) and ``labels/{train,dev,test}_split.csv``; no misalignment.

Usage: ``python -m tests.data.daicwoz.data OUT_DIR [daicwoz|edaic]``
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from tests.data.media import write_wav

SR = 16000
ELLIE_FREQ = 1200.0
HEALTHY_FREQ, DEPRESSED_FREQ = 250.0, 160.0
MISALIGNED_318 = 34.319917  # pipeline.corpora.daicwoz.MISALIGNED[318]
# participant → PHQ-8 score
TRAIN = {300: 3, 301: 15, 302: 5, 303: 18, 304: 10, 305: 2}
DEV = {310: 12, 311: 4}
TEST = {318: 14, 320: 6, 322: 11, 323: 0}
UNLISTED = 399
WRONG_BINARY = 304  # score 10 written with binary 0
GENDER = {p: p % 2 for p in [*TRAIN, *DEV, *TEST, UNLISTED]}

# (speaker, start, stop, text) in transcript time; the participant's rows are numbered 1.. in order
SCRIPT = [
    ("Ellie", 0.20, 0.80, "hi i'm ellie thanks for coming in today"),
    ("Participant", 0.90, 1.00, "<sync>"),
    ("Ellie", 1.10, 1.70, "how are you doing today"),
    ("Participant", 1.90, 2.50, "i'm doing okay"),
    ("Participant", 2.75, 3.30, "a little tired"),
    ("Ellie", 3.50, 4.10, "where are you from originally"),
    ("Participant", 4.30, 4.90, "los angeles"),
    ("Ellie", 5.10, 5.70, "how have you been feeling lately"),
    ("Participant", 5.90, 6.70, "not great to be honest"),
]
TAIL = 0.5  # seconds of audio after the last row


def _tone(seconds: float, freq: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.005 * rng.normal(size=t.size)).astype(np.float32)


def write_session(folder: Path, pid: int, score: int, layout: str, rng: np.random.Generator) -> None:
    """One session's wav and transcript."""
    lead = MISALIGNED_318 if (layout == "daicwoz" and pid == 318) else 0.0
    total = lead + SCRIPT[-1][2] + TAIL
    audio = (0.002 * rng.normal(size=round(total * SR))).astype(np.float32)
    voice = DEPRESSED_FREQ if score >= 10 else HEALTHY_FREQ
    for speaker, start, stop, _ in SCRIPT:
        a = round((start + lead) * SR)
        seg = _tone(stop - start, ELLIE_FREQ if speaker == "Ellie" else voice, rng)
        audio[a : a + len(seg)] = seg
    folder.mkdir(parents=True, exist_ok=True)
    write_wav(folder / f"{pid}_AUDIO.wav", audio, sample_rate=SR)
    if layout == "daicwoz":
        with open(folder / f"{pid}_TRANSCRIPT.csv", "w", newline="", encoding="utf-8") as f:
            f.write("start_time\tstop_time\tspeaker\tvalue\n")
            for speaker, start, stop, text in SCRIPT:
                f.write(f"{start:.3f}\t{stop:.3f}\t{speaker}\t{text}\n")
    else:
        with open(folder / f"{pid}_Transcript.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["Start_Time", "End_Time", "Text", "Confidence"])
            for speaker, start, stop, text in SCRIPT:
                if speaker == "Participant" and text != "<sync>":  # ASR of the participant only
                    w.writerow([f"{start:.1f}", f"{stop:.1f}", text, f"{0.8 + 0.1 * rng.random():.6f}"])


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_labels(root: Path, layout: str) -> None:
    def binary(pid: int, score: int) -> int:
        return 0 if pid == WRONG_BINARY else int(score >= 10)

    if layout == "daicwoz":
        items = ["NoInterest", "Depressed", "Sleep", "Tired", "Appetite", "Failure", "Concentrating", "Moving"]
        header = ["Participant_ID", "PHQ8_Binary", "PHQ8_Score", "Gender", *[f"PHQ8_{i}" for i in items]]
        for name, part in (("train_split_Depression_AVEC2017.csv", TRAIN), ("dev_split_Depression_AVEC2017.csv", DEV)):
            rows = [[p, binary(p, s), s, GENDER[p], *_items(s)] for p, s in part.items()]
            _write_csv(root / name, header, rows)
        _write_csv(root / "full_test_split.csv", ["Participant_ID", "PHQ_Binary", "PHQ_Score", "Gender"],
                   [[p, binary(p, s), s, GENDER[p]] for p, s in TEST.items()])
        _write_csv(root / "test_split_Depression_AVEC2017.csv", ["participant_ID", "Gender"],
                   [[p, GENDER[p]] for p in TEST])
    else:
        header = ["Participant_ID", "Gender", "PHQ_Binary", "PHQ_Score", "PCL-C (PTSD)", "PTSD Severity"]
        for name, part in (("train_split.csv", TRAIN), ("dev_split.csv", DEV), ("test_split.csv", TEST)):
            rows = [[p, "male" if GENDER[p] else "female", binary(p, s), s, int(s >= 12), 20 + s] for p, s in part.items()]
            _write_csv(root / "labels" / name, header, rows)


def _items(score: int) -> list[int]:
    """Eight PHQ-8 item answers (0–3) that add up to ``score``."""
    out = [0] * 8
    for k in range(score):
        out[k % 8] += 1
    return out


def generate(root: Path, seed: int = 0, layout: str = "daicwoz") -> Path:
    """Write the fake tree under ``root`` and return ``root``."""
    if layout not in ("daicwoz", "edaic"):
        raise ValueError(f"layout must be 'daicwoz' or 'edaic', got {layout!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    for pid, score in {**TRAIN, **DEV, **TEST, UNLISTED: 0}.items():
        write_session(root / f"{pid}_P", pid, score, layout, rng)
    write_labels(root, layout)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1]), layout=sys.argv[2] if len(sys.argv) > 2 else "daicwoz"))
