"""The segment cache: decoded items by content, so a grown or edited corpus re-decodes only what changed.

``<cache>/<decoder key>/shards/<id>.zarr`` (default ``.cache/segment``): sealed shards
(:mod:`pipeline.core.shards`) of up to :data:`SHARD_ITEMS` decoded items (:data:`SHARD_BYTES`) — flat audio and frames
with their offsets, the content keys the embed cache is keyed on, and each item's quality
warnings. The decoder key hashes the segment parameters that change samples (rate, fps, frame
size), the decoding code (:mod:`pipeline.core.media`'s closure) and the ffmpeg version; an item's
key adds the content digests of its media files and its start/end window. Editing one file
therefore re-decodes the items cut from it and nothing else; a changed ``fps`` re-decodes all.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from pipeline.core.hashing import code_version, content_key
from pipeline.core.io import atomic_dir
from pipeline.core.shards import ShardCache, checked, open_shard
from pipeline.core.zarrio import offsets_from_lengths, seal, write_array, write_strings

CACHE_ENV = "AFFECTBENCH_SEGMENT_CACHE"
DEFAULT_CACHE = ".cache/segment"
SHARD_ITEMS = 256  # at most this many decoded items per cache shard (the unit of writing and of resuming)
SHARD_BYTES = 64 << 20  # ... and about this many bytes of samples and frames: memory stays bounded


def cache_root() -> str:
    return os.environ.get(CACHE_ENV) or DEFAULT_CACHE


def decoder_key(sample_rate: int, fps: float, frame_size: int) -> str:
    """What decides an item's decoded samples besides its media: parameters, decoding code, ffmpeg."""
    import imageio_ffmpeg

    return content_key(f"sr={sample_rate},fps={fps},size={frame_size}", code_version("pipeline.core.media"),
                       imageio_ffmpeg.get_ffmpeg_version())[:24]


def item_key(decoder: str, audio_digest: str, video_digest: str, start: float | None, end: float | None) -> str:
    return content_key(decoder, audio_digest, video_digest, repr(start), repr(end))


@dataclass
class DecodedItem:
    """One decoded item as the cache holds it."""

    key: str
    audio: np.ndarray
    frames: np.ndarray
    audio_key: str
    frames_key: str
    warnings: list[str] = field(default_factory=list)


class SegmentCache(ShardCache):
    what = "segment cache"

    def __init__(self, root: str | Path, decoder: str, frame_size: int):
        super().__init__(Path(root) / decoder)
        self.frame_size = frame_size
        self._open: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()

    def write(self, items: list[DecodedItem]) -> str:
        """Write one sealed shard of ``items`` atomically; returns its id."""
        sid = content_key(*(it.key for it in items))[:24]
        with atomic_dir(self.shard_path(sid)) as tmp:
            group = zarr.open_group(str(tmp), mode="w")
            write_strings(group, "keys", [it.key for it in items])
            write_array(group, "audio", np.concatenate([it.audio for it in items]).astype(np.float32), compress=False)
            write_array(group, "audio_offsets", offsets_from_lengths([len(it.audio) for it in items]))
            size = self.frame_size
            frames = [it.frames.reshape(-1, size, size, 3) for it in items]
            write_array(group, "frames", np.concatenate(frames).astype(np.uint8))
            write_array(group, "frame_offsets", offsets_from_lengths([len(f) for f in frames]))
            write_strings(group, "audio_key", [it.audio_key for it in items])
            write_strings(group, "frames_key", [it.frames_key for it in items])
            write_strings(group, "warnings", [json.dumps(it.warnings) for it in items])
            seal(group, {"rows": len(items)})
        return sid

    def read(self, sid: str, row: int) -> DecodedItem:
        """Item ``row`` of shard ``sid``; the whole shard is read once and checked against its
        checksums (raises :class:`~pipeline.core.shards.DamagedShard`)."""
        if sid not in self._open:
            path = self.shard_path(sid)
            group = open_shard(path)
            self._open[sid] = {name: checked(group, name, path) for name in
                               ("keys", "audio", "audio_offsets", "frames", "frame_offsets", "audio_key", "frames_key",
                                "warnings")}
            while len(self._open) > 2:
                self._open.popitem(last=False)
        a = self._open[sid]
        ao, fo = a["audio_offsets"], a["frame_offsets"]
        return DecodedItem(str(a["keys"][row]), a["audio"][ao[row] : ao[row + 1]], a["frames"][fo[row] : fo[row + 1]],
                           str(a["audio_key"][row]), str(a["frames_key"][row]), json.loads(str(a["warnings"][row])))

    def forget(self, sid: str) -> None:
        self._open.pop(sid, None)
