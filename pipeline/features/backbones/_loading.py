"""Strict loading of transformers checkpoints: a tensor that does not fit is an error naming it.

``from_pretrained`` only *warns* about missing and unexpected tensors (and about mis-shaped ones
with ``ignore_mismatched_sizes``) and initialises what it could not load at random: a renamed
tensor or a checkpoint of another size would silently embed with random weights. Here the loading
report (``output_loading_info=True``) is checked and anything that does not fit raises
:class:`~pipeline.core.errors.BackboneError` listing the keys, except two reasoned cases:

* **unused tensors outside the model** — a checkpoint of a larger model whose extra tensors lie
  outside the loaded model's own modules: task heads (``classifier.*``, ``projector.*``,
  ``lm_head.*``), pre-training heads (``quantizer.*``, ``project_q.*``, ``cls.*``, ``decoder.*``),
  or the text tower of a full ``CLIPModel`` when its vision tower is loaded. They are never read,
  and are recorded (``unused_tensors``: their top-level names) rather than raised. Backbones put
  the report in ``describe()["load_report"]``, as emotion2vec does. An unexpected
  tensor *inside* the model (under its ``base_model_prefix`` or one of its own modules) is an error.
* **missing tensors the backbone never uses** — each loader names them with the reason (e.g. the
  text pooler of a masked-LM checkpoint, which hf_text does not read); recorded as ``not_loaded``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.core.errors import BackboneError


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers' own load report repeats what is raised or recorded here."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def _inside(model: Any, key: str) -> bool:
    """Whether checkpoint key ``key`` names a place inside ``model`` (not a head beside it)."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    if prefix and key.startswith(prefix + "."):
        return True
    own: set[str] = set()
    # the model's own modules, and its base model's (a base checkpoint without the prefix, e.g. a
    # CLIPVisionModel's "encoder.*" loaded into CLIPVisionModelWithProjection's "vision_model.*")
    for module in {id(m): m for m in (model, getattr(model, "base_model", model))}.values():
        own |= {n for n, _ in module.named_children()}
        own |= {n for n, _ in module.named_parameters(recurse=False)} | {n for n, _ in module.named_buffers(recurse=False)}
    return key.split(".")[0] in own


def check_loading_info(name: str, model: Any, info: dict[str, Any], model_dir: Path | str,
                       unused_missing: Sequence[str] = ()) -> dict[str, Any]:
    """Raise BackboneError for tensors that did not fit ``model``; return what was tolerated.

    ``unused_missing``: key prefixes of tensors the backbone never reads (may be absent)."""
    mismatched = sorted(info.get("mismatched_keys") or (), key=lambda m: m[0])
    missing = sorted(k for k in info.get("missing_keys") or () if not k.startswith(tuple(unused_missing)))
    not_loaded = sorted(k for k in info.get("missing_keys") or () if k.startswith(tuple(unused_missing)))
    unexpected = sorted(info.get("unexpected_keys") or ())
    inside = [k for k in unexpected if _inside(model, k)]
    problems = []
    if mismatched:
        problems.append("mis-shaped " + ", ".join(f"{k} (checkpoint {tuple(a)}, model {tuple(b)})"
                                                  for k, a, b in mismatched[:20]))
    if missing:
        problems.append(f"missing {missing[:20]}")
    if inside:
        problems.append(f"unexpected {inside[:20]}")
    if info.get("error_msgs"):
        problems.append(f"errors {info['error_msgs'][:5]}")
    if problems:
        raise BackboneError(
            f"backbones.{name}: the checkpoint in {model_dir} does not fit {type(model).__name__}: "
            + "; ".join(problems) + " (a renamed, extra or mis-shaped tensor: a wrong or damaged checkpoint)"
        )
    report: dict[str, Any] = {}
    outside = sorted({k.split(".")[0] for k in unexpected})
    if outside:
        report["unused_tensors"] = outside
    if not_loaded:
        report["not_loaded"] = sorted({".".join(k.split(".")[:2]) for k in not_loaded})
    return report


def load_pretrained(name: str, model_cls: Any, model_dir: Path | str, *, unused_missing: Sequence[str] = (),
                    **kwargs) -> tuple[Any, dict[str, Any]]:
    """``model_cls.from_pretrained(model_dir, **kwargs)``, strictly (see the module docstring).

    Returns ``(model, report)``; ``report`` lists what was tolerated (``unused_tensors``,
    ``not_loaded``), empty for an exact fit."""
    with _quiet():
        try:
            model, info = model_cls.from_pretrained(
                model_dir, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
            )
        except (OSError, RuntimeError, ValueError) as err:  # damaged file, conversion errors
            raise BackboneError(
                f"backbones.{name}: cannot load {getattr(model_cls, '__name__', model_cls)} from {model_dir}: {err}"
            ) from err
    return model, check_loading_info(name, model, info, model_dir, unused_missing)
