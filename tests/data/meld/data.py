"""Generate a tiny fake MELD release in the real ``MELD.Raw`` layout.

Three splits with dialogues of 2–3 utterances; every split holds all 7 emotions and 3 sentiments,
spread over 3–4 dialogues. Clips are 0.4 s mp4s (moving square + tone whose pitch follows the
emotion). ``train_splits/dia0_utt0.mp4`` carries 6-channel (5.1) audio, as some real clips do. The
CSVs are written in ``encoding`` (cp1252 by default, like some real copies); one utterance contains
a right single quote, which a UTF-8 file holds in its usual double-encoded ``â€™`` form.

Run: ``python -m tests.data.meld.data OUT_DIR`` from the repository root.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np

from tests.data.media import write_mp4

EMOTIONS = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
SENTIMENT = {"neutral": "neutral", "joy": "positive", "anger": "negative", "sadness": "negative",
             "disgust": "negative", "fear": "negative"}  # fmt: skip
CHARACTERS = ["Joey", "Rachel", "Ross", "Monica", "Chandler", "Phoebe"]
COLUMNS = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
           "Season", "Episode", "StartTime", "EndTime"]  # fmt: skip
# split -> (label file, clip folder, emotion occurrences, dialogue sizes)
LAYOUT = {
    "train": ("train_sent_emo.csv", "train_splits", 2, [4, 4, 3, 3]),
    "dev": ("dev_sent_emo.csv", "dev_splits_complete", 1, [3, 2, 2]),
    "test": ("test_sent_emo.csv", "output_repeated_splits_test", 1, [3, 2, 2]),
}
SIX_CHANNEL_CLIP = ("train", 0, 0)  # (split, dialogue, utterance) with 5.1 audio
QUOTE_UTF8_MOJIBAKE = "\u00e2\u20ac\u2122"  # "’" encoded as UTF-8, then read back as cp1252


def emotion_freq(emotion: str) -> float:
    return 220.0 + 70.0 * EMOTIONS.index(emotion)


def plan_split(split: str, rng: np.random.Generator) -> list[dict]:
    """Rows of one split: every emotion ``reps`` times, shuffled, cut into dialogues."""
    _, _, reps, sizes = LAYOUT[split]
    emotions = list(rng.permutation(EMOTIONS * reps))
    assert sum(sizes) == len(emotions)
    rows, k = [], 0
    for dia, size in enumerate(sizes):
        for utt in range(size):
            emotion = str(emotions[k])
            sentiment = SENTIMENT.get(emotion) or ("positive" if k % 2 else "negative")
            speaker = CHARACTERS[(dia + utt) % len(CHARACTERS)] if k % 5 else f"Guest {split}"
            rows.append({"dia": dia, "utt": utt, "emotion": emotion, "sentiment": sentiment, "speaker": speaker})
            k += 1
    return rows


def write_csv(path: Path, rows: list[dict], encoding: str) -> None:
    quote = "\u2019" if encoding != "utf-8" else QUOTE_UTF8_MOJIBAKE
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    for i, r in enumerate(rows, start=1):
        text = f"I{quote}m fine, \"really\"." if i == 1 else f"Line {i} of dialogue {r['dia']}."
        start = f"00:{10 + i:02d}:01,250"
        end = f"00:{10 + i:02d}:03,500"
        writer.writerow([i, text, r["speaker"], r["emotion"], r["sentiment"], r["dia"], r["utt"], 3, 7, start, end])
    path.write_bytes(buf.getvalue().encode(encoding))


def generate(root: Path, seed: int = 0, *, nested: bool = True, encoding: str = "cp1252") -> Path:
    """Write the fake release under ``root`` (inside ``MELD.Raw/`` when ``nested``); return ``root``."""
    root = Path(root)
    base = root / "MELD.Raw" if nested else root
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, (label_file, clip_folder, _, _) in LAYOUT.items():
        rows = plan_split(split, rng)
        write_csv(base / label_file, rows, encoding)
        for r in rows:
            channels = 6 if (split, r["dia"], r["utt"]) == SIX_CHANNEL_CLIP else 2
            clip = base / clip_folder / f"dia{r['dia']}_utt{r['utt']}.mp4"
            write_mp4(clip, 0.4, freq=emotion_freq(r["emotion"]), channels=channels)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
