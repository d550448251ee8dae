"""Benchmark: probe selection on N ≪ D features (ComParE), scikit-learn on the features vs the Gram path.

    python benchmarks/probe_fast.py                  # the shared EmoDB sample (LOSO folds), ComParE_2016
    python benchmarks/probe_fast.py --corpus demo    # the demo corpus (data/demo/segments.zarr; dvc repro first)
    python benchmarks/probe_fast.py --synthetic 480  # 480 synthetic items x 6373-d, 10 speakers, LOSO
    python benchmarks/probe_fast.py --recipe         # + the recommended offline recipe through run_fusion
    python benchmarks/probe_fast.py --converged      # + logreg's C from a tightly converged float64 fit

For every fold of the corpus's protocol (``plan_folds``: what the probe stage runs) and every head
(``logreg``, ``svm`` linear, ``svm`` rbf, each with its params.yaml grid), the same fit is timed twice,
back to back on the same data: ``solve: primal`` (scikit-learn on the [N, D] features: today's
logreg path, and ``SVC(kernel=...)``) and ``solve: gram`` (:mod:`pipeline.heads.probe.gram`). Prints
one JSON object: wall and CPU seconds of both, their ratio, whether every fold chose the same
hyper-parameters, the smallest test-prediction agreement and the largest probability difference.
ComParE features are computed with the opensmile backbone (``build_backbone("compare", ...)``) and
cached under the system temp directory (``affectbench-probe-fast/``), keyed by the files' names,
sizes and mtimes. ``--threads`` (default 1: a fair, quiet-machine-like comparison on a shared box)
limits BLAS/OpenMP threads for both paths.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.core.config import load_params, section
from pipeline.experiment.protocol import plan_folds
from pipeline.heads.probe.base import build_head

EMODB = ROOT.parent / "shared" / "data" / "real" / "emodb_sample"
FEATURE_SETS = {"compare": "ComParE_2016", "egemaps": "eGeMAPSv02"}
HEADS = ("logreg", "svm_linear", "svm_rbf")


def cache_dir() -> Path:
    out = Path(tempfile.gettempdir()) / "affectbench-probe-fast"
    out.mkdir(exist_ok=True)
    return out


def opensmile_features(name: str, ids: list[str], keys: list[str], load_audio) -> np.ndarray:
    """openSMILE functionals of every item (``load_audio(id)`` → 16 kHz mono float32), cached by ``keys``."""
    digest = hashlib.sha256(json.dumps([name, keys]).encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{digest}.npy"
    if path.exists():
        return np.load(path)
    from pipeline.features.backbones.base import build_backbone

    backbone = build_backbone(name, {"type": "opensmile", "feature_set": FEATURE_SETS[name]})
    X = np.stack([backbone.embed([load_audio(uid)])[0].pooled for uid in ids]).astype(np.float32)
    np.save(path, X)
    return X


def emodb_sample(out_dir: Path):
    """The shared EmoDB sample through the emodb recipe (default protocol: leave-one-speaker-out)."""
    import soundfile as sf

    from pipeline.corpora.base import prepare_corpus

    corpus = prepare_corpus("emodb", {"root": str(EMODB)}, out_dir)
    paths = {p.stem: p for p in EMODB.glob("*.wav")}

    def load(uid: str) -> np.ndarray:
        audio, sr = sf.read(paths[uid], dtype="float32")
        if sr != 16000:
            raise SystemExit(f"{paths[uid]}: {sr} Hz, expected 16000")
        return audio

    ids = corpus.manifest["id"].tolist()
    keys = [f"{paths[u].name}:{paths[u].stat().st_size}:{paths[u].stat().st_mtime_ns}" for u in ids]
    return corpus, keys, load


def demo_corpus():
    from pipeline.core import manifest
    from pipeline.core.segments import Segments

    prepared, segments = ROOT / "data/demo/prepared", ROOT / "data/demo/segments.zarr"
    if not segments.exists():
        raise SystemExit(f"{segments} is missing: run `dvc repro segment@demo` first")
    corpus = manifest.load(prepared)
    store = Segments(segments)
    ids = corpus.manifest["id"].tolist()
    keys = [f"{u}:{k}" for u, k in zip(ids, (store.keys("audio")[store.index[u]] for u in ids))]
    return corpus, keys, store.audio


def synthetic(n: int, dim: int = 6373, classes: int = 7, speakers: int = 10, seed: int = 0):
    """Gaussian classes in a few directions of a ``dim``-d space, features on unequal scales, speaker offsets."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    spk = rng.integers(0, speakers, n)
    scales = rng.uniform(0.1, 50.0, dim)
    means = rng.normal(size=(classes, dim)) * 0.08
    X = (rng.normal(size=(n, dim)) + means[y] + rng.normal(size=(speakers, dim))[spk] * 0.3) * scales
    rows = pd.DataFrame({"id": [f"u{i}" for i in range(n)], "speaker": [f"s{s}" for s in spk],
                         "split": "train", "fold": spk, "emotion": [f"c{k}" for k in y]})
    return rows, X.astype(np.float32)


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def chosen(selection: dict) -> tuple:
    return selection["chosen"], selection.get("gamma_factor")


