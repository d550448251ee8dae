"""Strict decoding: truncated files are errors, multichannel audio is averaged, quality warnings."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from pipeline.core import media
from pipeline.core.audio import audio_warnings
from pipeline.core.errors import MediaError
from pipeline.core.media import MediaInfo, decode_audio, ffmpeg_exe, probe, probe_streams
from tests.conftest import EMODB, RAVDESS_MP4, REAL, needs_emodb

SR = 16000


def sine(seconds: float, rate: int, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def write_pcm16(path: Path, audio: np.ndarray, rate: int) -> Path:
    """int16 wav with the stdlib; ``audio`` is [T] or [T, C]."""
    audio = audio[:, None] if audio.ndim == 1 else audio
    with wave.open(str(path), "wb") as w:
        w.setnchannels(audio.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.round(np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args], check=True)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.fixture
def cut_wav(tmp_path) -> Path:
    """A 16 kHz wav whose header declares 1.898 s but that holds only the first half of its data."""
    full = write_pcm16(tmp_path / "full.wav", sine(1.898, SR), SR)
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + (len(data) - 44) // 2])
    return cut


# --- truncation -------------------------------------------------------------------------------


def test_truncated_wav_is_an_error_naming_the_file(cut_wav):
    assert probe(cut_wav).duration == pytest.approx(1.898, abs=1e-4)  # from the header, not ffmpeg's estimate
    with pytest.raises(MediaError) as err:
        decode_audio(cut_wav)
    assert str(cut_wav) in str(err.value)
    assert err.value.reason == "truncated: decodes to 0.949 s but the container declares 1.898 s"


def test_windows_of_a_truncated_wav(cut_wav):
    part = decode_audio(cut_wav, start=0.2, end=0.8)  # inside the data that is there: fine
    assert abs(len(part) - 0.6 * SR) <= 16
    for start, end in [(1.2, 1.6), (0.5, 1.5), (0.5, None)]:  # wholly or partly in the missing half
        with pytest.raises(MediaError, match=r"cut\.wav: truncated: \[.*\] s decodes to"):
            decode_audio(cut_wav, start=start, end=end)


def test_windows_past_the_declared_end_are_not_truncation(tmp_path):
    path = write_pcm16(tmp_path / "ok.wav", sine(1.898, SR), SR)
    assert abs(len(decode_audio(path, start=1.5, end=5.0)) - 0.398 * SR) <= 16
    assert len(decode_audio(path)) == int(1.898 * SR)
    with pytest.raises(MediaError, match="decodes to 0 samples"):  # starts after the end: empty, not "truncated"
        decode_audio(path, start=3.0, end=4.0)


def test_truncated_mp3_is_caught_from_the_container_duration(tmp_path):
    wav = write_pcm16(tmp_path / "a.wav", sine(3.0, SR), SR)
    mp3 = tmp_path / "a.mp3"
    ffmpeg("-i", str(wav), "-c:a", "libmp3lame", str(mp3))
    assert abs(len(decode_audio(mp3)) - 3.0 * SR) <= 16  # intact: gapless info trims delay and padding
    data = mp3.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"cut\.mp3: truncated: decodes to 1\.\d+ s but the container declares 3\.0"):
        decode_audio(cut)


@pytest.mark.parametrize("ext,rate,video", [("mp4", 48000, False), ("mp4", 16000, True), ("m4a", 44100, False),
                                            ("mkv", 8000, False), ("mkv", 16000, True)])
def test_aac_is_not_a_false_positive(tmp_path, ext, rate, video):
    """AAC priming/padding: mp4 edit lists trim it exactly; a Matroska DURATION tag counts the
    priming frame (at 8 kHz 0.1 s more than decodes), which the lossy-codec slack must absorb."""
    wav = write_pcm16(tmp_path / "a.wav", sine(1.898, rate), rate)  # 1.898 s: the 8 kHz mkv falls 0.106 s short
    out = tmp_path / f"a.{ext}"
    inputs = ["-f", "lavfi", "-i", "color=c=gray:s=32x32:r=25:d=1.898"] if video else []
    ffmpeg(*inputs, "-i", str(wav), *(["-c:v", "libx264"] if video else []), "-c:a", "aac", str(out))
    info = probe(out)
    assert info.audio_codec == "aac" and info.audio_rate == rate
    audio = decode_audio(out, streams=info)
    assert abs(len(audio) / SR - 1.898) < 0.15


def test_a_file_with_video_is_not_checked_against_the_container_duration(tmp_path):
    """flv has no edit lists: its Duration includes the video's B-frame delay (1.3 s declares 1.7 s)."""
    wav = write_pcm16(tmp_path / "a.wav", sine(1.3, SR), SR)
    flv = tmp_path / "a.flv"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=32x32:r=5:d=1.3", "-i", str(wav),
           "-c:v", "libx264", "-c:a", "aac", str(flv))
    info = probe(flv)
    assert info.streams == ("Video", "Audio") and info.duration is None
    assert len(decode_audio(flv, streams=info)) > 1.2 * SR


def test_probe_runs_once_for_probe_streams_then_decode(tmp_path):
    path = write_pcm16(tmp_path / "a.wav", sine(0.5, SR), SR)
    media._probe.cache_clear()
    kinds = probe_streams(path)
    assert kinds == ["Audio"] and isinstance(kinds, list)
    decode_audio(path, streams=kinds)  # the legacy list: duration etc. from probe's cache
    assert media._probe.cache_info().misses == 1
    write_pcm16(path, sine(0.7, SR), SR)  # a new file version is probed again
    assert probe(path).duration == pytest.approx(0.7)
    assert media._probe.cache_info().misses == 2


