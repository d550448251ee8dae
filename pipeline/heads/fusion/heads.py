"""Fusion heads: one model over several backbones' pooled features (``heads.<name>.type``).

The members are the backbones named by the run item (``run.fusions: [{head: fusion_concat,
backbone: egemaps+minilm+fer}]``). The fusion driver (:mod:`pipeline.heads.fusion.run`) hands a head the
members' features side by side, ``X = [member 1 | member 2 | ...]``, with ``member_dims``
(``[[name, dim], ...]``, in that order) so it can split them again. Every head sees train and dev only.

- ``concat`` — early fusion. Each member is z-scored with its training statistics and scaled by
  1/√dim so that every member has the same total variance (otherwise the L2 penalty of the probe
  favours the member with the most dimensions; ``block_scale: false`` turns this off). Then one
  probe on the concatenation: ``probe: {type: logreg, C_grid: [...]}`` (default logreg; ``mlp``
  and ``linear`` work too; regression tasks use the probe's regression counterpart).
- ``late`` — late fusion. One probe per member (``probe`` as above); each member's probabilities
  are calibrated by temperature scaling fitted on dev (one scalar per member, minimising dev
  negative log-likelihood; the argmax, and so each member's own accuracy, is unchanged), then the
  calibrated probabilities are averaged. Regression: the mean of the members' predictions.
- ``attention`` — MERBench-style attention fusion (Lian et al. 2024, ``toolkit/models/
  attention.py``): per-member projection (linear, ReLU, dropout) to ``hidden``, an MLP over the
  concatenated projections giving one weight per member (softmax-normalised here, so the weights
  are comparable and are reported), the weighted sum, and a linear output layer. Trained like
  the ``mlp`` head (AdamW, early stopping on dev, ``seeds``); the mean member weights on dev go to
  the selection record.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import torch
from pydantic import Field, field_validator
from scipy.optimize import minimize_scalar
from torch import nn

from pipeline.core.errors import ConfigError
from pipeline.heads.base import HEADS, head_settings, register_head
from pipeline.heads.probe.base import FeatureHeadSettings, Head, build_head
from pipeline.heads.probe.torch_heads import BatchedLinear, TorchHead, TorchHeadSettings, generators

MemberLayer = Literal["last"] | int


def member_slices(member_dims: Any) -> list[tuple[str, slice]]:
    """``(name, columns)`` per member from ``member_dims`` (set by the fusion driver)."""
    if not member_dims:
        raise ConfigError("fusion heads run through pipeline.heads.fusion.run.run_fusion (the fuse stage): it sets member_dims")
    out, start = [], 0
    for name, dim in member_dims:
        out.append((name, slice(start, start + int(dim))))
        start += int(dim)
    return out


def _probe_settings(value: Any) -> Any:
    """``probe: logreg`` or ``probe: {type: mlp, ...}`` validated with that probe head's schema."""
    if isinstance(value, FeatureHeadSettings):
        return value
    spec = {"type": value} if isinstance(value, str) else dict(value or {})
    spec.setdefault("type", "logreg")
    kind = spec["type"]
    if HEADS.get(kind).info["family"] != "probe":
        raise ValueError(f"probe type {kind!r} is not a probe head (logreg, linear, mlp, ...)")
    return head_settings(kind, spec)


class FusionSettings(FeatureHeadSettings):
    """Options of every fusion head; ``layer`` applies to every layered member."""

    layer: MemberLayer = "last"  # best/weighted are per-backbone choices: not available in fusion
    member_layers: dict[str, MemberLayer] = Field(default_factory=dict)  # per member, e.g. {wav2vec2: 7}
    seeds: list[int] | None = None  # passed to the probe unless it sets its own


class ProbeFusionSettings(FusionSettings):
    probe: Any = "logreg"  # the probe: a probe type, or {type: mlp, ...} with its options
    # concat z-scores every member itself and late fusion's probes follow their own setting: a
    # fusion-level `standardize: false` would do nothing, so it is refused rather than ignored
    standardize: Literal[True] = True

    @field_validator("probe", mode="before")
    @classmethod
    def _validate_probe(cls, value: Any) -> Any:
        return _probe_settings(value)


