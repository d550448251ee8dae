"""funasr models from local directories only: emotion2vec (features) and Paraformer/SenseVoice (ASR).

Given a hub name, funasr itself tries modelscope.cn for ~22 s and then fails with a misleading "not
registered" error; :func:`local_funasr_dir` therefore never hands funasr anything but an existing
directory and raises its own message instead.

funasr's own loader (``funasr.train_utils.load_pretrained_model``) prints missing checkpoint keys to
stdout, logs shape mismatches at INFO (and keeps those tensors' random initialisation), and ignores
checkpoint tensors the model has no place for. :func:`load_funasr` therefore replaces it, while
``AutoModel`` builds the model, by :func:`_checked_load`: the checkpoint is read once, its tensors
are matched to the model's exactly as funasr matches them, and every model tensor is either loaded
or accounted for in a :class:`LoadReport` (missing, unexpected, shape-mismatched, or ignored by a
caller's rule with its reason). Any problem raises, listing them all, unless ``strict=False``
(warns with the full lists; the report goes into ``describe()``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class LoadReport:
    """What loading a funasr checkpoint did, tensor by tensor (model names unless said otherwise)."""

    checkpoint: str
    loaded: list[str] = field(default_factory=list)  # model tensors filled from the checkpoint
    missing: list[str] = field(default_factory=list)  # model tensors the checkpoint lacks (random init)
    unexpected: list[str] = field(default_factory=list)  # checkpoint tensors no model tensor takes
    shape_mismatch: list[str] = field(default_factory=list)  # "key: checkpoint (..) vs model (..)", not loaded
    ignored: dict[str, str] = field(default_factory=dict)  # key → why it may be absent / unused

    @property
    def problems(self) -> bool:
        return bool(self.missing or self.unexpected or self.shape_mismatch)

    def mismatched_keys(self) -> list[str]:
        return [entry.split(":", 1)[0] for entry in self.shape_mismatch]

    def not_loaded(self, prefix: str) -> list[str]:
        """Model tensors under ``prefix`` that were not filled from the checkpoint (missing or mis-shaped)."""
        return [k for k in self.missing + self.mismatched_keys() if k.startswith(prefix)]

    def as_dict(self) -> dict[str, Any]:
        """For ``describe()``: counts, ignored tensors counted by reason, full lists of the problems."""
        return {
            "loaded": len(self.loaded),
            "ignored": dict(Counter(self.ignored.values())),
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "shape_mismatch": list(self.shape_mismatch),
        }

    def summary(self) -> str:
        return (f"missing {self.missing}, unexpected {self.unexpected}, "
                f"shape mismatch {self.shape_mismatch}")


def _unwrap(state: Any) -> Any:
    """The tensor dict inside a checkpoint, unwrapped exactly as funasr's loader does."""
    for key in ("state_dict", "model_state_dict", "model"):
        state = state[key] if isinstance(state, dict) and key in state else state
    return state


def _source_key(k: str, src: dict[str, Any], scope_map: Sequence[str]) -> str:
    """The checkpoint name funasr reads model tensor ``k`` from (its ``scope_map`` rule, verbatim:
    pairs of (checkpoint prefix, model prefix), ``None`` meaning empty, ``module.`` always appended)."""
    k_src = k
    for i in range(0, len(scope_map) - 1, 2):
        src_prefix = scope_map[i] if scope_map[i].lower() != "none" else ""
        dst_prefix = scope_map[i + 1] if scope_map[i + 1].lower() != "none" else ""
        if dst_prefix == "" and (src_prefix + k) in src:
            k_src = src_prefix + k
        elif k.startswith(dst_prefix) and k.replace(dst_prefix, src_prefix, 1) in src:
            k_src = k.replace(dst_prefix, src_prefix, 1)
    return k_src


