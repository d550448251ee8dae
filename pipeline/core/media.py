"""Decoding audio and video with the ffmpeg binary shipped in the ``imageio-ffmpeg`` wheel.

ffmpeg reads every container our corpora use (wav, flac, mp3, mp4/AAC, avi, mkv), resamples to the
requested rate and downmixes any channel count to mono, so the rest of the pipeline only ever sees
16 kHz mono float32 audio and fixed-size RGB frames. Failures raise :class:`MediaError` naming the
file and ffmpeg's reason.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import numpy as np

from pipeline.core.audio import SAMPLE_RATE
from pipeline.core.errors import MediaError


@functools.cache
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(path, "file not found")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)")


def _window(start: float | None, end: float | None) -> list[str]:
    """ffmpeg input options selecting [start, end) seconds (input seeking: decodes only that span)."""
    opts = []
    if start is not None and start > 0:
        opts += ["-ss", f"{start:.6f}"]
    if end is not None:
        opts += ["-to", f"{end:.6f}"]
    return opts


def _run(path: Path, args: list[str], window: list[str] = ()) -> bytes:
    _check_file(path)
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", *window, "-i", str(path), *args, "-"]
    proc = subprocess.run(cmd, capture_output=True)
    err = proc.stderr.decode(errors="replace").strip()
    if proc.returncode != 0 or err:
        # At -v error ffmpeg only prints real problems (truncated moov/mdat, corrupt packets);
        # a partly decodable file is still a bad file, never a silently shortened one.
        reason = _summarise(err) or f"ffmpeg exited with code {proc.returncode}"
        raise MediaError(path, f"cannot decode ({reason})")
    return proc.stdout


def _summarise(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    # Drop ffmpeg's "[mov,mp4 @ 0x55...]" prefixes: addresses make messages unstable.
    lines = [re.sub(r"\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", ln) for ln in lines]
    uniq = list(dict.fromkeys(lines))
    return "; ".join(uniq[:3])


def decode_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    start: float | None = None,
    end: float | None = None,
    streams: list[str] | None = None,
) -> np.ndarray:
    """Decode the first audio stream of ``path`` to mono float32 at ``sample_rate``.

    Multichannel audio uses ffmpeg's standard downmix (e.g. ITU coefficients for 5.1), so peaks
    can slightly exceed 1.0; samples are float, nothing is clipped.
    """
    path = Path(path)
    if "Audio" not in (streams if streams is not None else probe_streams(path)):
        raise MediaError(path, "no audio stream")
    raw = _run(path, ["-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le"], _window(start, end))
    audio = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if audio.size == 0:
        span = "" if start is None and end is None else f" in [{start}, {end}] s"
        raise MediaError(path, f"audio stream decodes to 0 samples{span}")
    if not np.isfinite(audio).all():
        raise MediaError(path, "audio contains NaN or infinite samples")
    return audio


def decode_frames(
    path: str | Path,
    fps: float,
    size: int,
    start: float | None = None,
    end: float | None = None,
    streams: list[str] | None = None,
) -> np.ndarray:
    """Sample RGB frames at ``fps``, letterboxed to ``size``×``size``: uint8 [T, size, size, 3].

    ``streams`` (from :func:`probe_streams`) saves a probe when the caller already has it. A file
    without a video stream returns an empty [0, size, size, 3] array (audio-only clips are
    legitimate in several corpora); a video stream that fails to decode raises MediaError.
    """
    path = Path(path)
    if "Video" not in (streams if streams is not None else probe_streams(path)):
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    vf = (
        f"fps={fps},scale={size}:{size}:force_original_aspect_ratio=decrease,"
        f"pad={size}:{size}:(ow-iw)/2:(oh-ih)/2"
    )
    raw = _run(path, ["-map", "0:v:0", "-an", "-vf", vf, "-pix_fmt", "rgb24", "-f", "rawvideo"], _window(start, end))
    frame_bytes = size * size * 3
    if len(raw) % frame_bytes:
        raise MediaError(path, "video decoded to a partial frame")
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, size, size, 3).copy()


def probe_streams(path: str | Path) -> list[str]:
    """Stream kinds ffmpeg reports for ``path`` (e.g. ['Video', 'Audio'])."""
    path = Path(path)
    _check_file(path)
    proc = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)], capture_output=True
    )
    text = proc.stderr.decode(errors="replace")
    if "Invalid data found" in text or "moov atom not found" in text:
        raise MediaError(path, f"cannot read container ({_summarise(_error_lines(text))})")
    return re.findall(r"Stream #\d+:\d+.*?: (Video|Audio|Subtitle|Data)", text)


def _error_lines(text: str) -> str:
    return "\n".join(
        ln for ln in text.splitlines() if "Invalid" in ln or "moov" in ln or "error" in ln.lower()
    )
