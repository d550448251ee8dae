"""Many multinomial logistic regressions at once: every (layer, C) of a layer sweep as one tensor problem.

Sweeping a probe over the L layers of an encoder × a grid of C values means L·|C| independent
fits; scikit-learn does them one after the other. Here they are one batched problem: weights
``[L, |C|, K, D]``, features ``[L, N, D]`` (standardised per layer with training statistics), one
batched matrix product per evaluation. Each model has its own L-BFGS history, step length and
stopping test, so the batch converges to the same per-model optima as separate fits.

The objective is scikit-learn's (``LogisticRegression``, l2, lbfgs), so predictions match the
reference ``logreg`` head: the sample-weighted mean cross-entropy plus ``||W||² / (2·C·Σw)``, the
intercept unpenalised, stopping when the largest gradient component is below ``tol`` (sklearn's
``gtol``). Binary problems: sklearn fits one logit vector ``v`` with penalty ``||v||²/2``; the
two-logit softmax used here has the same optimum with ``C/2`` (``w₁ = −w₂ = v/2``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from pipeline.core.runtime import choose_threads, cpu_threads, resolve_device


@dataclass
class GridFit:
    """Fitted weights of a layer × C grid and per-model convergence facts."""

    weight: torch.Tensor  # [L, nC, K, D]
    bias: torch.Tensor  # [L, nC, K]
    n_iter: np.ndarray  # [L, nC] L-BFGS iterations until each model stopped
    converged: np.ndarray  # [L, nC] gradient test met (False: max_iter or a failed line search)


def balanced_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """sklearn's ``class_weight='balanced'``: n / (classes present · count of the sample's class)."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    present = int((counts > 0).sum())
    return (len(y) / (present * np.maximum(counts, 1)))[y]


