"""Segmenting: every utterance's media → 16 kHz mono float32 audio + RGB frames, in one Zarr store.

Writes the segments store described in :mod:`pipeline.core.segments`. Bad media either stop the stage
with an error naming the file (``on_bad_media: error``) or are left out and listed in the segment
report (``on_bad_media: skip``) — never dropped silently.
"""

from __future__ import annotations

import itertools
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import zarr
from pydantic import Field
from tqdm import tqdm

from pipeline.core.audio import SAMPLE_RATE
from pipeline.core.hashing import content_key
from pipeline.core.io import atomic_dir
from pipeline.core.manifest import Corpus
from pipeline.core.media import MediaError, decode_audio, decode_frames, probe_streams
from pipeline.core.settings import Settings, parse
from pipeline.core.zarrio import ArrayAppender, offsets_from_lengths, write_array, write_strings

class SegmentSettings(Settings):
    """The ``segment`` section: how media become model inputs."""

    sample_rate: Literal[16000] = SAMPLE_RATE  # every backbone sees 16 kHz mono float32
    fps: float = Field(2.0, ge=0)  # video frames sampled per second (0: no frames)
    frame_size: int = Field(96, ge=16)  # frames letterboxed to frame_size × frame_size RGB
    on_bad_media: Literal["error", "skip"] = "error"  # skip: listed in metrics/skipped.json
    workers: int = Field(2, ge=1)  # parallel ffmpeg decoders


@dataclass
class Decoded:
    uid: str
    audio: np.ndarray | None = None
    frames: np.ndarray | None = None
    error: MediaError | None = None


def _decode_one(uid, audio_path, video_path, start, end, sr: int, fps: float, size: int) -> Decoded:
    try:
        # Probe each file once: audio and video usually come from the same container.
        streams = {audio_path: probe_streams(audio_path)}
        audio = decode_audio(audio_path, sr, start, end, streams=streams[audio_path])
        frames = np.zeros((0, size, size, 3), np.uint8)
        if video_path and fps > 0:
            if video_path not in streams:
                streams[video_path] = probe_streams(video_path)
            frames = decode_frames(video_path, fps, size, start, end, streams=streams[video_path])
        return Decoded(uid, audio, frames)
    except MediaError as err:
        return Decoded(uid, error=err)


def segment_corpus(corpus: Corpus, out_path: str | Path, settings: SegmentSettings | None = None,
                   **options) -> list[dict]:
    """Decode every utterance of ``corpus`` into ``out_path``; return the skipped-file report.

    ``settings`` is the validated ``segment`` section, or ``options`` are its keys (``fps=0``).

    Streaming: decoded items are appended to the store shard by shard as they arrive, with at most
    a few decodes in flight, so memory does not grow with the corpus. Each item also gets content
    keys (``audio_key``, ``frames_key``: hashes of the decoded samples and the segment parameters)
    that the embed stage's cache is keyed on.
    """
    s = settings if settings is not None else parse(SegmentSettings, options, "segment")
    sample_rate, fps, frame_size, on_bad_media, workers = s.sample_rate, s.fps, s.frame_size, s.on_bad_media, s.workers
    df = corpus.manifest
    # Optional start/end columns cut segments out of longer recordings.
    starts = _bounds(df, "start")
    ends = _bounds(df, "end")
    jobs = list(zip(df["id"], df["audio"], df["video"], starts, ends))
    skipped: list[dict] = []
    ids: list[str] = []
    audio_lengths: list[int] = []
    frame_lengths: list[int] = []
    audio_keys: list[str] = []
    frame_keys: list[str] = []
    audio_params = f"sr={sample_rate}"
    video_params = f"fps={fps},size={frame_size}"
    with atomic_dir(out_path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        audio_out = ArrayAppender(group, "audio", (), np.float32)
        frames_out = ArrayAppender(group, "frames", (frame_size, frame_size, 3), np.uint8)
        # ffmpeg runs in subprocesses, so threads overlap the decoding without fighting the GIL;
        # a window of 4 × workers jobs in flight keeps memory bounded (pool.map would queue all).
        with ThreadPoolExecutor(max_workers=workers) as pool:
            decode = lambda j: _decode_one(*j, sample_rate, fps, frame_size)  # noqa: E731
            window: deque = deque()
            todo = iter(jobs)
            for job in itertools.islice(todo, 4 * workers):
                window.append(pool.submit(decode, job))
            with tqdm(total=len(jobs), desc=f"segment {corpus.name}", unit="utt") as bar:
                while window:
                    res = window.popleft().result()
                    for job in itertools.islice(todo, 1):
                        window.append(pool.submit(decode, job))
                    bar.update()
                    if res.error is not None:
                        if on_bad_media == "error":
                            for fut in window:
                                fut.cancel()
                            raise res.error
                        skipped.append({"id": res.uid, "file": res.error.path, "reason": res.error.reason})
                        continue
                    audio = np.ascontiguousarray(res.audio, dtype=np.float32)
                    frames = np.ascontiguousarray(res.frames, dtype=np.uint8)
                    ids.append(res.uid)
                    audio_out.append(audio)
                    frames_out.append(frames)
                    audio_lengths.append(len(audio))
                    frame_lengths.append(len(frames))
                    audio_keys.append(content_key(audio_params, audio))
                    frame_keys.append(content_key(video_params, frames) if len(frames) else "")
        if not ids:
            raise MediaError(corpus.root, "no utterance could be decoded")
        audio_out.close()
        frames_out.close()
        write_strings(group, "ids", ids)
        write_array(group, "audio_offsets", offsets_from_lengths(audio_lengths))
        write_array(group, "frame_offsets", offsets_from_lengths(frame_lengths))
        write_strings(group, "audio_key", audio_keys)
        write_strings(group, "frames_key", frame_keys)
        group.attrs.update(
            {
                "corpus": corpus.name,
                "sample_rate": sample_rate,
                "fps": fps,
                "frame_size": frame_size,
                "n_items": len(ids),
                "n_skipped": len(skipped),
            }
        )
    return skipped


def _bounds(df, column: str) -> list[float | None]:
    if column not in df.columns:
        return [None] * len(df)
    return [None if v is None or v != v or v == "" else float(v) for v in df[column]]


