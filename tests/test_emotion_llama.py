"""Emotion-LLaMA's encoder layout end to end: HuBERT audio tokens + EVA (global), MAE (local) and VideoMAE
(temporal) token groups into the Audio-LLM, from real media through the real stages.

Fast: the tiny demo corpus, in-process stages (segment → embed ×4 → align → instruct → eval) on tiny random
checkpoints in each encoder's published layout (tests.factories.emotion_llama_backbones). Slow: the same
through `dvc repro` on the generated MER2023 fake release.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil

import numpy as np
import pytest

from pipeline.core.io import read_json
from pipeline.core.store import FeatureStore
from tests.dvc_util import make_repo, sh
from tests.factories import emotion_llama_backbones, tiny_llm

BACKBONE = "hubert+eva+mae+videomae"
HEAD = {
    "type": "audio_llm", "languages": ["en"],
    "projector": {"hidden": 16, "downsample": 5, "max_tokens": 8},
    "video_projector": {"hidden": 16, "downsample": 1, "max_tokens": 2},
    "align": {"epochs": 1, "batch_size": 16}, "instruct": {"epochs": 1, "batch_size": 16, "select_by": "loss"},
    "generate": {"max_new_tokens": 4, "eval_batch_size": 16},
}


def ns(**kw):
    return argparse.Namespace(**kw)


def test_emotion_llama_token_groups_on_the_demo(tiny_demo, in_tmp_cwd, one_thread):
    from stages import audio_llm_align, audio_llm_eval, audio_llm_instruct, embed, prepare, segment

    tree = in_tmp_cwd / "corpus"
    shutil.copytree(tiny_demo, tree)
    params = {
        "run": {"corpora": ["demo"], "backbones": [], "heads": []},
        "corpora": {"demo": {"root": str(tree), "seed": 1, "dev_speakers": 1, "test_speakers": 1}},
        "segment": {"sample_rate": 16000, "fps": 2, "frame_size": 48, "on_bad_media": "error", "workers": 2},
        "backbones": emotion_llama_backbones(in_tmp_cwd / "models"),
        "heads": {"audio_llm": {**copy.deepcopy(HEAD), "llm": {"source": str(tiny_llm(in_tmp_cwd / "llm")),
                                                                "device": "cpu"}}},
        "transcripts": {"backend": "none"},
    }
    prepare.main(ns(corpus="demo"), params)
    segment.main(ns(corpus="demo"), params)
    for name in BACKBONE.split("+"):
        embed.main(ns(corpus="demo", backbone=name), params)
    stores = {name: FeatureStore(f"features/demo/{name}.zarr") for name in BACKBONE.split("+")}
    assert [bool(s.attrs["has_frames"]) for s in stores.values()] == [True, True, True, False]
    uid = stores["eva"].ids[0]
    assert stores["eva"].frames(uid).shape[-1] == 32 and stores["mae"].frames(uid).shape[-1] == 32

    args = ns(corpus="demo", backbone=BACKBONE, head="audio_llm")
    for stage in (audio_llm_align, audio_llm_instruct, audio_llm_eval):
        stage.main(args, params)
    align = read_json(f"models/demo/{BACKBONE}/audio_llm_align/align.json")
    assert align["token_groups"] == {"audio": "frames", "eva": "frames", "mae": "frames",
                                     "videomae": "pooled (one token)"}
    import torch

    blob = torch.load(f"models/demo/{BACKBONE}/audio_llm/projector.pt", weights_only=True)
    assert list(blob["groups"]) == ["audio", "eva", "mae", "videomae"]
    assert [blob["groups"][g]["config"]["in_dim"] for g in blob["groups"]] == [16, 32, 32, 32]
    result = read_json(f"metrics/experiments/demo/{BACKBONE}/audio_llm.json")
    entry = result["tasks"]["emotion"]
    assert result["backbone"] == BACKBONE and entry["test"]["n"] > 0
    assert np.sum(entry["test"]["confusion"]) + entry["test"]["unparsed"] == entry["test"]["n"]


@pytest.mark.slow
@pytest.mark.dvc
def test_emotion_llama_on_mer2023_fakes_through_dvc_repro(tmp_path):
    from tests.data.mer2023.data import generate

    root = generate(tmp_path / "mer" / "mer2023-dataset", seed=0)
    backbones = emotion_llama_backbones(tmp_path / "models")
    params = {
        "run": {"corpora": ["mer2023"], "backbones": list(backbones), "heads": ["logreg"],
                "audio_llm": [{"head": "audio_llm", "backbone": BACKBONE}]},
        "corpora": {"mer2023": {"root": str(root)}},
        "segment": {"fps": 2, "frame_size": 48},
        "backbones": backbones,
        "heads": {"audio_llm": {**copy.deepcopy(HEAD), "llm": {"source": str(tiny_llm(tmp_path / "llm"))}}},
    }
    repo = make_repo(tmp_path / "repo", tmp_path / "remote", **params)
    sh(repo, "dvc", "repro")
    rows = json.loads((repo / "metrics/leaderboard.json").read_text())
    got = {(r["backbone"], r["head"]) for r in rows if r["split"] == "test" and r["corpus"] == "mer2023"}
    assert {(b, "logreg") for b in backbones} | {(BACKBONE, "audio_llm")} <= got
    blob = json.loads((repo / f"models/mer2023/{BACKBONE}/audio_llm_align/align.json").read_text())
    assert blob["token_groups"]["videomae"] == "pooled (one token)"
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "repro")
