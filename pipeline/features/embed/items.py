"""The store's items in manifest order, addressed by content: what the model sees for each id.

Every item's cache key is a hash of its model input — the decoded audio or frames (whose content
keys the segment stage recorded with the segment parameters) or the transcript — and of the backbone
key. Identical inputs under different ids share one key, and so one computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.core.hashing import content_key
from pipeline.core.manifest import Corpus
from pipeline.core.segments import Segments


@dataclass
class Items:
    """The store's items in manifest order: ids, cache keys, and how to load each input."""

    modality: str
    segments: Segments
    ids: list[str]
    keys: list[str]  # per id (duplicates share a key)
    lengths: np.ndarray  # per id: samples, frames or characters (for bucketing)
    text: list[str] | None = None
    by_key: dict[str, int] = field(default_factory=dict)  # key → first position
    seg_index: list[int] | None = None  # position → segments row (None: the same)

    def load(self, pos: int) -> Any:
        if self.modality == "text":
            return self.text[pos]
        row = pos if self.seg_index is None else self.seg_index[pos]
        if self.modality == "video":
            return self.segments.frames_at(row)
        return self.segments.audio_at(row)


def collect_items(corpus: Corpus, segments: Segments, modality: str, bkey: str) -> Items:
    ids = segments.ids
    text = None
    if modality == "text":
        by_id = dict(zip(corpus.manifest["id"], corpus.manifest["text"]))
        text = [str(by_id[u]) for u in ids]
        inputs = [content_key("text", t) for t in text]
        lengths = np.array([len(t) for t in text])
    else:
        inputs = segments.keys(modality)
        lengths = segments.lengths(modality)
    keys = [content_key(bkey, k) for k in inputs]
    by_key: dict[str, int] = {}
    for pos, k in enumerate(keys):
        by_key.setdefault(k, pos)
    return Items(modality, segments, ids, keys, lengths, text, by_key)
