"""Generator for ``demo``: a small, fully synthetic audio-visual emotion corpus.

The corpus exists so the whole benchmark (prepare → segment → embed → probe → report) can run
end to end without any licence-restricted data, in the spirit of torchgeo's ``tests/data/*/data.py``
fake-data scripts. Nothing is downloaded: speech comes from espeak-ng (``espeakng-loader`` wheel),
faces are drawn with OpenCV and the two are muxed with the ffmpeg binary of ``imageio-ffmpeg``.

Layout written under ``out_dir``::

    metadata.csv                      utt_id,speaker,gender,emotion,text,file
    spk00/spk00_happy_000.mp4         H.264 yuv420p video (``fps``, ``frame_size``²) + AAC mono audio
    ...

Each speaker has its own espeak voice, base pitch/rate and face style. Emotion is carried

- acoustically, by pitch, pitch-range, rate and loudness offsets from the speaker's base;
- visually, by the facial expression of every frame (the mouth also opens with the audio loudness);
- lexically, but only half the time: an utterance speaks an emotion-bearing sentence of its class
  with probability 0.5 and otherwise a neutral carrier sentence shared by all classes.

Every random choice is drawn from a generator seeded by ``(seed, speaker, emotion, index)``, so the
output depends only on the arguments, not on worker count or scheduling; with ffmpeg's bitexact
flags, single-threaded x264 and every encoder on its C code path (``-cpuflags 0``, x264
``asm=0``: the SIMD paths differ by CPU) the files are byte-identical across runs, thread counts
and x86 machines, for a given ffmpeg build (``imageio-ffmpeg`` version) and espeak-ng data
(``espeakng-loader`` version); ``tests/test_demo_reproducible.py`` checks this.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import multiprocessing
import shutil
import subprocess
import tempfile
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
from tqdm import tqdm

from pipeline.corpora.synth.espeak import EspeakSynthesizer
from pipeline.corpora.synth.face import render_face

DEFAULT_EMOTIONS = ("neutral", "happy", "sad", "angry")


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: espeak voice, prosodic baseline and face style."""

    name: str
    gender: str
    voice: str
    pitch: int  # espeak pitch 0-100
    pitch_range: int  # espeak range 0-100
    rate: int  # words per minute
    face: dict


# Backgrounds are chosen to contrast with the skin tone: OpenCV's Haar frontal-face cascade misses
# pale faces on pale backgrounds, and downstream face-crop stages rely on a detector.
# Voices were checked against the bundled espeak-ng data: "en-gb" is *not* a voice name there
# (British English is "en"), while "en-us", "en-gb-x-rp", "en-gb-scotland" and "en-029" are.
SPEAKERS: tuple[Speaker, ...] = (
    Speaker("spk00", "male", "en-us+m1", 44, 48, 168,
            dict(skin=(224, 182, 150), hair_colour=(70, 45, 30), hair_style="short",
                 background=(196, 208, 222), shirt_colour=(60, 90, 140))),
    Speaker("spk01", "female", "en-us+f2", 52, 55, 176,
            dict(skin=(150, 100, 72), hair_colour=(22, 16, 12), hair_style="long", face_width=0.93,
                 eye_spacing=1.06, iris_colour=(60, 40, 25), lip_colour=(150, 70, 75),
                 background=(214, 204, 190), shirt_colour=(150, 50, 70))),
    Speaker("spk02", "male", "en+m3", 40, 45, 160,
            dict(skin=(240, 200, 175), hair_colour=(190, 140, 75), hair_style="crop", face_width=1.07,
                 eye_spacing=0.95, iris_colour=(70, 110, 150), background=(120, 140, 160),
                 shirt_colour=(50, 110, 60))),
    Speaker("spk03", "female", "en+f4", 50, 52, 172,
            dict(skin=(232, 190, 160), hair_colour=(150, 70, 35), hair_style="band", face_width=0.96,
                 band_colour=(40, 120, 190), iris_colour=(60, 120, 80), lip_colour=(200, 90, 100),
                 background=(225, 215, 225), shirt_colour=(120, 70, 150))),
    Speaker("spk04", "male", "en-gb-x-rp+m2", 46, 50, 165,
            dict(skin=(175, 125, 95), hair_colour=(40, 30, 25), hair_style="short", face_width=1.03,
                 face_height=1.04, eye_spacing=1.04, background=(185, 200, 210),
                 shirt_colour=(90, 90, 95))),
    Speaker("spk05", "female", "en-gb-scotland+f3", 48, 56, 180,
            dict(skin=(245, 215, 195), hair_colour=(210, 170, 100), hair_style="long", face_width=0.95,
                 iris_colour=(80, 130, 170), lip_colour=(210, 110, 120), background=(90, 110, 95),
                 shirt_colour=(200, 150, 60))),
    Speaker("spk06", "male", "en-029+m4", 42, 46, 158,
            dict(skin=(140, 95, 70), hair_colour=(25, 25, 25), hair_style="crop", face_width=1.05,
                 eye_spacing=0.93, background=(225, 220, 200), shirt_colour=(180, 80, 40))),
    Speaker("spk07", "female", "en-us+f1", 54, 50, 178,
            dict(skin=(200, 155, 120), hair_colour=(60, 35, 25), hair_style="band", face_width=0.98,
                 band_colour=(230, 200, 60), eye_spacing=1.02, background=(60, 70, 90),
                 shirt_colour=(40, 130, 130))),
)

