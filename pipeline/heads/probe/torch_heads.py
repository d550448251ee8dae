"""Torch probes on cached features: ``linear`` and ``mlp``, for classification or regression tasks.

``linear`` is a linear layer trained with (class-weighted) cross-entropy — the linear probe of the
seed experiments; ``mlp`` adds one hidden layer (ReLU, dropout). Built for a regression task, the
same networks have one output trained with MSE on the z-scored target. Training: AdamW on
mini-batches, the dev set scored after every epoch, early stopping after ``patience`` epochs
without improvement, and the best epoch's weights restored. ``monitor: uar`` (``ccc`` for
regression; ties broken by lower dev loss) or ``monitor: loss``. Only train and dev are seen.

Several models are trained as one: ``seeds: [0, 1, 2]`` trains one model per seed, and
``layer: best`` one per (layer, seed) — all as one batched network (parameters with a leading
model axis, one batched matmul per layer), each with its own initialisation (from its seed, so
that layers are compared from the same start), its own shuffling and its own early stopping.
The models never interact: the summed loss has each model's own gradient, AdamW is element-wise.

Layers of layered stores ([N, L, D]): ``best`` keeps the layer whose models have the best mean dev
score over seeds; ``weighted`` learns softmax weights over the layers jointly with the head (the
SUPERB recipe; every layer is z-scored first, in place of SUPERB's layer norm).

Seeds and the headline: each seed is evaluated on its own and the experiment reports the mean
over seeds (with std and per-seed values) — the expected result of *one* training run, the fair
comparison with single-model heads such as ``logreg``. ``predict_proba`` (used by late fusion and
``pipeline.tools.predict``) is the seed ensemble (mean probability).

Params (``heads.<name>``): :class:`TorchHeadSettings` (``linear``: :class:`LinearSettings`, no
hidden layer and no dropout by default).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import torch
from pydantic import Field
from torch import nn
from tqdm import tqdm

from pipeline.core.errors import ConfigError
from pipeline.core.runtime import choose_threads, cpu_threads, resolve_device
from pipeline.heads.base import HEADS, ClassWeightSettings, register_head
from pipeline.heads.probe.base import FeatureHeadSettings, Head
from pipeline.heads.probe.layers import best_index


class TorchHeadSettings(FeatureHeadSettings, ClassWeightSettings):
    """Options of the torch heads (``mlp``, ``linear``, fusion ``attention``)."""

    hidden: int = Field(256, ge=0)  # hidden units (mlp)
    dropout: float = Field(0.2, ge=0, lt=1)
    epochs: int = Field(100, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(64, ge=1)
    patience: int = Field(10, ge=1)  # early stopping: epochs without a better dev score
    monitor: Literal["uar", "ccc", "loss"] | None = None  # default: uar (classification), ccc (regression)
    seeds: list[int] | None = Field(None, min_length=1)  # one model per seed (default: [seed])
    threads: Literal["auto"] | int | None = "auto"  # CPU threads for training


class MLPSettings(TorchHeadSettings):
    pass


class LinearSettings(TorchHeadSettings):
    hidden: Literal[0] = 0  # a linear probe has no hidden layer
    dropout: float = Field(0.0, ge=0, lt=1)


class BatchedLinear(nn.Module):
    """M independent linear layers, ``[M, B, d_in] → [M, B, d_out]`` (one batched matmul).

    Model m is initialised from its own generator exactly as ``nn.Linear`` initialises (uniform in
    ±1/√d_in), so a model's start depends on its seed only, not on the other models in the batch.
    """

    def __init__(self, generators: list[torch.Generator], d_in: int, d_out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)
        def draw(*shape: int) -> torch.Tensor:
            return torch.stack([(torch.rand(shape, generator=g) * 2 - 1) * bound for g in generators])

        self.weight = nn.Parameter(draw(d_in, d_out))
        self.bias = nn.Parameter(draw(d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias[:, None], x, self.weight)


class BatchedMLP(nn.Module):
    """M linear probes (``hidden=0``) or one-hidden-layer MLPs, trained side by side.

    With ``n_layers`` the input is [M, B, L, D] and each model first reduces it by its own learned
    softmax-weighted sum over the L layers (SUPERB's weighted-sum featurizer).
    """

    def __init__(self, generators, in_dim: int, out_dim: int, hidden: int = 0, dropout: float = 0.0, n_layers: int = 0):
        super().__init__()
        M = len(generators)
        self.layer_logits = nn.Parameter(torch.zeros(M, n_layers)) if n_layers else None
        self.hidden = BatchedLinear(generators, in_dim, hidden) if hidden else None
        self.out = BatchedLinear(generators, hidden or in_dim, out_dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_logits is not None:
            x = torch.einsum("mbld,ml->mbd", x, torch.softmax(self.layer_logits, -1))
        if self.hidden is not None:
            x = torch.relu(self.hidden(x))
        return self.out(nn.functional.dropout(x, self.dropout, self.training))


def keep_models(module: nn.Module, index) -> None:
    """Keep only models ``index`` of a batched module (every parameter has the model axis first)."""
    index = torch.as_tensor(index)
    for name, param in list(module.named_parameters()):
        owner, _, leaf = name.rpartition(".")
        setattr(module.get_submodule(owner), leaf, nn.Parameter(param.detach()[index].clone()))


def generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def _uar(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Balanced accuracy per model: pred [M, N], y [N]."""
    return torch.stack([(pred[:, y == k] == k).float().mean(1) for k in torch.unique(y).tolist()], 1).mean(1)


def _ccc(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Lin's CCC per model: pred [M, N], y [N]."""
    pm, ym = pred.mean(1, keepdim=True), y.mean()
    cov = ((pred - pm) * (y - ym)).mean(1)
    denom = pred.var(1, unbiased=False) + y.var(unbiased=False) + (pm[:, 0] - ym) ** 2
    return torch.where(denom > 0, 2 * cov / denom.clamp_min(1e-12), torch.full_like(cov, float("nan")))


class TorchHead(Head):
    """Shared training, prediction and persistence of the torch heads (see the module docstring)."""

    native_layers = True  # handles layer: best | weighted itself
    def __init__(self, settings: TorchHeadSettings, task_type: str = "classification"):
        s = self.settings = settings
        self.task_type = task_type
        self.hidden = s.hidden
        self.dropout = s.dropout
        self.epochs = s.epochs
        self.lr = s.lr
        self.weight_decay = s.weight_decay
        self.batch_size = s.batch_size
        self.patience = s.patience
        regression = self.task_type == "regression"
        self.monitor = s.monitor or ("ccc" if regression else "uar")
        allowed = ("ccc", "loss") if regression else ("uar", "loss")
        if self.monitor not in allowed:
            raise ConfigError(
                f"heads ({self.kind}): monitor must be one of {allowed} for a {task_type} task, not {self.monitor!r}"
            )
        self.class_weight = s.class_weight
        self.seeds = list(s.seeds) if s.seeds is not None else [s.seed]
        self.layer_mode = s.layer
        self.standardize = s.standardize
        self.device = resolve_device(s.device)
        self.selection: dict[str, Any] = {}
        self.layer_info: dict[str, Any] = {}
        self.history: list[list[float]] = []  # mean training loss per epoch, one value per model
        self.layer: int | None = None

    def _network(self, seeds: list[int], in_dim: int, n_layers: int) -> nn.Module:
        """The batched network, one model per seed (subclasses change the architecture)."""
        return BatchedMLP(generators(seeds), in_dim, self.out_dim, self.hidden, self.dropout, n_layers)

    # ----- training -----
    def fit(self, X_train: np.ndarray, y_train, X_dev: np.ndarray, y_dev) -> "TorchHead":
        """Train every (layer, seed) model with early stopping on dev; keep the chosen ones."""
        torch.manual_seed(self.seeds[0])  # dropout masks; inits and shuffles come from each model's seed
        regression = self.task_type == "regression"
        layered = X_train.ndim == 3
        if layered and self.layer_mode not in ("best", "weighted"):
            raise ConfigError(f"{self.kind}: [N, L, D] features need layer: best or weighted, not {self.layer_mode!r}")
        self.mean, self.std = self._stats(X_train)
        Xtr, Xdv = self._scale(X_train), self._scale(X_dev)
        ytr, ydv = self._targets(y_train, fit=True), self._targets(y_dev)
        S = len(self.seeds)
        sweep = layered and self.layer_mode == "best"
        if sweep:  # model (layer l, seed s) reads view l
            views_tr, views_dv = Xtr.transpose(0, 1), Xdv.transpose(0, 1)
            self.in_dim, self.n_layers = X_train.shape[2], 0
        else:
            views_tr, views_dv = Xtr[None], Xdv[None]
            self.in_dim, self.n_layers = X_train.shape[-1], (X_train.shape[1] if layered else 0)
        n_views = views_tr.shape[0]
        self.out_dim = 1 if regression else len(self.classes)
        self.net = self._network(self.seeds * n_views, self.in_dim, self.n_layers).to(self.device)
        view = torch.arange(n_views).repeat_interleave(S)
        with cpu_threads(self._threads()):
            best_metric, best_epoch = self._train(views_tr, views_dv, view, ytr, ydv, self.seeds * n_views)

        metric = "ccc" if regression else "uar"
        per_seed = best_metric.view(n_views, S)
        if sweep:
            scores = per_seed.mean(1).tolist()
            self.layer = best_index(scores)
            self.layer_info = {"mode": "best", "metric": metric, "chosen": self.layer, "dev_scores": scores}
            self.mean, self.std = self.mean[self.layer], self.std[self.layer]
        keep = torch.arange(S) + (self.layer or 0) * S
        keep_models(self.net, keep.to(self.device))
        if self.n_layers:
            weights = torch.softmax(self.net.layer_logits.detach(), -1).cpu()
            self.layer_info = {"mode": "weighted", "weights": weights.tolist()}
        epochs, dev = best_epoch[keep].tolist(), per_seed[self.layer or 0].tolist()
        self.selection = {
            "param": "epoch",
            "monitor": self.monitor,
            "chosen": epochs if S > 1 else epochs[0],
            f"dev_{metric}": dev if S > 1 else dev[0],
            "seeds": self.seeds,
        }
        return self

    def _threads(self) -> int | None:
        """CPU threads for training: the ``threads`` param, or auto (1 when a step is small)."""
        n_params = sum(p.numel() for p in self.net.parameters())
        return choose_threads(self.settings.threads, n_params * self.batch_size, self.device)

    def _train(self, views_tr, views_dv, view, ytr, ydv, model_seeds) -> tuple[torch.Tensor, torch.Tensor]:
        """Mini-batch AdamW with per-model early stopping; restores each model's best epoch.

        Returns each model's dev metric at its best epoch and that epoch (1-based), CPU [M].
        """
        M, N = len(model_seeds), views_tr.shape[1]
        # layer weights are not decayed: decay would pull them back to uniform, i.e. no layer choice
        named = list(self.net.named_parameters())
        groups = [
            {"params": [p for n, p in named if n != "layer_logits"]},
            {"params": [p for n, p in named if n == "layer_logits"], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=self.lr, weight_decay=self.weight_decay)
        rngs = [np.random.default_rng(s) for s in model_seeds]
        best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        best_score = torch.full((M,), -math.inf)
        best_loss = torch.full((M,), math.inf)
        best_metric = torch.full((M,), float("nan"))
        best_epoch = torch.zeros(M, dtype=torch.long)
        stale = torch.zeros(M, dtype=torch.long)
        view = view.to(self.device)
        self.history = []
        bar = tqdm(range(self.epochs), desc=f"{self.kind}: {M} model(s)", unit="epoch", leave=False, mininterval=2)
        for epoch in bar:
            self.net.train()
            order = torch.as_tensor(np.stack([r.permutation(N) for r in rngs]), device=self.device)
            total = torch.zeros(M, device=self.device)
            for start in range(0, N, self.batch_size):
                idx = order[:, start : start + self.batch_size]  # [M, B]: each model its own batch
                loss = self._loss(self.net(views_tr[view[:, None], idx]), ytr[idx])  # [M]
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()  # models are independent: the sum's gradient is each model's own
                opt.step()
                total += loss.detach() * idx.shape[1]
            self.history.append((total / N).tolist())
            dev_loss, dev_metric = self._evaluate(views_dv, view, ydv)
            score = -dev_loss if self.monitor == "loss" else torch.nan_to_num(dev_metric, nan=-math.inf)
            better = (score > best_score) | ((score == best_score) & (dev_loss < best_loss))
            on_device = better.to(self.device)
            for k, v in self.net.state_dict().items():
                best_state[k][on_device] = v.detach()[on_device]
            best_score = torch.where(better, score, best_score)
            best_loss = torch.where(better, dev_loss, best_loss)
            best_metric = torch.where(better, dev_metric, best_metric)
            best_epoch = torch.where(better, torch.full_like(best_epoch, epoch + 1), best_epoch)
            stale = torch.where(better, torch.zeros_like(stale), stale + 1)
            bar.set_postfix(dev=f"{float(best_metric.nanmean()):.3f}")
            if bool((stale >= self.patience).all()):
                break
        bar.close()
        self.net.load_state_dict(best_state)
        self.net.eval()
        return best_metric, best_epoch

    @torch.no_grad()
    def _evaluate(self, views: torch.Tensor, view: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dev loss and headline metric (UAR or CCC) per model, CPU tensors [M]."""
        out = self._forward(views, view)
        loss = self._loss(out, y.expand(out.shape[0], -1)).cpu()
        if self.task_type == "regression":
            return loss, _ccc(out[..., 0].cpu(), y.cpu())
        return loss, _uar(out.argmax(-1).cpu(), y.cpu())

    @torch.no_grad()
    def _forward(self, views: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        """Eval-mode outputs [M, N, out] of every model on its view, in row chunks (bounded memory)."""
        self.net.eval()
        M, N = len(view), views.shape[1]
        chunk = max(1, (1 << 24) // max(1, M * int(np.prod(views.shape[2:]))))
        view = view.to(views.device)
        return torch.cat([self.net(views[:, i : i + chunk][view]) for i in range(0, N, chunk)], 1)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-model loss [M]: class-weighted mean cross-entropy, or MSE on the z-scored target."""
        if self.task_type == "regression":
            return ((out[..., 0] - y) ** 2).mean(1)
        flat = out.reshape(-1, out.shape[-1])
        ce = nn.functional.cross_entropy(flat, y.reshape(-1), reduction="none", ignore_index=-1).view(y.shape)
        w = torch.where(y >= 0, self.class_weights[y.clamp_min(0)], 0.0)  # -1: dev label unseen in training
        return (ce * w).sum(1) / w.sum(1).clamp_min(1e-12)

    # ----- data -----
    def _stats(self, X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-feature (per layer) mean and std of the training features; identity without standardize."""
        X = torch.as_tensor(np.asarray(X, np.float32))
        if not self.standardize:
            return torch.zeros(X.shape[1:]), torch.ones(X.shape[1:])
        mean, std = X.mean(0), X.std(0, unbiased=False)
        return mean, torch.where(std > 1e-8, std, torch.ones_like(std))

    def _scale(self, X: np.ndarray) -> torch.Tensor:
        X = torch.as_tensor(np.asarray(X, np.float32))
        return ((X - self.mean) / self.std).to(self.device)

    def _targets(self, y, fit: bool = False) -> torch.Tensor:
        """Class indices (classes and class weights fixed on the training labels) or z-scored values."""
        if self.task_type == "regression":
            y = np.asarray(y, float)
            if fit:
                self.y_mean, self.y_std = float(y.mean()), float(y.std()) or 1.0
            return torch.as_tensor((y - self.y_mean) / self.y_std, dtype=torch.float32, device=self.device)
        y = np.asarray(y, object)
        if fit:
            self.classes = sorted(set(y))
            counts = np.array([(y == c).sum() for c in self.classes], float)
            w = len(y) / (len(self.classes) * counts) if self.class_weight == "balanced" else np.ones_like(counts)
            self.class_weights = torch.as_tensor(w, dtype=torch.float32, device=self.device)
        index = {c: i for i, c in enumerate(self.classes)}
        # a dev label never seen in training cannot be predicted; -1 keeps it in the dev UAR as a miss
        return torch.as_tensor([index.get(c, -1) for c in y], device=self.device)

    # ----- prediction -----
    def _outputs(self, X: np.ndarray) -> torch.Tensor:
        """Raw outputs [S, N, out] of the kept models (one per seed)."""
        X = np.asarray(X, np.float32)
        if self.layer is not None:
            X = X[:, self.layer]
        return self._forward(self._scale(X)[None], torch.zeros(len(self.seeds), dtype=torch.long)).cpu()

    def member_outputs(self, X: np.ndarray) -> list[tuple[int | None, np.ndarray, np.ndarray | None]]:
        """``(seed, predicted, proba)`` per seed; seed is None for a single-seed head."""
        single = len(self.seeds) == 1
        result = []
        for seed, out in zip(self.seeds, self._outputs(X)):
            key = None if single else seed
            if self.task_type == "regression":
                result.append((key, (out[:, 0] * self.y_std + self.y_mean).numpy().astype(float), None))
            else:
                proba = torch.softmax(out, -1).numpy()
                result.append((key, np.asarray(self.classes, object)[proba.argmax(1)], proba))
        return result

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Mean class probabilities over the seeds (the seed ensemble)."""
        return torch.softmax(self._outputs(X), -1).mean(0).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.task_type == "regression":
            return (self._outputs(X)[..., 0].mean(0) * self.y_std + self.y_mean).numpy().astype(float)
        return np.asarray(self.classes, object)[self.predict_proba(X).argmax(1)]

    @property
    def classes_(self) -> list:
        return list(self.classes)

    # ----- persistence: plain numpy state, so a saved head loads on any device without retraining -----
    _STATE = ("selection", "layer_info", "history", "layer", "n_layers", "in_dim", "out_dim")
    _INIT_STATE: tuple[str, ...] = ()  # extra constructor arguments a subclass needs back

    def __getstate__(self) -> dict[str, Any]:
        state = {k: getattr(self, k) for k in self._STATE}
        state.update(settings=self.settings.dump(), task_type=self.task_type)
        state["init"] = {k: getattr(self, k) for k in self._INIT_STATE}
        state.update(
            mean=self.mean.numpy(),
            std=self.std.numpy(),
            weights={k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()},
        )
        if self.task_type == "regression":
            state.update(y_mean=self.y_mean, y_std=self.y_std)
        else:
            state.update(classes=self.classes, class_weights=self.class_weights.cpu().numpy())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        settings = HEADS.get(self.kind).settings(**{**state["settings"], "device": "cpu"})  # loaded on CPU
        self.__init__(settings, state["task_type"], **state.get("init", {}))
        for k in self._STATE:
            setattr(self, k, state[k])
        self.mean, self.std = torch.as_tensor(state["mean"]), torch.as_tensor(state["std"])
        if self.task_type == "regression":
            self.y_mean, self.y_std = state["y_mean"], state["y_std"]
        else:
            self.classes, self.class_weights = state["classes"], torch.as_tensor(state["class_weights"])
        self.net = self._network(self.seeds, self.in_dim, self.n_layers)
        self.net.load_state_dict({k: torch.as_tensor(v) for k, v in state["weights"].items()})
        self.net.eval()

    def save(self, path: str | Path) -> None:
        """The fitted head: ``joblib.load(path).predict_proba(X)`` (on CPU) with no further setup."""
        joblib.dump(self, path)


@register_head(
    "linear", settings=LinearSettings, family="probe",
    description="torch linear layer (the seeds' linear probe), early stopping on dev",
)
class LinearHead(TorchHead):
    """``hidden: 0``: one linear layer per seed."""


@register_head(
    "mlp", settings=MLPSettings, family="probe", description="torch one-hidden-layer MLP, early stopping on dev",
)
class MLPHead(TorchHead):
    """One hidden layer (``hidden`` units, ReLU, dropout) per seed."""
