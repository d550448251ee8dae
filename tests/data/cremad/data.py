"""Generate a tiny fake CREMA-D release in the real ``AudioWAV/`` (+ ``VideoFlash/``) layout.

``actors`` actors (1001, 1002, …) × the 6 emotions, one 0.3 s 16 kHz wav each, named
``{ActorID}_{Sentence}_{Emotion}_{Level}.wav``. Sentences cycle through the 12 codes; sentence
IEO gets a level (LO/MD/HI), the others XX, as in the real corpus. The first ``video_actors``
actors also get 0.4 s ``VideoFlash/*.flv`` clips (H.264 + AAC). The tone's pitch follows the emotion.

Run: ``python -m tests.data.cremad.data OUT_DIR`` from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.data.media import write_mp4, write_wav

EMOTION_CODES = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
SENTENCE_CODES = ["IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"]
IEO_LEVELS = ["LO", "MD", "HI"]


def emotion_freq(code: str) -> float:
    return 200.0 + 70.0 * EMOTION_CODES.index(code)


def plan(actors: int) -> list[str]:
    """File stems of the fake corpus."""
    stems, ieo = [], 0
    for a in range(actors):
        for e, emotion in enumerate(EMOTION_CODES):
            sentence = SENTENCE_CODES[(a * len(EMOTION_CODES) + e) % len(SENTENCE_CODES)]
            level = "XX"
            if sentence == "IEO":
                level, ieo = IEO_LEVELS[ieo % 3], ieo + 1
            stems.append(f"{1001 + a}_{sentence}_{emotion}_{level}")
    return stems


def generate(root: Path, seed: int = 0, *, actors: int = 6, video_actors: int = 0) -> Path:
    """Write the fake release under ``root``; return ``root``."""
    root = Path(root)
    for i, stem in enumerate(plan(actors)):
        emotion = stem.split("_")[2]
        write_wav(root / "AudioWAV" / f"{stem}.wav", seconds=0.3, freq=emotion_freq(emotion), seed=seed + i)
        if int(stem[:4]) - 1001 < video_actors:
            write_mp4(root / "VideoFlash" / f"{stem}.flv", 0.4, freq=emotion_freq(emotion))
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