def converged_logreg_choice(cfg: dict, Xt, yt, Xd, yd) -> float:
    """The C a tightly converged float64 scikit-learn fit would choose (tol 1e-10): the arbiter when the
    default fits (float32 features, tol 1e-4) and the Gram path disagree."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(Xt.astype(np.float64))
    Z, Zd = scaler.transform(Xt.astype(np.float64)), scaler.transform(Xd.astype(np.float64))
    scores = {}
    for C in cfg["C_grid"]:
        model = LogisticRegression(C=C, class_weight="balanced", tol=1e-10, max_iter=100000).fit(Z, yt)
        scores[C] = balanced_accuracy_score(yd, model.predict(Zd))
    return max(scores, key=lambda c: (scores[c], -c))


def compare_head(name: str, cfg: dict, X: np.ndarray, y: np.ndarray, folds, converged: bool = False) -> dict:
    """Both paths on every fold; their times and how far their selections and outputs agree."""
    out = {"folds": [], "reference_s": 0.0, "fast_s": 0.0, "reference_cpu_s": 0.0, "fast_cpu_s": 0.0}
    for fold in folds:
        fits = {}
        for solve in ("primal", "gram"):
            head = build_head(name, {**cfg, "solve": solve})
            fits[solve], wall, cpu = timed(head.fit, X[fold.train], y[fold.train], X[fold.dev], y[fold.dev])
            key = "reference" if solve == "primal" else "fast"
            out[f"{key}_s"] += wall
            out[f"{key}_cpu_s"] += cpu
            fits[solve + "_s"] = wall
        ref, fast = fits["primal"], fits["gram"]
        Xt = X[fold.test]
        agree = float(np.mean(ref.predict(Xt) == fast.predict(Xt)))
        dp = float(np.abs(ref.predict_proba(Xt) - fast.predict_proba(Xt)).max())
        out["folds"].append({
            "fold": fold.name, "n_train": int(fold.train.sum()), "n_dev": int(fold.dev.sum()),
            "n_test": int(fold.test.sum()), "reference_s": round(fits["primal_s"], 3), "fast_s": round(fits["gram_s"], 3),
            "chosen_reference": chosen(ref.selection), "chosen_fast": chosen(fast.selection),
            "same_choice": chosen(ref.selection) == chosen(fast.selection), "test_agreement": agree,
            "max_abs_proba_diff": dp,
        })
        if converged and fits["primal"].kind == "logreg":
            args = X[fold.train], y[fold.train], X[fold.dev], y[fold.dev]
            out["folds"][-1]["chosen_converged"] = converged_logreg_choice(cfg, *args)
    f = out["folds"]
    out.update(
        speedup=out["reference_s"] / out["fast_s"], speedup_cpu=out["reference_cpu_s"] / out["fast_cpu_s"],
        fast_s_per_fold=out["fast_s"] / len(f), reference_s_per_fold=out["reference_s"] / len(f),
        same_choice_folds=f"{sum(x['same_choice'] for x in f)}/{len(f)}",
        min_test_agreement=min(x["test_agreement"] for x in f), max_abs_proba_diff=max(x["max_abs_proba_diff"] for x in f),
    )
    if any("chosen_converged" in x for x in f):  # which path picks what the optimum would
        out["fast_equals_converged_folds"] = f"{sum(x['chosen_fast'][0] == x['chosen_converged'] for x in f)}/{len(f)}"
        out["reference_equals_converged_folds"] = f"{sum(x['chosen_reference'][0] == x['chosen_converged'] for x in f)}/{len(f)}"
    for k in ("reference_s", "fast_s", "reference_cpu_s", "fast_cpu_s", "speedup", "speedup_cpu"):
        out[k] = round(out[k], 3)
    return out


def recipe(corpus, features: dict[str, np.ndarray], heads: dict, out_dir: Path) -> dict:
    """The recommended offline recipe (``fusion_spknorm_svm`` on egemaps+compare) and its single-backbone
    relatives, through the pipeline's own probe and fusion runners: test UAR pooled over folds, per fold."""
    from pipeline.core.store import FeatureStore, write_store
    from pipeline.heads.fusion.run import run_fusion
    from pipeline.heads.probe.run import run_probe

    ids = corpus.manifest["id"].tolist()
    stores = {}
    for name, X in features.items():
        write_store(out_dir / f"{name}.zarr", ids=ids, pooled=X, attrs={"backbone": name})
        stores[name] = FeatureStore(out_dir / f"{name}.zarr")
    runs = {"fusion_spknorm_svm": ("egemaps+compare", None)}
    runs |= {f"{h}@{b}": (b, h) for b in ("egemaps", "compare") for h in ("logreg_spknorm", "svm_linear_spknorm")}
    runs["fusion_spknorm_logreg"] = ("egemaps+compare", None)
    fusion_logreg = {**heads["fusion_spknorm_svm"], "probe": {"type": "logreg", "C_grid": [0.01, 0.1, 1.0, 10.0, 100.0]}}
    report = {}
    for label, (backbone, head) in runs.items():
        where = {k: out_dir / label / k for k in ("m", "p")}
        outputs = {"model_dir": where["m"], "metrics_path": out_dir / label / "e.json", "predictions_dir": where["p"]}
        if head is None:
            cfg = heads["fusion_spknorm_svm"] if label == "fusion_spknorm_svm" else fusion_logreg
            members = {m: stores[m] for m in backbone.split("+")}
            res, wall, _ = timed(run_fusion, corpus, members, "fusion_spknorm_svm", cfg, **outputs)
        else:
            res, wall, _ = timed(run_probe, corpus, stores[backbone], head, heads[head], **outputs)
        entry = res["tasks"]["emotion"]
        report[label] = {
            "backbone": backbone, "test_uar": round(entry["test"]["uar"], 4), "test_war": round(entry["test"]["war"], 4),
            "fold_test_uar": {f["fold"]: round(f["test"]["uar"], 4) for f in entry["folds"]},
            "fold_summary_uar": entry.get("fold_summary", {}).get("test", {}).get("uar"),
            "chosen": {f["fold"]: f["selection"].get("chosen") for f in entry["folds"]},
            "dev_note": entry["folds"][0].get("dev_note"), "wall_s": round(wall, 2),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=["emodb", "demo"], default="emodb")
    parser.add_argument("--synthetic", type=int, default=0, help="N synthetic items x 6373-d instead of a corpus")
    parser.add_argument("--heads", nargs="+", default=list(HEADS), help="params.yaml heads to compare")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads for both paths (0: libraries' own)")
    parser.add_argument("--recipe", action="store_true", help="also run the recommended recipe (EmoDB sample only)")
    parser.add_argument("--converged", action="store_true",
                        help="logreg: also the C a tightly converged float64 scikit-learn fit chooses (slow)")
    args = parser.parse_args()
    if args.threads:  # after the solvers' imports: threadpoolctl limits only the BLAS libraries already loaded
        import scipy.optimize  # noqa: F401  (scipy's own OpenBLAS: L-BFGS-B)
        import sklearn.linear_model
        import sklearn.svm  # noqa: F401
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(args.threads)
        limited = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    warnings.simplefilter("ignore")  # convergence warnings of the reference path at large C
    params = load_params(ROOT / "params.yaml")
    heads = section(params, "heads")
    work = Path(tempfile.mkdtemp(prefix="probe-fast-"))
    features = {}
    if args.synthetic:
        rows, X = synthetic(args.synthetic)
        source = f"synthetic {args.synthetic} x {X.shape[1]}"
        corpus = None
    else:
        if args.corpus == "emodb" and not EMODB.is_dir():
            raise SystemExit(f"{EMODB}: shared EmoDB sample not found")
        corpus, keys, load = emodb_sample(work / "prepared") if args.corpus == "emodb" else demo_corpus()
        rows = corpus.manifest
        start = time.perf_counter()
        X = features["compare"] = opensmile_features("compare", rows["id"].tolist(), keys, load)
        source = f"{args.corpus}: ComParE_2016 ({time.perf_counter() - start:.1f} s to load or compute)"
    y = rows["emotion"].to_numpy()
    folds = plan_folds(rows, y, seed=0)
    report = {
        "data": source, "n": len(y), "dim": int(X.shape[1]), "classes": len(set(y)), "folds": len(folds),
        "dev_note": folds[0].dev_note, "threads": args.threads or "default",
        "blas_threads": sorted(set(limited.values())) if args.threads else "default", "machine": platform.processor() or platform.machine(),
        "heads": {},
    }
    for name in args.heads:
        report["heads"][name] = compare_head(name, heads[name], X, y, folds, args.converged)
    if args.recipe and corpus is not None:
        features["egemaps"] = opensmile_features("egemaps", rows["id"].tolist(), keys, load)
        with contextlib.redirect_stdout(sys.stderr):  # the runners' progress lines: stdout is the JSON
            report["recipe"] = recipe(corpus, features, heads, work / "recipe")
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
