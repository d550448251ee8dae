"""What feature heads (probes, and the fusion heads built on them) share: settings and building.

Feature heads expose ``fit(X_train, y_train, X_dev, y_dev)`` (model selection on dev only),
``predict(X)``, ``predict_proba(X)`` + ``classes_`` (classification), ``save(path)``, ``selection``
(what was chosen and why) and optionally ``member_outputs(X)`` (one ``(seed, predicted, proba)``
per trained seed) and ``layer_info``. The task type is a parameter, not a class: a head built for a
regression task fits a regression model (``logreg`` becomes ridge regression, ``mlp`` trains on
MSE). ``native_layers`` heads handle ``layer: best|weighted`` themselves on [N, L, D] input; others
get ``best`` from :class:`pipeline.heads.probe.layers.BestLayer` and refuse ``weighted``.
"""

from __future__ import annotations

from typing import Any, Literal

from pipeline.core.errors import ConfigError
from pipeline.core.runtime import Device
from pipeline.heads.base import HeadSettings, head_entry
from pipeline.heads.probe.layers import BestLayer

LAYER_MODES = ("best", "weighted")  # layer choices made by training, not named in params

Layer = Literal["last", "best", "weighted"] | int


class FeatureHeadSettings(HeadSettings):
    """Options of heads trained on pooled features (probes and fusion)."""

    layer: Layer = "last"  # layered backbones: last | <index> | best (chosen on dev) | weighted (torch heads)
    speaker_norm: bool = False  # z-score every feature within each speaker first (label-free)
    standardize: bool = True  # z-score features with training statistics (off when the caller scales)
    device: Device = "auto"


def build_head(name: str, settings: Any, task_type: str = "classification", layers: str | None = None, **extra: Any):
    """Build feature head ``name`` for a task from its (validated or raw) settings.

    ``layers`` is ``best`` or ``weighted`` when the head will see every layer ([N, L, D]) and must
    choose or weight them itself; heads without their own layer handling get ``best`` by a sweep
    (one fit per layer) and cannot learn layer weights. ``extra`` are run-time inputs some heads need
    (fusion: ``member_dims``).
    """
    entry, settings = head_entry(name, settings)

    def make(**overrides: Any):
        s = settings.replace(**overrides) if overrides else settings
        return entry.target.make(s, task_type, **extra)

    cls = entry.target
    if layers is None or getattr(cls, "native_layers", False):
        return make()
    if layers == "weighted":
        raise ConfigError(
            f"heads.{name}: layer: weighted learns layer weights jointly with a torch head (mlp, linear); "
            f"{entry.name} cannot — use layer: best, last or an index"
        )
    return BestLayer(make, task_type)


class Head:
    """Base of the feature heads: ``make`` builds one for a task type (regression is a parameter)."""

    kind = ""
    task_type = "classification"

    @classmethod
    def make(cls, settings: Any, task_type: str = "classification", **extra: Any):
        return cls(settings, task_type, **extra)
