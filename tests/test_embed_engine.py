"""The embed engine at scale: incremental (content-keyed cache), resumable (kill -9), Ray executor.

Corpora are real wav files decoded by the real segment stage (ffmpeg); backbones are real: openSMILE
eGeMAPS, and a tiny random wav2vec2 saved with ``save_pretrained`` for the model-backed path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from pipeline.features.embed.engine import embed_corpus
from pipeline.core.manifest import Corpus, Task
from pipeline.core.segments import Segments
from pipeline.segment.decode import segment_corpus
from pipeline.core.errors import StoreError
from pipeline.core.store import FeatureStore
from tests.data.media import write_wav
from tests.factories import tiny_wav2vec2

ROOT = Path(__file__).resolve().parents[1]
EGEMAPS = {"type": "opensmile", "feature_set": "eGeMAPSv02"}
CLASSES = ["low", "high"]


def make_corpus(root: Path, n: int, *, seconds: float = 0.5, start: int = 0) -> Corpus:
    """``n`` tones of varied length and pitch (utterances ``start``..``start+n-1``)."""
    rows = []
    for i in range(start, start + n):
        rng = np.random.default_rng(i)
        dur = seconds * (0.6 + 0.8 * rng.random())
        t = np.arange(int(16000 * dur)) / 16000
        audio = 0.3 * np.sin(2 * np.pi * (150 + 10 * i) * t) + 0.01 * rng.normal(size=len(t))
        path = write_wav(root / "media" / f"u{i:04d}.wav", audio, 16000)
        rows.append({"id": f"u{i:04d}", "speaker": f"s{i % 4}", "split": "train", "audio": str(path), "video": "",
                     "text": "", "emotion": CLASSES[i % 2]})
    return Corpus("toy", pd.DataFrame(rows), [Task("emotion", "classification", CLASSES)], str(root))


def subset(corpus: Corpus, ids) -> Corpus:
    df = corpus.manifest[corpus.manifest["id"].isin(ids)].reset_index(drop=True)
    return Corpus(corpus.name, df, corpus.tasks, corpus.root)


def concat(a: Corpus, b: Corpus) -> Corpus:
    return Corpus(a.name, pd.concat([a.manifest, b.manifest], ignore_index=True), a.tasks, a.root)


def segment(corpus: Corpus, path: Path) -> Segments:
    segment_corpus(corpus, path, fps=0, workers=2)
    return Segments(path)


def assert_same_store(a: Path, b: Path) -> None:
    """Bit-for-bit equal arrays and equal attributes."""
    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    assert dict(ga.attrs) == dict(gb.attrs)
    assert sorted(ga.array_keys()) == sorted(gb.array_keys())
    for name in ga.array_keys():
        x, y = ga[name][...], gb[name][...]
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), name


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    base = make_corpus(root, 30)
    extra = make_corpus(root, 3, start=30)
    return root, base, extra


def test_incremental_computes_only_new_items_and_drops_removed_ones(toy, tmp_path):
    root, base, extra = toy
    eng = {"cache": str(tmp_path / "cache"), "shard_size": 8}
    seg = segment(base, tmp_path / "seg1.zarr")
    first = embed_corpus(base, seg, "egemaps", EGEMAPS, tmp_path / "s1.zarr", engine=eng)
    assert (first["computed"], first["cached"], first["shards"]) == (30, 0, 4)

    # +3 utterances: only those are computed; the old rows are reused unchanged
    grown = concat(base, extra)
    seg = segment(grown, tmp_path / "seg2.zarr")
    second = embed_corpus(grown, seg, "egemaps", EGEMAPS, tmp_path / "s2.zarr", engine=eng)
    assert (second["computed"], second["cached"]) == (3, 30)
    s1, s2 = FeatureStore(tmp_path / "s1.zarr"), FeatureStore(tmp_path / "s2.zarr")
    assert s2.ids == list(grown.manifest["id"])
    np.testing.assert_array_equal(s2.pooled(s1.ids), s1.pooled())
    # ... and equal to a from-scratch run without a cache
    embed_corpus(grown, seg, "egemaps", EGEMAPS, tmp_path / "fresh.zarr", engine={"cache": str(tmp_path / "c2")})
    np.testing.assert_array_equal(FeatureStore(tmp_path / "fresh.zarr").pooled(), s2.pooled())

    # -5 utterances: nothing to compute, and the store no longer holds them
    kept = list(grown.manifest["id"])[5:]
    smaller = subset(grown, kept)
    seg = segment(smaller, tmp_path / "seg3.zarr")
    third = embed_corpus(smaller, seg, "egemaps", EGEMAPS, tmp_path / "s3.zarr", engine=eng)
    assert (third["computed"], third["cached"]) == (0, 28)
    s3 = FeatureStore(tmp_path / "s3.zarr")
    assert s3.ids == kept
    with pytest.raises(StoreError, match="not in store"):
        s3.pooled(["u0000"])

    # a backbone param changes the backbone key: everything is recomputed
    changed = {**EGEMAPS, "feature_set": "GeMAPSv01b"}
    fourth = embed_corpus(smaller, seg, "egemaps", changed, tmp_path / "s4.zarr", engine=eng)
    assert (fourth["computed"], fourth["cached"]) == (28, 0)
    # scheduling knobs (batch size) do not
    fifth = embed_corpus(smaller, seg, "egemaps", {**changed, "batch_size": 3}, tmp_path / "s5.zarr", engine=eng)
    assert fifth["computed"] == 0


def test_scheduling_settings_and_run_counters_never_change_a_store(toy, tmp_path, capsys):
    root, base, _ = toy
    seg = segment(base, tmp_path / "seg.zarr")
    eng = {"cache": str(tmp_path / "cache")}
    # min_seconds above every clip: all 30 are padded, a count of what this run computed
    cfg = {**EGEMAPS, "min_seconds": 2.0}
    embed_corpus(base, seg, "egemaps", cfg, tmp_path / "a.zarr", engine=eng)
    assert "'n_padded': 30" in capsys.readouterr().out  # reported ...
    assert "n_padded" not in zarr.open_group(str(tmp_path / "a.zarr"), mode="r").attrs  # ... not stored
    # another batch size (and a cached rerun that pads nothing): the very same store
    again = embed_corpus(base, seg, "egemaps", {**cfg, "batch_size": 3}, tmp_path / "b.zarr", engine=eng)
    assert again["computed"] == 0
    assert_same_store(tmp_path / "a.zarr", tmp_path / "b.zarr")


def test_identical_inputs_are_computed_once(toy, tmp_path):
    root, base, _ = toy
    df = base.manifest.head(6).copy()
    dup = df.iloc[:2].copy()
    dup["id"] = ["copy_a", "copy_b"]  # same audio files under other ids
    corpus = Corpus("toy", pd.concat([df, dup], ignore_index=True), base.tasks, base.root)
    seg = segment(corpus, tmp_path / "seg.zarr")
    info = embed_corpus(corpus, seg, "egemaps", EGEMAPS, tmp_path / "s.zarr", engine={"cache": str(tmp_path / "c")})
    assert info["computed"] == 6 and info["n"] == 8
    store = FeatureStore(tmp_path / "s.zarr")
    np.testing.assert_array_equal(store.pooled(["copy_a"]), store.pooled([df["id"].iloc[0]]))


RESUME_SCRIPT = """
import sys
from pipeline.core import manifest
from pipeline.features.embed.engine import embed_corpus
from pipeline.core.segments import Segments
corpus = manifest.load(sys.argv[1])
cfg = {"type": "hf_audio", "source": sys.argv[4], "frame_layer": -1}
info = embed_corpus(corpus, Segments(sys.argv[2]), "w2v", cfg, sys.argv[3],
                    engine={"cache": sys.argv[5], "shard_size": 4, "prefetch": 2})
