"""Benchmark: 10k vs 100k utterances — embed-cache scan, store assembly, and a no-op ``dvc status``.

    python benchmarks/scale_100k.py                       # N = 10000 and 100000, D = 768
    python benchmarks/scale_100k.py --sizes 2000 20000    # a quick dry run
    python benchmarks/scale_100k.py --skip-dvc            # the cache part only

Two parts, each at every ``--sizes`` (side by side, one run):

1. **Cache scan and store assembly** (the embed stage's fixed cost of a rerun): an embed cache of
   N items in shards of ``--shard-size`` (256, as ``embed.shard_size``) written with the stage's
   own :func:`pipeline.features.embed.cache.write_cache_shard` (pooled float32 [N, D]); then
   timed: ``Cache.scan()`` (every shard's metadata and keys, checked), ``assemble_store`` (every
   item from its checked shard into a sealed store, in manifest order: the cache's own, as when it
   was planned from that manifest, and ``assemble_shuffled`` a random one) and a first
   ``FeatureStore.pooled()`` of the result. Reported per item (µs); ``*_per_item_ratio`` = per-item time at the largest size / at the
   smallest, the median over ``--cache-repeats`` (3) rounds that each time every size in turn (side
   by side under the same load): flat is ≈ 1 (target ≤ 1.2).
2. **No-op ``dvc status``** of a project shaped like this one's at that size: a corpus folder of N
   small media files outside the repository, an ``inputs`` stage linking ``data/bench/inputs`` to
   it and writing ``inputs.json`` with the project's own :func:`pipeline.core.inputs.link_inputs`
   and :func:`~pipeline.core.inputs.list_inputs`, a ``prepare`` stage listing its N items,
   ``--backbones`` (5) embed stages each writing a real N-row feature store, one probe stage per
   backbone reading it: 2 + 2 × 5 stages. After one ``dvc repro`` (setup, reported) and ``git
   commit``, ``dvc status`` and ``dvc repro`` (which must run nothing) are timed (medians of
   ``--repeats``), with ``dvc version`` as the floor every DVC command pays; then one media file
   is edited and ``dvc status`` must name ``inputs``. Two layouts side by side (``--shapes``):
   ``once``, the project's (the link is ``inputs``' output and ``prepare`` depends on
   ``inputs.json``), and ``twice``, the layout before, where ``prepare`` also depended on the link
   and DVC walked the corpus a second time. Target: ``dvc status`` ≤ 3 s at 100k. The embed and
   probe commands are small scripts, not the project's own stages (a real segment + 5 embeds of
   100k clips is hours of CPU): what DVC does in a no-op — parse dvc.yaml and params, stat every
   dependency and output file and look it up in its state database — depends on the files and
   stages, which are the same; the project's own no-op at 10k is benchmark 5 (``noop_repro.py``).

Everything lives under ``--tmp`` and is deleted at the end. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


# --- part 1: cache scan and assembly -----------------------------------------------------------------


class CacheBench:
    """One size's embed cache (N items, shards of ``shard_size``), written once with the stage's own
    :func:`~pipeline.features.embed.cache.write_cache_shard`; each :meth:`run` times a scan, an
    assembly in the cache's order and in a shuffled one, and a first read of the assembled store."""

    def __init__(self, root: Path, n: int, dim: int, shard_size: int, seed: int = 0):
        from pipeline.core.hashing import content_key
        from pipeline.features.embed.cache import Cache, Shard, write_cache_shard

        self.root, self.n, self.dim, self.shard_size = root, n, dim, shard_size
        rng = np.random.default_rng(seed)
        self.ids = [f"u{i:06d}" for i in range(n)]
        self.keys = [content_key("bench", u) for u in self.ids]
        self.shuffled = rng.permutation(n)
        self.cache_dir = root / f"cache-{n}"
        cache = Cache(self.cache_dir, "bkey")
        t0 = time.perf_counter()
        for a in range(0, n, shard_size):
            shard = Shard(content_key(*self.keys[a : a + shard_size])[:24], self.keys[a : a + shard_size])
            rows = rng.standard_normal((len(shard.keys), dim), dtype=np.float32)
            write_cache_shard(cache.shard_path(shard.id), shard, list(rows), [None] * len(shard.keys))
        self.write_s = time.perf_counter() - t0

    def run(self) -> dict[str, float]:
        import pipeline.core.store as store_mod
        from pipeline.core.store import FeatureStore
        from pipeline.features.embed.assemble import assemble_store
        from pipeline.features.embed.cache import Cache
        from pipeline.features.embed.items import Items

        cache = Cache(self.cache_dir, "bkey")
        done, scan_s = timed(cache.scan)
        assert len(done) == self.n
        cache.scan()  # (has_frames per shard)

        def assemble(order, path):
            items = Items(modality="audio", segments=None, ids=[self.ids[i] for i in order],
                          keys=[self.keys[i] for i in order], lengths=np.ones(self.n, np.int64))
            return timed(lambda: assemble_store(path, items, cache, done, {"backbone": "bench"}, want_frames=False))[1]

        store, shuffled = self.root / f"store-{self.n}.zarr", self.root / f"shuffled-{self.n}.zarr"
        assemble_s = assemble(np.arange(self.n), store)  # the cache was planned in manifest order
        shuffled_s = assemble(self.shuffled, shuffled)  # a manifest whose order is not the cache's
        shutil.rmtree(shuffled)
        store_mod._VERIFIED.clear()  # a new process
        X, read_s = timed(lambda: FeatureStore(store).pooled())
        assert X.shape == (self.n, self.dim)
        shutil.rmtree(store)
        return {"scan": scan_s, "assemble": assemble_s, "assemble_shuffled": shuffled_s, "first_read": read_s}

    def close(self) -> None:
        shutil.rmtree(self.cache_dir)


