"""Embedded synthetic demo corpus — exists to prove the plumbing, not to measure anything.

Source: generated on the fly by :mod:`pipeline.corpora.synth.demo` (espeak-ng voices through the
``espeakng-loader`` wheel, cartoon faces drawn with OpenCV), deterministically from ``seed``.
Licence: generated here, no third-party media.
Layout (also what ``root`` must point at when reading a previously generated tree)::

    <root>/metadata.csv              utt_id,speaker,gender,emotion,text,file
    <root>/<speaker>/<utt_id>.mp4    H.264 face video + AAC speech

Task: ``emotion`` (neutral, happy, sad, angry), carried by pitch, pitch range, rate and loudness, by
the facial expression, and by half of the sentences. Protocol: speaker-independent
train/dev/test split, speakers assigned by ``seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import Corpus, Task, display_path, validate
from pipeline.corpora.base import CorpusSettings, register_corpus

EMOTIONS = ["neutral", "happy", "sad", "angry"]


class DemoSettings(CorpusSettings):
    seed: int = 0
    speakers: int = Field(8, ge=3)
    utterances_per_class: int = Field(5, ge=1)  # speakers × 4 emotions × this = utterances
    dev_speakers: int = Field(2, ge=1)
    test_speakers: int = Field(2, ge=1)
    fps: int = Field(10, ge=1)  # frame rate of the rendered videos
    frame_size: int = Field(96, ge=32)
    workers: int = Field(2, ge=1)  # synthesis processes


@register_corpus(
    "demo", settings=DemoSettings, tasks="emotion (4)", protocol="speaker split, synthetic", unit="speaker",
)
def prepare_demo(s: DemoSettings, out_dir: Path) -> Corpus:
    """Generate (when ``root`` is null) or read the demo tree and build its manifest."""
    seed = s.seed
    root = s.root
    if root is None:
        from pipeline.corpora.synth.demo import generate_demo_corpus

        root = generate_demo_corpus(
            Path(out_dir) / "media",
            seed=seed,
            n_speakers=s.speakers,
            utterances_per_class=s.utterances_per_class,
            fps=s.fps,
            frame_size=s.frame_size,
            workers=s.workers,
        )
    root = Path(root)
    meta_path = root / "metadata.csv"
    if not meta_path.exists():
        raise ManifestError(f"{meta_path}: demo metadata not found (is corpora.demo.root right?)")
    meta = pd.read_csv(meta_path, dtype=str, keep_default_na=False)

    speakers = sorted(meta["speaker"].unique())
    n_dev, n_test = s.dev_speakers, s.test_speakers
    if len(speakers) < n_dev + n_test + 1:
        raise ManifestError(f"{meta_path}: {len(speakers)} speakers cannot fill train/dev/test")
    order = np.random.default_rng(seed).permutation(speakers)
    split_of = {s: "test" for s in order[:n_test]}
    split_of |= {s: "dev" for s in order[n_test : n_test + n_dev]}
    split_of |= {s: "train" for s in order[n_test + n_dev :]}

    media = [display_path(root / f) for f in meta["file"]]
    manifest = pd.DataFrame(
        {
            "id": meta["utt_id"],
            "speaker": meta["speaker"],
            "split": meta["speaker"].map(split_of),
            "audio": media,
            "video": media,
            "text": meta["text"],
            "emotion": meta["emotion"],
        }
    )
    corpus = Corpus(
        name="demo",
        manifest=manifest,
        tasks=[Task("emotion", "classification", EMOTIONS)],
        root=display_path(root),
        info={"synthetic": True, "seed": seed, "speakers": {k: split_of[k] for k in speakers}},
    )
    validate(corpus, str(meta_path))
    return corpus
