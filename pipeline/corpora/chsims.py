"""CH-SIMS — Chinese single- and multimodal sentiment analysis (film and TV clips).

Source: Yu et al., "CH-SIMS: A Chinese Multimodal Sentiment Analysis Dataset with Fine-grained
Annotation of Modality", ACL 2020; https://github.com/thuiar/MMSA (download links), label reading as
in ``thuiar/MMSA-FET`` (``dataset.py``: ``Raw/<video_id>/<clip_id>.mp4``, ids read as strings).
Licence: research use only, by agreement with the authors.

Layout::

    <root>/label.csv                      video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode
    <root>/Raw/<video_id>/<clip_id>.mp4   e.g. Raw/video_0001/0001.mp4

2,281 clips from 60 source videos; ``label`` is the multimodal sentiment in -1..1 (mean of five
annotators), ``annotation`` its sign as ``Negative``/``Neutral``/``Positive``, ``mode`` the official
split (``train``/``valid``/``test``).

Ids are ``<video_id>_<clip_id>`` with the clip id exactly as the CSV writes it. The real file
zero-pads (``0001``), but a CSV re-saved by a spreadsheet or pandas reads ``1``; the clip is then
found as ``0001.mp4`` (or the other way round), whichever exists.

Tasks: ``sentiment3`` (negative / neutral / positive, from ``annotation``) and ``sentiment``
(regression on ``label``). The unimodal labels ``label_T/A/V`` are checked but not exposed as tasks.

``speaker`` is the source ``video_id`` — a proxy: CH-SIMS has no speaker ids, and one film can show
several speakers while one actor can appear in several films.

Protocols:

- ``official`` (default): ``mode`` train/valid/test → train/dev/test. That split was drawn over
  clips, so source videos can straddle it; when they do the corpus is validated with
  ``speakers_shared=True`` and ``info["videos_across_splits"]`` counts them, otherwise the guard
  stays on.
- ``video_independent``: whole source videos dealt (seeded) into test (``test_fraction``, 0.2),
  dev (``dev_fraction``, 0.1) and train; the speaker guard is on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import Corpus, Task, display_path, validate
from pipeline.corpora.base import CorpusSettings, register_corpus
from pipeline.corpora.common import (
    carve_dev,
    check_unique,
    corpus_root,
    lookup_label,
    media,
    parse_float,
    read_table,
    split_counts,
)

NAME = "chsims"
COLUMNS = ["video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode"]
SENTIMENTS = ["negative", "neutral", "positive"]
ANNOTATIONS = {s.capitalize(): s for s in SENTIMENTS}  # the CSV writes "Negative", "Neutral", "Positive"
MODES = {"train": "train", "valid": "dev", "test": "test"}


def clip_file(root: Path, video_id: str, clip_id: str) -> str:
    """``Raw/<video_id>/<clip>.mp4`` for the clip id as written, or its (un)padded twin if only that exists."""
    candidates = [clip_id]
    if clip_id.isdigit():
        candidates += [clip_id.zfill(4), str(int(clip_id))]
    for name in candidates:
        if (root / "Raw" / video_id / f"{name}.mp4").exists():
            return f"Raw/{video_id}/{name}.mp4"
    return f"Raw/{video_id}/{clip_id}.mp4"  # missing: the segment stage reports it by this name


def parse_labels(path: Path) -> pd.DataFrame:
    """Checked rows of ``label.csv``: ids, text, labels, official split; errors give the line."""
    df = read_table(path, COLUMNS).fillna("")
    for col in ("video_id", "clip_id"):
        df[col] = df[col].str.strip()
        blank = df.index[df[col].eq("")]
        if len(blank):
            raise ManifestError(f"{path}: line {blank[0] + 2}: empty {col}")
    check_unique(df["video_id"] + "/" + df["clip_id"], path, "video_id/clip_id")
    rows = []
    for i, row in df.iterrows():
        where = f"{path}: line {i + 2}"
        label = parse_float(row["label"], where, "label")
        if not -1.0 <= label <= 1.0:
            raise ManifestError(f"{where}: label {label} outside -1..1")
        for col in ("label_T", "label_A", "label_V"):
            parse_float(row[col], where, col)
        rows.append(
            {
                "video_id": row["video_id"],
                "clip_id": row["clip_id"],
                "text": row["text"].strip(),
                "sentiment": label,
                "sentiment3": lookup_label(row["annotation"], ANNOTATIONS, where, "annotation"),
                "mode": lookup_label(row["mode"], MODES, where, "mode"),
            }
        )
    return pd.DataFrame(rows)


class ChsimsSettings(CorpusSettings):
    protocol: Literal["official", "video_independent"] = "official"
    test_fraction: float = Field(0.2, ge=0, lt=1)  # video_independent: of clips, by whole source videos
    dev_fraction: float = Field(0.1, ge=0, lt=1)
    seed: int = 0


def video_independent_split(df: pd.DataFrame, s: ChsimsSettings) -> pd.Series:
    """Deal whole source videos into test, then dev, then train (seeded, by clip counts)."""
    df = df.assign(split="train")
    df["split"] = carve_dev(df, s.test_fraction, s.seed, group="speaker").replace("dev", "test")
    return carve_dev(df, s.dev_fraction, s.seed + 1, group="speaker")


@register_corpus(
    NAME, settings=ChsimsSettings, tasks="sentiment3, sentiment (regression)",
    protocol="official `mode` split (`video_independent`)", unit="source video",
)
def prepare_chsims(s: ChsimsSettings, out_dir: Path) -> Corpus:
    """Read ``label.csv`` into a manifest with the official or a video-independent split."""
    root = corpus_root(s.root, NAME)
    protocol = s.protocol
    seed = s.seed
    label_path = root / "label.csv"
    rows = parse_labels(label_path)

    paths = [
        media(root, clip_file(root, v, c), f"{label_path}: {v}/{c}") for v, c in zip(rows["video_id"], rows["clip_id"])
    ]
    manifest = pd.DataFrame(
        {
            "id": rows["video_id"] + "_" + rows["clip_id"],
            "speaker": rows["video_id"],  # proxy: the source video
            "split": rows["mode"],
            "audio": paths,
            "video": paths,
            "text": rows["text"],
            "sentiment3": rows["sentiment3"],
            "sentiment": rows["sentiment"].astype(float),
        }
    )
    if protocol == "video_independent":
        manifest["split"] = video_independent_split(manifest, s)
    across = int((manifest.groupby("speaker")["split"].nunique() > 1).sum())
    shared = protocol == "official" and across > 0
    corpus = Corpus(
        name=NAME,
        manifest=manifest,
        tasks=[Task("sentiment3", "classification", SENTIMENTS), Task("sentiment", "regression")],
        root=display_path(root),
        info={
            "protocol": protocol,
            "seed": seed,
            "speaker_proxy": "video_id (source video)",
            "speakers_shared": shared,
            "videos_across_splits": across,
            "splits": split_counts(manifest),
        },
    )
    validate(corpus, str(label_path), speakers_shared=shared)
    return corpus