CACHE_TIMES = ("scan", "assemble", "assemble_shuffled", "first_read")


def cache_part(root: Path, sizes: list[int], dim: int, shard_size: int, repeats: int) -> dict:
    """Every size's cache is written first; then ``repeats`` rounds each time every size in turn, so
    the sizes are measured side by side under the same machine load, and each ratio is the median of
    the rounds' ratios (on a shared machine one 10k run varied by ±30 % between runs)."""
    CacheBench(root, 2 * shard_size, dim, shard_size).run()  # warm-up: imports, first zarr use
    benches = {n: CacheBench(root, n, dim, shard_size) for n in sizes}
    rounds: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
    try:
        for _ in range(repeats):
            for n, bench in benches.items():
                rounds[n].append(bench.run())
    finally:
        for bench in benches.values():
            bench.close()
    out: dict = {"sizes": {}}
    for n in sizes:
        med = {k: statistics.median(r[k] for r in rounds[n]) for k in CACHE_TIMES}
        out["sizes"][str(n)] = {
            "shards": (n + shard_size - 1) // shard_size, "write_cache_s": round(benches[n].write_s, 2),
            **{f"{k}_s": round(v, 3) for k, v in med.items()},
            **{f"{k}_us_per_item": round(v / n * 1e6, 2) for k, v in med.items()},
        }
    lo, hi = min(sizes), max(sizes)
    for k in CACHE_TIMES:
        ratios = [(rh[k] / hi) / (rl[k] / lo) for rl, rh in zip(rounds[lo], rounds[hi])]
        out[f"{k}_per_item_ratio"] = round(statistics.median(ratios), 2)
        out[f"{k}_per_item_ratio_rounds"] = [round(x, 2) for x in ratios]
    return out


# --- part 2: no-op dvc status -----------------------------------------------------------------------

INPUTS = """\
import sys
from pipeline.core.inputs import link_inputs, list_inputs
from pipeline.core.io import write_json
media, shape = sys.argv[1], sys.argv[2]
link_inputs("bench", media, "data/bench/inputs")
if shape == "once":
    write_json("data/bench/inputs.json", list_inputs("bench", media))
"""
PREPARE = """\
import os
root = "data/bench/inputs"
names = sorted(f for _, _, files in os.walk(root, followlinks=True) for f in files)
with open("data/bench/items.txt", "w") as f:
    f.write("\\n".join(names))
"""
EMBED = """\
import sys
import numpy as np
from pipeline.core.store import write_store
name, dim = sys.argv[1], int(sys.argv[2])
ids = open("data/bench/items.txt").read().split()
X = np.random.default_rng(abs(hash(name)) % 2**32).standard_normal((len(ids), dim), dtype=np.float32)
write_store(f"features/bench/{name}.zarr", ids=ids, pooled=X, attrs={"backbone": name})
"""
PROBE = """\
import json, os, sys
from pipeline.core.store import FeatureStore
name = sys.argv[1]
X = FeatureStore(f"features/bench/{name}.zarr").pooled()
os.makedirs("metrics/bench", exist_ok=True)
json.dump({"n": len(X), "mean": float(X.mean())}, open(f"metrics/bench/{name}.json", "w"))
"""
# How the corpus is watched: "once" is the project's dvc.yaml (the link is inputs@'s output, prepare
# depends on the inputs.json it writes); "twice" is the layout before (prepare also depended on the
# link, so DVC walked the corpus a second time), kept as the side-by-side baseline.
SHAPES = ("once", "twice")


