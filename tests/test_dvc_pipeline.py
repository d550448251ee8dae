"""The real `dvc repro` on a tiny demo config inside a temporary git repository.

Checks the caching contract: second repro is a no-op; a head param reruns only probe + report; a
backbone param reruns only that backbone's embed and what depends on it; metrics show/diff work;
push to the local remote and pull into a fresh clone restores everything with a clean status.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
TINY = {
    "run": {"corpora": ["demo"], "backbones": ["egemaps", "minilm", "fer"], "heads": ["logreg"]},
    "corpora": {"demo": {"speakers": 4, "utterances_per_class": 2, "dev_speakers": 1, "test_speakers": 1, "fps": 5, "frame_size": 64}},
    "segment": {"fps": 1, "frame_size": 64},
}


def sh(cwd: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def merge(base: dict, over: dict) -> dict:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def set_params(repo: Path, **over) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(merge(params, over), sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("dvc")
    repo = base / "repo"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if rel.startswith("tests/"):
            continue
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, repo / rel)
    set_params(repo, **TINY)
    sh(repo, "git", "init", "-q")
    sh(repo, "dvc", "remote", "modify", "--local", "local", "url", str(base / "remote"))
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    return repo


def commit(repo: Path, msg: str) -> None:
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", msg)


def test_repro_caches_reruns_and_shares(repo, tmp_path):
    out = sh(repo, "dvc", "repro")
    assert {"prepare@demo", "segment@demo", "embed@demo-egemaps", "embed@demo-fer", "report"} <= ran(out)
    rows = json.loads((repo / "metrics/leaderboard.json").read_text())
    assert {r["backbone"] for r in rows} == {"egemaps", "minilm", "fer"}
    assert all(r["n"] == 8 for r in rows)  # 1 speaker × 4 emotions × 2 per split
    commit(repo, "first run")

    assert "Data and pipelines are up to date" in sh(repo, "dvc", "repro")

    set_params(repo, heads={"logreg": {"C_grid": [0.5, 5.0]}})
    assert ran(sh(repo, "dvc", "repro")) == {f"probe@demo-{b}-logreg" for b in ("egemaps", "minilm", "fer")} | {"report"}

    set_params(repo, backbones={"fer": {"pooling": "mean"}})
    rerun = ran(sh(repo, "dvc", "repro"))
    # report reruns only if the probe's outputs changed (on this tiny split they may not)
    assert {"embed@demo-fer", "probe@demo-fer-logreg"} <= rerun <= {"embed@demo-fer", "probe@demo-fer-logreg", "report"}
    commit(repo, "new head grid, fer mean pooling")

    shown = sh(repo, "dvc", "metrics", "show")
    assert "metrics/experiments/demo/egemaps/logreg.json" in shown and "tasks.emotion.test.uar" in shown
    diff = sh(repo, "dvc", "metrics", "diff", "HEAD~1")
    assert "tasks.emotion" in diff  # the C grid changed the selection metrics

    sh(repo, "dvc", "push")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    sh(clone, "dvc", "remote", "modify", "--local", "local", "url", str(repo.parent / "remote"))
    sh(clone, "dvc", "pull")
    assert (clone / "features/demo/minilm.zarr/zarr.json").exists()
    assert json.loads((clone / "metrics/leaderboard.json").read_text()) == json.loads((repo / "metrics/leaderboard.json").read_text())
    status = sh(clone, "dvc", "status")
    assert "Data and pipelines are up to date" in status, status