def test_probe_reports_channels_duration_and_codec(tmp_path):
    path = write_pcm16(tmp_path / "six.wav", np.zeros((8000, 6), np.float32), 48000)
    info = probe(path)
    assert info == MediaInfo(("Audio",), pytest.approx(8000 / 48000), 6, "pcm_s16le", 48000)
    assert info.has_audio and not info.has_video


@pytest.mark.parametrize("layout,n", [("mono", 1), ("stereo", 2), ("5.1(side)", 6), ("5.1", 6), ("7.1", 8),
                                      ("6 channels", 6), ("3 channels (FL+FR+LFE)", 3), ("quad(side)", 4),
                                      ("5.1.4", 10), ("22.2", 24), ("FL+FR+FC", 3), ("unknown", None)])
def test_layout_names_give_channel_counts(layout, n):
    assert media._layout_channels(layout) == n


# --- downmix ----------------------------------------------------------------------------------


def test_mono_decodes_bit_identically_to_ffmpeg_ac1(tmp_path):
    path = write_pcm16(tmp_path / "m.wav", sine(1.0, 44100) + 0.01 * np.random.default_rng(0).normal(size=44100), 44100)
    old = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn", "-ac", "1", "-ar",
                          str(SR), "-f", "f32le", "-"], capture_output=True, check=True).stdout
    new = decode_audio(path)
    assert new.dtype == np.float32 and new.tobytes() == old


@pytest.mark.parametrize("channels", [2, 6])
def test_identical_channels_keep_their_level(tmp_path, channels):
    mono = decode_audio(write_pcm16(tmp_path / "m.wav", sine(1.0, 48000), 48000))
    multi = decode_audio(write_pcm16(tmp_path / "c.wav", np.repeat(sine(1.0, 48000)[:, None], channels, 1), 48000))
    assert rms(multi) / rms(mono) == pytest.approx(1.0, abs=1e-6)  # ffmpeg's -ac 1 gave 1.41 (stereo), 3.41 (5.1)
    np.testing.assert_allclose(multi, mono, atol=1e-7)


def test_different_channels_average(tmp_path):
    rate = 48000
    chans = [sine(1.0, rate, freq=f, amp=a) for f, a in
             [(220, 0.5), (330, 0.1), (440, 0.3), (550, 0.0), (660, 0.2), (770, 0.4)]]
    multi = decode_audio(write_pcm16(tmp_path / "six.wav", np.stack(chans, 1), rate))
    each = [decode_audio(write_pcm16(tmp_path / f"c{i}.wav", c, rate)) for i, c in enumerate(chans)]
    np.testing.assert_allclose(multi, np.mean(each, axis=0), atol=1e-6)
    assert rms(multi) < max(rms(c) for c in each)


def test_six_channel_aac_mp4_averages(tmp_path):
    wav = write_pcm16(tmp_path / "six.wav", np.repeat(sine(1.0, 48000)[:, None], 6, 1), 48000)
    mp4 = tmp_path / "six.mp4"
    ffmpeg("-i", str(wav), "-c:a", "aac", "-b:a", "384k", str(mp4))
    assert probe(mp4).audio_channels == 6
    audio = decode_audio(mp4)
    assert rms(audio) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


# --- quality warnings -------------------------------------------------------------------------


def test_audio_warnings():
    rng = np.random.default_rng(0)
    assert audio_warnings(np.zeros(SR, np.float32), SR) == ["silent"]
    assert audio_warnings(1e-4 * rng.standard_normal(SR).astype(np.float32), SR) == ["silent"]
    assert audio_warnings(sine(0.02, SR), SR) == ["short"]
    assert audio_warnings(np.zeros(0, np.float32), SR) == ["silent", "short"]
    square = np.sign(sine(1.0, SR, freq=100)).astype(np.float32)
    assert audio_warnings(square, SR) == ["clipped"]
    # speech-like: noise bursts with a syllable envelope, one peak touching full scale
    t = np.arange(2 * SR) / SR
    speech = (0.1 * rng.standard_normal(t.size) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2).astype(np.float32)
    speech[1000] = 1.0
    assert audio_warnings(speech, SR) == []
    assert audio_warnings(sine(0.06, SR), SR) == []


# --- no false positives on real media -----------------------------------------------------------


def test_real_media_decode_without_errors():
    if not REAL.is_dir():
        pytest.skip(f"{REAL} not present")
    files = sorted(EMODB.glob("*.wav")) + sorted(RAVDESS_MP4.parent.glob("*.mp4"))
    assert len(files) >= 2
    for f in files:
        info = probe(f)
        audio = decode_audio(f, streams=info)
        assert len(audio) > 0.5 * SR and audio_warnings(audio, SR) == [], f
        if f.suffix == ".wav":
            assert info.duration == pytest.approx(len(audio) / SR, abs=1e-3), f


@needs_emodb
def test_real_wav_windows_are_not_truncation():
    f = EMODB / "03a01Fa.wav"
    n = len(decode_audio(f))
    assert len(decode_audio(f, start=1.0, end=30.0)) == n - SR