print("DONE", info)
"""


@pytest.fixture(scope="module")
def tiny_w2v(tmp_path_factory):
    return tiny_wav2vec2(tmp_path_factory.mktemp("w2v"), layer_norm=True, hidden=32, layers=4, intermediate=64, conv=16)[0]


def _embed_subprocess(prepared: Path, seg: Path, out: Path, model: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", RESUME_SCRIPT, str(prepared), str(seg), str(out), str(model), str(cache)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _finished_shards(cache: Path) -> int:
    return sum(1 for p in cache.glob("*/shards/*.zarr") if (p / "zarr.json").exists())


def test_kill_9_then_rerun_resumes_and_gives_a_bit_identical_store(tmp_path, tiny_w2v):
    from pipeline.core.manifest import save

    corpus = make_corpus(tmp_path / "corpus", 48, seconds=1.5)
    save(corpus, tmp_path / "prepared")
    seg_path = tmp_path / "seg.zarr"
    segment(corpus, seg_path)

    # the uninterrupted reference run, with its own cache
    ref = _embed_subprocess(tmp_path / "prepared", seg_path, tmp_path / "ref.zarr", tiny_w2v, tmp_path / "cache_ref")
    assert "DONE" in ref.communicate(timeout=600)[0]

    # the killed run: SIGKILL once a few of its 12 shards are on disk
    cache = tmp_path / "cache"
    out = tmp_path / "store.zarr"
    proc = _embed_subprocess(tmp_path / "prepared", seg_path, out, tiny_w2v, cache)
    deadline = time.time() + 300
    while _finished_shards(cache) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = _finished_shards(cache)
    assert 3 <= finished < 12, f"kill landed after {finished} of 12 shards; the test needs it mid-run"
    # a killed run never leaves a store that looks complete
    with pytest.raises(StoreError):
        FeatureStore(out)

    rerun = _embed_subprocess(tmp_path / "prepared", seg_path, out, tiny_w2v, cache)
    log = rerun.communicate(timeout=600)[0]
    assert "DONE" in log, log
    # finished shards were not recomputed (a half-written shard may have finished during the kill)
    done_line = [line for line in log.splitlines() if "distinct inputs" in line][0]
    cached = int(done_line.split(",")[1].split()[0])
    assert cached >= 4 * finished and cached < 48
    assert_same_store(out, tmp_path / "ref.zarr")


def test_ray_executor_gives_the_same_store_as_the_local_one(toy, tmp_path, tiny_w2v):
    pytest.importorskip("ray")
    root, base, _ = toy
    seg = segment(base, tmp_path / "seg.zarr")
    cfg = {"type": "hf_audio", "source": str(tiny_w2v)}
    local = embed_corpus(base, seg, "w2v", cfg, tmp_path / "local.zarr",
                         engine={"cache": str(tmp_path / "c_local"), "shard_size": 8})
    # 2 CPU workers with as many torch threads as this process, so CPU kernels sum in the same order
    import torch

    ray_cfg = {"address": None, "workers": 2, "cpus_per_worker": torch.get_num_threads(), "gpus_per_worker": 0}
    distributed = embed_corpus(base, seg, "w2v", cfg, tmp_path / "ray.zarr",
                               engine={"cache": str(tmp_path / "c_ray"), "shard_size": 8, "executor": "ray", "ray": ray_cfg})
    assert local["computed"] == distributed["computed"] == 30 and distributed["shards"] == 4
    assert_same_store(tmp_path / "local.zarr", tmp_path / "ray.zarr")


def test_ray_workers_import_pipeline_from_this_checkout(monkeypatch):
    import subprocess
    import sys

    from pipeline.features.embed.ray_executor import worker_pythonpath

    monkeypatch.delenv("PYTHONPATH", raising=False)
    path = worker_pythonpath()
    # a fresh interpreter elsewhere (as a ray:// client's worker is) finds this checkout's pipeline
    out = subprocess.run([sys.executable, "-c", "import pipeline, os; print(os.path.dirname(pipeline.__file__))"],
                         cwd="/", env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == Path(__file__).resolve().parents[1] / "pipeline"
