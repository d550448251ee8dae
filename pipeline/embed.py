"""The embed driver: (prepared corpus, segments, backbone config) → feature store."""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

import pipeline
from pipeline.backbones import backbone_class, build_backbone
from pipeline.config import params_hash
from pipeline.manifest import Corpus
from pipeline.segments import Segments
from pipeline.store import write_not_applicable, write_store


def code_version(cls: type) -> str:
    """Library version plus a hash of the backbone's module source (recorded in the store)."""
    src = inspect.getsource(inspect.getmodule(cls))
    return f"{pipeline.__version__}+{hashlib.sha256(src.encode()).hexdigest()[:10]}"


def not_applicable_reason(modality: str, corpus: Corpus, segments: Segments) -> str | None:
    if modality == "text" and not corpus.has_text:
        return f"corpus {corpus.name} has no transcripts (text backbone)"
    if modality == "video" and int(segments.group["frame_offsets"][-1]) == 0:
        return f"corpus {corpus.name} has no video frames (video backbone)"
    return None


def _inputs(modality: str, ids: list[str], corpus: Corpus, segments: Segments) -> Iterator[Any]:
    if modality == "text":
        text = dict(zip(corpus.manifest["id"], corpus.manifest["text"]))
        for uid in ids:
            yield text[uid]
    elif modality == "video":
        for uid in ids:
            yield segments.frames(uid)
    else:
        for uid in ids:
            yield segments.audio(uid)


def embed_corpus(
    corpus: Corpus, segments: Segments, name: str, cfg: dict[str, Any], out_path: str | Path
) -> dict[str, Any]:
    """Run backbone ``name`` over every segmented utterance and write its store."""
    cls = backbone_class(cfg.get("type", ""))
    attrs = {
        "backbone": name,
        "type": cls.type_name,
        "modality": cls.modality,
        "corpus": corpus.name,
        "params_hash": params_hash(cfg, dict(segments.group.attrs)),
        "code_version": code_version(cls),
    }
    reason = not_applicable_reason(cls.modality, corpus, segments)
    if reason:
        write_not_applicable(out_path, reason=reason, attrs=attrs)
        return {"applicable": False, "reason": reason}

    backbone = build_backbone(name, cfg)
    ids = segments.ids
    pooled, frames = [], []
    batch: list[Any] = []
    bar = tqdm(total=len(ids), desc=f"embed {corpus.name}/{name}", unit="utt")

    def flush() -> None:
        for emb in backbone.embed(batch):
            pooled.append(emb.pooled)
            frames.append(emb.frames)
        bar.update(len(batch))
        batch.clear()

    for item in _inputs(cls.modality, ids, corpus, segments):
        batch.append(item)
        if len(batch) >= backbone.batch_size:
            flush()
    if batch:
        flush()
    bar.close()

    described = backbone.describe()
    if cls.modality == "video" and described.get("frame_rate") is None:
        described["frame_rate"] = segments.fps
    attrs.update(described)
    has_frames = backbone.has_frames and all(f is not None for f in frames)
    write_store(out_path, ids=ids, pooled=np.stack(pooled), frames=frames if has_frames else None, attrs=attrs)
    return {"applicable": True, "n": len(ids), "dims": int(pooled[0].shape[-1])}
