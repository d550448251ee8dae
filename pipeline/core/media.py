"""Decoding audio and video with the ffmpeg binary shipped in the ``imageio-ffmpeg`` wheel.

ffmpeg reads every container our corpora use (wav, flac, mp3, mp4/AAC, avi, mkv) and resamples to
the requested rate; the rest of the pipeline only ever sees 16 kHz mono float32 audio and fixed-size
RGB frames. Multichannel audio is downmixed here, not by ffmpeg: all channels are decoded and
averaged (ffmpeg's ``-ac 1`` applies an unnormalised ITU downmix: the same signal on every channel
came out 1.41 times louder from stereo, 3.41 times from 5.1); mono files decode exactly as with
``-ac 1``.

Failures raise :class:`MediaError` naming the file and the reason: a file ffmpeg cannot read or
reports errors for, and also a *truncated* file, one that decodes to less audio than its container
declares (ffmpeg decodes what is there of a cut wav or mp3, exits 0 and says nothing at ``-v error``).
:func:`probe` runs ``ffmpeg -i`` once per file and returns what the checks need (stream kinds,
declared duration, channel count); ``probe_streams`` is its stream-kinds-only form.
"""

from __future__ import annotations

import functools
import io
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pipeline.core.audio import SAMPLE_RATE
from pipeline.core.errors import MediaError

# A decode may fall short of the declared duration by max(TRUNCATION_MIN_S, TRUNCATION_FRACTION ×
# expected, LOSSY_SLACK_SAMPLES at the codec's rate for lossy codecs) before it counts as truncated.
# Why not zero: ffmpeg prints container durations rounded to 10 ms and the resampler moves the
# length by a few samples; lossy codecs have encoder delay and padding (AAC-LC 1024 samples of
# priming plus a partly filled last frame, HE-AAC 2048-sample frames, MP3 1152-sample frames,
# Vorbis blocks of up to 2048). mp4 edit lists and MP3 gapless headers trim them exactly (measured:
# 0 samples off), but a Matroska DURATION tag counts AAC's priming frame that the decoder drops:
# measured 42 ms short at 16 kHz and 104-116 ms short at 8 kHz, which the sample-based slack
# (0.256 s at 16 kHz, below 0.1 s at 44.1/48 kHz) absorbs with room for HE-AAC. Real truncation
# (a cut download, a disk-full copy) loses a large part of a file, so loose bounds cost little.
TRUNCATION_MIN_S = 0.1
TRUNCATION_FRACTION = 0.02
LOSSY_SLACK_SAMPLES = 4096
_LOSSLESS_CODECS = ("pcm_", "flac", "alac", "wavpack", "tta", "ape", "truehd", "mlp")


@functools.cache
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learnt about a file (one ``ffmpeg -i`` run, plus a WAV header read).

    ``streams``: stream kinds in file order (``('Video', 'Audio')``). ``duration``: the declared
    length of the audio in seconds — a WAV header's data size, else the audio stream's own
    ``DURATION`` tag (Matroska), else the container's ``Duration`` when the file has no video
    stream; ``None`` when unknown. Not trusted, hence ``None``: ``N/A``; a duration ffmpeg only
    estimated from the file size (it shrinks with a cut file and is wrong for VBR); the container
    duration of a file with video, which is the longest stream's and, without edit lists (flv,
    avi), includes the video's B-frame delay (measured: a 1.3 s flv at 5 fps declares 1.7 s).
    ``audio_channels``, ``audio_codec``, ``audio_rate``: the first audio stream's channel count (as
    its layout name says; ``None`` when unknown), ffmpeg codec name and sample rate in Hz.
    ``audio_channels`` is informational: :func:`decode_audio` reads the count from the decoded
    stream itself.
    """

    streams: tuple[str, ...]
    duration: float | None = None
    audio_channels: int | None = None
    audio_codec: str | None = None
    audio_rate: int | None = None

    @property
    def has_audio(self) -> bool:
        return "Audio" in self.streams

    @property
    def has_video(self) -> bool:
        return "Video" in self.streams


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
    proc = subprocess.run(cmd, capture_output=True, check=False)
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


def _resolve_info(path: Path, streams: MediaInfo | Sequence[str] | None) -> tuple[MediaInfo, Sequence[str]]:
    """The probe of ``path`` and its stream kinds; a legacy list from :func:`probe_streams` is
    honoured for the kinds, the rest comes from :func:`probe`'s cache (no second ffmpeg run)."""
    if isinstance(streams, MediaInfo):
        return streams, streams.streams
    info = probe(path)
    return info, (info.streams if streams is None else streams)