def sh(cwd: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout + proc.stderr


def make_media(media: Path, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):  # small distinct files (content does not matter to a no-op: stat + state lookup)
        sub = media / f"spk{i % 100:03d}"
        if i < 100:
            sub.mkdir(parents=True)
        (sub / f"u{i:06d}.wav").write_bytes(b"RIFF" + i.to_bytes(8, "little") * 16)
    return time.perf_counter() - t0


def dvc_part(repo: Path, media: Path, n: int, dim: int, backbones: int, repeats: int, shape: str) -> dict:
    import yaml

    for sub in ("data/bench", "features/bench", "stages"):
        (repo / sub).mkdir(parents=True)
    for name, code in (("inputs", INPUTS), ("prepare", PREPARE), ("embed", EMBED), ("probe", PROBE)):
        (repo / "stages" / f"{name}.py").write_text(code)
    (repo / ".gitignore").write_text(".cache/\n")  # (the fingerprint state, as in the project)
    names = [f"b{k}" for k in range(backbones)]
    (repo / "params.yaml").write_text(yaml.safe_dump({"dim": dim, "backbones": names}))
    link = {"data/bench/inputs": {"cache": False, "persist": True}}
    stages = {
        "inputs": {"cmd": f"python stages/inputs.py {media} {shape}", "deps": ["stages/inputs.py"],
                   "outs": [link, {"data/bench/inputs.json": {"cache": False}}] if shape == "once" else [link]},
        "prepare": {"cmd": "python stages/prepare.py",
                    "deps": ["stages/prepare.py", "data/bench/inputs.json" if shape == "once" else "data/bench/inputs"],
                    "outs": ["data/bench/items.txt"]},
        "embed": {"foreach": names, "do": {
            "cmd": "python stages/embed.py ${item} ${dim}", "deps": ["stages/embed.py", "data/bench/items.txt"],
            "params": ["dim"], "outs": ["features/bench/${item}.zarr"]}},
        "probe": {"foreach": names, "do": {
            "cmd": "python stages/probe.py ${item}", "deps": ["stages/probe.py", "features/bench/${item}.zarr"],
            "metrics": [{"metrics/bench/${item}.json": {"cache": False}}]}},
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    sh(repo, "git", "init", "-q")
    sh(repo, "dvc", "init", "-q")
    sh(repo, "dvc", "config", "core.autostage", "false")
    t1 = time.perf_counter()
    sh(repo, "dvc", "repro")
    setup_s = time.perf_counter() - t1
    rows = len((repo / "data/bench/items.txt").read_text().split())
    assert rows == n, f"prepare listed {rows} of {n} files"
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "setup")
    sh(repo, "dvc", "status")  # warm-up: page cache, state database
    runs: dict[str, list[float]] = {"status": [], "repro": [], "version": []}
    for _ in range(repeats):
        out, s = timed(lambda: sh(repo, "dvc", "status"))
        if "up to date" not in out:
            raise SystemExit(f"dvc status at {n}: not a no-op:\n{out[-2000:]}")
        runs["status"].append(s)
        out, s = timed(lambda: sh(repo, "dvc", "repro"))
        if "Running stage" in out:
            raise SystemExit(f"dvc repro at {n}: ran stages:\n{out[-2000:]}")
        runs["repro"].append(s)
        runs["version"].append(timed(lambda: sh(repo, "dvc", "version"))[1])
    # a change is still seen: one file edited in place shows as inputs' changed output
    edited = media / "spk000" / "u000000.wav"
    original = edited.read_bytes()
    edited.write_bytes(original[:-1] + b"\xff")
    seen = "inputs:" in sh(repo, "dvc", "status")
    edited.write_bytes(original)
    if not seen:
        raise SystemExit(f"dvc status at {n} ({shape}): an edited media file was not noticed")
    shutil.rmtree(repo)
    out = {"stages": 2 + 2 * backbones, "media_files": n, "store_rows": rows, "setup_repro_s": round(setup_s, 1)}
    for key, values in runs.items():
        out[f"{key}_s"] = round(statistics.median(values), 3)
        out[f"{key}_runs_s"] = [round(v, 3) for v in values]
    return out


def dvc_sizes(root: Path, n: int, args) -> dict:
    media = root / f"media-{n}"
    out: dict = {"make_media_s": round(make_media(media, n), 1)}
    for shape in args.shapes:
        out[f"watched_{shape}"] = dvc_part(root / f"dvc-{n}-{shape}", media, n, args.dim, args.backbones,
                                           args.repeats, shape)
    shutil.rmtree(media)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--backbones", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache-repeats", type=int, default=3, help="cache scan and assembly: rounds over every size (medians)")
    parser.add_argument("--skip-dvc", action="store_true")
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES),
                        help="how the corpus is watched: once (the project's layout), twice (the layout before)")
    parser.add_argument("--skip-cache", action="store_true")
    parser.add_argument("--tmp", default=None)
    args = parser.parse_args()

    report: dict = {"sizes": args.sizes, "dim": args.dim, "shard_size": args.shard_size, "backbones": args.backbones}
    root = Path(tempfile.mkdtemp(prefix="scale100k-", dir=args.tmp))
    try:
        if not args.skip_cache:
            report["cache"] = cache_part(root, args.sizes, args.dim, args.shard_size, args.cache_repeats)
        if not args.skip_dvc:
            report["dvc"] = {str(n): dvc_sizes(root, n, args) for n in args.sizes}
            big = report["dvc"][str(max(args.sizes))][f"watched_{args.shapes[0]}"]
            report["noop_status_s"] = big["status_s"]
            report["noop_status_target_s"] = 3.0
            report["meets_target"] = big["status_s"] <= 3.0
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report["cpus"] = os.cpu_count()
    report["machine"] = platform.processor() or platform.machine()
    report["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
