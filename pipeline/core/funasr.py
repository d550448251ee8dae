"""funasr models from local directories only: emotion2vec (features) and Paraformer/SenseVoice (ASR).

Given a hub name, funasr itself tries modelscope.cn for ~22 s and then fails with a misleading "not
registered" error; :func:`local_funasr_dir` therefore never hands funasr anything but an existing
directory and raises its own message instead. funasr prints missing checkpoint keys to stdout and
logs shape mismatches at INFO only, so callers check what loaded themselves.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Iterator

from pipeline.core.errors import BackboneError
from pipeline.core.runtime import resolve_source


def local_funasr_dir(name: str, source: str, *, what: str = "funasr model", error=BackboneError) -> Path:
    """The local funasr model directory for ``source``; never lets funasr near a hub name.

    Accepted: a local directory, ``package:<module>``, or a hub id already in the local Hugging Face
    cache (``emotion2vec/emotion2vec_plus_large``) — as :func:`resolve_source`, which never downloads.
    ``name`` is the params key shown in messages (e.g. ``backbones.e2v``), ``error`` the exception
    class raised (BackboneError for the emotion2vec backbone, TranscribeError in
    :mod:`pipeline.transcribe.asr`).
    """
    if not source:
        raise error(f"{name}: 'source' is required (a local {what} directory)")
    key = name.rsplit(".", 1)[-1]
    try:
        path = Path(source).expanduser()
        if not path.is_dir():  # an existing directory is checked for its files below
            path = resolve_source(key, source)
    except BackboneError as err:
        if source.startswith("package:"):
            raise
        hub = source if "/" in source and not source.startswith((".", "/", "~")) else "iic/<model>"
        fetch = ""
        if name.startswith("backbones."):  # the project's fetch tool reads backbones.<name>.hub
            fetch = f"`python -m pipeline.tools.models fetch {key}` (with {name}.hub: {hub}) or "
        raise error(
            f"{name}: {what} {source!r} is not a local directory, and funasr models are never fetched "
            f"from a hub here (funasr would try modelscope.cn and fail with a misleading error). On a "
            f"machine with internet run {fetch}`modelscope download --model {hub} --local_dir "
            f"models/pretrained/{key}`, `dvc add` that directory, and set {name}.source to it."
        ) from err
    missing = [f for f in ("config.yaml", "model.pt") if not (path / f).is_file()]
    if missing:
        raise error(
            f"{name}: {path} is not a funasr model directory (missing {missing}; expected config.yaml + model.pt)"
        )
    return path


@contextlib.contextmanager
def _quiet_funasr() -> Iterator[None]:
    """Contain funasr's side effects: its import prints an ffmpeg notice and installs a root log
    handler, and model building calls ``logging.basicConfig(level=INFO)`` and logs every step."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def load_funasr(model_dir: Path, device: str):
    """``funasr.AutoModel`` from a local directory: no update check, no progress bars, no thread change."""
    import torch

    with _quiet_funasr():
        from funasr import AutoModel
    with _quiet_funasr():  # again: the import itself may have raised the root level to INFO
        return AutoModel(
            model=str(model_dir),
            device=device,
            disable_update=True,
            disable_pbar=True,
            log_level="ERROR",
            ncpu=torch.get_num_threads(),  # funasr would otherwise force 4 threads process-wide
        )