def decode_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    start: float | None = None,
    end: float | None = None,
    streams: MediaInfo | Sequence[str] | None = None,
) -> np.ndarray:
    """Decode the first audio stream of ``path`` to mono float32 at ``sample_rate``.

    ``start``/``end`` (seconds) cut a segment. ``streams`` is the file's :func:`probe` (or, for old
    callers, the list from :func:`probe_streams`); without it the file is probed here.

    Multichannel audio is downmixed by averaging the channels (mono = mean over channels), so the
    level of a channel shared by all channels is kept and |x| <= 1 stays true; mono decodes
    bit-identically to ffmpeg's ``-ac 1``. Raises :class:`MediaError` for a file without audio, one
    ffmpeg reports errors for, NaN/inf samples, an empty result, and a truncated file: audio shorter
    than the declared duration (clipped to the ``start``/``end`` window) by more than
    max(:data:`TRUNCATION_MIN_S`, :data:`TRUNCATION_FRACTION` × expected, and for lossy codecs
    :data:`LOSSY_SLACK_SAMPLES` at the codec's rate). No check where the duration is unknown.
    """
    path = Path(path)
    info, kinds = _resolve_info(path, streams)
    if "Audio" not in kinds:
        raise MediaError(path, "no audio stream")
    # All channels as float32 WAV on stdout: its header says how many channels were written.
    args = ["-map", "0:a:0", "-vn", "-ar", str(sample_rate), "-c:a", "pcm_f32le", "-f", "wav"]
    channels, data = _wav_samples(path, _run(path, args, _window(start, end)))
    audio = np.frombuffer(data, dtype="<f4")
    if channels > 1:
        # float64 accumulation: identical channels average back to exactly their samples
        audio = audio.reshape(-1, channels).mean(axis=1, dtype=np.float64)
    audio = audio.astype(np.float32)
    _check_length(path, len(audio) / sample_rate, info, start, end)
    if audio.size == 0:
        span = "" if start is None and end is None else f" in [{start}, {end}] s"
        raise MediaError(path, f"audio stream decodes to 0 samples{span}")
    if not np.isfinite(audio).all():
        raise MediaError(path, "audio contains NaN or infinite samples")
    return audio


def _check_length(path: Path, got: float, info: MediaInfo, start: float | None, end: float | None) -> None:
    """Raise if ``got`` seconds fall short of the declared duration (clipped to the window)."""
    declared = info.duration
    if declared is None:
        return
    lo = max(start or 0.0, 0.0)
    hi = declared if end is None else min(end, declared)
    expected = hi - lo
    if expected <= 0:  # the window starts at or after the declared end: nothing is owed
        return
    tolerance = max(TRUNCATION_MIN_S, TRUNCATION_FRACTION * expected)
    if info.audio_rate and not (info.audio_codec or "pcm_").startswith(_LOSSLESS_CODECS):
        tolerance = max(tolerance, LOSSY_SLACK_SAMPLES / info.audio_rate)
    if expected - got > tolerance:
        span = "" if start is None and end is None else f"[{lo:.3f}, {hi:.3f}] s "
        raise MediaError(path, f"truncated: {span}decodes to {got:.3f} s but the container declares {declared:.3f} s")


