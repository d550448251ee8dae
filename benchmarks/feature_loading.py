"""Benchmark: loading all pooled features for a probe, feature store vs one ``.npy`` per utterance.

    python benchmarks/feature_loading.py                  # N=10000, D=768, 5 repetitions (warm cache)
    python benchmarks/feature_loading.py --layers 13      # layered store: pooled [N, 13, 768]
    python benchmarks/feature_loading.py --cold           # also evict the files from the page cache first

Builds, in a temporary directory, a real feature store with :func:`pipeline.core.store.write_store`
(``N`` utterances ``utt00000`` …, pooled float32 features) and the same features as ``N`` files
``<dir>/<id>.npy`` written with ``np.save``, as the seed code kept them. Then times, interleaved in
one run, both ways of getting the matrix a probe trains on, in a shuffled id order (a probe asks for
train/dev/test ids, never the store's order):

- store: ``FeatureStore(path).pooled(ids)`` — opening the store (attributes, ids, index) and reading
  every pooled row;
- npy: ``np.stack([np.load(f"{dir}/{uid}.npy") for uid in ids])``.

Target: store ≥ 30× faster (``ratio`` = npy_s / store_s). Both results are checked to be
identical. Times are medians over ``--repeats`` runs after one untimed warm-up of each, so they are
**warm page cache** figures: the files were just written and read, nothing comes from disk. With
``--cold`` each timed read is preceded by ``posix_fadvise(POSIX_FADV_DONTNEED)`` on every file of
that variant (no root needed; it evicts this machine's page cache only — a virtual disk may still
be cached by the host), reported separately as ``*_cold_s``. Features are standard-normal float32
(nearly incompressible, like real embeddings). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # `python benchmarks/feature_loading.py` as well as `python -m benchmarks.…`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core.store import FeatureStore, write_store  # noqa: E402

TARGET = 30.0


def make_data(n: int, dims: int, layers: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    ids = [f"utt{i:05d}" for i in range(n)]
    shape = (n, layers, dims) if layers else (n, dims)
    return ids, np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def build(root: Path, ids: list[str], feats: np.ndarray) -> tuple[Path, Path, dict[str, float]]:
    store, npy_dir = root / "features.zarr", root / "npy"
    t0 = time.perf_counter()
    write_store(store, ids=ids, pooled=feats, attrs={"backbone": "bench", "type": "synthetic", "corpus": "bench"})
    t1 = time.perf_counter()
    npy_dir.mkdir()
    for uid, row in zip(ids, feats):
        np.save(npy_dir / f"{uid}.npy", row)
    t2 = time.perf_counter()
    return store, npy_dir, {"write_store_s": t1 - t0, "write_npy_s": t2 - t1}


def files_under(path: Path) -> list[Path]:
    return [Path(d) / f for d, _, names in os.walk(path) for f in names]


def evict(files: list[Path]) -> None:
    """Drop ``files`` from this machine's page cache (flushed first: dirty pages are not dropped)."""
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def load_store(store: Path, ids: list[str]) -> np.ndarray:
    return FeatureStore(store).pooled(ids)


def load_npy(npy_dir: Path, ids: list[str]) -> np.ndarray:
    return np.stack([np.load(f"{npy_dir}/{uid}.npy") for uid in ids])


def timed(fn, *args) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="utterances")
    parser.add_argument("--dims", type=int, default=768, help="feature dimension D")
    parser.add_argument("--layers", type=int, default=0, help="L > 0: layered pooled features [N, L, D] (e.g. 13)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each variant (median reported)")
    parser.add_argument("--cold", action="store_true", help="also time reads after posix_fadvise(DONTNEED) eviction")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default=None, help="where to build the data (default: the system temp dir)")
    args = parser.parse_args()

    ids, feats = make_data(args.n, args.dims, args.layers, args.seed)
    order = list(np.random.default_rng(args.seed + 1).permutation(ids))  # the order a probe asks in
    expected = feats[np.asarray([int(u[3:]) for u in order])]
    report: dict = {
        "n": args.n,
        "dims": args.dims,
        "layers": args.layers or None,
        "shape": list(feats.shape),
        "feature_mb": round(feats.nbytes / 2**20, 1),
        "repeats": args.repeats,
        "cache": "warm (files just written and read once; medians of repeats)",
    }
    with tempfile.TemporaryDirectory(prefix="featload-", dir=args.tmp) as tmp:
        store, npy_dir, build_times = build(Path(tmp), ids, feats)
        del feats
        store_files, npy_files = files_under(store), files_under(npy_dir)
        report["files"] = {"store": len(store_files), "npy": len(npy_files)}
        report["bytes"] = {
            "store": sum(p.stat().st_size for p in store_files),
            "npy": sum(p.stat().st_size for p in npy_files),
        }
        report.update(build_times)

        # Warm-up (imports, page cache) and the correctness check: both must give the same array.
        a, b = load_store(store, order), load_npy(npy_dir, order)
        report["identical"] = bool(a.dtype == b.dtype and np.array_equal(a, b) and np.array_equal(a, expected))
        if not report["identical"]:
            raise SystemExit(f"store and npy results differ: {a.shape} {a.dtype} vs {b.shape} {b.dtype}")
        del a, b, expected

        runs: dict[str, list[float]] = {"store": [], "npy": [], "store_cold": [], "npy_cold": []}
        report["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            runs["store"].append(timed(load_store, store, order)[1])
            runs["npy"].append(timed(load_npy, npy_dir, order)[1])
            if args.cold:
                evict(store_files)
                runs["store_cold"].append(timed(load_store, store, order)[1])
                evict(npy_files)
                runs["npy_cold"].append(timed(load_npy, npy_dir, order)[1])
        report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]

    for key, values in runs.items():
        if values:
            report[f"{key}_s"] = statistics.median(values)
            report[f"{key}_runs_s"] = [round(v, 4) for v in values]
    report["ratio"] = report["npy_s"] / report["store_s"]
    if args.cold:
        report["ratio_cold"] = report["npy_cold_s"] / report["store_cold_s"]
    report["target"] = TARGET
    report["meets_target"] = report["ratio"] >= TARGET
    report["cpus"] = os.cpu_count()
    report["machine"] = platform.processor() or platform.machine()
    print(json.dumps(report))  # one JSON object, the last line of stdout


if __name__ == "__main__":
    main()
