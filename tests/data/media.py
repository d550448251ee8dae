"""Tiny synthetic media for fake corpora: tones as wav, moving squares + tone as mp4."""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np


def tone(seconds: float = 0.6, sample_rate: int = 16000, freq: float = 220.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A tone with a little noise: [T] or [T, C] float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    sig = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=t.size)
    sig = sig.astype(np.float32)
    return np.repeat(sig[:, None], channels, axis=1) if channels > 1 else sig


def write_wav(path: str | Path, audio: np.ndarray | None = None, sample_rate: int = 16000, **tone_kw) -> Path:
    """Write int16 PCM wav; ``audio`` defaults to :func:`tone`."""
    path = Path(path)
    if audio is None:
        audio = tone(sample_rate=sample_rate, **tone_kw)
    audio = audio[:, None] if audio.ndim == 1 else audio
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(audio.shape[1])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def write_mp4(
    path: str | Path,
    seconds: float = 0.6,
    *,
    freq: float = 220.0,
    channels: int = 1,
    sample_rate: int = 16000,
    size: int = 32,
    fps: int = 5,
    video: bool = True,
    audio: bool = True,
    container_ext: str | None = None,
) -> Path:
    """Write a short clip with ffmpeg: a moving square (H.264) and/or a tone (AAC)."""
    from pipeline.core.media import ffmpeg_exe

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_frames = max(1, int(seconds * fps))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y"]
        if video:
            frames = np.zeros((n_frames, size, size, 3), np.uint8)
            for i in range(n_frames):
                x = (i * 3) % (size - 8)
                frames[i, 8:16, x : x + 8] = (255, 128, 0)
            cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}", "-r", str(fps), "-i", "-"]
        if audio:
            wav = write_wav(Path(tmp) / "a.wav", tone(seconds, sample_rate, freq, channels), sample_rate)
            cmd += ["-i", str(wav)]
        if video:
            cmd += ["-c:v", "libx264" if path.suffix != ".avi" else "mpeg4", "-pix_fmt", "yuv420p"]
        if audio:
            cmd += ["-c:a", "aac" if path.suffix != ".avi" else "pcm_s16le"]
        cmd += [str(path)]
        subprocess.run(cmd, input=frames.tobytes() if video else None, check=True, capture_output=True)
    return path