# Prosody offsets relative to the speaker's base, following the usual acoustic correlates of
# emotion (e.g. Scherer 2003): arousal raises loudness/rate/range, sadness lowers pitch and rate.
# pitch/range are additive on espeak's 0-100 scale; rate/volume are multiplicative.
PROSODY: dict[str, dict[str, float]] = {
    "neutral": dict(pitch=0, pitch_range=0, rate=1.00, volume=1.00),
    "happy": dict(pitch=18, pitch_range=32, rate=1.12, volume=1.25),
    "sad": dict(pitch=-14, pitch_range=-30, rate=0.80, volume=0.62),
    "angry": dict(pitch=9, pitch_range=26, rate=1.15, volume=1.45),
}
_BASE_VOLUME = 100
_MAX_VOLUME = 150  # above ~160 espeak-ng's output starts to hard-clip

CLASS_SENTENCES: dict[str, tuple[str, ...]] = {
    "neutral": (
        "I will check the schedule and let you know.",
        "The report is on the second shelf.",
        "We can take the bus or walk from here.",
        "Please send me the file before noon.",
        "The store opens at nine tomorrow.",
        "I read the instructions once more.",
        "He said the results should arrive next week.",
        "The kettle is in the kitchen cupboard.",
    ),
    "happy": (
        "What a wonderful surprise, I am so glad you came!",
        "We won the game, this is the best day ever!",
        "I love it, thank you so much!",
        "This is fantastic news, I can hardly believe it!",
        "Hooray, the holidays start tomorrow!",
        "You look great, I am so happy for you!",
        "That was the funniest thing I have ever seen!",
        "We did it, everything worked perfectly!",
    ),
    "sad": (
        "I miss her so much, nothing feels the same.",
        "I am sorry, I really tried my best.",
        "Nobody came to the party in the end.",
        "It is over, and there is nothing left to do.",
        "I lost my old dog last night.",
        "I feel so alone in this empty house.",
        "We never got the chance to say goodbye.",
        "Everything I worked for is gone.",
    ),
    "angry": (
        "How dare you speak to me like that!",
        "Stop it right now, I have had enough!",
        "You lied to me again, and I am furious!",
        "Get out of my room this instant!",
        "This is completely unacceptable!",
        "I told you a hundred times, do not touch that!",
        "Who broke my window? Answer me!",
        "That is the last time you ignore me!",
    ),
}

CARRIER_SENTENCES: tuple[str, ...] = (
    "The meeting is scheduled for Tuesday afternoon.",
    "The train leaves from platform four.",
    "There are seven chairs in the room.",
    "The package arrived this morning.",
    "She parked the car near the station.",
    "The table is made of oak.",
    "It is going to rain later today.",
    "The lamp is next to the window.",
    "They moved to a new office in May.",
    "The book has twelve chapters.",
)

_MOUTH_RMS_FLOOR = 0.01  # below this a frame counts as silence (closed mouth)
_MOUTH_RMS_FULL = 0.16  # fixed, not per-utterance, so loud (angry) speech opens the mouth wider
_NOISE_STD = 0.002  # faint noise floor so silences are not digital zero
_LEAD_SILENCE_S = 0.25  # recorded corpora have pauses around speech; VAD/segmenters expect them
_TAIL_SILENCE_S = 0.2


_PLAN_STREAM, _RENDER_STREAM, _TEXT_STREAM = 0, 1, 2


def _utterance_rng(seed: int, speaker_idx: int, emotion: str, index: int,
                   stream: int) -> np.random.Generator:
    # Seeding from the utterance's identity (not a shared stream) makes results independent of
    # how work is split across processes; separate streams keep planning and rendering decoupled.
    key = [seed, speaker_idx, zlib.crc32(emotion.encode()), index, stream]
    return np.random.default_rng(np.random.SeedSequence(key))


