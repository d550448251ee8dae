"""Fake CH-SIMS tree: ``label.csv`` + ``Raw/<video_id>/<clip_id>.mp4`` for 5 videos × 5 clips.

``label.csv`` has the real columns (``video_id,clip_id,text,label,label_T,label_A,label_V,
annotation,mode``); labels are on the real -1..1 grid of fifths and ``annotation`` is their sign
(``Negative``/``Neutral``/``Positive``). Tone frequency follows the sentiment.

Options: ``clip_id_style`` — ``"padded"`` writes ``0001`` as the real file does, ``"int"`` writes
``1`` (a re-saved CSV; files stay ``0001.mp4``); ``shared_videos`` — True deals each video's clips
over train/valid/test (clip-level split), False keeps each video in one mode.

Usage: ``python -m tests.data.chsims.data OUT_DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from tests.data.media import write_mp4

SENTIMENT_LABEL = {"Negative": -0.8, "Neutral": 0.0, "Positive": 0.6}
FREQ = {"Negative": 200.0, "Neutral": 350.0, "Positive": 600.0}
TEXTS = {
    "Negative": "这件事真的让我很失望。",
    "Neutral": "我们明天下午三点见面。",
    "Positive": "太好了，我们终于成功了！",
}
CLIP_MODES = ["train", "train", "train", "valid", "test"]  # per clip index when videos are shared
VIDEO_MODES = ["train", "train", "train", "valid", "test"]  # per video index otherwise


def generate(
    root: Path,
    seed: int = 0,
    n_videos: int = 5,
    clips_per_video: int = 5,
    clip_id_style: str = "padded",
    shared_videos: bool = True,
) -> Path:
    """Write the fake tree under ``root`` and return ``root``."""
    root = Path(root)
    annotations = list(SENTIMENT_LABEL)
    rows = []
    for v in range(n_videos):
        video_id = f"video_{v + 1:04d}"
        for c in range(clips_per_video):
            annotation = annotations[(v + c + seed) % 3]
            label = SENTIMENT_LABEL[annotation]
            write_mp4(root / "Raw" / video_id / f"{c + 1:04d}.mp4", 0.4, freq=FREQ[annotation], fps=5)
            rows.append(
                {
                    "video_id": video_id,
                    "clip_id": f"{c + 1:04d}" if clip_id_style == "padded" else str(c + 1),
                    "text": TEXTS[annotation],
                    "label": label,
                    "label_T": label,
                    "label_A": round(label / 2, 1),
                    "label_V": label,
                    "annotation": annotation,
                    "mode": (CLIP_MODES[c % 5] if shared_videos else VIDEO_MODES[v % 5]),
                }
            )
    pd.DataFrame(rows).to_csv(root / "label.csv", index=False)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
