"""Benchmark: feature-store reads against memory speed — a contiguous ``.npy`` and a memory-mapped file.

    python benchmarks/store_reads.py                       # pooled 10k × 768; frames of 1,000 of 2,000 utterances
    python benchmarks/store_reads.py --n 100000 --frames-n 5000

Builds, in a temporary directory (``--tmp``), a real feature store with
:func:`pipeline.core.store.write_store` (pooled float32 [N, D]; frame features of ``--frames-n``
utterances of 50–150 frames each) and, beside it, the same bytes as plain files: the pooled matrix
as one ``.npy`` and the frames as one flat ``.bin``. Then times, interleaved in one run (medians of
``--repeats``, warm page cache), each store read next to its baseline:

- **pooled, whole array**: ``store.pooled()`` on an open store (the read a probe or a layer sweep
  repeats) vs ``np.load(npy)``; ``ratio_pooled`` = store / npy, target ≤ 2. Also shown: a fresh
  ``FeatureStore(path).pooled()`` (open: attributes, ids, index), the first read of a process
  (which hashes the array with BLAKE2b against its sealed checksum; ``blake2b_s`` is that hash
  alone, the floor for any verified read), zarr's own read of the array (the path before) and the
  shuffled-order read a probe does, ``pooled(ids)`` vs ``np.load(npy)[perm]``.
- **frames of 1,000 random utterances**: ``store.frames(uid)`` for each vs copying the same byte
  ranges out of ``np.memmap(bin)``; ``ratio_frames`` = store / mmap, target ≤ 2. The first pass
  (each utterance hashed against its digest) and zarr's own slicing (the path before) are shown too.

Repeated reads are served by the verified-files memo of :mod:`pipeline.core.store` (files unchanged
since they were checked in this process are not hashed again); the first-read figures are what a
new process pays. Every store read is checked equal to the baseline's bytes. Prints one JSON object.
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

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline.core.store as store_mod
from pipeline.core.store import FeatureStore, write_store
from pipeline.core.zarrio import data_digest


def timed(fn) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def forget_verified() -> None:
    """What a new process starts with: nothing verified yet."""
    store_mod._VERIFIED.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="utterances of the pooled store")
    parser.add_argument("--dims", type=int, default=768)
    parser.add_argument("--frames-n", type=int, default=2000, help="utterances with frame features")
    parser.add_argument("--frames-read", type=int, default=1000, help="random utterances whose frames are read")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default=None, help="where to build the data (default: the system temp dir)")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    ids = [f"utt{i:06d}" for i in range(args.n)]
    pooled = rng.standard_normal((args.n, args.dims), dtype=np.float32)
    perm = rng.permutation(args.n)
    order = [ids[i] for i in perm]
    fids = [f"f{i:06d}" for i in range(args.frames_n)]
    lengths = rng.integers(50, 151, args.frames_n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = rng.standard_normal((int(offsets[-1]), args.dims), dtype=np.float32)
    pick = rng.choice(args.frames_n, min(args.frames_read, args.frames_n), replace=False)
    report: dict = {
        "n": args.n, "dims": args.dims, "pooled_mb": round(pooled.nbytes / 2**20, 1),
        "frames_n": args.frames_n, "frames_read": len(pick),
        "frames_read_mb": round(float(lengths[pick].sum()) * args.dims * 4 / 2**20, 1),
        "repeats": args.repeats, "cache": "warm (files just written and read; medians of repeats)",
    }
    runs: dict[str, list[float]] = {}

    def run(name: str, fn, expect: bytes | None = None):
        out, seconds = timed(fn)
        if expect is not None and _bytes(out) != expect:
            raise SystemExit(f"{name}: result differs from the baseline")
        runs.setdefault(name, []).append(seconds)
        return out

    with tempfile.TemporaryDirectory(prefix="storereads-", dir=args.tmp) as tmp:
        root = Path(tmp)
        write_store(root / "pooled.zarr", ids=ids, pooled=pooled, attrs={"backbone": "bench"})
        np.save(root / "pooled.npy", pooled)
        frames = [flat[offsets[i] : offsets[i + 1]] for i in range(args.frames_n)]
        write_store(root / "frames.zarr", ids=fids, pooled=np.zeros((args.frames_n, 1), np.float32), frames=frames,
                    attrs={"backbone": "bench"})
        flat.tofile(root / "frames.bin")
        whole, shuffled = pooled.tobytes(), pooled[perm].tobytes()
        wanted = b"".join(flat[offsets[i] : offsets[i + 1]].tobytes() for i in pick)
        del pooled, frames
        npy, zarr_path = root / "pooled.npy", root / "pooled.zarr"
        mm = np.memmap(root / "frames.bin", dtype=np.float32, mode="r", shape=flat.shape)
        del flat

        def mmap_frames():
            return [np.array(mm[offsets[i] : offsets[i + 1]]) for i in pick]

        # warm-up: page cache, imports
        np.load(npy), FeatureStore(zarr_path).pooled(), mmap_frames()
        report["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
        for _ in range(args.repeats):  # interleaved, so both sides see the same machine load
            forget_verified()
            run("pooled_first", lambda: FeatureStore(zarr_path).pooled(), whole)
            store = FeatureStore(zarr_path)
            run("npy", lambda: np.load(npy), whole)
            store.pooled()
            run("pooled", store.pooled, whole)
            run("pooled_open", lambda: FeatureStore(zarr_path).pooled(), whole)
            run("zarr", lambda s=store: s.group["pooled"][...], whole)
            run("blake2b", lambda: data_digest(np.frombuffer(whole, np.float32)))
            run("npy_shuffled", lambda: np.load(npy)[perm], shuffled)
            run("pooled_shuffled", lambda s=store: s.pooled(order), shuffled)

            forget_verified()
            fstore = FeatureStore(root / "frames.zarr")
            run("frames_first", lambda s=fstore: [s.frames(fids[i]) for i in pick], wanted)
            run("mmap", mmap_frames, wanted)
            run("frames", lambda s=fstore: [s.frames(fids[i]) for i in pick], wanted)
            farr = fstore.group["frames"]
            run("frames_zarr", lambda a=farr: [a[int(offsets[i]) : int(offsets[i + 1])] for i in pick], wanted)
        report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        report["store_files"] = sum(len(f) for _, _, f in os.walk(zarr_path))

    for name, values in runs.items():
        report[f"{name}_s"] = round(statistics.median(values), 5)
    report["ratio_pooled"] = report["pooled_s"] / report["npy_s"]
    report["ratio_pooled_open"] = report["pooled_open_s"] / report["npy_s"]
    report["ratio_pooled_first"] = report["pooled_first_s"] / report["npy_s"]
    report["ratio_pooled_zarr"] = report["zarr_s"] / report["npy_s"]
    report["ratio_shuffled"] = report["pooled_shuffled_s"] / report["npy_shuffled_s"]
    report["ratio_frames"] = report["frames_s"] / report["mmap_s"]
    report["ratio_frames_first"] = report["frames_first_s"] / report["mmap_s"]
    report["ratio_frames_zarr"] = report["frames_zarr_s"] / report["mmap_s"]
    report["target"] = "ratio_pooled <= 2 and ratio_frames <= 2"
    report["meets_target"] = report["ratio_pooled"] <= 2 and report["ratio_frames"] <= 2
    report["cpus"] = os.cpu_count()
    report["machine"] = platform.processor() or platform.machine()
    print(json.dumps(report))


def _bytes(out) -> bytes:
    if isinstance(out, list):
        return b"".join(np.ascontiguousarray(a).tobytes() for a in out)
    return np.ascontiguousarray(out).tobytes()


if __name__ == "__main__":
    main()
