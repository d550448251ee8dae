"""Fake EATD-Corpus tree: 8 training and 4 validation subjects in the real layout.

Each subject folder holds ``{positive,neutral,negative}.wav`` (+ ``*_out.wav`` denoised copies),
``.txt`` transcripts, ``label.txt`` (raw SDS, sometimes written "NN.0") and ``new_label.txt``
(raw × 1.25) — except one training subject without ``new_label.txt``, so the raw×1.25 fallback is
exercised. Tone frequency follows the prompt and drops for depressed subjects.

``layout="tv"`` writes ``t_N/``, ``v_N/``; ``layout="official"`` writes ``Data/N/``,
``ValidationData/N/`` as the authors' code expects.

Usage: ``python -m tests.data.eatd.data OUT_DIR [tv|official]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tests.data.media import write_wav

PROMPTS = ("positive", "neutral", "negative")
PROMPT_FREQ = {"positive": 520.0, "neutral": 400.0, "negative": 300.0}
TEXTS = {
    "positive": "最近和朋友一起去爬山，心情很好。",
    "neutral": "我平时周末在家看书，偶尔出去散步。",
    "negative": "有一段时间工作压力很大，睡不好觉。",
}
# subject number → depressed?  (train: 3 of 8 depressed, validation: 2 of 4)
TRAIN = {1: False, 2: True, 3: False, 4: False, 5: True, 6: False, 7: True, 8: False}
TEST = {1: True, 2: False, 3: True, 4: False}
NO_NEW_LABEL = "t_8"  # this subject only has label.txt


def subject_dir(root: Path, layout: str, split: str, number: int) -> Path:
    if layout == "tv":
        return root / f"{'t' if split == 'train' else 'v'}_{number}"
    if layout == "official":
        return root / ("Data" if split == "train" else "ValidationData") / str(number)
    raise ValueError(f"layout must be 'tv' or 'official', got {layout!r}")


def write_subject(folder: Path, sid: str, depressed: bool, rng: np.random.Generator, denoised: bool) -> int:
    """One subject's files; returns the raw SDS written to label.txt."""
    raw = int(rng.integers(45, 66) if depressed else rng.integers(25, 40))
    folder.mkdir(parents=True, exist_ok=True)
    # The real files mix "52" and "52.0".
    (folder / "label.txt").write_text(f"{raw}.0" if raw % 2 else f"{raw}", encoding="utf-8")
    if sid != NO_NEW_LABEL:
        (folder / "new_label.txt").write_text(f"{raw * 1.25:g}", encoding="utf-8")
    for k, prompt in enumerate(PROMPTS):
        freq = PROMPT_FREQ[prompt] - (120.0 if depressed else 0.0)
        seed = int(rng.integers(1 << 30))
        write_wav(folder / f"{prompt}.wav", sample_rate=16000, freq=freq, seconds=0.4 + 0.05 * k, seed=seed)
        if denoised:
            write_wav(folder / f"{prompt}_out.wav", sample_rate=16000, freq=freq, seconds=0.3 + 0.05 * k, seed=seed)
        (folder / f"{prompt}.txt").write_text(TEXTS[prompt] + "\n", encoding="utf-8")
    return raw


def generate(root: Path, seed: int = 0, layout: str = "tv", denoised: bool = True) -> Path:
    """Write the fake tree under ``root`` and return ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, subjects in (("train", TRAIN), ("test", TEST)):
        for number, depressed in subjects.items():
            sid = f"{'t' if split == 'train' else 'v'}_{number}"
            write_subject(subject_dir(root, layout, split, number), sid, depressed, rng, denoised)
    return root


if __name__ == "__main__":
    out = generate(Path(sys.argv[1]), layout=sys.argv[2] if len(sys.argv) > 2 else "tv")
    print(out)
