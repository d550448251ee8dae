"""Tiny random checkpoints as `backbones.<name>.source` produce correct stores through `dvc repro`."""

from __future__ import annotations

import json

import pytest

from tests.dvc_util import make_repo, sh

TINY_DEMO = {"speakers": 4, "utterances_per_class": 2, "dev_speakers": 1, "test_speakers": 1, "fps": 5, "frame_size": 64}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        CLIPVisionModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
    )

    from tests.test_backbones_text import build_tiny

    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("ckpt")
    w2v = Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=20, conv_dim=(8, 8, 8),
        conv_stride=(5, 4, 2), conv_kernel=(10, 4, 2), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
    )
    Wav2Vec2Model(w2v).save_pretrained(base / "w2v")
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000).save_pretrained(base / "w2v")
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    CLIPVisionModel(vision).save_pretrained(base / "clip")
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(base / "clip")
    build_tiny("bert", base / "bert")
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