def _checked_load(path: str, model: Any, ignore_init_mismatch: bool = True, map_location: str = "cpu",
                  oss_bucket=None, scope_map: Sequence[str] | str = (), excludes=None,
                  ignore: Sequence[tuple[re.Pattern, str]] = (), error=BackboneError, where: str = "",
                  **_kwargs) -> LoadReport:
    """funasr's ``load_pretrained_model`` (same signature, same key mapping), accounting for every tensor.

    Differences: the checkpoint is read once (funasr also deep-copies it), and nothing is dropped
    silently — every model tensor ends in ``loaded``, ``missing``, ``shape_mismatch`` or ``ignored``,
    every checkpoint tensor is taken by a model tensor or is ``unexpected`` / ``ignored``. Tensors
    ``excludes`` keeps out are *missing* (they keep their random initialisation). Mis-shaped tensors
    are never loaded, whatever ``ignore_init_mismatch`` says (funasr would raise in load_state_dict).
    """
    import torch

    if oss_bucket is not None:
        raise error(f"{where}{path}: checkpoints from an OSS bucket are not supported here (local files only)")
    try:  # as funasr reads it (torch.load's default is weights_only=True)
        state = _unwrap(torch.load(path, map_location=map_location, weights_only=True))
    except Exception as err:  # unpickling errors come in many types
        raise error(f"{where}cannot read the funasr checkpoint {path}: {err}") from err
    if not isinstance(state, dict):
        raise error(f"{where}{path} holds no state dict (found {type(state).__name__})")
    scope = scope_map.split(",") if isinstance(scope_map, str) else list(scope_map or [])
    scope += ["module.", "None"]
    excluded = excludes.split(",") if isinstance(excludes, str) else list(excludes or [])

    def reason_for(key: str) -> str | None:
        return next((why for pattern, why in ignore if pattern.fullmatch(key)), None)

    report = LoadReport(checkpoint=str(path))
    dst = model.state_dict()
    taken: set[str] = set()
    for k, want in dst.items():
        why = reason_for(k)
        k_src = None if any(k.startswith(x) for x in excluded) else _source_key(k, state, scope)
        if k_src is not None and k_src in state:
            taken.add(k_src)
            have = state[k_src]
            if not isinstance(have, torch.Tensor) or tuple(have.shape) != tuple(want.shape):
                shape = tuple(have.shape) if isinstance(have, torch.Tensor) else type(have).__name__
                if why:
                    report.ignored[k] = why
                else:
                    report.shape_mismatch.append(f"{k}: checkpoint {shape} vs model {tuple(want.shape)}")
                continue
            dst[k] = have
            report.loaded.append(k)
        elif why:
            report.ignored[k] = why
        else:
            report.missing.append(k)
    for key in state:
        if key not in taken:
            why = reason_for(key)
            if why:
                report.ignored[key] = why
            else:
                report.unexpected.append(key)
    model.load_state_dict(dst, strict=True)
    on_loaded = getattr(model, "on_pretrained_model_loaded", None)
    if callable(on_loaded):  # funasr's hook for models that post-process what they loaded
        on_loaded(frozenset(report.loaded))
    return report


_PATCH_LOCK = threading.Lock()


def load_funasr(model_dir: Path, device: str, *, name: str, strict: bool = True, error=BackboneError,
                ignore: Sequence[tuple[str, str]] = ()) -> tuple[Any, LoadReport]:
    """``funasr.AutoModel`` from a local directory, its checkpoint loaded by :func:`_checked_load`.

    No update check, no progress bars, no thread change. ``ignore``: (regex over tensor names,
    reason) for tensors that may legitimately be absent from the checkpoint, unused by the model, or
    of another shape — the caller must make sure they can never affect the output. Any other
    missing, unexpected or mis-shaped tensor raises ``error`` naming ``model_dir`` and listing them
    all; with ``strict=False`` it warns with the same lists instead. Returns (AutoModel, report).
    """
    import torch

    with _quiet_funasr():
        from funasr import AutoModel
        from funasr.auto import auto_model
    rules = [(re.compile(pattern), reason) for pattern, reason in ignore]
    reports: list[LoadReport] = []

    def load(*args, **kwargs):
        reports.append(_checked_load(*args, ignore=rules, error=error, where=f"{name}: ", **kwargs))

    with _PATCH_LOCK, _quiet_funasr():  # again: the import itself may have raised the root level to INFO
        original = auto_model.load_pretrained_model
        auto_model.load_pretrained_model = load
        try:
            automodel = AutoModel(
                model=str(model_dir),
                device=device,
                disable_update=True,
                disable_pbar=True,
                log_level="ERROR",
                ncpu=torch.get_num_threads(),  # funasr would otherwise force 4 threads process-wide
            )
        finally:
            auto_model.load_pretrained_model = original
    if len(reports) != 1:  # funasr only prints "init_param does not exist" and runs on random weights
        raise error(
            f"{name}: {model_dir}: funasr loaded {len(reports)} checkpoints instead of 1 "
            f"(init_param {automodel.kwargs.get('init_param')!r}; funasr changed how it loads weights?)"
        )
    report = reports[0]
    if report.problems:
        message = (f"{name}: the checkpoint {report.checkpoint} does not fit the funasr "
                   f"{type(automodel.model).__name__} that {model_dir}/config.yaml builds: {report.summary()}")
        if strict:
            raise error(message + " — fix the model directory, or set strict: false to run with the rest")
        warnings.warn(message + " (strict: false: running with the rest; tensors not loaded keep their "
                      "random initialisation)", stacklevel=2)
    return automodel, report
