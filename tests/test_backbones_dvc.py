"""Tiny random checkpoints as `backbones.<name>.source` produce correct stores through `dvc repro`."""

from __future__ import annotations

import json

import pytest

from tests.dvc_util import make_repo, sh

pytestmark = pytest.mark.dvc

TINY_DEMO = {"speakers": 4, "utterances_per_class": 2, "dev_speakers": 1, "test_speakers": 1, "fps": 5, "frame_size": 64}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        CLIPVisionModel,
    )

    from tests.factories import tiny_text_model, tiny_wav2vec2

    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("ckpt")
    _, w2v = tiny_wav2vec2(base / "w2v")
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    CLIPVisionModel(vision).save_pretrained(base / "clip")
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(base / "clip")
    tiny_text_model("bert", base / "bert")
    return {"w2v": (base / "w2v", w2v), "clip": (base / "clip", vision), "bert": (base / "bert", None)}


def test_tiny_sources_through_dvc_repro(checkpoints, tmp_path):
    backbones = {
        "tiny_w2v": {"type": "hf_audio", "source": str(checkpoints["w2v"][0])},
        "tiny_clip": {"type": "clip_vision", "source": str(checkpoints["clip"][0]), "face_crop": "none"},
        "tiny_bert": {"type": "hf_text", "source": str(checkpoints["bert"][0])},
    }
    params = {
        "run": {"corpora": ["demo"], "backbones": list(backbones), "heads": ["logreg"]},
        "corpora": {"demo": TINY_DEMO},
        "segment": {"fps": 1, "frame_size": 64},
        "backbones": backbones,
    }
    repo = make_repo(tmp_path / "repo", tmp_path / "remote", **params)
    sh(repo, "dvc", "repro")
    import zarr

    w2v = checkpoints["w2v"][1]
    store = zarr.open_group(str(repo / "features/demo/tiny_w2v.zarr"), mode="r")
    assert store["pooled"].shape == (32, w2v.num_hidden_layers + 1, w2v.hidden_size)
    assert store.attrs["frame_rate"] == 16000 / 40 and store.attrs["complete"]
    clip = zarr.open_group(str(repo / "features/demo/tiny_clip.zarr"), mode="r")
    assert clip["pooled"].shape[:2] == (32, checkpoints["clip"][1].num_hidden_layers + 1)
    bert = zarr.open_group(str(repo / "features/demo/tiny_bert.zarr"), mode="r")
    assert bert["pooled"].shape[0] == 32 and bert.attrs["revision"].startswith("sha256:")
    rows = json.loads((repo / "metrics/leaderboard.json").read_text())
    assert {r["backbone"] for r in rows} == set(backbones)
