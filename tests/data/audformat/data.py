"""Generate a tiny audformat database in its real layout, written by ``audformat.Database.save``.

``speakers`` speakers (s1, s2, …) × 4 emotions × ``per_class`` 0.3 s 16 kHz wavs ``wav/<speaker>_<k>.wav``
(the tone's pitch follows the emotion), described as audb databases are:

- schemes ``emotion`` (labels in the order ``neutral, happy, sad, angry`` — not sorted, so a recipe
  that takes classes from the scheme keeps this order), ``speaker`` (a label dictionary with each
  speaker's ``gender``), ``transcription`` (str), ``arousal`` (float);
- splits ``train`` / ``dev`` / ``test`` (types of the same names): the last speaker in test, the one
  before in dev, the rest in train;
- tables ``files`` (filewise, no split: ``speaker``, ``transcription``) and
  ``emotion.categories.<split>`` (filewise, with ``split_id``: ``emotion``, ``arousal``).

``segmented=True`` writes one session file per speaker instead (``wav/<speaker>_session.wav``, the
utterances back to back, 0.1 s of silence between them) and segmented emotion tables whose
``start``/``end`` select each utterance. ``splits=False`` writes one ``emotion.categories`` table
without splits. ``storage_format``: ``parquet`` (audformat's default) or ``csv``.

Run: ``python -m tests.data.audformat.data OUT_DIR`` from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tests.data.media import tone, write_wav

EMOTIONS = ["neutral", "happy", "sad", "angry"]  # the scheme's order
AROUSAL = {"neutral": 0.1, "happy": 0.6, "sad": 0.2, "angry": 0.8}
GAP, LENGTH = 0.1, 0.3


def split_of(s: int, speakers: int) -> str:
    return "test" if s == speakers else "dev" if s == speakers - 1 else "train"


def generate(root: Path, seed: int = 0, *, speakers: int = 5, per_class: int = 2, segmented: bool = False,
             splits: bool = True, storage_format: str = "parquet") -> Path:
    """Write the media and the database under ``root``; return ``root``."""
    import audformat

    root = Path(root)
    db = audformat.Database("fake-emotion", source="tests/data/audformat", usage=audformat.define.Usage.RESEARCH,
                            languages=["English"])
    db.schemes["emotion"] = audformat.Scheme(labels=EMOTIONS)
    db.schemes["speaker"] = audformat.Scheme(labels={f"s{s}": {"gender": "female" if s % 2 else "male"}
                                                     for s in range(1, speakers + 1)})
    db.schemes["transcription"] = audformat.Scheme("str")
    db.schemes["arousal"] = audformat.Scheme("float", minimum=0, maximum=1)
    if splits:
        for split in ("train", "dev", "test"):
            db.splits[split] = audformat.Split(split)
    files, speaker_of, text_of = [], [], []
    per_split: dict[str, list[tuple]] = {}
    for s in range(1, speakers + 1):
        spk = f"s{s}"
        emotions = [EMOTIONS[k % len(EMOTIONS)] for k in range(len(EMOTIONS) * per_class)]
        rows = per_split.setdefault(split_of(s, speakers) if splits else "all", [])
        if segmented:
            rel = f"wav/{spk}_session.wav"
            parts = []
            for k, e in enumerate(emotions):
                parts += [tone(LENGTH, freq=200.0 + 80.0 * EMOTIONS.index(e), seed=seed + 10 * s + k),
                          np.zeros(int(GAP * 16000), np.float32)]
            write_wav(root / rel, np.concatenate(parts))
            files.append(rel)
            speaker_of.append(spk)
            text_of.append(f"session of {spk}")
            for k, e in enumerate(emotions):
                start = round(k * (LENGTH + GAP), 3)
                rows.append((rel, start, round(start + LENGTH, 3), e, round(AROUSAL[e] + 0.01 * k, 3)))
        else:
            for k, e in enumerate(emotions):
                rel = f"wav/{spk}_{k}.wav"
                write_wav(root / rel, seconds=LENGTH, freq=200.0 + 80.0 * EMOTIONS.index(e), seed=seed + 10 * s + k)
                files.append(rel)
                speaker_of.append(spk)
                text_of.append(f"sentence {k} of {spk}")
                rows.append((rel, None, None, e, round(AROUSAL[e] + 0.01 * k, 3)))
    db["files"] = audformat.Table(audformat.filewise_index(files))
    db["files"]["speaker"] = audformat.Column(scheme_id="speaker")
    db["files"]["speaker"].set(speaker_of)
    db["files"]["transcription"] = audformat.Column(scheme_id="transcription")
    db["files"]["transcription"].set(text_of)
    for split, rows in per_split.items():
        paths = [r[0] for r in rows]
        index = audformat.segmented_index(paths, [r[1] for r in rows], [r[2] for r in rows]) if segmented \
            else audformat.filewise_index(paths)
        table_id = "emotion.categories" + ("" if split == "all" else f".{split}")
        db[table_id] = audformat.Table(index, split_id=None if split == "all" else split)
        for column, i in (("emotion", 3), ("arousal", 4)):
            db[table_id][column] = audformat.Column(scheme_id=column)
            db[table_id][column].set([r[i] for r in rows])
    db.save(str(root), storage_format=storage_format)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
