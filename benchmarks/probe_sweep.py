"""Benchmark: the logistic-regression layer × C sweep, scikit-learn loop vs the batched torch solver.

    python benchmarks/probe_sweep.py                     # L=13, D=256, N=2000 (+500 dev), 5 C values
    python benchmarks/probe_sweep.py --layers 25 --dim 1024 --device cuda

Prints one JSON object: wall times of the reference path (``logreg`` with ``layer: best, sweep:
sklearn``: one scikit-learn fit per layer and C), of the batched sweep alone, and of the batched
path as the probe runs it (sweep, then the winning layer refitted with scikit-learn), plus how far
the two sweeps' dev UARs and chosen layers agree. Data are synthetic: Gaussian classes whose
separation grows with depth, features on unequal scales.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/probe_sweep.py` from anywhere

from pipeline.heads.probe.base import build_head  # noqa: E402
from pipeline.core.runtime import resolve_device  # noqa: E402


def synthetic(n: int, layers: int, dim: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    separation = np.linspace(0.02, 0.15, layers)[:, None, None]  # deeper layers separate the classes better
    means = np.random.default_rng(123).normal(size=(layers, classes, dim)) * separation
    scales = np.random.default_rng(7).uniform(0.5, 2.0, dim)
    X = rng.normal(size=(n, layers, dim)) * scales + means[:, y].transpose(1, 0, 2)
    return X.astype(np.float32), np.array([f"c{k}" for k in y], object)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=13)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--n", type=int, default=2000, help="training items (dev: a quarter of that)")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--C", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0, 10.0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for both (torch, BLAS, OpenMP); default: the libraries' own")
    parser.add_argument("--skip-sklearn", action="store_true", help="time the batched solver only")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)  # numpy/scipy BLAS and sklearn's OpenMP loops

    Xtr, ytr = synthetic(args.n, args.layers, args.dim, args.classes, 0)
    Xdv, ydv = synthetic(args.n // 4, args.layers, args.dim, args.classes, 1)
    cfg = {"C_grid": args.C, "layer": "best", "device": args.device}
    report = {
        "layers": args.layers, "dim": args.dim, "n_train": args.n, "n_dev": args.n // 4, "classes": args.classes,
        "C_grid": args.C, "models": args.layers * len(args.C), "torch_threads": torch.get_num_threads(),
        "device": str(resolve_device(args.device)),
        "machine": platform.processor() or platform.machine(),
    }
    # warm-up on a slice, so one-off costs (lazy imports, kernel set-up) are timed in neither path
    for sweep_kind in ("batched", "sklearn"):
        warm = build_head("logreg", {**cfg, "sweep": sweep_kind}, layers="best")
        warm.fit(Xtr[:200, :2], ytr[:200], Xdv[:50, :2], ydv[:50])
    sweep, report["batched_sweep_s"] = timed(lambda: build_head("logreg", cfg).layer_scores(Xtr, ytr, Xdv, ydv))
    batched, report["batched_fit_s"] = timed(lambda: build_head("logreg", cfg, layers="best").fit(Xtr, ytr, Xdv, ydv))
    report["batched_best_layer"] = batched.layer
    report["batched_unconverged"] = sweep["unconverged"]
    if not args.skip_sklearn:
        ref, report["sklearn_loop_s"] = timed(
            lambda: build_head("logreg", {**cfg, "sweep": "sklearn"}, layers="best").fit(Xtr, ytr, Xdv, ydv)
        )
        report["sklearn_best_layer"] = ref.layer
        report["speedup_sweep"] = report["sklearn_loop_s"] / report["batched_sweep_s"]
        report["speedup_fit"] = report["sklearn_loop_s"] / report["batched_fit_s"]
        diff = np.abs(np.asarray(sweep["scores"]) - np.asarray(ref.layer_info["dev_scores"]))
        report["max_abs_dev_uar_diff"] = float(diff.max())
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
