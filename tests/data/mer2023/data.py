"""Fake MER 2023 release: label CSVs and short clips in the real folder layout.

- ``train-label.csv`` (``name,discrete,valence``) + ``train/`` — 3 clips per class, ``.avi``;
- ``test1-label.csv`` + ``test1/`` — 1 clip per class, ``.avi``, except the first, which is an
  audio-only ``.mp4`` (no video stream, as some real clips are);
- ``test2-label.csv`` + ``test2/`` — 1 clip per class, ``.mp4`` (as the real MER-NOISE set);
- ``test3-label.csv`` (``name`` only: no labels) + ``test3/`` — 3 ``.avi`` clips.

Names follow the real ``sample_XXXXXXXX`` / ``samplenew_XXXXXXXX`` pattern; tone frequency and
valence follow the emotion.

Usage: ``python -m tests.data.mer2023.data OUT_DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tests.data.media import write_mp4

EMOTIONS = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
FREQ = {"neutral": 250.0, "angry": 600.0, "happy": 500.0, "sad": 180.0, "worried": 320.0, "surprise": 750.0}
VALENCE = {"neutral": 0.0, "angry": -3.0, "happy": 3.0, "sad": -3.5, "worried": -1.5, "surprise": 1.5}


def _name(counter: int) -> str:
    return f"{'samplenew' if counter % 2 else 'sample'}_{counter:08d}"


def write_set(root: Path, label_set: str, emotions: list[str], start: int, suffix: str, rng, labels: str) -> list[str]:
    """Clips and label file of one set; ``labels`` is 'full' (discrete+valence) or 'none'."""
    names = [_name(start + i) for i in range(len(emotions))]
    for i, (name, emotion) in enumerate(zip(names, emotions)):
        audio_only = label_set == "test1" and i == 0
        ext = ".mp4" if audio_only else suffix
        write_mp4(root / label_set / f"{name}{ext}", 0.4, freq=FREQ[emotion], video=not audio_only, fps=5)
    table = {"name": names}
    if labels == "full":
        table["discrete"] = emotions
        table["valence"] = [round(VALENCE[e] + float(rng.normal(0, 0.3)), 2) for e in emotions]
    pd.DataFrame(table).to_csv(root / f"{label_set}-label.csv", index=False)
    return names


def generate(root: Path, seed: int = 0, per_class: int = 3) -> Path:
    """Write the fake release under ``root`` and return ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    write_set(root, "train", EMOTIONS * per_class, 1, ".avi", rng, "full")
    write_set(root, "test1", EMOTIONS, 1001, ".avi", rng, "full")
    write_set(root, "test2", EMOTIONS, 2001, ".mp4", rng, "full")
    write_set(root, "test3", EMOTIONS[:3], 3001, ".avi", rng, "none")
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
