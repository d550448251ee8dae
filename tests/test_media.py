import numpy as np
import pytest

from pipeline.core.errors import MediaError
from pipeline.core.media import decode_audio, decode_frames
from tests.conftest import RAVDESS_MP4, needs_ravdess, tone, write_wav


@pytest.mark.parametrize("rate,channels", [(8000, 1), (44100, 2), (48000, 6)])
def test_any_rate_and_channel_count_becomes_16k_mono(tmp_path, rate, channels):
    path = write_wav(tmp_path / "x.wav", tone(1.5, rate, channels=channels), rate)
    audio = decode_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 24000) <= 16  # 1.5 s at 16 kHz, resampler edge effects only
    # channels are averaged: identical channels keep the tone's level (ffmpeg's -ac 1 gave 1.4x, 3.4x)
    assert 0.25 < np.abs(audio).max() < 0.4


def test_missing_empty_and_garbage_files_name_the_file(tmp_path):
    with pytest.raises(MediaError, match="nope.wav: file not found"):
        decode_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(MediaError, match="empty.wav: file is empty"):
        decode_audio(tmp_path / "empty.wav")
    (tmp_path / "junk.mp4").write_bytes(b"not a media file at all" * 100)
    with pytest.raises(MediaError, match="junk.mp4"):
        decode_audio(tmp_path / "junk.mp4")


@needs_ravdess
def test_truncated_mp4_is_an_error_not_a_short_clip(tmp_path):
    data = RAVDESS_MP4.read_bytes()
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="cut.mp4: cannot"):
        decode_audio(bad)


@needs_ravdess
def test_real_mp4_audio_and_frames():
    audio = decode_audio(RAVDESS_MP4)
    assert 3.0 < len(audio) / 16000 < 4.0  # the clip is ~3.3 s
    frames = decode_frames(RAVDESS_MP4, fps=2, size=64)
    assert frames.shape[1:] == (64, 64, 3) and frames.dtype == np.uint8
    assert 6 <= len(frames) <= 8


def test_audio_only_file_has_no_frames(tmp_path):
    path = write_wav(tmp_path / "a.wav", tone(1.0, 16000), 16000)
    assert decode_frames(path, fps=2, size=32).shape == (0, 32, 32, 3)


def test_start_end_cut_a_segment(tmp_path):
    path = write_wav(tmp_path / "long.wav", tone(3.0, 16000), 16000)
    audio = decode_audio(path, start=1.0, end=1.5)
    assert abs(len(audio) - 8000) <= 32
