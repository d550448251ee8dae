"""Data integrity through the real `dvc repro`: nothing stale, nothing silently corrupt, every fault recoverable.

A small corpus on disk outside the repository (the ``manifest`` recipe: 4 speakers × 2 classes ×
4 wavs, 2 speaker-independent folds), eGeMAPS features, a logistic-regression probe. Each test
reproduces a failure the fault matrix found (issue 10) and checks the fix through plain DVC
commands: damaged embed-cache chunks are recomputed and the store equals a clean run's (never a
NaN store, so the run-cache never holds one); edits, additions and label changes under the
corpus root show in ``dvc status`` and rerun only what they affect; ``kill -9`` in segment, embed
and probe leaves no temporaries and the rerun gives the same outputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests.conftest import tone, write_wav
from tests.dvc_util import BIN, commit, make_repo, ran, set_params, sh

pytestmark = pytest.mark.dvc

SPEAKERS, CLASSES, PER = ("s1", "s2", "s3", "s4"), ("calm", "loud"), 4
STORE = "features/toy/egemaps.zarr"


def write_corpus(root: Path) -> None:
    rows = ["path,speaker,emotion"]
    for si, spk in enumerate(SPEAKERS):
        for ci, cls in enumerate(CLASSES):
            for k in range(PER):
                rel = f"wav/{spk}_{cls}_{k}.wav"
                write_wav(root / rel, tone(0.5 + 0.05 * k, freq=180 + 60 * ci + 7 * si, seed=si * 10 + k) * (0.2 + 0.5 * ci))
                rows.append(f"{rel},{spk},{cls}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    base = tmp_path_factory.mktemp("integrity")
    write_corpus(base / "corpus")
    params = {
        "run": {"corpora": ["toy"], "backbones": ["egemaps"], "heads": ["logreg"]},
        "corpora": {"toy": {"recipe": "manifest", "root": str(base / "corpus"), "file": "labels.csv",
                            "tasks": {"emotion": {"type": "classification"}}, "protocol": "kfold", "folds": 2}},
    }
    repo = make_repo(base / "repo", base / "remote", **params)
    sh(repo, "dvc", "repro")
    commit(repo, "first run")
    return repo


def corpus(repo: Path) -> Path:
    return repo.parent / "corpus"


def store_values(repo: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(repo / STORE), mode="r")
    ids = [str(i) for i in group["ids"][:]]
    return dict(zip(ids, group["pooled"][...]))


def shard_files(repo: Path) -> list[Path]:
    """The chunk files of the embed cache shards' pooled arrays."""
    return sorted(p for p in (repo / ".cache/embed").glob("*/shards/*.zarr/pooled/c/**/*") if p.is_file())


def status(repo: Path) -> str:
    return sh(repo, "dvc", "status")


