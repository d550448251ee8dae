"""Generate a tiny fake ESC-50 in the real ``audio/`` + ``meta/esc50.csv`` layout.

Five real categories with their real targets (dog 0, rooster 1, crow 9, rain 10, clapping 22;
dog, rooster and rain are in ESC-10). Each of the 5 folds holds one source recording per category;
dog and crow sources have two takes (A, B), as real sources often do. That is 35 clips of 0.3 s at
44.1 kHz named ``{FOLD}-{SRC_FILE}-{TAKE}-{TARGET}.wav``, and ``meta/esc50.csv`` with the real
columns, sorted by filename like the real file. The tone's pitch follows the category.

Run: ``python -m tests.data.esc50.data OUT_DIR`` from the repository root.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from tests.data.media import write_wav

COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
# category -> (target, in ESC-10, takes per source)
CATEGORIES = {"dog": (0, True, 2), "rooster": (1, True, 1), "crow": (9, False, 2), "rain": (10, True, 1),
              "clapping": (22, False, 1)}  # fmt: skip


def rows(seed: int = 0) -> list[dict[str, str]]:
    """The CSV rows of the fake corpus (distinct source ids drawn from ``seed``)."""
    rng = np.random.default_rng(seed)
    sources = rng.choice(np.arange(10_000, 250_000), size=5 * len(CATEGORIES), replace=False)
    out, k = [], 0
    for fold in range(1, 6):
        for category, (target, esc10, takes) in CATEGORIES.items():
            src = str(sources[k])
            k += 1
            for take in "AB"[:takes]:
                out.append({"filename": f"{fold}-{src}-{take}-{target}.wav", "fold": str(fold), "target": str(target),
                            "category": category, "esc10": str(esc10), "src_file": src, "take": take})  # fmt: skip
    return sorted(out, key=lambda r: r["filename"])


def write_meta(path: Path, meta: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(meta)


def generate(root: Path, seed: int = 0) -> Path:
    """Write the fake corpus under ``root``; return ``root``."""
    root = Path(root)
    meta = rows(seed)
    for i, r in enumerate(meta):
        freq = 200.0 + 8.0 * int(r["target"])
        write_wav(root / "audio" / r["filename"], sample_rate=44100, seconds=0.3, freq=freq, seed=seed + i)
    write_meta(root / "meta" / "esc50.csv", meta)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
