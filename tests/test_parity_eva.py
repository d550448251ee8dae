"""Golden parity of the ``eva_clip`` backbone against MiniGPT-v2's own ``eva_vit.py`` (tests/golden/eva_clip/).

The goldens were made once by ``tests/golden/eva_clip/make_golden.py`` in a throw-away venv with the
original code (see that README): a tiny random EVA ViT saved in ``eva_vit_g.pth``'s key layout at 28 px,
loaded the way ``create_eva_vit_g`` does at 56 px (position grid interpolated), run on real RAVDESS frames
through MiniGPT-v2's eval transform, ``ln_vision`` and ``encode_img`` token split. Here our tower loads that
same checkpoint strictly and must agree: cos >= 0.9999 for every block's every token, the CLS and merged
patch tokens, with equal token counts; a deliberately broken mapping (one block's q and v biases swapped,
or its two LayerNorms swapped) must fail; a tensor that does not fit is an error naming it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import BackboneError
from pipeline.features.backbones.base import build_backbone
from tests.conftest import ravdess_frames_at

GOLDEN = Path(__file__).parent / "golden" / "eva_clip"
META = json.loads((GOLDEN / "golden_meta.json").read_text())
MIN_COS = 0.9999


def cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-30)


def worst(ours: np.ndarray, ref: np.ndarray, what: str) -> float:
    assert ours.shape == ref.shape, f"{what}: ours {ours.shape} vs reference {ref.shape}"
    return float(cos_rows(ours, np.asarray(ref, np.float32)).min())


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(GOLDEN / "golden.npz"))


@pytest.fixture(scope="module")
def frames():
    f = META["frames"]
    frames = ravdess_frames_at(fps=f["fps"], size=f["size"])[: f["n"]]
    assert hashlib.sha256(frames.tobytes()).hexdigest() == f["sha256"], (
        "the RAVDESS frames decode differently here than when the goldens were made (ffmpeg version?)")
    return frames


def source(tmp_path: Path, ln_vision: bool = False, edit=None) -> Path:
    """A source directory with the golden checkpoint (optionally + its ln_vision, optionally edited)."""
    import torch

    out = tmp_path / ("ln" if ln_vision else "plain")
    out.mkdir(exist_ok=True)
    state = torch.load(GOLDEN / "eva_vit_tiny.pth", map_location="cpu", weights_only=True)
    if ln_vision:
        state |= torch.load(GOLDEN / "ln_vision.pth", map_location="cpu", weights_only=True)
    if edit:
        edit(state)
    torch.save(state, out / "eva_vit_g.pth")
    return out


def settings(path: Path, **extra) -> dict:
    return {"type": "eva_clip", "source": str(path), "image_size": META["run_size"],
            "num_heads": META["tiny"]["num_heads"], "precision": "fp32", **extra}


def test_eva_clip_matches_the_original_eva_vit(tmp_path, golden, frames, one_thread):
    """Every block's tokens, ln_vision (unit, as MiniGPT-v2 keeps it, and from a checkpoint), the
    per-frame CLS, Emotion-LLaMA's merged patch tokens of the first frame, and the pooled CLS per layer."""
    bb = build_backbone("eva", settings(source(tmp_path)))
    info = bb.describe()
    assert info["load_report"]["pos_embed_interpolated"] == "2x2 -> 4x4 (bicubic)"
    assert info["load_report"]["ln_vision"].startswith("unit")
    states, last = bb.forward(list(frames))
    assert states.shape[1:] == (META["tiny"]["depth"] + 1, 1 + 16, META["tiny"]["embed_dim"])  # same token count
    assert worst(states[:, 1:].numpy(), golden["blocks"], "blocks") >= MIN_COS
    assert worst(last.numpy(), golden["last_unit"], "ln_vision (unit)") >= MIN_COS
    (e,) = bb.embed([frames])
    assert worst(e.frames, golden["cls"][:, 0], "cls frames") >= MIN_COS
    assert worst(e.pooled[1:], golden["blocks"][:, :, 0].mean(0), "pooled cls per block") >= MIN_COS

    bb = build_backbone("eva", settings(source(tmp_path, ln_vision=True), frame_features="patches"))
    assert bb.describe()["load_report"]["ln_vision"] == "from the checkpoint"
    _, last = bb.forward(list(frames))
    assert worst(last.numpy(), golden["last_ln"], "ln_vision (checkpoint)") >= MIN_COS
    (e,) = build_backbone("eva", settings(source(tmp_path), frame_features="patches")).embed([frames])
    assert e.frames.shape == golden["patches"][0].shape == (4, 4 * META["tiny"]["embed_dim"])
    assert worst(e.frames, golden["patches"][0], "merged patch tokens") >= MIN_COS