def plan_utterances(seed: int, n_speakers: int, utterances_per_class: int,
                    emotions: tuple[str, ...]) -> list[dict]:
    """Decide text and prosody of every utterance, deterministically from ``seed``.

    Returns one dict per utterance (``utt_id``, ``speaker``, ``gender``, ``emotion``, ``text``,
    ``file`` plus the synthesis settings), sorted by ``utt_id``. Raises ValueError for more
    speakers than ``SPEAKERS`` defines or an emotion without an expression/prosody definition.
    """
    if not 1 <= n_speakers <= len(SPEAKERS):
        raise ValueError(f"n_speakers must be in 1..{len(SPEAKERS)}, got {n_speakers}")
    unknown = [e for e in emotions if e not in PROSODY]
    if unknown:
        raise ValueError(f"unsupported emotions {unknown}; choose from {tuple(PROSODY)}")
    plan = []
    for s_idx, spk in enumerate(SPEAKERS[:n_speakers]):
        for emotion in emotions:
            # Walk shuffled pools instead of sampling with replacement, so a speaker does not say
            # the same sentence twice in one class until a pool is exhausted.
            text_rng = _utterance_rng(seed, s_idx, emotion, 0, _TEXT_STREAM)
            pools = {True: CLASS_SENTENCES[emotion], False: CARRIER_SENTENCES}
            orders = {key: text_rng.permutation(len(pool)) for key, pool in pools.items()}
            used = {True: 0, False: 0}
            for k in range(utterances_per_class):
                rng = _utterance_rng(seed, s_idx, emotion, k, _PLAN_STREAM)
                from_class = bool(rng.random() < 0.5)
                order = orders[from_class]
                text = pools[from_class][order[used[from_class] % len(order)]]
                used[from_class] += 1
                p = PROSODY[emotion]
                utt_id = f"{spk.name}_{emotion}_{k:03d}"
                plan.append(dict(
                    utt_id=utt_id, speaker=spk.name, gender=spk.gender, emotion=emotion, text=text,
                    file=f"{spk.name}/{utt_id}.mp4", speaker_idx=s_idx, index=k, voice=spk.voice,
                    pitch=int(np.clip(round(spk.pitch + p["pitch"] + rng.normal(0, 3)), 0, 100)),
                    pitch_range=int(np.clip(
                        round(spk.pitch_range + p["pitch_range"] + rng.normal(0, 4)), 0, 100)),
                    rate=int(round(spk.rate * p["rate"] * (1 + rng.normal(0, 0.04)))),
                    volume=int(np.clip(round(_BASE_VOLUME * p["volume"] * (1 + rng.normal(0, 0.06))),
                                       10, _MAX_VOLUME)),
                ))
    return sorted(plan, key=lambda u: u["utt_id"])


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def _mouth_openness(audio: np.ndarray, sample_rate: int, n_frames: int, fps: int) -> np.ndarray:
    """Per-video-frame mouth opening in [0, 1] from the RMS of the audio under that frame."""
    hop = sample_rate / fps
    out = np.zeros(n_frames, np.float32)
    for i in range(n_frames):
        chunk = audio[int(i * hop): int((i + 1) * hop)]
        if chunk.size:
            rms = float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2)))
            out[i] = (rms - _MOUTH_RMS_FLOOR) / (_MOUTH_RMS_FULL - _MOUTH_RMS_FLOOR)
    # Light smoothing: real jaws do not snap shut between syllables within 100 ms.
    out = np.clip(out, 0.0, 1.0)
    if n_frames > 2:
        out[1:-1] = np.maximum(out[1:-1], 0.5 * (out[:-2] + out[2:]) * 0.8)
    return out ** 0.8


_WORKER: dict = {}


def _init_worker() -> None:
    cv2.setNumThreads(1)  # parallelism comes from the process pool
    _WORKER["tts"] = EspeakSynthesizer()


