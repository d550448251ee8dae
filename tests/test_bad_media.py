"""A corrupt media file: a clear error naming it, or (on_bad_media: skip) a listed skip."""

import argparse
import copy
import shutil

import pandas as pd
import pytest

from pipeline.io import read_json
from pipeline.media import MediaError
from stages import embed, prepare, probe, report, segment

PARAMS = {
    "run": {"corpora": ["demo"], "backbones": ["egemaps"], "heads": ["logreg"]},
    "corpora": {"demo": {"root": None, "seed": 1, "dev_speakers": 1, "test_speakers": 1}},
    "segment": {"sample_rate": 16000, "fps": 1, "frame_size": 48, "on_bad_media": "error", "workers": 2},
    "backbones": {"egemaps": {"type": "opensmile"}},
    "heads": {"logreg": {"C_grid": [0.1, 1.0]}},
}


def ns(**kw):
    return argparse.Namespace(**kw)


def test_truncated_media_errors_or_is_skipped_and_reported(tiny_demo, in_tmp_cwd, monkeypatch):
    tree = in_tmp_cwd / "corpus"
    shutil.copytree(tiny_demo, tree)
    params = copy.deepcopy(PARAMS)
    params["corpora"]["demo"]["root"] = str(tree)
    prepare.main(ns(corpus="demo"), params)
    manifest = pd.read_parquet("data/demo/prepared/manifest.parquet")
    victim = manifest[manifest["split"] == "test"].iloc[0]
    data = open(victim["audio"], "rb").read()
    open(victim["audio"], "wb").write(data[: len(data) // 3])

    with pytest.raises(MediaError) as err:
        segment.main(ns(corpus="demo"), params)
    assert victim["audio"].split("/")[-1] in str(err.value) and "cannot" in str(err.value)
    assert not (in_tmp_cwd / "data/demo/segments.zarr").exists()

    params["segment"]["on_bad_media"] = "skip"
    segment.main(ns(corpus="demo"), params)
    embed.main(ns(corpus="demo", backbone="egemaps"), params)
    probe.main(ns(corpus="demo", backbone="egemaps", head="logreg"), params)
    monkeypatch.setattr("sys.argv", ["report"])
    monkeypatch.setattr(report, "load_params", lambda _: params)
    report.main()

    skipped = read_json("metrics/skipped.json")["media"]
    assert [s["id"] for s in skipped] == [victim["id"]] and "cannot" in skipped[0]["reason"]
    rows = read_json("metrics/leaderboard.json")
    n_test = (manifest["split"] == "test").sum()
    assert [r["n"] for r in rows if r["split"] == "test"] == [n_test - 1]
    assert victim["id"] in open("metrics/leaderboard.md").read()
