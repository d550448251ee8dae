"""Heads: models trained on top of features. Each registered by name, configured by ``heads.<name>``.

A head is built from its params section and exposes ``fit(X_train, y_train, X_dev, y_dev)`` (model
selection on dev only — a head never sees test data while choosing anything), ``predict(X)`` and
``save(path)``; ``selection`` describes what was chosen and why. Classification heads add
``predict_proba`` and ``classes_``. Optional extras the probe uses when present:

- ``member_outputs(X)``: one ``(seed, predicted, proba)`` per trained seed (multi-seed heads);
- ``layer_info``: the layer choice (``layer: best`` or ``weighted``) for the experiment JSON;
- ``native_layers``: the head handles ``layer: best|weighted`` itself on [N, L, D] input; other
  heads get ``best`` from :class:`pipeline.heads.layers.BestLayer` and refuse ``weighted``.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from pipeline.config import ConfigError

_HEADS: dict[str, type] = {}
_MODULES = {
    "logreg": "pipeline.heads.logreg",
    "ridge": "pipeline.heads.ridge",
    **{k: "pipeline.heads.torch_heads" for k in ("mlp", "linear", "mlp_reg", "linear_reg")},
    **{k: "pipeline.heads.fusion" for k in ("concat", "late", "attention", "concat_reg", "late_reg", "attention_reg")},
}
# A classification head asked to model a regression task uses its regression counterpart.
REGRESSION_COUNTERPART = {
    "logreg": "ridge",
    "mlp": "mlp_reg",
    "linear": "linear_reg",
    "concat": "concat_reg",
    "late": "late_reg",
    "attention": "attention_reg",
}
LAYER_MODES = ("best", "weighted")  # layer choices made by training, not named in params


def register_head(kind: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.kind = kind
        _HEADS[kind] = cls
        return cls

    return deco


def head_class(kind: str) -> type:
    if kind not in _HEADS:
        if kind not in _MODULES:
            raise KeyError(f"unknown head type {kind!r}; known: {sorted(_MODULES)}")
        importlib.import_module(_MODULES[kind])
    return _HEADS[kind]


def build_head(name: str, cfg: dict[str, Any], task_type: str = "classification", layers: str | None = None):
    """Instantiate head ``name`` for a task; its ``type`` defaults to the name itself (``logreg``).

    ``layers`` is ``best`` or ``weighted`` when the head will see every layer ([N, L, D]) and must
    choose or weight them itself; heads without their own layer handling get ``best`` by a sweep
    (one fit per layer) and cannot learn layer weights.
    """
    kind = cfg.get("type", name)
    if task_type == "regression":
        kind = REGRESSION_COUNTERPART.get(kind, kind)
    try:
        cls = head_class(kind)
    except KeyError as err:
        raise KeyError(f"heads.{name}: {err.args[0]}") from None
    if layers is None or getattr(cls, "native_layers", False):
        return cls(cfg)
    if layers == "weighted":
        raise ConfigError(
            f"heads.{name}: layer: weighted learns layer weights jointly with a torch head (mlp, linear); "
            f"{kind} cannot — use layer: best, last or an index"
        )
    if layers != "best":
        raise ConfigError(f"heads.{name}: unknown layer mode {layers!r} (last, an index, best or weighted)")
    from pipeline.heads.layers import BestLayer

    return BestLayer(lambda **overrides: cls({**cfg, **overrides}), task_type)
