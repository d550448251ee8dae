"""Benchmark: change detection and incremental segmenting on a 10k-file corpus outside the repository.

    python benchmarks/corpus_changes.py                 # N=10000 wav files, egemaps, one probe head
    python benchmarks/corpus_changes.py --n 500         # a quick run

Builds (in a temporary directory) the synthetic wav corpus of ``benchmarks/noop_repro.py`` (read by
the ``manifest`` recipe, watched by DVC through ``data/<corpus>/inputs``) and a copy of the project
running it × eGeMAPS × a one-C logistic regression, runs one full ``dvc repro`` (setup, untimed),
then measures what issue 10 asks for, printing each figure:

1. **no-op ``dvc status``** after the first fingerprint (median of ``--repeats``; target ≤ 3 s), and
   ``dvc version`` as the floor every DVC command pays;
2. **+10 % media**: N/10 new wav files and label rows. ``dvc status`` must name ``inputs`` (whose output, the link, changed);
   after ``prepare`` the segment stage's command is timed twice, side by side — with its cache (only
   the new files decoded) and with an empty cache (a full segment) — target ratio ≤ 0.12;
3. **one edited file** (rewritten in place): ``dvc repro`` must re-decode exactly one item and
   re-embed exactly one (read from the stages' own lines).

Prints one JSON object (the last line of stdout); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.noop_repro import CORPUS, SAMPLE_RATE, UP_TO_DATE, project_params, synth_corpus  # noqa: E402
from tests.dvc_util import BIN, commit, make_repo, sh  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed(repo: Path, *cmd: str, env: dict | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=False,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **(env or {})})
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start, proc.stdout + proc.stderr


def add_files(corpus: Path, start: int, count: int) -> None:
    rng = np.random.default_rng(start)
    rows = []
    for i in range(start, start + count):
        t = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
        x = 0.2 * np.sin(2 * np.pi * (120 + i % 97) * t) + 0.01 * rng.standard_normal(len(t))
        write_pcm(corpus / f"wav/new{i:05d}.wav", x)
        rows.append(f"wav/new{i:05d}.wav,spk{i % 20:02d},{('neutral', 'happy', 'sad', 'angry')[i % 4]},new take {i}")
    with open(corpus / "labels.csv", "a") as f:
        f.write("\n".join(rows) + "\n")


def write_pcm(path: Path, x: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--speakers", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="corpus-changes-"))
    corpus = base / "corpus"
    log(f"writing {args.n} wav files under {corpus}")
    synth_corpus(corpus, args.n, args.speakers)
    repo = make_repo(base / "repo", base / "remote",
                     **project_params(corpus, ["egemaps"], "logreg_1c", args.workers))
    log("setup: full dvc repro (untimed for the targets)")
    setup, _ = timed(repo, "dvc", "repro")
    commit(repo, "first run")
    result: dict = {"n_files": args.n, "setup_s": round(setup, 1)}

    status = []
    for _ in range(args.repeats):
        dt, out = timed(repo, "dvc", "status")
        assert UP_TO_DATE in out, out
        status.append(dt)
    floor = statistics.median(timed(repo, "dvc", "version")[0] for _ in range(3))
    result["noop_status_s"] = round(statistics.median(status), 2)
    result["noop_status_runs_s"] = [round(s, 2) for s in status]
    result["dvc_version_s"] = round(floor, 2)
    log(f"no-op dvc status: {result['noop_status_s']} s (dvc version {floor:.2f} s)")

    add_files(corpus, 0, args.n // 10)
    _, out = timed(repo, "dvc", "status")
    assert "inputs@" in out, out
    sh(repo, "dvc", "repro", "-s", f"inputs@{CORPUS}")
    sh(repo, "dvc", "repro", "-s", f"prepare@{CORPUS}")
    seg = ("python", "-m", "stages.segment", "--corpus", CORPUS)
    t_inc, out_inc = timed(repo, *seg)
    t_full, _ = timed(repo, *seg, env={"AFFECTBENCH_SEGMENT_CACHE": str(base / "empty-cache")})
    result["segment_plus10pct_s"] = round(t_inc, 2)
    result["segment_full_s"] = round(t_full, 2)
    result["segment_ratio"] = round(t_inc / t_full, 3)
    result["segment_plus10pct_line"] = re.search(r"segmented .*", out_inc).group(0)
    log(f"+10 % media: segment {t_inc:.1f} s vs full {t_full:.1f} s = {t_inc / t_full:.3f}")
    sh(repo, "dvc", "repro")
    commit(repo, "+10 %")

    edited = corpus / "wav/utt00003.wav"
    t = np.arange(int(0.45 * SAMPLE_RATE)) / SAMPLE_RATE
    write_pcm(edited, 0.3 * np.sin(2 * np.pi * 333 * t))
    _, out = timed(repo, "dvc", "repro")
    decoded = int(re.search(r"segmented \S+: \d+/\d+ utterances; (\d+) decoded", out).group(1))
    computed = int(re.search(r"embed \S+: \d+ distinct inputs, \d+ cached, (\d+) to compute", out).group(1))
    result["edited_one_file"] = {"decoded": decoded, "embedded": computed}
    log(f"one edited file: {decoded} re-decoded, {computed} re-embedded")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
