"""Generate a tiny fake IEMOCAP release (``IEMOCAP_full_release``) in the real layout.

Five sessions, each with one improvised dialog (8 utterances: neu, hap, exc, ang, sad, fru, xxx,
sur, alternating F/M speakers) and one scripted dialog (4 utterances: neu, ang, sad, exc) — 60
utterances, 10 speakers. Label files carry the real header, the consensus line and annotator
``C-``/``A-`` lines; ``EmoEvaluation/Categorical/`` holds a per-annotator file and Session1 a macOS
``._`` shadow, neither of which is a label file. Transcripts cover every utterance except the last
one of ``Ses05F_script01_1`` and add one unlabelled ``MXX0`` line per improvised dialog. Wavs are 0.5 s
16 kHz tones whose pitch follows the label.

Run: ``python -m tests.data.iemocap.data OUT_DIR`` from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.data.media import write_wav

IMPRO = ["neu", "hap", "exc", "ang", "sad", "fru", "xxx", "sur"]
SCRIPT = ["neu", "ang", "sad", "exc"]
ALL_LABELS = ["neu", "hap", "exc", "ang", "sad", "fru", "xxx", "sur"]
VALENCE = {"neu": 3.0, "hap": 4.0, "exc": 4.5, "ang": 1.5, "sad": 1.5, "fru": 2.0, "xxx": 2.5, "sur": 3.5}
AROUSAL = {"neu": 2.5, "hap": 3.5, "exc": 4.0, "ang": 4.0, "sad": 2.0, "fru": 3.5, "xxx": 3.0, "sur": 4.0}
CATEGORY = {"neu": "Neutral", "hap": "Happiness", "exc": "Excited", "ang": "Anger", "sad": "Sadness",
            "fru": "Frustration", "xxx": "Other", "sur": "Surprise"}  # fmt: skip
HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
NO_TRANSCRIPT = "Ses05F_script01_1_F001"


def dialogs(session: int) -> list[tuple[str, list[tuple[str, str]]]]:
    """(dialog name, [(utterance id, label)]) for one session; the dialog prefix alternates F/M."""
    prefix = f"Ses{session:02d}{'F' if session % 2 else 'M'}"
    out = []
    for name, labels, first in ((f"{prefix}_impro01", IMPRO, "F"), (f"{prefix}_script01_1", SCRIPT, "M")):
        counts = {"F": 0, "M": 0}
        utts = []
        for i, label in enumerate(labels):
            gender = first if i % 2 == 0 else ("M" if first == "F" else "F")
            utts.append((f"{name}_{gender}{counts[gender]:03d}", label))
            counts[gender] += 1
        out.append((name, utts))
    return out


def vad(label: str, i: int) -> tuple[float, float, float]:
    return VALENCE[label], AROUSAL[label], 2.0 + 0.5 * (i % 4)


def label_block(start: float, uid: str, label: str, values: tuple[float, float, float]) -> str:
    v, a, d = values
    cat = CATEGORY[label]
    return (
        f"[{start:.4f} - {start + 0.5:.4f}]\t{uid}\t{label}\t[{v:.4f}, {a:.4f}, {d:.4f}]\n"
        f"C-E2:\t{cat};\t()\nC-E3:\t{cat};\t()\nC-F1:\t{cat};\t(self)\n"
        f"A-E3:\tval {round(v)}; act {round(a)}; dom  {round(d)};\t()\n\n"
    )


def write_session(base: Path, session: int) -> None:
    folder = base / f"Session{session}"
    label_dir = folder / "dialog" / "EmoEvaluation"
    (label_dir / "Categorical").mkdir(parents=True, exist_ok=True)
    (folder / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
    for name, utts in dialogs(session):
        blocks, lines = [HEADER], []
        for i, (uid, label) in enumerate(utts):
            start = 2.0 + 3.0 * i
            blocks.append(label_block(start, uid, label, vad(label, i)))
            if uid != NO_TRANSCRIPT:
                lines.append(f"{uid} [{start:08.4f}-{start + 0.5:08.4f}]: Line {i} of {name}, felt {label}.")
            freq = 200.0 + 60.0 * ALL_LABELS.index(label)
            write_wav(folder / "sentences" / "wav" / name / f"{uid}.wav", sample_rate=16000, seconds=0.5, freq=freq)
        if "impro" in name:
            lines.append(f"{name}_MXX0 [030.0000-031.0000]: [LAUGHTER]")
        (label_dir / f"{name}.txt").write_text("".join(blocks))
        (label_dir / "Categorical" / f"{name}_e2_cat.txt").write_text(f"{utts[0][0]} :Neutral state; ()\n")
        (folder / "dialog" / "transcriptions" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    if session == 1:
        (label_dir / f"._{dialogs(1)[0][0]}.txt").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X\xff\xfe")


def generate(root: Path, seed: int = 0, *, nested: bool = True, sessions: int = 5) -> Path:
    """Write the fake release under ``root`` (inside ``IEMOCAP_full_release/`` when ``nested``).

    The tree is fully determined by its layout; ``seed`` is accepted for the common signature.
    """
    root = Path(root)
    base = root / "IEMOCAP_full_release" if nested else root
    for session in range(1, sessions + 1):
        write_session(base, session)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