def temps(repo: Path) -> list[Path]:
    return [p for p in repo.rglob("*.tmp-*") if ".dvc" not in p.parts and ".git" not in p.parts]


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_damaged_embed_cache_is_recomputed_never_stored(repo, damage):
    clean = store_values(repo)
    # the shard holding the committed items (the most rows): which file sorts first depends on shard
    # names and on what the previous case left in the cache (a one-row shard of its extra item, which
    # this run never reads)
    shards = {next(d for d in p.parents if d.suffix == ".zarr") for p in shard_files(repo)}
    shard = max(shards, key=lambda s: json.loads((s / "zarr.json").read_text())["attributes"]["rows"])
    for chunk in [p for p in shard_files(repo) if shard in p.parents]:
        if damage == "delete":
            chunk.unlink()
        else:
            with open(chunk, "r+b") as f:
                f.truncate(chunk.stat().st_size // 2)
    # an added utterance (a new one per case: DVC's run-cache would restore the previous case's outputs)
    # reruns embed, which meets the damaged shard
    extra = corpus(repo) / "wav/s1_calm_extra.wav"
    write_wav(extra, tone(0.7, freq=181, seed=len(damage)) * 0.2)
    labels = corpus(repo) / "labels.csv"
    before = labels.read_text()
    labels.write_text(before + "wav/s1_calm_extra.wav,s1,calm\n")
    try:
        out = sh(repo, "dvc", "repro")
        assert "embed@toy-egemaps" in ran(out)
        assert re.search(r"embed cache shard \S+ is damaged \(.*(checksum|cannot be read)", out), out
        values = store_values(repo)
        assert set(values) == set(clean) | {"wav_s1_calm_extra"}
        for uid, row in clean.items():  # equal to the clean run, every row finite
            np.testing.assert_array_equal(values[uid], row)
        assert "all sound" in sh(repo, "python", "-m", "pipeline.tools.verify")
    finally:
        extra.unlink()
        labels.write_text(before)
    # back to the committed corpus: a plain repro (the run-cache may restore outputs) gives the clean store
    sh(repo, "dvc", "repro")
    assert {u: v.tolist() for u, v in store_values(repo).items()} == {u: v.tolist() for u, v in clean.items()}
    assert "Data and pipelines are up to date" in status(repo)


def test_edits_additions_and_label_changes_rerun_only_what_they_affect(repo):
    assert "Data and pipelines are up to date" in status(repo)
    wav = corpus(repo) / "wav/s2_loud_1.wav"
    original = wav.read_bytes()
    clean = store_values(repo)
    try:
        # 1. an edit in place (same name, same size class): noticed, one item re-decoded and re-embedded
        write_wav(wav, tone(0.55, freq=300, seed=5) * 0.6)
        assert "inputs@toy" in status(repo)
        out = sh(repo, "dvc", "repro")
        assert {"prepare@toy", "segment@toy", "embed@toy-egemaps", "probe@toy-egemaps-logreg"} <= ran(out)
        assert re.search(r"segmented toy: 32/32 utterances; 1 decoded, 31 from the segment cache", out), out
        assert re.search(r"embed toy/egemaps: 32 distinct inputs, 31 cached, 1 to compute", out), out
        values = store_values(repo)
        assert not np.array_equal(values["wav_s2_loud_1"], clean["wav_s2_loud_1"])
        assert all(np.array_equal(values[u], clean[u]) for u in clean if u != "wav_s2_loud_1")
    finally:
        wav.write_bytes(original)
    sh(repo, "dvc", "repro")
    labels = corpus(repo) / "labels.csv"
    before = labels.read_text()
    try:
        # 2. a changed label: prepare and the probe rerun; segment, transcribe and embed do not
        labels.write_text(before.replace("wav/s3_calm_0.wav,s3,calm", "wav/s3_calm_0.wav,s3,loud"))
        assert "inputs@toy" in status(repo)  # (the corpus is walked once: as inputs@'s output)
        out = sh(repo, "dvc", "repro")
        assert {"inputs@toy", "prepare@toy", "probe@toy-egemaps-logreg"} <= ran(out)
        assert not ran(out) & {"segment@toy", "transcribe@toy", "embed@toy-egemaps"}, ran(out)
    finally:
        labels.write_text(before)
    sh(repo, "dvc", "repro")
    assert "Data and pipelines are up to date" in status(repo)
    # 3. touched, same content: nothing to redo
    os.utime(labels, (time.time() + 5, time.time() + 5))
    assert "Data and pipelines are up to date" in status(repo)


def _has_temp(repo: Path, marker: str) -> bool:
    # os.walk ignores folders that vanish while it lists them (temporaries are renamed all the time)
    return any(marker in name for _, dirs, files in os.walk(repo) for name in dirs + files)


def _kill_when(repo: Path, stage: str, marker: str) -> None:
    """Run `dvc repro -s <stage>`, kill -9 its process group once a temp matching ``marker`` exists."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.Popen(["dvc", "repro", "-s", stage], cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if _has_temp(repo, marker):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode != 0, f"{stage} finished before it could be killed"
    shutil.rmtree(repo / ".dvc/tmp/rwlock", ignore_errors=True)
    for lock in (repo / ".dvc/tmp").glob("lock*"):
        lock.unlink()


def outs(repo: Path) -> dict[str, list]:
    """Every stage's output hashes in dvc.lock."""
    import yaml

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {name: [(o["path"], o.get("md5")) for o in s.get("outs", [])] for name, s in lock.items()}


# Each stage is made to rerun by a setting that schedules work without changing results (a forced
# rerun would be served from DVC's run-cache, which never runs the stage); the killed run must
# leave nothing behind and the rerun must give every output as before.
@pytest.mark.parametrize(("stage", "marker", "setting"), [
    ("segment@toy", ".segments.zarr.tmp-", {"segment": {"workers": 1}}),
    ("embed@toy-egemaps", ".egemaps.zarr.tmp-", {"backbones": {"egemaps": {"batch_size": 7}}}),
    ("probe@toy-egemaps-logreg", ".logreg.tmp-", {"heads": {"logreg": {"max_iter": 3000}}}),
])
def test_kill_9_leaves_nothing_behind_and_the_rerun_is_identical(repo, stage, marker, setting):
    sh(repo, "dvc", "repro")
    before = outs(repo)
    if stage.startswith("segment"):
        shutil.rmtree(repo / ".cache/segment")  # decode everything again, so there is time to be killed
    set_params(repo, **setting)
    _kill_when(repo, stage, marker)
    sh(repo, "dvc", "repro")
    assert not temps(repo), temps(repo)
    after = outs(repo)
    sh(repo, "dvc", "repro", "-f", "-s", stage)  # the same settings, uninterrupted
    assert outs(repo) == after
    if not stage.startswith("probe"):  # (a head's saved model records its settings)
        assert after == before