def _swap(state, a, b):
    state[a], state[b] = state[b].clone(), state[a].clone()


@pytest.mark.parametrize("broken", ["q_v_bias", "norms"])
def test_a_broken_mapping_fails_the_goldens(tmp_path, golden, frames, one_thread, broken):
    """Mapping one block's q bias onto v (or norm1 onto norm2) still loads, and must miss the goldens."""
    def edit(state):
        if broken == "q_v_bias":
            _swap(state, "blocks.1.attn.q_bias", "blocks.1.attn.v_bias")
        else:
            _swap(state, "blocks.0.norm1.weight", "blocks.0.norm2.weight")
            _swap(state, "blocks.0.norm1.bias", "blocks.0.norm2.bias")

    bb = build_backbone("eva", settings(source(tmp_path, edit=edit)))
    _, last = bb.forward(list(frames))
    assert worst(last.numpy(), golden["last_unit"], broken) < 0.999


@pytest.mark.parametrize("how", ["renamed", "extra", "misshaped", "rotary"])
def test_a_checkpoint_that_does_not_fit_is_an_error_naming_the_tensor(tmp_path, how):
    key = "blocks.0.attn.qkv.weight"

    def edit(state):
        if how == "renamed":
            state["blocks.0.attn.qkv_renamed.weight"] = state.pop(key)
        elif how == "extra":
            state["blocks.0.attn.extra"] = state[key].clone()
        elif how == "misshaped":
            state[key] = state[key][:10].clone()
        else:  # an EVA-02 tower: rotary embedding and SwiGLU tensors
            state["rope.freqs_cos"] = state["pos_embed"][0].clone()
            state["blocks.0.mlp.w3.weight"] = state["blocks.0.mlp.fc2.weight"].clone()

    with pytest.raises(BackboneError) as err:
        build_backbone("bad", settings(source(tmp_path, edit=edit)))
    message = str(err.value)
    assert message.startswith("backbones.bad:"), message
    wanted = {"renamed": ["missing ['blocks.0.attn.qkv.weight']", "blocks.0.attn.qkv_renamed.weight"],
              "extra": ["unexpected ['blocks.0.attn.extra']"],
              "misshaped": ["blocks.0.attn.qkv.weight (checkpoint (10, 32), model (96, 32))"],
              "rotary": ["rope.freqs_cos", "blocks.0.mlp.w3.weight"]}[how]
    for piece in wanted:
        assert piece in message, message


def test_settings_and_checkpoint_errors_name_the_problem(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "README").write_text("not the checkpoint")
    with pytest.raises(BackboneError, match=r"backbones.eva: checkpoint .*eva_vit_g.pth not found"):
        build_backbone("eva", settings(tmp_path / "other"))
    with pytest.raises(BackboneError, match="ln_vision: checkpoint, but"):
        build_backbone("eva", settings(source(tmp_path), ln_vision="checkpoint"))
    with pytest.raises(BackboneError, match="not a multiple of the checkpoint's patch size 14"):
        build_backbone("eva", settings(source(tmp_path), image_size=50))
    shutil.copy(GOLDEN / "golden_meta.json", tmp_path / "plain" / "eva_vit_g.pth")
    with pytest.raises(BackboneError, match="cannot read"):
        build_backbone("eva", settings(tmp_path / "plain"))