class ConcatSettings(ProbeFusionSettings):
    block_scale: bool = True  # scale each member to the same total variance


def probe_params(settings: ProbeFusionSettings) -> tuple[str, Any]:
    """The per-member / concatenation probe and its settings; the fusion head's ``seed``, ``seeds``
    and ``device`` reach the probe unless the probe sets its own."""
    probe = settings.probe
    inherited = {}
    for key in ("seed", "seeds", "device"):
        if key in settings.model_fields_set and key not in probe.model_fields_set and key in type(probe).model_fields:
            inherited[key] = getattr(settings, key)
    return probe.type, probe.replace(**inherited) if inherited else probe


class _FusionBase(Head):
    def __init__(self, settings: ProbeFusionSettings, task_type: str = "classification", member_dims: Any = None):
        self.settings = settings
        self.task_type = task_type
        self.members = member_slices(member_dims)
        self.probe_name, self.probe_cfg = probe_params(settings)
        self.selection: dict[str, Any] = {}

    def save(self, path: str | Path) -> None:
        """The whole fitted head (its member probes included): ``joblib.load(path).predict(X)``."""
        joblib.dump(self, path)


@register_head(
    "concat", settings=ConcatSettings, family="fusion",
    description="early fusion: per-member scaling, one probe on the concatenation",
)
class ConcatFusion(_FusionBase):
    """Early fusion: per-member standardisation and block scaling, one probe on the concatenation."""

    def fit(self, X_train: np.ndarray, y_train, X_dev: np.ndarray, y_dev) -> "ConcatFusion":
        self.mean = X_train.mean(0)
        std = X_train.std(0)
        self.scale = np.where(std > 1e-8, std, 1.0)
        if self.settings.block_scale:  # scale = std·√dim: each member's total variance is 1
            for _, cols in self.members:
                self.scale[cols] *= math.sqrt(cols.stop - cols.start)
        # the probe must not re-standardise, or it would undo the block scaling
        self.probe = build_head(self.probe_name, self.probe_cfg.replace(standardize=False), self.task_type)
        self.probe.fit(self._z(X_train), y_train, self._z(X_dev), y_dev)
        block_scale = self.settings.block_scale
        self.selection = {"probe": self.probe.kind, **self.probe.selection, "block_scale": block_scale}
        return self

    def _z(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale).astype(np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.probe.predict(self._z(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.probe.predict_proba(self._z(X))

    def member_outputs(self, X: np.ndarray):
        if hasattr(self.probe, "member_outputs"):  # a multi-seed torch probe: one output per seed
            return self.probe.member_outputs(self._z(X))
        proba = None if self.task_type == "regression" else self.predict_proba(X)
        return [(None, self.predict(X), proba)]

    @property
    def classes_(self) -> list:
        return self.probe.classes_


def fit_temperature(proba: np.ndarray, y_index: np.ndarray) -> float:
    """Temperature T minimising the NLL of softmax(log p / T) on dev (searched over log T)."""
    logp = np.log(np.clip(proba, 1e-12, 1.0))
    known = y_index >= 0  # a dev label the probe never saw carries no calibration signal

    def nll(log_t: float) -> float:
        z = logp[known] / math.exp(log_t)
        z = z - z.max(1, keepdims=True)
        logq = z - np.log(np.exp(z).sum(1, keepdims=True))
        return float(-logq[np.arange(known.sum()), y_index[known]].mean())

    if not known.any():
        return 1.0
    return float(math.exp(minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded").x))


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    z = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


@register_head(
    "late", settings=ProbeFusionSettings, family="fusion",
    description="late fusion: per-member probes, dev-calibrated probabilities averaged",
)
class LateFusion(_FusionBase):
    """Late fusion: per-member probes, temperature-calibrated on dev, probabilities averaged."""

    def fit(self, X_train: np.ndarray, y_train, X_dev: np.ndarray, y_dev) -> "LateFusion":
        self.probes, self.temperatures = {}, {}
        for name, cols in self.members:
            probe = build_head(self.probe_name, self.probe_cfg, self.task_type)
            probe.fit(X_train[:, cols], y_train, X_dev[:, cols], y_dev)
            self.probes[name] = probe
            entry: dict[str, Any] = {"probe": probe.kind, **probe.selection}
            if self.task_type != "regression":
                index = {c: i for i, c in enumerate(probe.classes_)}
                y_index = np.array([index.get(c, -1) for c in y_dev])
                self.temperatures[name] = fit_temperature(probe.predict_proba(X_dev[:, cols]), y_index)
                entry["temperature"] = self.temperatures[name]
            self.selection[name] = entry
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        calibrated = [
            apply_temperature(self.probes[name].predict_proba(X[:, cols]), self.temperatures[name])
            for name, cols in self.members
        ]
        return np.mean(calibrated, 0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.task_type == "regression":
            return np.mean([self.probes[n].predict(X[:, cols]) for n, cols in self.members], 0)
        return np.asarray(self.classes_, object)[self.predict_proba(X).argmax(1)]

    @property
    def classes_(self) -> list:
        return self.probes[self.members[0][0]].classes_


class AttentionNet(nn.Module):
    """M attention-fusion models side by side (batched like :class:`~pipeline.heads.probe.torch_heads.BatchedMLP`)."""

    def __init__(self, generators, dims: list[int], out_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.dims = list(dims)
        self.project = nn.ModuleList([BatchedLinear(generators, d, hidden) for d in dims])
        self.attend = BatchedLinear(generators, hidden * len(dims), hidden)
        self.weigh = BatchedLinear(generators, hidden, len(dims))
        self.out = BatchedLinear(generators, hidden, out_dim)
        self.dropout = dropout

    def member_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projections [M, B, members, hidden] and softmax member weights [M, B, members]."""
        drop = lambda t: nn.functional.dropout(t, self.dropout, self.training)  # noqa: E731
        parts = torch.split(x, self.dims, dim=-1)
        hidden = torch.stack([drop(torch.relu(p(part))) for p, part in zip(self.project, parts)], -2)
        a = drop(torch.relu(self.attend(hidden.flatten(-2))))
        return hidden, torch.softmax(self.weigh(a), -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, weights = self.member_weights(x)
        return self.out((hidden * weights[..., None]).sum(-2))


class AttentionSettings(TorchHeadSettings):
    hidden: int = Field(128, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)
    layer: MemberLayer = "last"
    member_layers: dict[str, MemberLayer] = Field(default_factory=dict)


@register_head(
    "attention", settings=AttentionSettings, family="fusion",
    description="MERBench-style attention over per-member projections (torch)",
)
class AttentionFusion(TorchHead):
    """MERBench-style attention fusion, trained by the shared torch-head loop."""

    native_layers = False
    _INIT_STATE = ("member_dims",)

    def __init__(self, settings: AttentionSettings, task_type: str = "classification", member_dims: Any = None):
        super().__init__(settings, task_type)
        self.member_dims = member_dims
        self.members = member_slices(member_dims)

    def _network(self, seeds: list[int], in_dim: int, n_layers: int) -> nn.Module:
        dims = [cols.stop - cols.start for _, cols in self.members]
        return AttentionNet(generators(seeds), dims, self.out_dim, self.hidden, self.dropout)

    def fit(self, X_train: np.ndarray, y_train, X_dev: np.ndarray, y_dev) -> "AttentionFusion":
        super().fit(X_train, y_train, X_dev, y_dev)
        dev = self._scale(np.asarray(X_dev, np.float32))[None].expand(len(self.seeds), -1, -1)
        with torch.no_grad():
            _, weights = self.net.member_weights(dev)
        mean = weights.mean((0, 1)).cpu().tolist()
        self.selection["dev_member_weights"] = {name: w for (name, _), w in zip(self.members, mean)}
        return self

