"""Generate a tiny fake RAVDESS release in the real ``Actor_NN/MM-VV-EE-II-SS-RR-AA`` layout.

- speech, audio-only: ``actors`` actors × the 8 emotions, one 0.3 s 48 kHz wav each
  (``03-01-EE-II-SS-01-AA.wav``; neutral has only normal intensity, as in the real corpus);
- song, audio-only: the first ``song_actors`` actors × 3 emotions (``03-02-...wav``);
- full AV: the first ``av_actors`` actors × neutral and happy, 0.4 s mp4s (``01-01-...mp4``);
- one video-only clip (``02-01-...mp4``, no audio stream) for actor 01.

The tone's pitch follows the emotion so a probe has signal. Defaults: 48 speech wavs, 6 song
wavs, 4 AV mp4s, 1 video-only mp4.

Run: ``python -m tests.data.ravdess.data OUT_DIR`` from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.data.media import write_mp4, write_wav

EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


def emotion_freq(code: int) -> float:
    return 180.0 + 60.0 * code


def clip_name(modality: int, channel: int, emotion: int, actor: int, intensity: int = 1, statement: int = 1) -> str:
    """The RAVDESS file stem for these codes (repetition 01)."""
    return "-".join(f"{c:02d}" for c in (modality, channel, emotion, intensity, statement, 1, actor))


def generate(root: Path, seed: int = 0, *, actors: int = 6, song_actors: int = 2, av_actors: int = 2) -> Path:
    """Write the fake release under ``root``; return ``root``."""
    root = Path(root)
    for actor in range(1, actors + 1):
        folder = root / f"Actor_{actor:02d}"
        for emotion in range(1, 9):
            intensity = 1 if emotion == 1 else 1 + (actor + emotion) % 2
            statement = 1 + (actor + emotion) % 2
            name = clip_name(3, 1, emotion, actor, intensity, statement)
            seed_i = seed + actor * 10 + emotion
            write_wav(folder / f"{name}.wav", sample_rate=48000, seconds=0.3, freq=emotion_freq(emotion), seed=seed_i)
        if actor <= song_actors:
            for emotion in (1, 2, 3):
                name = clip_name(3, 2, emotion, actor)
                write_wav(folder / f"{name}.wav", sample_rate=48000, seconds=0.3, freq=emotion_freq(emotion))
        if actor <= av_actors:
            for emotion in (1, 3):
                write_mp4(folder / f"{clip_name(1, 1, emotion, actor)}.mp4", 0.4, freq=emotion_freq(emotion))
    write_mp4(root / "Actor_01" / f"{clip_name(2, 1, 1, 1)}.mp4", 0.4, audio=False)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
