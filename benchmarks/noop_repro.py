"""Benchmark: a no-op ``dvc repro`` on a 10k-utterance corpus × 5 backbones (target ≤ 3 s).

    python benchmarks/noop_repro.py                        # N=10000, 5 backbones, 1 head, 5 repetitions
    python benchmarks/noop_repro.py --n 200 --keep         # a dry run; keeps the project for inspection
    python benchmarks/noop_repro.py --backbones egemaps,is09,emobase,minilm,minilm_st
    python benchmarks/noop_repro.py --reuse /tmp/noop-repro-XXXX   # re-time a project kept by --keep

Builds everything in a temporary directory:

1. a synthetic corpus of ``N`` short (0.3–0.5 s) 16 kHz mono wav files — harmonic tones whose pitch,
   loudness and vibrato depend on the speaker and on one of 4 emotion labels — with a
   ``labels.csv`` (path, speaker, emotion, text: one unique sentence per utterance, so text
   backbones apply) read by the generic ``manifest`` recipe, 5 speaker-independent folds;
2. a copy of the project (``tests.dvc_util.make_repo``: the tracked files, a temporary git repo and
   DVC remote) whose params run that corpus × ``--backbones`` × one probe head (segment: audio
   only, ``fps: 0``, 2 decoders); the default head ``logreg_1c`` is the project's logreg with a
   single C (the no-op does not depend on the head; ``--head logreg`` gives the full grid);
3. one full ``dvc repro`` (setup: untimed for the target, but reported, with each stage's time),
   then ``git commit``.

Then times ``dvc repro`` — which must run nothing and say "Data and pipelines are up to date" —
``--repeats`` times (median reported, all runs listed), the same for ``dvc status``, and
``dvc version`` as the floor every DVC command pays (interpreter + imports). The page cache is
warm (the project was just built). Also reports how many files DVC tracks in the workspace
outputs (``dvc.lock``: ``nfiles`` of directory outputs + 1 per file output) and their size.

The default backbones need no model download: ``egemaps`` (openSMILE eGeMAPSv02), ``is09`` and
``emobase`` (other openSMILE functionals sets, defined here), ``minilm`` (``hf_text``) and
``minilm_st`` (``sentence_transformers``), both the MiniLM shipped in a wheel. Setup for 10k on
2 shared cores took 18 min: segment 4.5 min (two ffmpeg runs per file), openSMILE 2.5–4.5 min per
set, MiniLM about 1 min each, probes ~10 s each. ``--keep`` then ``--reuse`` re-times without
rebuilding. Prints one JSON object (the last line of stdout); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.dvc_util lives in the repository, not in an installed package
    sys.path.insert(0, str(ROOT))

from tests.dvc_util import BIN, commit, make_repo, ran, sh  # noqa: E402

TARGET = 3.0
SAMPLE_RATE = 16000
UP_TO_DATE = "Data and pipelines are up to date"
CORPUS = "bench"
EMOTIONS = ("neutral", "happy", "sad", "angry")
# Backbones this benchmark adds to params (the others come from params.yaml): all ship with wheels.
EXTRA_BACKBONES = {
    "is09": {"type": "opensmile", "feature_set": "IS09", "lld": False},  # 384 functionals
    "emobase": {"type": "opensmile", "feature_set": "emobase", "lld": False},  # 988 functionals
    "gemaps": {"type": "opensmile", "feature_set": "GeMAPSv01b", "lld": False},  # 62 functionals
}
DEFAULT_BACKBONES = "egemaps,is09,emobase,minilm,minilm_st"
# The default head: the project's logreg with one C instead of five. A no-op repro does not depend
# on the head; the full grid (`--head logreg`) only makes the setup longer (25 fits per backbone on
# nearly separable synthetic classes, each up to max_iter 2000).
EXTRA_HEADS = {"logreg_1c": {"type": "logreg", "C_grid": [0.1], "class_weight": "balanced", "max_iter": 500, "seed": 0}}
DEFAULT_HEAD = "logreg_1c"
SENTENCES = {
    "neutral": ["the meeting starts at noon", "please close the door", "the report is on the desk"],
    "happy": ["what a wonderful surprise", "i am so glad you came", "this is the best day"],
    "sad": ["i miss them so much", "nothing went right today", "it is all over now"],
    "angry": ["stop doing that right now", "this is completely unacceptable", "i told you a hundred times"],
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- the synthetic corpus ----------------------------------------------------------------------


def synth_corpus(root: Path, n: int, speakers: int, seed: int = 0) -> Path:
    """Write ``n`` wav files under ``root/wav/`` and ``root/labels.csv``; returns the label file."""
    rng = np.random.default_rng(seed)
    (root / "wav").mkdir(parents=True)
    base_f0 = np.linspace(100.0, 240.0, speakers)
    pitch = {"neutral": 1.0, "happy": 1.3, "sad": 0.85, "angry": 1.15}
    loud = {"neutral": 0.2, "happy": 0.3, "sad": 0.12, "angry": 0.45}
    rows = ["path,speaker,emotion,text"]
    for i in range(n):
        spk, emo = i % speakers, EMOTIONS[(i // speakers) % len(EMOTIONS)]
        t = np.arange(int(rng.uniform(0.3, 0.5) * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = base_f0[spk] * pitch[emo] * (1 + rng.normal(0, 0.02))
        vibrato = 1 + (0.06 if emo in ("happy", "angry") else 0.01) * np.sin(2 * np.pi * 5.5 * t)
        phase = 2 * np.pi * np.cumsum(f0 * vibrato) / SAMPLE_RATE
        x = sum(np.sin(k * phase) / k for k in (1, 2, 3))
        env = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.03)  # 30 ms fades
        x = loud[emo] * env * x + 0.01 * rng.standard_normal(len(t))
        pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
        rel = f"wav/utt{i:05d}.wav"
        with wave.open(str(root / rel), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(pcm.tobytes())
        text = f"{SENTENCES[emo][rng.integers(3)]} said speaker {spk} in take {i}"  # unique per utterance
        rows.append(f"{rel},spk{spk:02d},{emo},{text}")
    labels = root / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    return labels


def project_params(corpus_root: Path, backbones: list[str], head: str, workers: int) -> dict:
    return {
        "run": {"corpora": [CORPUS], "backbones": backbones, "heads": [head], "fusions": [], "finetune": [], "audio_llm": []},
        "corpora": {
            CORPUS: {
                "recipe": "manifest",
                "root": str(corpus_root),
                "file": "labels.csv",
                "tasks": {"emotion": {"type": "classification"}},
                "protocol": "kfold",
                "folds": 5,
            }
        },
        "segment": {"fps": 0, "workers": workers},  # audio-only corpus: no frames to sample
        "backbones": {b: EXTRA_BACKBONES[b] for b in backbones if b in EXTRA_BACKBONES},
        "heads": {head: EXTRA_HEADS[head]} if head in EXTRA_HEADS else {},
    }


# --- running DVC -------------------------------------------------------------------------------


def dvc_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}


def repro_logged(repo: Path, log_path: Path) -> tuple[float, dict[str, float], str]:
    """Full ``dvc repro``, streaming its output to ``log_path``; per-stage wall times from the log."""
    stages: dict[str, float] = {}
    current, since = None, 0.0
    start = time.perf_counter()
    with log_path.open("w") as fh:
        proc = subprocess.Popen(["dvc", "repro"], cwd=repo, env=dvc_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            fh.write(line)
            fh.flush()
            match = re.search(r"Running stage '([^']+)'", line)
            if match:
                now = time.perf_counter()
                if current:
                    stages[current] = now - since
                current, since = match.group(1), now
                log(f"  [{now - start:7.1f} s] {current}")
        proc.wait()
    total = time.perf_counter() - start
    if current:
        stages[current] = time.perf_counter() - since  # includes DVC's final caching/lock writing
    output = log_path.read_text()
    if proc.returncode:
        raise SystemExit(f"setup `dvc repro` failed (exit {proc.returncode}); log: {log_path}\n{output[-4000:]}")
    return total, stages, output


def timed_sh(repo: Path, *cmd: str) -> tuple[float, str]:
    start = time.perf_counter()
    out = sh(repo, *cmd)
    return time.perf_counter() - start, out


def tracked_outputs(repo: Path, stages: set[str]) -> dict[str, int]:
    """Files and bytes DVC tracks as outputs of ``stages``, from dvc.lock.

    Only the stages of this pipeline: the lock copied from the project keeps entries of the
    project's own (demo) stages, which DVC leaves in dvc.lock but no longer checks.
    """
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    files = size = outs = 0
    for name, stage in lock["stages"].items():
        if name not in stages:
            continue
        for out in stage.get("outs", []):
            outs += 1
            files += int(out.get("nfiles", 1))
            size += int(out.get("size", 0))
    return {"stages": len(stages), "outs": outs, "files": files, "bytes": size}


def time_noop(project: Path, repeats: int) -> dict:
    """Median (and all runs) of no-op ``dvc repro``, ``dvc status`` and ``dvc version``."""
    report: dict = {"loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    runs: dict[str, list[float]] = {"noop_repro": [], "noop_status": [], "dvc_version": []}
    for i in range(repeats):  # interleaved, so all see the same machine load
        secs, out = timed_sh(project, "dvc", "repro")
        if UP_TO_DATE not in out or ran(out):
            raise SystemExit(f"`dvc repro` #{i + 1} was not a no-op (ran {sorted(ran(out))}):\n{out[-3000:]}")
        runs["noop_repro"].append(secs)
        secs, out = timed_sh(project, "dvc", "status")
        if UP_TO_DATE not in out:
            raise SystemExit(f"`dvc status` #{i + 1} reports changes:\n{out[-3000:]}")
        runs["noop_status"].append(secs)
        runs["dvc_version"].append(timed_sh(project, "dvc", "version")[0])
        log(f"  run {i + 1}: repro {runs['noop_repro'][-1]:.2f} s, status {runs['noop_status'][-1]:.2f} s")
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    for key, values in runs.items():
        report[f"{key}_s"] = statistics.median(values)
        report[f"{key}_runs_s"] = [round(v, 3) for v in values]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="utterances in the synthetic corpus")
    parser.add_argument("--backbones", default=DEFAULT_BACKBONES,
                        help=f"comma-separated backbone names (params.yaml or {sorted(EXTRA_BACKBONES)})")
    parser.add_argument("--head", default=DEFAULT_HEAD,
                        help=f"the one probe head (params.yaml's, or {sorted(EXTRA_HEADS)}: logreg with C=0.1 only)")
    parser.add_argument("--speakers", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="segment.workers (parallel ffmpeg decoders)")
    parser.add_argument("--repeats", type=int, default=5, help="timed no-op runs (median reported)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (its path is printed)")
    parser.add_argument("--reuse", default=None, metavar="DIR",
                        help="time the project in DIR (kept by an earlier --keep run) instead of building one")
    parser.add_argument("--tmp", default=None, help="parent of the temporary directory (default: system temp)")
    args = parser.parse_args()
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]

    if args.reuse:
        base = Path(args.reuse).resolve()
        report = json.loads((base / "setup.json").read_text())
        report["reused"] = str(base)
    else:
        base = Path(tempfile.mkdtemp(prefix="noop-repro-", dir=args.tmp))
        report = {"n": args.n, "backbones": backbones, "head": args.head, "speakers": args.speakers}
    project = base / "project"
    finished = False
    try:
        if not args.reuse:
            log(f"building in {base}")
            t0 = time.perf_counter()
            synth_corpus(base / "corpus", args.n, args.speakers)
            report["synth_s"] = time.perf_counter() - t0
            remote = base / "remote"
            project.mkdir()
            remote.mkdir()
            make_repo(project, remote, **project_params(base / "corpus", backbones, args.head, args.workers))
            report["loadavg_setup_start"] = [round(x, 2) for x in os.getloadavg()]
            log("setup: dvc repro (full build)")
            report["setup_s"], report["setup_stage_s"], out = repro_logged(project, base / "setup-repro.log")
            report["setup_stages_run"] = len(ran(out))
            commit(project, "benchmark: built")
            (base / "setup.json").write_text(json.dumps(report, indent=2))
        stages = set(sh(project, "dvc", "stage", "list", "--name-only").split())
        report["tracked"] = tracked_outputs(project, stages)

        log("timing no-op dvc repro / dvc status")
        report.update(time_noop(project, args.repeats))
        report["git_clean"] = not sh(project, "git", "status", "--porcelain").strip()
        report["target"] = TARGET
        report["meets_target"] = report["noop_repro_s"] <= TARGET
        report["cpus"] = os.cpu_count()
        report["machine"] = platform.processor() or platform.machine()
        report["dvc"] = sh(project, "dvc", "--version").strip()
        if args.keep and not args.reuse:
            report["kept"] = str(base)
        finished = True
    finally:
        if finished and not args.keep and not args.reuse:
            shutil.rmtree(base, ignore_errors=True)
        elif not finished and not args.reuse:
            log(f"failed: kept {base} for inspection (setup log: {base / 'setup-repro.log'})")
    print(json.dumps(report))  # one JSON object, the last line of stdout


if __name__ == "__main__":
    main()
