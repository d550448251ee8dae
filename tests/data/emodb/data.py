"""Generate a tiny fake Berlin EmoDB in the real ``wav/SSTTTEV.wav`` layout.

``speakers`` real speaker codes (default 03, 08, 09, 10) × the 7 emotion letters, one 0.3 s
16 kHz wav each; text codes cycle through the 10 sentences; every third clip of a speaker also
gets a second version (``b``). The tone's pitch follows the emotion. ``flat=True`` writes the wavs
directly into ``root`` (like the shared real sample) instead of ``root/wav/``. ``stems`` writes exactly
those file names instead (e.g. utterances EmoBox's fold lists name).

Run: ``python -m tests.data.emodb.data OUT_DIR`` from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.data.media import write_wav

LETTERS = "WLEAFTN"  # anger, boredom, disgust, fear, happiness, sadness, neutral
TEXTS = ["a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10"]
SPEAKERS = ("03", "08", "09", "10")


def emotion_freq(letter: str) -> float:
    return 200.0 + 60.0 * LETTERS.index(letter)


def plan(speakers: tuple[str, ...] = SPEAKERS) -> list[str]:
    """File stems of the fake corpus."""
    stems = []
    for s, speaker in enumerate(speakers):
        for e, letter in enumerate(LETTERS):
            text = TEXTS[(s * len(LETTERS) + e) % len(TEXTS)]
            stems.append(f"{speaker}{text}{letter}a")
            if e % 3 == 0:
                stems.append(f"{speaker}{text}{letter}b")
    return stems


def generate(root: Path, seed: int = 0, *, speakers: tuple[str, ...] = SPEAKERS, flat: bool = False,
             stems: list[str] | None = None) -> Path:
    """Write the fake corpus under ``root``; return ``root``."""
    root = Path(root)
    folder = root if flat else root / "wav"
    for i, stem in enumerate(plan(speakers) if stems is None else stems):
        write_wav(folder / f"{stem}.wav", seconds=0.3, freq=emotion_freq(stem[5]), seed=seed + i)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
