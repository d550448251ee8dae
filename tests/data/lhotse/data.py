"""Generate a tiny corpus described by lhotse manifests, written by lhotse itself.

``speakers`` speakers (s1, s2, …), each with one session recording ``audio/<speaker>/<speaker>_session.wav``
(16 kHz mono) of ``per_speaker`` utterance slots of 0.5 s: 0.05 s silence, a 0.4 s tone whose
pitch follows the emotion, 0.05 s silence. Each tone is one ``SupervisionSegment`` (id
``<speaker>_<k>``, start ``0.5 k + 0.05``, duration 0.4, ``speaker``, ``text``, ``custom`` =
``{emotion, arousal}``) — so a recipe that cuts the wrong window decodes silence or another class's
pitch. Manifests go to ``manifests/`` with lhotse's names and writers
(``RecordingSet.to_file``, ``SupervisionSet.to_file``, ``CutSet.to_file``):

- ``parts=True`` (default): ``fakeemo_{recordings,supervisions}_{train,dev,test}.jsonl.gz``, the
  last speaker in test, the one before in dev, the rest in train;
- ``parts=False``: one part-less pair ``fakeemo_{recordings,supervisions}.jsonl.gz``;
- ``cuts=True``: ``fakeemo_cuts_<part>.jsonl.gz`` instead (``CutSet.from_manifests``, one cut per
  recording, or ``trim=True``: one cut per supervision, lhotse's ``trim_to_supervisions``).

Source paths are relative to ``root`` (``absolute=True``: absolute).

Run: ``python -m tests.data.lhotse.data OUT_DIR`` from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tests.data.media import tone, write_wav

EMOTIONS = ["angry", "happy", "neutral", "sad"]
FREQ = {"angry": 440.0, "happy": 660.0, "neutral": 220.0, "sad": 330.0}
AROUSAL = {"angry": 0.8, "happy": 0.6, "neutral": 0.1, "sad": 0.2}
SLOT, LEAD, LENGTH = 0.5, 0.05, 0.4  # seconds
PREFIX = "fakeemo"


def part_of(speaker: int, speakers: int) -> str:
    return "test" if speaker == speakers else "dev" if speaker == speakers - 1 else "train"


def session(emotions: list[str], seed: int) -> np.ndarray:
    """One recording: a tone per slot, silence around it."""
    slots = []
    for k, emotion in enumerate(emotions):
        slot = np.zeros(int(SLOT * 16000), np.float32)
        start = int(LEAD * 16000)
        slot[start : start + int(LENGTH * 16000)] = tone(LENGTH, freq=FREQ[emotion], seed=seed + k)
        slots.append(slot)
    return np.concatenate(slots)


def generate(root: Path, seed: int = 0, *, speakers: int = 5, per_speaker: int = 8, parts: bool = True,
             cuts: bool = False, trim: bool = False, absolute: bool = False) -> Path:
    """Write the audio and the lhotse manifests under ``root``; return ``root``."""
    from lhotse import AudioSource, CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    root = Path(root)
    by_part: dict[str | None, tuple[list, list]] = {}
    for s in range(1, speakers + 1):
        spk = f"s{s}"
        emotions = [EMOTIONS[k % len(EMOTIONS)] for k in range(per_speaker)]
        rel = f"audio/{spk}/{spk}_session.wav"
        write_wav(root / rel, session(emotions, seed + 100 * s))
        rec = Recording.from_file(root / rel, recording_id=f"{spk}_session")
        source = str((root / rel).absolute()) if absolute else rel
        rec = Recording(rec.id, [AudioSource("file", [0], source)], rec.sampling_rate, rec.num_samples, rec.duration)
        sups = [
            SupervisionSegment(
                id=f"{spk}_{k}", recording_id=rec.id, start=round(SLOT * k + LEAD, 3), duration=LENGTH, channel=0,
                text=f"sentence {k} of {spk}", speaker=spk,
                custom={"emotion": e, "arousal": round(AROUSAL[e] + 0.01 * k, 3)},
            )
            for k, e in enumerate(emotions)
        ]
        recs, segs = by_part.setdefault(part_of(s, speakers) if parts else None, ([], []))
        recs.append(rec)
        segs.extend(sups)
    out = root / "manifests"
    out.mkdir(parents=True, exist_ok=True)
    for part, (recs, segs) in by_part.items():
        tail = f"_{part}" if part else ""
        recordings, supervisions = RecordingSet.from_recordings(recs), SupervisionSet.from_segments(segs)
        if cuts:
            cutset = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
            (cutset.trim_to_supervisions() if trim else cutset).to_file(out / f"{PREFIX}_cuts{tail}.jsonl.gz")
        else:
            recordings.to_file(out / f"{PREFIX}_recordings{tail}.jsonl.gz")
            supervisions.to_file(out / f"{PREFIX}_supervisions{tail}.jsonl.gz")
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
