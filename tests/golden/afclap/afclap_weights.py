"""Deterministic random weights in AF-CLAP's checkpoint layout, from a numpy seed (numpy only).

Imported by both sides of the golden test: ``make_golden.py`` (run in a throw-away venv with Audio
Flamingo 2's own AF-CLAP code) loads these tensors into NVIDIA's ``CLAP_Module`` and computes the
reference embeddings; ``tests/test_afclap.py`` writes the same tensors as an ``epoch_16.pt``-style
checkpoint and loads it through our ``checkpoint:`` path. No checkpoint file is committed.

``layout.json`` is the tiny model's ``state_dict`` key → (shape, dtype) exactly as NVIDIA's code
builds it (recorded and checked by ``make_golden.py``): HTS-AT audio branch with AF-CLAP's front end
and fusion, T5 text branch, 1024→512 text projection, training-only MLPs. Values depend on the
seed and the key name only, so adding or reordering keys never changes the others.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np

SEED = 11
LAYOUT = Path(__file__).with_name("layout.json")
CONFIG = Path(__file__).with_name("config.json")

# deterministic buffers that the reference computes itself at init (STFT kernels, mel filterbank,
# shifted-window masks): zeros here; make_golden.py keeps the reference's own values, and our
# converter ignores them (transformers' extractor and HTS-AT recompute them).
FRONTEND_BUFFERS = ("spectrogram_extractor.", "logmel_extractor.", ".attn_mask")


def load_layout(path: Path = LAYOUT) -> dict[str, tuple[tuple[int, ...], str]]:
    """Key → (shape, dtype name) of the AF-CLAP ``state_dict`` (keys without the ``module.`` prefix)."""
    raw = json.loads(path.read_text())
    return {key: (tuple(shape), dtype) for key, (shape, dtype) in raw.items()}


def relative_position_index(window: int) -> np.ndarray:
    """Swin's relative position index for a ``window``×``window`` window ([N, N], int64)."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)
    rel[:, :, 0] += window - 1
    rel[:, :, 1] += window - 1
    rel[:, :, 0] *= 2 * window - 1
    return rel.sum(-1).astype(np.int64)


def tensor_for(key: str, shape: tuple[int, ...], dtype: str, seed: int = SEED) -> np.ndarray:
    """The value of one tensor: a function of (seed, key, shape) only."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    if key.endswith("relative_position_index"):
        return relative_position_index(math.isqrt(shape[0]))
    if any(part in key for part in FRONTEND_BUFFERS) or key.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.dtype(dtype))
    if key.startswith("logit_scale"):
        return np.asarray(math.log(1 / 0.07), np.float32).reshape(shape)
    if key.endswith("running_var"):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if key.endswith("running_mean"):
        return rng.normal(0.0, 0.5, shape).astype(np.float32)
    if key.endswith("relative_position_bias_table"):  # large enough that a wrong index shows
        return rng.normal(0.0, 0.5, shape).astype(np.float32)
    if len(shape) == 1 and key.endswith("weight"):  # LayerNorm / BatchNorm scales
        return (1.0 + 0.2 * rng.normal(size=shape)).astype(np.float32)
    if len(shape) == 1:  # biases
        return (0.05 * rng.normal(size=shape)).astype(np.float32)
    fan_in = int(np.prod(shape[1:]))
    return (rng.normal(size=shape) / math.sqrt(fan_in)).astype(np.float32)


def make_state_dict(seed: int = SEED, layout: dict | None = None) -> dict[str, np.ndarray]:
    """Every tensor of the layout, as numpy arrays (keys without ``module.``)."""
    layout = load_layout() if layout is None else layout
    return {key: tensor_for(key, shape, dtype, seed) for key, (shape, dtype) in layout.items()}