def fit_grid(
    X: torch.Tensor,
    y: torch.Tensor,
    C_grid: Sequence[float],
    n_classes: int,
    sample_weight: torch.Tensor | None = None,
    *,
    tol: float = 1e-4,
    max_iter: int = 1000,
    history: int = 10,
) -> GridFit:
    """Fit one multinomial logistic regression per (layer, C) on standardised ``X`` [L, N, D].

    ``y`` holds class indices [N]; ``sample_weight`` [N] (e.g. balanced class weights) defaults to 1.
    """
    L, N, D = X.shape
    K, nC = n_classes, len(C_grid)
    dtype, dev = X.dtype, X.device
    sw = torch.ones(N, dtype=dtype, device=dev) if sample_weight is None else sample_weight.to(dev, dtype)
    total = float(sw.sum())
    sw = sw / total  # objective = weighted *mean* loss + ||W||² / (2·C·Σw), as in sklearn
    C = torch.as_tensor(C_grid, dtype=dtype, device=dev) * (0.5 if K == 2 else 1.0)
    reg = 1.0 / (C * total)  # [nC]
    Yw = torch.nn.functional.one_hot(y.to(dev), K).to(dtype).T * sw  # [K, N]
    XT = X.transpose(1, 2).contiguous()  # [L, D, N]: logits come out [.., K, N], reductions over K stay vectorised
    P = K * D + K

    def value_and_grad(theta: torch.Tensor, layers: torch.Tensor, cols: torch.Tensor):
        """Objective and gradient for the sub-grid ``layers × cols`` (theta [l, c, P])."""
        l, c = theta.shape[:2]
        W = theta[..., : K * D].reshape(l, c * K, D)
        b = theta[..., K * D :]
        z = torch.bmm(W, XT[layers]).view(l, c, K, N) + b[..., None]
        logp = torch.log_softmax(z, dim=-2)
        r = reg[cols][None, :, None]
        Wf = theta[..., : K * D]
        f = -(logp * Yw).sum((-1, -2)) + 0.5 * (Wf * Wf).sum(-1) * r[..., 0]
        resid = logp.exp() * sw - Yw  # d(loss)/dz, [l, c, K, N]
        gW = torch.bmm(resid.view(l, c * K, N), X[layers]).view(l, c, K * D) + Wf * r
        return f, torch.cat([gW, resid.sum(-1)], dim=-1)

    theta = torch.zeros(L, nC, P, dtype=dtype, device=dev)
    all_l, all_c = torch.arange(L, device=dev), torch.arange(nC, device=dev)
    f, g = value_and_grad(theta, all_l, all_c)
    done = torch.zeros(L, nC, dtype=torch.bool, device=dev)
    converged = torch.zeros_like(done)
    n_iter = torch.zeros(L, nC, dtype=torch.long, device=dev)
    pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (s, y, rho) per step, [L, nC, ...]
    for _ in range(max_iter):
        converged |= g.abs().amax(-1) <= tol
        done |= converged
        if bool(done.all()):
            break
        direction = -_two_loop(g, pairs)
        direction[done] = 0
        slope = (g * direction).sum(-1)
        uphill = (slope >= 0) & ~done  # a stale curvature pair can do this: fall back to steepest descent
        direction[uphill] = -g[uphill]
        slope = (g * direction).sum(-1)
        if not pairs:  # first step: scale so that it is not absurdly long
            direction = direction / g.abs().sum(-1, keepdim=True).clamp_min(1.0)
            slope = (g * direction).sum(-1)
        # Only the block of layers × Cs with an unfinished model is evaluated (the rest sit still).
        layers, cols = (~done).any(1).nonzero()[:, 0], (~done).any(0).nonzero()[:, 0]
        new_theta, new_f, new_g = theta.clone(), f.clone(), g.clone()
        step = torch.ones(L, nC, dtype=dtype, device=dev)
        pending = ~done
        for _ls in range(30):  # backtracking (Armijo) line search, per model
            sub = (theta + step[..., None] * direction)[layers][:, cols]
            f_try, g_try = value_and_grad(sub, layers, cols)
            ok = torch.zeros_like(pending)
            block = (layers[:, None], cols)
            ok[block] = f_try <= f[block] + 1e-4 * step[block] * slope[block]
            ok &= pending
            if bool(ok.any()):
                idx = ok.nonzero(as_tuple=True)
                sub_idx = (torch.searchsorted(layers, idx[0]), torch.searchsorted(cols, idx[1]))
                new_theta[idx] = sub[sub_idx]
                new_f[idx] = f_try[sub_idx]
                new_g[idx] = g_try[sub_idx]
            pending &= ~ok
            if not bool(pending.any()):
                break
            step = torch.where(pending, step * 0.5, step)
        done |= pending  # no decrease found: as converged as float precision allows
        n_iter += (~done).long()
        s, yv = new_theta - theta, new_g - g
        sy = (s * yv).sum(-1)
        keep = sy > 1e-10  # a pair without positive curvature would break the inverse-Hessian estimate
        rho = torch.where(keep, 1.0 / sy.clamp_min(1e-30), torch.zeros_like(sy))
        pairs = (pairs + [(s * keep[..., None], yv * keep[..., None], rho)])[-history:]
        theta, f, g = new_theta, new_f, new_g
    weight = theta[..., : K * D].reshape(L, nC, K, D)
    return GridFit(weight, theta[..., K * D :], n_iter.cpu().numpy(), converged.cpu().numpy())


def _two_loop(g: torch.Tensor, pairs: list) -> torch.Tensor:
    """L-BFGS inverse-Hessian × gradient, independently per model (a zeroed pair is a no-op)."""
    q = g.clone()
    alphas = []
    for s, yv, rho in reversed(pairs):
        a = rho * (s * q).sum(-1)
        q -= a[..., None] * yv
        alphas.append(a)
    if pairs:
        s, yv, _ = pairs[-1]
        yy = (yv * yv).sum(-1)
        gamma = torch.where(yy > 0, (s * yv).sum(-1) / yy.clamp_min(1e-30), torch.ones_like(yy))
        q = q * gamma[..., None]
    for (s, yv, rho), a in zip(pairs, reversed(alphas)):
        beta = rho * (yv * q).sum(-1)
        q += s * (a - beta)[..., None]
    return q


