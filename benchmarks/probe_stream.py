"""Benchmark: a ``layer: best`` probe on a large layered store — streamed layers vs the whole array in memory.

    python benchmarks/probe_stream.py                          # 10k × 25 × 1024 (1 GB), both arms
    python benchmarks/probe_stream.py --n 100000 --arms stream # 100k × 25 × 1024 (10 GB), streamed only
    python benchmarks/probe_stream.py --device cuda            # the batched sweep on a GPU

Writes, under ``--tmp``, a real sealed feature store of WavLM-large shape (pooled [N, L, D]
float32, written a block of rows at a time with :class:`pipeline.core.zarrio.ArrayAppender`, so
building it needs no [N, L, D] in memory) and a manifest (80/10/10 % train/dev/test, ``--classes``
classes whose separation grows with depth). Then runs the probe stage's own code,
:func:`pipeline.heads.probe.run.run_probe` with head ``logreg`` (``layer: best``, batched sweep,
``--C`` grid, ``--max-iter``), once per arm, each in a fresh child process whose peak RSS
(``ru_maxrss``) and wall time are reported:

- ``stream``: the store's layers read a block at a time (:mod:`pipeline.heads.probe.stream`; a
  block is ``BLOCK_BYTES`` of every row, one layer at 100k × 1024);
- ``memory``: the previous path — ``store.pooled()`` of all layers, then the same sweep.

Side by side: peak RSS (and its growth over the RSS after imports, ``peak_over_before_mb``; the
target is about one layer plus the solver's copies) against the size of one layer and of the whole
store, time, the chosen
layer and dev scores (equal between arms). An arm whose array would not fit (``memory`` at 100k
on a 24 GB box) is left out with ``--arms stream``; the report then gives its lower bound, the
store's size, as ``memory_lower_bound_mb``. The store is deleted at the end (``--keep`` keeps it).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLASSES = ["a", "b", "c", "d"]


def build(root: Path, n: int, layers: int, dim: int, classes: int, seed: int = 0, block: int = 2000) -> dict:
    """Write store ``root/f.zarr`` and manifest ``root/manifest.csv``; return timings."""
    import zarr

    from pipeline.core.io import atomic_dir
    from pipeline.core.store import seal_store
    from pipeline.core.zarrio import POOLED_LAYOUT, ArrayAppender, write_strings

    rng = np.random.default_rng(seed)
    ids = [f"u{i:06d}" for i in range(n)]
    y = rng.integers(0, classes, n)
    split = np.where(np.arange(n) % 10 < 8, "train", np.where(np.arange(n) % 10 == 8, "dev", "test"))
    means = np.random.default_rng(123).standard_normal((layers, classes, dim), dtype=np.float32)
    means *= np.linspace(0.01, 0.08, layers, dtype=np.float32)[:, None, None]  # deeper separates better
    t0 = time.perf_counter()
    with atomic_dir(root / "f.zarr") as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        write_strings(group, "ids", ids)
        out = ArrayAppender(group, "pooled", (layers, dim), np.float32, **POOLED_LAYOUT)
        for a in range(0, n, block):
            b = min(n, a + block)
            rows = rng.standard_normal((b - a, layers, dim), dtype=np.float32)
            rows += means[:, y[a:b]].transpose(1, 0, 2)
            out.append(rows)
        arr = out.close()
        seal_store(group, {"backbone": "bench", "type": "synthetic"}, arr, has_frames=False)
    t1 = time.perf_counter()
    labels = [CLASSES[k] if classes <= len(CLASSES) else f"c{k}" for k in y]
    pd.DataFrame({"id": ids, "speaker": [f"s{i % 50}" for i in range(n)], "split": split, "audio": "", "video": "",
                  "text": "", "emotion": labels}).to_csv(root / "manifest.csv", index=False)
    return {"build_s": round(t1 - t0, 1)}


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def child(args) -> None:
    """One arm, in this (fresh) process: run the probe, print its figures as JSON."""
    import sklearn.linear_model  # noqa: F401 - imported before the floor is taken, as torch is
    import torch  # noqa: F401

    import pipeline.heads.probe.run as run_mod
    from pipeline.core.manifest import Corpus, Task
    from pipeline.core.store import FeatureStore

    root = Path(args.root)
    manifest = pd.read_csv(root / "manifest.csv", keep_default_na=False)
    labels = sorted(set(manifest["emotion"]))
    corpus = Corpus("bench", manifest, [Task("emotion", "classification", labels)], str(root))
    run_mod.STREAM_LAYERS = args.child == "stream"
    cfg = {"C_grid": args.C, "layer": "best", "max_iter": args.max_iter, "device": args.device}
    out = root / args.child
    before = current_rss_mb()  # imports (torch, sklearn, zarr) and the manifest: the floor of any arm
    t0 = time.perf_counter()
    result = run_mod.run_probe(corpus, FeatureStore(root / "f.zarr"), "logreg", cfg, model_dir=out / "m",
                               metrics_path=out / "metrics.json", predictions_dir=out / "p")
    seconds = time.perf_counter() - t0
    fold = result["tasks"]["emotion"]["folds"][0]
    print(json.dumps({
        "s": round(seconds, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_mb": round(before), "peak_over_before_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before),
        "chosen": fold["layer"]["chosen"], "dev_scores": [round(s, 4) for s in fold["layer"]["dev_scores"]],
        "test_uar": result["tasks"]["emotion"]["test"].get("uar"), "unconverged": fold["layer"].get("unconverged"),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--layers", type=int, default=25)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--C", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--max-iter", type=int, default=100, help="L-BFGS iterations per model (sweep and refit)")
    parser.add_argument("--arms", nargs="+", default=["stream", "memory"], choices=["stream", "memory"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", choices=["stream", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    store_mb = args.n * args.layers * args.dim * 4 / 2**20
    report: dict = {
        "n": args.n, "layers": args.layers, "dim": args.dim, "classes": args.classes, "C_grid": args.C,
        "max_iter": args.max_iter, "device": args.device, "store_mb": round(store_mb, 1),
        "one_layer_mb": round(store_mb / args.layers, 1), "head": "logreg (layer: best, sweep: batched)",
    }
    root = Path(tempfile.mkdtemp(prefix="probestream-", dir=args.tmp))
    try:
        free = shutil.disk_usage(root).free / 2**20
        if free < store_mb * 1.1:
            raise SystemExit(f"{root}: {free:.0f} MB free, the store needs {store_mb:.0f} MB; pass --tmp or a smaller --n")
        report.update(build(root, args.n, args.layers, args.dim, args.classes))
        from pipeline.heads.probe.stream import BLOCK_BYTES, block_layers

        report["layers_per_block"] = block_layers(args.n, args.dim, args.layers)
        report["block_mb"] = BLOCK_BYTES >> 20
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        for arm in args.arms:
            cmd = [sys.executable, __file__, "--child", arm, "--root", str(root), "--C", *map(str, args.C),
                   "--max-iter", str(args.max_iter), "--device", args.device]
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
            if proc.returncode:
                report[arm] = {"error": proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
                continue
            report[arm] = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    s = report.get("stream", {})
    if "peak_rss_mb" in s:
        report["stream_growth_over_one_layer"] = round(s["peak_over_before_mb"] / report["one_layer_mb"], 2)
        report["stream_rss_over_store"] = round(s["peak_rss_mb"] / store_mb, 3)
    m = report.get("memory", {})
    if "peak_rss_mb" in m and "peak_rss_mb" in s:
        report["rss_memory_over_stream"] = round(m["peak_rss_mb"] / s["peak_rss_mb"], 2)
        report["time_stream_over_memory"] = round(s["s"] / m["s"], 2)
        report["same_result"] = m["chosen"] == s["chosen"] and m["dev_scores"] == s["dev_scores"]
    elif "memory" not in args.arms:
        report["memory_lower_bound_mb"] = round(store_mb)  # the [N, L, D] array alone, before any copy
    report["cpus"] = os.cpu_count()
    report["machine"] = platform.processor() or platform.machine()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
