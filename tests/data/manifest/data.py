"""Generate a tiny corpus described by one label file, as a user would plug in with ``recipe: manifest``.

``speakers`` speakers (s1, s2, …) × 4 emotions × ``per_class`` clips: 0.3 s 16 kHz wavs at
``clips/<speaker>/<speaker>_<k>.wav``, and a label file with columns ``path, speaker, emotion,
valence, text`` (plus ``split`` when ``split=True``: the last speaker is test, the one before
dev, the rest train). ``fmt`` picks ``labels.csv`` or ``labels.jsonl`` (one JSON object a line,
valence as a number). The tone's pitch follows the emotion; valence is a per-emotion value.

Run: ``python -m tests.data.manifest.data OUT_DIR`` from the repository root.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from tests.data.media import write_wav

EMOTIONS = ["angry", "happy", "neutral", "sad"]
VALENCE = {"angry": -0.6, "happy": 0.8, "neutral": 0.0, "sad": -0.7}


def plan(speakers: int = 5, per_class: int = 2, split: bool = False) -> list[dict]:
    """The label rows of the fake corpus."""
    out = []
    for s in range(1, speakers + 1):
        spk = f"s{s}"
        for k in range(len(EMOTIONS) * per_class):
            emotion = EMOTIONS[k % len(EMOTIONS)]
            row = {"path": f"clips/{spk}/{spk}_{k:03d}.wav", "speaker": spk, "emotion": emotion,
                   "valence": round(VALENCE[emotion] + 0.01 * k, 3), "text": f"sentence {k} of {spk}"}  # fmt: skip
            if split:
                row["split"] = "test" if s == speakers else "dev" if s == speakers - 1 else "train"
            out.append(row)
    return out


def write_labels(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` as CSV or JSONL depending on the suffix of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return path
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(dict.fromkeys(k for r in rows for k in r)))  # union of keys, in order
        writer.writeheader()
        writer.writerows(rows)
    return path


def generate(
    root: Path, seed: int = 0, *, fmt: str = "csv", speakers: int = 5, per_class: int = 2, split: bool = False
) -> Path:
    """Write media and ``labels.<fmt>`` under ``root``; return ``root``."""
    root = Path(root)
    rows = plan(speakers, per_class, split)
    for i, r in enumerate(rows):
        write_wav(root / r["path"], seconds=0.3, freq=200.0 + 80.0 * EMOTIONS.index(r["emotion"]), seed=seed + i)
    write_labels(root / f"labels.{fmt}", rows)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