def decode_frames(
    path: str | Path,
    fps: float,
    size: int,
    start: float | None = None,
    end: float | None = None,
    streams: MediaInfo | Sequence[str] | None = None,
) -> np.ndarray:
    """Sample RGB frames at ``fps``, letterboxed to ``size``×``size``: uint8 [T, size, size, 3].

    ``streams`` (from :func:`probe` or :func:`probe_streams`) saves a probe when the caller already
    has it. A file without a video stream returns an empty [0, size, size, 3] array (audio-only
    clips are legitimate in several corpora); a video stream that fails to decode raises MediaError.
    """
    path = Path(path)
    kinds = streams.streams if isinstance(streams, MediaInfo) else streams
    if "Video" not in (kinds if kinds is not None else probe(path).streams):
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


def probe(path: str | Path) -> MediaInfo:
    """Stream kinds, declared duration and audio channel count of ``path`` (see :class:`MediaInfo`).

    One ``ffmpeg -i`` run per file version: results are cached by absolute path, size and mtime, so that
    :func:`probe_streams` followed by :func:`decode_audio` still runs ffmpeg's probe only once.
    """
    path = Path(path)
    _check_file(path)
    st = path.stat()
    return _probe(str(path), os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=512)
def _probe(path_str: str, _abspath: str, _size: int, _mtime_ns: int) -> MediaInfo:
    path = Path(path_str)
    proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", path_str], capture_output=True, check=False)
    text = proc.stderr.decode(errors="replace")
    if "Invalid data found" in text or "moov atom not found" in text:
        raise MediaError(path, f"cannot read container ({_summarise(_error_lines(text))})")
    kinds = tuple(re.findall(r"^\s*Stream #\d+:\d+.*?: (Video|Audio|Subtitle|Data)", text, re.MULTILINE))
    channels, codec, rate, stream_duration = _audio_stream_facts(text)
    duration = _wav_declared_duration(path)
    if duration is None:
        duration = stream_duration
    if duration is None and "Video" not in kinds and "Estimating duration from bitrate" not in text:
        # (see MediaInfo: a bitrate estimate, or a duration that may be the video's, is no declaration)
        m = re.search(r"^\s*Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text, re.MULTILINE)
        duration = _hms(m) if m else None
    return MediaInfo(kinds, duration, channels, codec, rate)


def probe_streams(path: str | Path) -> list[str]:
    """Stream kinds ffmpeg reports for ``path`` (e.g. ['Video', 'Audio']); see :func:`probe`."""
    return list(probe(path).streams)


def _hms(m: re.Match) -> float:
    return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


# Channel counts of ffmpeg's named layouts that are not "N.M[.K]" (5.1(side) is 6, 5.1.4 is 10).
_NAMED_LAYOUTS = {"mono": 1, "stereo": 2, "downmix": 2, "binaural": 2, "quad": 4, "hexagonal": 6,
                  "octagonal": 8, "cube": 8, "hexadecagonal": 16}


def _layout_channels(layout: str) -> int | None:
    layout = layout.strip()
    if m := re.fullmatch(r"(\d+) channels?\b.*", layout):  # "6 channels", "3 channels (FL+FR+LFE)"
        return int(m[1])
    if m := re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?(?:\(.*\))?", layout):
        return sum(int(g) for g in m.groups() if g)
    if (name := layout.split("(")[0]) in _NAMED_LAYOUTS:
        return _NAMED_LAYOUTS[name]
    if re.fullmatch(r"[A-Z]+(\+[A-Z]+)+", layout):  # a custom order: "FL+FR+FC"
        return layout.count("+") + 1
    return None


def _audio_stream_facts(text: str) -> tuple[int | None, str | None, int | None, float | None]:
    """Channel count, codec, sample rate and own ``DURATION`` tag of the first audio stream in
    ``ffmpeg -i`` output (all None without an audio stream)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if a := re.match(r"\s*Stream #\d+:\d+.*?: Audio: ([\w-]+)", line):
            m = re.search(r"(\d+) Hz, ([^,]+)", line)
            channels = _layout_channels(m[2]) if m else None
            rate = int(m[1]) if m else None
            duration = None
            for sub in lines[i + 1 :]:  # the stream's metadata block, indented below its line
                if re.match(r"\s*Stream #", sub) or not sub.startswith("    "):
                    break
                if d := re.match(r"\s+DURATION\s*:\s*(\d+):(\d+):(\d+(?:\.\d+)?)", sub, re.IGNORECASE):
                    duration = _hms(d)
            return channels, a[1], rate, duration
    return None, None, None, None


@dataclass
class _WavHeader:
    format_tag: int
    channels: int
    sample_rate: int
    byte_rate: int
    block_align: int
    bits: int
    fact_samples: int | None
    data_offset: int | None  # None: no data chunk found
    data_size: int | None


_WAV_PCM_TAGS = {1, 3, 6, 7, 0xFFFE}  # PCM, float, A-law, mu-law, extensible (PCM/float subformats)


def _read_wav_header(f: BinaryIO) -> _WavHeader | None:
    """Walk a RIFF/WAVE (or RF64/BW64) header up to the data chunk; None if it is not a WAV."""
    head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
        return None
    fmt, fact, ds64_data = None, None, None
    while True:
        hdr = f.read(8)
        if len(hdr) < 8:
            break
        cid, size = hdr[:4], int.from_bytes(hdr[4:], "little")
        if cid == b"data":
            if size == 0xFFFFFFFF and ds64_data is not None:
                size = ds64_data
            if fmt is None:
                return None
            return _WavHeader(*fmt, fact, f.tell(), size)
        if cid in (b"fmt ", b"fact", b"ds64"):
            if size > 1 << 16:
                return None
            body = f.read(size)
            if cid == b"fmt " and len(body) >= 16:
                tag, ch, sr, br, ba, bits = (int.from_bytes(body[a:b], "little") for a, b in
                                             ((0, 2), (2, 4), (4, 8), (8, 12), (12, 14), (14, 16)))
                fmt = (tag, ch, sr, br, ba, bits)
            elif cid == b"fact" and len(body) >= 4:
                fact = int.from_bytes(body[:4], "little")
            elif cid == b"ds64" and len(body) >= 16:
                ds64_data = int.from_bytes(body[8:16], "little")
        else:
            f.seek(size, io.SEEK_CUR)
        if size % 2:  # chunks are word-aligned
            f.seek(1, io.SEEK_CUR)
    return None if fmt is None else _WavHeader(*fmt, fact, None, None)


def _wav_declared_duration(path: Path) -> float | None:
    """Seconds of audio a WAV header declares, or None (not a WAV, or a streamed one of unknown size).

    ffmpeg itself ignores a data size larger than the file and estimates the duration from the
    file size, so its ``Duration`` cannot reveal a cut WAV: read the header here.
    """
    try:
        with open(path, "rb") as f:
            h = _read_wav_header(f)
    except OSError:
        return None
    # 0 and 0xFFFFFFFF mean "unknown, up to the end of the file" (streamed writers; ffmpeg agrees)
    if h is None or h.data_size in (None, 0, 0xFFFFFFFF) or h.sample_rate <= 0:
        return None
    if h.format_tag in _WAV_PCM_TAGS and h.block_align > 0:
        return (h.data_size // h.block_align) / h.sample_rate
    if h.fact_samples:  # compressed (ADPCM, GSM, ...): the fact chunk counts the samples
        return h.fact_samples / h.sample_rate
    return h.data_size / h.byte_rate if h.byte_rate > 0 else None


def _wav_samples(path: Path, raw: bytes) -> tuple[int, bytes]:
    """Channel count and sample bytes of the float32 WAV that ffmpeg wrote to a pipe."""
    h = _read_wav_header(io.BytesIO(raw))
    if h is None or h.data_offset is None or h.channels < 1 or h.bits != 32:
        raise MediaError(path, "cannot decode (ffmpeg wrote no readable float32 WAV stream)")
    data = raw[h.data_offset :]  # a pipe cannot be rewound: the data size is a placeholder
    if len(data) % (4 * h.channels):
        raise MediaError(path, "audio decoded to a partial sample frame")
    return h.channels, data


def _error_lines(text: str) -> str:
    return "\n".join(
        ln for ln in text.splitlines() if "Invalid" in ln or "moov" in ln or "error" in ln.lower()
    )