def predict_grid(fit: GridFit, X: torch.Tensor) -> torch.Tensor:
    """Class-index predictions [L, nC, N] of every model for standardised ``X`` [L, N, D]."""
    L, nC, K, D = fit.weight.shape
    z = torch.bmm(fit.weight.reshape(L, nC * K, D), X.transpose(1, 2)).view(L, nC, K, -1) + fit.bias[..., None]
    return z.argmax(-2)


def balanced_accuracy(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """UAR of every model (last axis = items), over the classes present in ``y`` (as sklearn)."""
    recalls = [(pred[..., y == k] == k).float().mean(-1) for k in torch.unique(y).tolist()]
    return torch.stack(recalls, -1).mean(-1)


def standardise_layers(train: np.ndarray, *others: np.ndarray, dtype=torch.float32, device=None) -> list[torch.Tensor]:
    """[N, L, D] arrays → [L, N, D] tensors z-scored per layer and feature with training statistics.

    Each tensor is one copy of its array, standardised in place (memory: a layer sweep streaming
    blocks of layers holds a block's copies, pipeline/heads/probe/stream.py).
    """

    def layer_major(x: np.ndarray) -> torch.Tensor:
        arr = np.ascontiguousarray(np.swapaxes(x, 0, 1))
        t = torch.as_tensor(arr, dtype=dtype, device=device)
        if isinstance(x, np.ndarray) and t.device.type == "cpu" and np.shares_memory(t.numpy(), x):
            t = t.clone()  # (a single layer swaps without a copy: never standardise the caller's array)
        return t

    t = layer_major(train)
    mu, sd = t.mean(1, keepdim=True), t.std(1, unbiased=False, keepdim=True)
    sd = torch.where(sd > 1e-8, sd, torch.ones_like(sd))  # constant features (as StandardScaler)
    out = [t.sub_(mu).div_(sd)]
    for x in others:
        out.append(layer_major(x).sub_(mu).div_(sd))
    return out


def layer_sweep(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_dev: np.ndarray,
    y_dev: np.ndarray,
    C_grid: Sequence[float],
    *,
    class_weight: str | None = "balanced",
    tol: float = 1e-4,
    max_iter: int = 1000,
    device: str | None = "auto",
    threads: int | str | None = "auto",
) -> dict:
    """Dev UAR of logistic regression for every (layer, C): ``X_*`` are [N, L, D], labels strings.

    Returns ``dev_uar`` [L, nC] (numpy), the class order, and per-model iteration counts.
    ``threads``: torch CPU threads for the solve (``auto``: see :func:`choose_threads`; None: torch's default).
    """
    classes = sorted(set(y_train))
    index = {c: i for i, c in enumerate(classes)}
    dev = torch.device(resolve_device(device))
    ytr = torch.as_tensor([index[c] for c in y_train], device=dev)
    # dev labels unseen in training can never be predicted; -1 keeps them in the recall average
    ydv = torch.as_tensor([index.get(c, -1) for c in y_dev], device=dev)
    Xtr, Xdv = standardise_layers(X_train, X_dev, device=dev)
    sw = None
    if class_weight == "balanced":
        sw = torch.as_tensor(balanced_weights(ytr.cpu().numpy(), len(classes)), dtype=Xtr.dtype, device=dev)
    work = Xtr.shape[0] * Xtr.shape[1] * Xtr.shape[2] * len(C_grid) * len(classes)  # L·N·D·|C|·K per evaluation
    with cpu_threads(choose_threads(threads, work, dev)):
        fit = fit_grid(Xtr, ytr, C_grid, len(classes), sw, tol=tol, max_iter=max_iter)
        uar = balanced_accuracy(predict_grid(fit, Xdv), ydv)
    return {
        "dev_uar": uar.cpu().numpy(), "classes": classes, "n_iter": fit.n_iter, "converged": fit.converged, "fit": fit,
    }
