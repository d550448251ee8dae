"""Shared set-up for the embedding benchmarks: a wav corpus, its segments, a random wav2vec2.

The corpus is ``n`` 16 kHz wav files of 2–4 s (tones + noise, lengths drawn at random so that
batching by length matters). The model is a randomly initialised wav2vec2 with the *base*
architecture by default (7-layer conv stack, 12 × 768 transformer: the compute profile of
facebook/wav2vec2-base, HuBERT-base, WavLM-base, emotion2vec-base) — no hub access is needed, and
speed does not depend on the weights. ``--model small`` (4 × 256) makes the memory benchmark quick.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pipeline.core.manifest import Corpus, Task  # noqa: E402
from tests.data.media import write_wav  # noqa: E402

# Layer-norm conv stacks (as in wav2vec2-large-lv60, HuBERT-large, WavLM): padded, masked batches
# are exact for them, so hf_audio batches. Group-norm checkpoints (wav2vec2-base, HuBERT-base) run
# one input at a time by design (pipeline/features/backbones/hf_audio), which is what a seed loop does.
LAYER_NORM = {"feat_extract_norm": "layer", "do_stable_layer_norm": True}
MODELS = {
    "base": {**LAYER_NORM},  # otherwise Wav2Vec2Config defaults = the base size: 12 x 768, conv 7 x 512
    "small": {**LAYER_NORM, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
              "intermediate_size": 1024, "conv_dim": (256,) * 7},
}


def arguments(doc: str, n: int = 100, model: str = "base", **extra) -> argparse.Namespace:
    """The embedding benchmarks' shared options (``--n --model --device --workdir``) plus ``extra``
    (name → default), parsed; ``args.work`` is the working directory (a new temp dir by default)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--n", type=int, default=n)
    ap.add_argument("--model", choices=list(MODELS), default=model)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workdir", type=Path, default=None)
    for name, default in extra.items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = ap.parse_args()
    args.work = args.workdir or Path(tempfile.mkdtemp(prefix="ab-bench-"))
    return args


def make_corpus(root: Path, n: int, start: int = 0, min_s: float = 2.0, max_s: float = 4.0) -> Corpus:
    rows = []
    for i in range(start, start + n):
        rng = np.random.default_rng(i)
        dur = rng.uniform(min_s, max_s)
        t = np.arange(int(16000 * dur)) / 16000
        audio = 0.3 * np.sin(2 * np.pi * (120 + i % 200) * t) + 0.05 * rng.normal(size=len(t))
        path = write_wav(root / "media" / f"u{i:05d}.wav", audio, 16000)
        rows.append({"id": f"u{i:05d}", "speaker": f"s{i % 10}", "split": "train", "audio": str(path), "video": "",
                     "text": "", "emotion": "a" if i % 2 else "b"})
    return Corpus("bench", pd.DataFrame(rows), [Task("emotion", "classification", ["a", "b"])], str(root))


def extend(a: Corpus, b: Corpus) -> Corpus:
    return Corpus(a.name, pd.concat([a.manifest, b.manifest], ignore_index=True), a.tasks, a.root)


def make_model(out: Path, size: str = "base") -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    if (out / "config.json").exists():
        return out
    torch.manual_seed(0)
    config = Wav2Vec2Config(**MODELS[size])
    Wav2Vec2Model(config).save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True, return_attention_mask=True).save_pretrained(out)
    return out


def backbone_cfg(model: Path, **over) -> dict:
    return {"type": "hf_audio", "source": str(model), "frame_layer": -1, "batch_size": 8, "device": "cpu", **over}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def machine() -> dict:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(figures: dict) -> None:
    """The benchmark's result: one JSON object on the last line of stdout."""
    print(json.dumps(figures, sort_keys=False))