def _render_utterance(job: tuple[dict, Path, int, int, int]) -> str:
    """Synthesise, animate and mux one utterance; returns its utt_id."""
    utt, root, seed, fps, frame_size = job
    if "tts" not in _WORKER:
        _init_worker()
    tts = _WORKER["tts"]
    audio = tts.synthesize(utt["text"], utt["voice"], utt["rate"], utt["pitch"], utt["pitch_range"],
                           utt["volume"])
    sr = tts.sample_rate
    audio = np.concatenate([np.zeros(int(_LEAD_SILENCE_S * sr), np.float32), audio,
                            np.zeros(int(_TAIL_SILENCE_S * sr), np.float32)])
    rng = _utterance_rng(seed, utt["speaker_idx"], utt["emotion"], utt["index"], _RENDER_STREAM)
    audio = (audio + rng.normal(0.0, _NOISE_STD, audio.shape)).astype(np.float32)

    n_frames = max(1, int(np.ceil(len(audio) / sr * fps)))
    mouth = _mouth_openness(audio, sr, n_frames, fps)
    style = SPEAKERS[utt["speaker_idx"]].face
    frames = np.stack([render_face(utt["emotion"], style, m, frame_size, rng) for m in mouth])

    out_path = root / utt["file"]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="demo_synth_") as tmp:
        wav_path = Path(tmp) / "audio.wav"
        _write_wav(wav_path, audio, sr)
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error",
            # ffmpeg's SIMD paths (swscale's RGB->YUV, the AAC encoder's float DSP) and x264's
            # assembly are chosen per CPU and are not bit-exact with the C code: measured here,
            # -cpuflags 0 alone changed every video stream and 3 of 24 audio streams, and x264
            # asm=0 every video stream (x264's asm, e.g. the float mbtree propagation, is not
            # bit-exact with its C code). Pinning both to C makes the bytes a function of the
            # inputs and the ffmpeg build, not of the machine. Cost, measured on the 160-clip demo in one
            # process: 20.5 s -> 43.4 s (x264 in C, ~0.14 s per clip); media 0.05 % smaller.
            "-cpuflags", "0",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{frame_size}x{frame_size}", "-r", str(fps),
            "-i", "-", "-i", str(wav_path), "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "medium", "-crf", "20",
            "-x264-params", "asm=0",
            "-c:a", "aac", "-b:a", "64k",
            # Bit-exact, single-threaded, metadata-free output so reruns give identical bytes (and
            # DVC hashes do not churn).
            "-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
            "-map_metadata", "-1", str(out_path),
        ]
        proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
        if proc.returncode != 0:
            stderr = proc.stderr.decode(errors="replace")
            raise RuntimeError(f"ffmpeg failed for {utt['utt_id']}: {stderr}")
    return utt["utt_id"]


def generate_demo_corpus(
    out_dir,
    *,
    seed: int = 0,
    n_speakers: int = 8,
    utterances_per_class: int = 5,
    emotions: tuple[str, ...] = DEFAULT_EMOTIONS,
    fps: int = 10,
    frame_size: int = 96,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Generate the synthetic audio-visual emotion corpus into ``out_dir`` and return its path.

    Writes ``n_speakers × len(emotions) × utterances_per_class`` mp4 clips plus ``metadata.csv``
    (see the module docstring for the layout). The tree is built in a sibling ``<out_dir>.tmp``
    and renamed into place only when complete, replacing any existing ``out_dir``, so an
    interrupted run never leaves a complete-looking corpus. ``workers`` processes (each with its
    own espeak-ng instance) render in parallel; ``workers <= 1`` renders in this process. Workers
    use the ``spawn`` start method, so scripts calling this with ``workers > 1`` need the usual
    ``if __name__ == "__main__":`` guard. Output is a pure function of the arguments other than
    ``workers`` and ``progress``.
    """
    if frame_size % 2:
        raise ValueError(f"frame_size must be even for yuv420p, got {frame_size}")
    out_dir = Path(out_dir).absolute()
    plan = plan_utterances(seed, n_speakers, utterances_per_class, tuple(emotions))
    tmp_dir = out_dir.with_name(out_dir.name + ".tmp")
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    tmp_dir.mkdir(parents=True)

    jobs = [(utt, tmp_dir, seed, fps, frame_size) for utt in plan]
    with tqdm(total=len(jobs), desc="demo corpus", unit="utt", disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                _render_utterance(job)
                bar.update()
        else:
            # spawn: children must not inherit a half-initialised espeak or OpenCV thread pool.
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
                for _ in pool.map(_render_utterance, jobs, chunksize=4):
                    bar.update()

    columns = ["utt_id", "speaker", "gender", "emotion", "text", "file"]
    with open(tmp_dir / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(plan)

    # Swap in the finished tree; the old one is removed only after the new one is in place.
    old_dir = out_dir.with_name(out_dir.name + ".old")
    if old_dir.exists():
        shutil.rmtree(old_dir)
    if out_dir.exists():
        out_dir.rename(old_dir)
    tmp_dir.rename(out_dir)
    if old_dir.exists():
        shutil.rmtree(old_dir)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``python -m pipeline.corpora.synth.demo OUT_DIR [options]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speakers", type=int, default=8, help=f"1..{len(SPEAKERS)}")
    parser.add_argument("--per-class", type=int, default=5, help="utterances per speaker and emotion")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--frame-size", type=int, default=96)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    path = generate_demo_corpus(
        args.out_dir, seed=args.seed, n_speakers=args.speakers, utterances_per_class=args.per_class,
        fps=args.fps, frame_size=args.frame_size, workers=args.workers, progress=not args.no_progress,
    )
    print(path)


if __name__ == "__main__":
    main()
