"""Generate a tiny Hugging Face ``datasets`` AudioFolder in its real layout.

``speakers`` speakers (``01``, ``02``, … — zero-padded, as many corpora write them) × 4 emotions ×
``per_class`` 0.3 s 16 kHz wavs; the tone's pitch follows the emotion. Layouts:

- ``layout="metadata"`` (default): split folders ``train/`` (all but the last two speakers),
  ``validation/`` (the one before last), ``test/`` (the last), each with
  ``<speaker>/<speaker>_<k>.wav`` and a metadata file (``fmt``: ``metadata.csv`` or
  ``metadata.jsonl``) with columns ``file_name, speaker, emotion, valence, text``;
  ``splits=False`` puts every file and one metadata file directly under ``root``;
- ``layout="folders"``: no metadata, the folder name is the label:
  ``<split>/<emotion>/<speaker>_<k>.wav`` (``train/`` and ``test/``), datasets' ClassLabel mode.

Run: ``python -m tests.data.hf_audiofolder.data OUT_DIR`` from the repository root.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from tests.data.media import write_wav

EMOTIONS = ["angry", "happy", "neutral", "sad"]
VALENCE = {"angry": -0.6, "happy": 0.8, "neutral": 0.0, "sad": -0.7}


def split_of(s: int, speakers: int, layout: str) -> str:
    if layout == "folders":
        return "test" if s == speakers else "train"
    return "test" if s == speakers else "validation" if s == speakers - 1 else "train"


def write_metadata(path: Path, rows: list[dict]) -> Path:
    """``metadata.csv`` or ``metadata.jsonl`` (by suffix), as the datasets docs show them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def generate(root: Path, seed: int = 0, *, layout: str = "metadata", fmt: str = "csv", splits: bool = True,
             speakers: int = 5, per_class: int = 2) -> Path:
    """Write the audiofolder under ``root``; return ``root``."""
    root = Path(root)
    metadata: dict[Path, list[dict]] = {}
    for s in range(1, speakers + 1):
        spk = f"{s:02d}"
        split = split_of(s, speakers, layout)
        for k in range(len(EMOTIONS) * per_class):
            emotion = EMOTIONS[k % len(EMOTIONS)]
            if layout == "folders":
                rel = f"{split}/{emotion}/{spk}_{k}.wav"
            else:
                rel = f"{split}/{spk}/{spk}_{k}.wav" if splits else f"{spk}/{spk}_{k}.wav"
            write_wav(root / rel, seconds=0.3, freq=200.0 + 80.0 * EMOTIONS.index(emotion), seed=seed + 10 * s + k)
            if layout == "metadata":
                folder = root / split if splits else root
                metadata.setdefault(folder / f"metadata.{fmt}", []).append({
                    "file_name": Path(rel).relative_to(folder.relative_to(root)).as_posix(), "speaker": spk,
                    "emotion": emotion, "valence": round(VALENCE[emotion] + 0.01 * k, 3), "text": f"sentence {k} of {spk}",
                })
    for path, rows in metadata.items():
        write_metadata(path, rows)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
