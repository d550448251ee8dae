"""Segmenting: every utterance's media → 16 kHz mono float32 audio + RGB frames, in one Zarr store.

Writes the segments store described in :mod:`pipeline.core.segments`, incrementally: decoded items
are cached by content (:mod:`pipeline.segment.cache`: the digests of their media files, their
start/end window and the decoder parameters), so a grown or edited corpus re-decodes only the new
or changed items and the store is assembled from the cache in manifest order. Bad media either
stop the stage with an error naming the file (``on_bad_media: error``) or are left out and listed
in the segment report (``on_bad_media: skip``) — never dropped silently. Items that decode but
are silent, very short or clipped throughout are counted and listed as warnings.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import zarr
from pydantic import Field
from tqdm import tqdm

from pipeline.core.audio import SAMPLE_RATE, audio_warnings
from pipeline.core.errors import StoreError
from pipeline.core.fingerprint import digests
from pipeline.core.hashing import content_key
from pipeline.core.io import atomic_dir
from pipeline.core.manifest import Corpus
from pipeline.core.media import MediaError, decode_audio, decode_frames, probe
from pipeline.core.settings import Settings, parse
from pipeline.core.shards import DamagedShard
from pipeline.core.zarrio import ArrayAppender, offsets_from_lengths, seal, write_array, write_strings
from pipeline.segment.cache import SHARD_BYTES, SHARD_ITEMS, DecodedItem, SegmentCache, cache_root, decoder_key, item_key

REPAIR_ROUNDS = 3  # damaged cache shards met while assembling: re-decode their items and retry this often

class SegmentSettings(Settings):
    """The ``segment`` section: how media become model inputs."""

    sample_rate: Literal[16000] = SAMPLE_RATE  # every backbone sees 16 kHz mono float32
    fps: float = Field(2.0, ge=0)  # video frames sampled per second (0: no frames)
    frame_size: int = Field(96, ge=16)  # frames letterboxed to frame_size × frame_size RGB
    on_bad_media: Literal["error", "skip"] = "error"  # skip: listed in metrics/skipped.json
    workers: int = Field(2, ge=1)  # parallel ffmpeg decoders


@dataclass
class Job:
    uid: str
    key: str
    audio: str
    video: str
    start: float | None
    end: float | None


@dataclass
class SegmentReport:
    """What a segment run did: items left out (with their file and reason), quality warnings, counts."""

    skipped: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    decoded: int = 0  # items decoded by this run
    cached: int = 0  # items taken from the segment cache

    def counts(self) -> dict[str, int]:
        """Items skipped and items per warning: facts about the corpus, the same on every run."""
        per = Counter(w for item in self.warnings for w in item["warnings"])
        return {"skipped": len(self.skipped), **dict(sorted(per.items()))}


def _decode_one(job: Job, sr: int, fps: float, size: int) -> DecodedItem | MediaError:
    try:
        # Probe each file once: audio and video usually come from the same container.
        streams = {job.audio: probe(job.audio)}
        audio = np.ascontiguousarray(decode_audio(job.audio, sr, job.start, job.end, streams=streams[job.audio]),
                                     dtype=np.float32)
        frames = np.zeros((0, size, size, 3), np.uint8)
        if job.video and fps > 0:
            if job.video not in streams:
                streams[job.video] = probe(job.video)
            frames = np.ascontiguousarray(
                decode_frames(job.video, fps, size, job.start, job.end, streams=streams[job.video]), dtype=np.uint8)
    except MediaError as err:
        return err
    return DecodedItem(job.key, audio, frames, content_key(f"sr={sr}", audio),
                       content_key(f"fps={fps},size={size}", frames) if len(frames) else "", audio_warnings(audio, sr))


def segment_corpus(corpus: Corpus, out_path: str | Path, settings: SegmentSettings | None = None,
                   cache: str | Path | None = None, **options) -> SegmentReport:
    """Decode every utterance of ``corpus`` into ``out_path``; return what was skipped, warned, reused.

    ``settings`` is the validated ``segment`` section, or ``options`` are its keys (``fps=0``).
    ``corpus.manifest`` needs ``id``, ``audio``, ``video`` (and optionally ``start``/``end``,
    ``audio_digest``/``video_digest`` as recorded by the prepare stage; missing digests are computed
    here, reading only files whose stat changed: :mod:`pipeline.core.fingerprint`). ``cache`` is the
    segment cache root (default ``.cache/segment``, env ``AFFECTBENCH_SEGMENT_CACHE``).

    Items not in the cache are decoded a few at a time (memory does not grow with the corpus) into
    sealed cache shards; the store is then assembled from the cache in manifest order, every shard
    checked against its checksums as it is read (a damaged one is reported, removed and
    re-decoded). Each item also gets content keys (``audio_key``, ``frames_key``: hashes of the
    decoded samples and the segment parameters) that the embed stage's cache is keyed on, and the
    digests of the files it was decoded from.
    """
    s = settings if settings is not None else parse(SegmentSettings, options, "segment")
    df = corpus.manifest
    starts, ends = _bounds(df, "start"), _bounds(df, "end")
    audio_paths = [str(p) for p in df["audio"]]
    video_paths = [str(p) if p else "" for p in df["video"]]
    if "audio_digest" in df.columns:
        audio_digests = [str(d) for d in df["audio_digest"]]
        video_digests = [str(d) if d else "" for d in df["video_digest"]]
    else:
        known = digests(audio_paths + [v for v in video_paths if v])
        audio_digests = [known[p] for p in audio_paths]
        video_digests = [known[v] if v else "" for v in video_paths]
    decoder = decoder_key(s.sample_rate, s.fps, s.frame_size)
    if s.fps == 0:  # frames are not decoded: the video file does not decide anything
        video_digests = ["" for _ in video_digests]
    jobs = [Job(uid, item_key(decoder, ad, vd, st, en) if ad and (vd or not v or s.fps == 0) else "", a, v, st, en)
            for uid, a, v, st, en, ad, vd in zip(df["id"], audio_paths, video_paths, starts, ends, audio_digests,
                                                  video_digests)]
    seg_cache = SegmentCache(cache if cache is not None else cache_root(), decoder, s.frame_size)
    for _ in range(REPAIR_ROUNDS):
        report = SegmentReport()
        done = seg_cache.scan()
        failed = _decode_missing(corpus.name, jobs, done, seg_cache, s, report)
        try:
            _assemble(corpus.name, out_path, jobs, failed, done, seg_cache, s, decoder, audio_digests, video_digests,
                      report)
            return report
        except DamagedShard as damage:
            seg_cache.discard(damage)
            seg_cache.forget(damage.path.stem)
    raise StoreError(f"{seg_cache.dir}: cache shards still damaged after {REPAIR_ROUNDS} repairs (is the disk failing?)")


def _decode_missing(name: str, jobs: list[Job], done: dict[str, tuple[str, int]], cache: SegmentCache,
                    s: SegmentSettings, report: SegmentReport) -> dict[str, MediaError]:
    """Decode the jobs whose key is not cached into new cache shards; return the failures by key."""
    todo: list[Job] = []
    seen: set[str] = set()
    for job in jobs:
        if job.key and job.key in done:
            report.cached += 1
            continue
        if job.key not in seen or not job.key:  # one decode per distinct content
            todo.append(job)
            seen.add(job.key)
    failed: dict[str, MediaError] = {}
    pending: list[DecodedItem] = []
    held = [0]  # bytes of samples and frames in ``pending``

    def flush() -> None:
        held[0] = 0
        if pending:
            sid = cache.write(pending)
            for row, item in enumerate(pending):
                done[item.key] = (sid, row)
            report.decoded += len(pending)
            pending.clear()

    # ffmpeg runs in subprocesses, so threads overlap the decoding without fighting the GIL;
    # a window of 4 × workers jobs in flight keeps memory bounded (pool.map would queue all).
    with ThreadPoolExecutor(max_workers=s.workers) as pool:
        decode = lambda j: _decode_one(j, s.sample_rate, s.fps, s.frame_size)  # noqa: E731
        window: deque = deque()
        queue = iter(todo)
        for job in itertools.islice(queue, 4 * s.workers):
            window.append((job, pool.submit(decode, job)))
        with tqdm(total=len(todo), desc=f"segment {name}", unit="utt", disable=not todo) as bar:
            while window:
                job, fut = window.popleft()
                res = fut.result()
                for nxt in itertools.islice(queue, 1):
                    window.append((nxt, pool.submit(decode, nxt)))
                bar.update()
                if isinstance(res, MediaError):
                    if s.on_bad_media == "error":
                        for _, f in window:
                            f.cancel()
                        flush()  # what was decoded stays cached: the rerun after fixing the file resumes
                        raise res
                    failed[job.key or job.uid] = res
                    continue
                if not job.key:  # no digest (file vanished between prepare and segment): decode, never cache
                    failed[job.uid] = MediaError(job.audio, "file changed or vanished since prepare; rerun prepare")
                    continue
                pending.append(res)
                held[0] += res.audio.nbytes + res.frames.nbytes
                if len(pending) >= SHARD_ITEMS or held[0] >= SHARD_BYTES:
                    flush()
    flush()
    return failed


def _assemble(name: str, out_path: str | Path, jobs: list[Job], failed: dict[str, MediaError],
              done: dict[str, tuple[str, int]], cache: SegmentCache, s: SegmentSettings, decoder: str,
              audio_digests: list[str], video_digests: list[str], report: SegmentReport) -> None:
    """Write the segments store from the cache, in manifest order, checked and sealed."""
    ids, audio_lengths, frame_lengths, audio_keys, frame_keys, a_dig, v_dig = [], [], [], [], [], [], []
    with atomic_dir(out_path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        audio_out = ArrayAppender(group, "audio", (), np.float32)
        frames_out = ArrayAppender(group, "frames", (s.frame_size, s.frame_size, 3), np.uint8)
        for job, ad, vd in tqdm(list(zip(jobs, audio_digests, video_digests)), desc=f"assemble {name}", unit="utt",
                                leave=False):
            err = failed.get(job.key or job.uid)
            if err is not None or job.key not in done:
                err = err or MediaError(job.audio, "not decoded")
                report.skipped.append({"id": job.uid, "file": err.path, "reason": err.reason})
                continue
            item = cache.read(*done[job.key])
            ids.append(job.uid)
            audio_out.append(item.audio)
            frames_out.append(item.frames)
            audio_lengths.append(len(item.audio))
            frame_lengths.append(len(item.frames))
            audio_keys.append(item.audio_key)
            frame_keys.append(item.frames_key)
            a_dig.append(ad)
            v_dig.append(vd)
            if item.warnings:
                report.warnings.append({"id": job.uid, "file": job.audio, "warnings": item.warnings})
        if not ids:
            raise MediaError(name, "no utterance could be decoded")
        audio_out.close()
        frames_out.close()
        write_strings(group, "ids", ids)
        write_array(group, "audio_offsets", offsets_from_lengths(audio_lengths))
        write_array(group, "frame_offsets", offsets_from_lengths(frame_lengths))
        write_strings(group, "audio_key", audio_keys)
        write_strings(group, "frames_key", frame_keys)
        write_strings(group, "audio_digest", a_dig)  # what each item was decoded from
        write_strings(group, "video_digest", v_dig)
        seal(group, {
            "corpus": name,
            "sample_rate": s.sample_rate,
            "fps": s.fps,
            "frame_size": s.frame_size,
            "decoder": decoder,
            "n_items": len(ids),
            "n_skipped": len(report.skipped),
        })


def _bounds(df, column: str) -> list[float | None]:
    if column not in df.columns:
        return [None] * len(df)
    return [None if v is None or v != v or v == "" else float(v) for v in df[column]]
