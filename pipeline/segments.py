"""Segmenting: every utterance's media → 16 kHz mono float32 audio + RGB frames, in one Zarr store.

``data/<corpus>/segments.zarr`` holds ``ids``, flat ``audio`` + ``audio_offsets``, and flat
``frames`` [F, S, S, 3] uint8 + ``frame_offsets`` (zero frames for audio-only items). Bad media
either stop the stage with an error naming the file (``on_bad_media: error``) or are left out and
listed in the segment report (``on_bad_media: skip``) — never dropped silently.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm

from pipeline.io import atomic_dir
from pipeline.manifest import Corpus
from pipeline.media import MediaError, decode_audio, decode_frames, probe_streams
from pipeline.zarrio import offsets_from_lengths, read_strings, write_array, write_strings

ON_BAD_MEDIA = ("error", "skip")


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


def segment_corpus(
    corpus: Corpus,
    out_path: str | Path,
    *,
    sample_rate: int = 16000,
    fps: float = 2.0,
    frame_size: int = 96,
    on_bad_media: str = "error",
    workers: int = 2,
) -> list[dict]:
    """Decode every utterance of ``corpus`` into ``out_path``; return the skipped-file report."""
    if on_bad_media not in ON_BAD_MEDIA:
        raise ValueError(f"on_bad_media must be one of {ON_BAD_MEDIA}, got {on_bad_media!r}")
    df = corpus.manifest
    # Optional start/end columns cut segments out of longer recordings.
    starts = _bounds(df, "start")
    ends = _bounds(df, "end")
    jobs = list(zip(df["id"], df["audio"], df["video"], starts, ends))
    ok: list[Decoded] = []
    skipped: list[dict] = []
    # ffmpeg runs in subprocesses, so threads overlap the decoding without fighting the GIL.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda j: _decode_one(*j, sample_rate, fps, frame_size), jobs)
        for res in tqdm(results, total=len(jobs), desc=f"segment {corpus.name}", unit="utt"):
            if res.error is None:
                ok.append(res)
                continue
            if on_bad_media == "error":
                pool.shutdown(cancel_futures=True)
                raise res.error
            skipped.append({"id": res.uid, "file": res.error.path, "reason": res.error.reason})
    if not ok:
        raise MediaError(corpus.root, "no utterance could be decoded")

    with atomic_dir(out_path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        write_strings(group, "ids", [d.uid for d in ok])
        write_array(group, "audio", np.concatenate([d.audio for d in ok]))
        write_array(group, "audio_offsets", offsets_from_lengths([len(d.audio) for d in ok]))
        write_array(group, "frames", np.concatenate([d.frames for d in ok]))
        write_array(group, "frame_offsets", offsets_from_lengths([len(d.frames) for d in ok]))
        group.attrs.update(
            {
                "corpus": corpus.name,
                "sample_rate": sample_rate,
                "fps": fps,
                "frame_size": frame_size,
                "n_items": len(ok),
                "n_skipped": len(skipped),
            }
        )
    return skipped


def _bounds(df, column: str) -> list[float | None]:
    if column not in df.columns:
        return [None] * len(df)
    return [None if v is None or v != v or v == "" else float(v) for v in df[column]]


class Segments:
    """Read access to a segments store: audio and frames by utterance id."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "zarr.json").exists():
            raise FileNotFoundError(f"{self.path}: segments store not found; run the segment stage")
        self.group = zarr.open_group(str(self.path), mode="r")
        self.ids = read_strings(self.group["ids"])
        self.index = {uid: i for i, uid in enumerate(self.ids)}
        self.sample_rate = int(self.group.attrs["sample_rate"])
        self.fps = float(self.group.attrs["fps"])
        self._audio_off = self.group["audio_offsets"][:]
        self._frame_off = self.group["frame_offsets"][:]

    def audio(self, uid: str) -> np.ndarray:
        i = self.index[uid]
        return self.group["audio"][self._audio_off[i] : self._audio_off[i + 1]]

    def frames(self, uid: str) -> np.ndarray:
        i = self.index[uid]
        return self.group["frames"][self._frame_off[i] : self._frame_off[i + 1]]

    def duration(self, uid: str) -> float:
        i = self.index[uid]
        return float(self._audio_off[i + 1] - self._audio_off[i]) / self.sample_rate
