"""MER 2023 — Multimodal Emotion Recognition Challenge (Chinese TV and film clips).

Source: Lian et al., "MER 2023: Multi-label Learning, Modality Robustness, and Semi-Supervised
Learning", ACM MM 2023; http://merchallenge.cn/mer2023, Hugging Face ``MERChallenge/MER2023``;
baseline loader ``zeroQiaoba/MERTools`` (``MER2023``: ``normalize_dataset_format``).
Licence: End User Licence Agreement, academic research only, no redistribution.

Layout (the unzipped ``mer2023train.zip`` and ``mer2023test1&2.zip``)::

    <root>/train-label.csv           name,discrete,valence
    <root>/test1-label.csv           name,discrete,valence       (MER-MULTI)
    <root>/test2-label.csv           name,discrete,valence       (MER-NOISE: corrupted copies)
    <root>/test3-label.csv           name[,discrete]             (MER-SEMI: may have no labels)
    <root>/train/<name>.avi          video folders, one per label file; clips are
    <root>/test1/<name>.avi          sample_XXXXXXXX / samplenew_XXXXXXXX, .avi or .mp4
    <root>/test2/<name>.mp4          (test2 ships as .mp4)
    <root>/test3/<name>.avi

Folder names are options (``video_dirs: {train: train, test1: test1, ...}``) because later MER
releases rename them (MER 2024: ``video-labeled/``…). A clip is found by its name with either
extension.

Tasks: ``emotion`` (neutral, angry, happy, sad, worried, surprise) and ``valence`` (regression,
about -5..5). A label file without a ``discrete``/``valence`` column, or a blank cell, leaves that
task's cell missing (None / NaN — ``validate`` rejects ``""`` as an unknown class), counted in
``info["unlabelled"]``; the probe skips such rows.

Protocol ``official`` (the only one): ``train-label.csv`` → train, with ``dev_fraction`` (0.1) of its
clips carved out as dev; ``test_set`` (``test1`` by default, or ``test2``/``test3``) → test.
MER 2023 publishes no speaker ids, so ``speaker`` is the clip name: speaker independence cannot be
enforced and the corpus is validated with ``speakers_shared=True`` (recorded in ``info``).

Quirks: some clips have no video stream (audio-only files with a video extension); the manifest
still lists the file as ``video`` and the segment stage returns zero frames for it. A clip name
listed in both the train and the test label files is rejected (it would leak).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
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

NAME = "mer2023"
EMOTIONS = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
DEFAULT_VIDEO_DIRS = {"train": "train", "test1": "test1", "test2": "test2", "test3": "test3"}
VIDEO_SUFFIXES = (".avi", ".mp4")


def read_label_file(path: Path, labelled: bool) -> pd.DataFrame:
    """Rows ``name, emotion, valence`` of one label file; tests may lack the label columns."""
    df = read_table(path, ["name", "discrete", "valence"] if labelled else ["name"])
    df = df.fillna("")  # short rows: pandas pads missing trailing cells with NaN
    names = df["name"].str.strip()
    blank = names.eq("")
    if blank.any():
        raise ManifestError(f"{path}: line {int(np.argmax(blank)) + 2}: empty clip name")
    check_unique(names, path, "clip name")
    known = {e: e for e in EMOTIONS}
    emotions = [
        lookup_label(v.lower(), known, f"{path}: line {i + 2}", "discrete emotion") if v.strip() else None
        for i, v in enumerate(df.get("discrete", pd.Series([""] * len(df))))
    ]
    valences = [
        parse_float(v, f"{path}: line {i + 2}", "valence") if v.strip() else math.nan
        for i, v in enumerate(df.get("valence", pd.Series([""] * len(df))))
    ]
    return pd.DataFrame({"name": names, "emotion": emotions, "valence": valences})


def clip_paths(root: Path, folder: str, names: pd.Series, source: str, option: str) -> list[str]:
    """Manifest paths of the clips ``names`` in ``root/folder``, whichever video extension they have.

    A name with no file gets the folder's usual extension, so the segment stage reports the missing
    file by a plausible name (missing media are its job, not the recipe's).
    """
    directory = root / folder
    if not directory.is_dir():
        raise ManifestError(f"{directory}: video folder not found (set corpora.{NAME}.{option})")
    found: dict[str, Path] = {}
    for p in sorted(directory.iterdir()):
        if p.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        if p.stem in found:
            raise ManifestError(f"{directory}: clip {p.stem} exists as both {found[p.stem].name} and {p.name}")
        found[p.stem] = p
    usual = Counter(p.suffix for p in found.values()).most_common(1)
    fallback = usual[0][0] if usual else VIDEO_SUFFIXES[0]
    return [
        media(root, f"{folder}/{found[n].name if n in found else n + fallback}", source) for n in names
    ]


class Mer2023Settings(CorpusSettings):
    protocol: Literal["official"] = "official"
    test_set: Literal["test1", "test2", "test3"] = "test1"
    video_dirs: dict[str, str] = Field(default_factory=dict)  # overrides of DEFAULT_VIDEO_DIRS (split → folder)
    dev_fraction: float = Field(0.1, ge=0, lt=1)
    seed: int = 0


@register_corpus(
    NAME, settings=Mer2023Settings, tasks="emotion (6), valence (regression)",
    protocol="official, `test_set: test1` (test2, test3)", unit="clip (no speaker ids)",
)
def prepare_mer2023(s: Mer2023Settings, out_dir: Path) -> Corpus:
    """Read ``train-label.csv`` and the chosen test label file into an official-split manifest."""
    root = corpus_root(s.root, NAME)
    protocol = s.protocol
    test_set = s.test_set
    video_dirs = DEFAULT_VIDEO_DIRS | s.video_dirs
    seed = s.seed

    parts, unlabelled, sources = [], {}, {}
    for label_set, split in (("train", "train"), (test_set, "test")):
        path = root / f"{label_set}-label.csv"
        rows = read_label_file(path, labelled=label_set == "train")
        rows["split"] = split
        rows["media"] = clip_paths(root, video_dirs[label_set], rows["name"], str(path), f"video_dirs.{label_set}")
        unlabelled[label_set] = {
            "emotion": int(rows["emotion"].isna().sum()),
            "valence": int(rows["valence"].isna().sum()),
        }
        sources[split] = path
        parts.append(rows)
    both = sorted(set(parts[0]["name"]) & set(parts[1]["name"]))
    if both:
        raise ManifestError(
            f"{sources['test']}: clips {both[:5]} are also in {sources['train']} (train/test leak)"
        )

    rows = pd.concat(parts, ignore_index=True)
    manifest = pd.DataFrame(
        {
            "id": rows["name"],
            "speaker": rows["name"],  # no speaker ids in MER 2023: each clip is its own unit
            "split": rows["split"],
            "audio": rows["media"],
            "video": rows["media"],
            "text": "",
            "emotion": rows["emotion"],
            "valence": rows["valence"].astype(float),
        }
    )
    manifest["split"] = carve_dev(manifest, s.dev_fraction, seed, group="speaker")
    corpus = Corpus(
        name=NAME,
        manifest=manifest,
        tasks=[Task("emotion", "classification", EMOTIONS), Task("valence", "regression")],
        root=display_path(root),
        info={
            "protocol": protocol,
            "test_set": test_set,
            "video_dirs": {k: video_dirs[k] for k in ("train", test_set)},
            "seed": seed,
            "speakers_shared": True,
            "speaker_note": "MER 2023 has no speaker ids; speaker = clip name, speaker independence not enforced",
            "splits": split_counts(manifest),
            "unlabelled": unlabelled,
        },
    )
    validate(corpus, str(sources["train"]), speakers_shared=True)
    return corpus
