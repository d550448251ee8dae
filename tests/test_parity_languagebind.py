"""Golden parity of the ``languagebind_*`` backbones against LanguageBind's own code.

``languagebind`` needs transformers<5, so ``tests/golden/languagebind/make_golden.py`` built tiny random
``LanguageBindVideo`` / ``LanguageBindAudio`` models with LanguageBind's modelling code in a throw-away venv
(README there), saved them with its ``save_pretrained`` (the published key layout; ``*_lora`` with PEFT
LoRA names) and stored its outputs on real inputs. Here those checkpoints load through our backbones and
every output must match at cos >= 0.9999: text embeddings (and token ids) of both towers' text models,
the video embedding, each of the 8 sampled frames and every layer's CLS (RAVDESS frames as the segment
stage decodes them; 33 frames and 5), the audio embedding of three EmoDB utterances (repeat path) and a
12-s concatenation (three-crop path, ``crop_seed: 0``). Broken mappings (query/key swapped in one block,
LayerNorms swapped, LoRA factors dropped) must fail the same comparison, and a checkpoint that does not
fit must be refused naming the tensors.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import BackboneError
from pipeline.core.media import decode_audio
from pipeline.features.backbones.base import build_backbone
from tests.conftest import EMODB, needs_emodb, ravdess_frames_at

GOLDEN = Path(__file__).parent / "golden" / "languagebind"
META = json.loads((GOLDEN / "golden_meta.json").read_text())
COS = 0.9999


def cos_rows(a, b) -> np.ndarray:
    a = np.asarray(a, np.float64).reshape(-1, np.shape(a)[-1])
    b = np.asarray(b, np.float64).reshape(-1, np.shape(b)[-1])
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(GOLDEN / "golden.npz"))


@pytest.fixture(scope="module")
def clips():
    frames = ravdess_frames_at(10.0, 224)
    digest = hashlib.sha256(frames.tobytes()).hexdigest()
    assert digest == META["frames_sha256"], (
        "the RAVDESS frames decode differently here than when golden.npz was made (ffmpeg version?); "
        "regenerate the golden (tests/golden/languagebind/README.md)")
    return {"clip": frames, "short": frames[:5]}


@pytest.fixture(scope="module")
def audio():
    if not EMODB.is_dir():
        pytest.skip("shared EmoDB sample not present")
    return [np.concatenate([decode_audio(EMODB / f) for f in files]) for files in META["audio_items"].values()]


def backbone(kind: str, source: Path, **extra):
    return build_backbone(f"lb_{kind}", {"type": f"languagebind_{kind}", "source": str(source), "device": "cpu",
                                         **extra})


def text_cos(source: Path, golden_rows) -> np.ndarray:
    bb = backbone("text", source)
    return cos_rows(np.stack([e.pooled for e in bb.embed(META["sentences"])]), golden_rows)


def video_cos(source: Path, clips, golden, model: str) -> dict[str, float]:
    bb = backbone("video", source)
    worst = {"embed": 1.0, "frames": 1.0, "layers": 1.0}
    for clip, frames in clips.items():
        (emb,) = bb.embed([frames])
        assert emb.frames.shape == golden[f"{model}_{clip}_frames"].shape  # equal frame counts (8)
        _, _, states = bb.forward([frames])
        layers = np.stack([s[:, 0].float().mean(0).numpy() for s in states])
        worst["embed"] = min(worst["embed"], cos_rows(emb.pooled, golden[f"{model}_{clip}_embed"]).min())
        worst["frames"] = min(worst["frames"], cos_rows(emb.frames, golden[f"{model}_{clip}_frames"]).min())
        worst["layers"] = min(worst["layers"], cos_rows(layers, golden[f"{model}_{clip}_layers"]).min())
    return worst


def audio_cos(source: Path, audio, golden_rows) -> np.ndarray:
    bb = backbone("audio", source)
    return cos_rows(np.stack([e.pooled for e in bb.embed(audio)]), golden_rows)


def edited_copy(tmp_path: Path, model: str, edit) -> Path:
    """A copy of a golden checkpoint with ``edit(state)`` applied to its tensors."""
    import torch

    out = tmp_path / f"{model}_edited"
    shutil.copytree(GOLDEN / model, out)
    state = torch.load(out / "pytorch_model.bin", weights_only=True)
    edit(state)
    torch.save(state, out / "pytorch_model.bin")
    return out


def swap(state, a: str, b: str) -> None:
    state[a], state[b] = state[b].clone(), state[a].clone()


# --- parity ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["video", "video_lora", "audio", "audio_lora"])
def test_text_matches_languagebind(model, golden, one_thread):
    bb = backbone("text", GOLDEN / model)
    ids = bb.tokenizer(META["sentences"], max_length=77, padding="max_length", truncation=True)["input_ids"]
    np.testing.assert_array_equal(np.array(ids), golden["text_ids"])
    assert text_cos(GOLDEN / model, golden[f"{model}_text"]).min() >= COS
    assert bb.describe()["load_report"]["unused_tensors"] == ["logit_scale", "vision_model", "visual_projection"]


@pytest.mark.parametrize("model", ["video", "video_lora"])
def test_video_matches_languagebind(model, clips, golden, one_thread):
    worst = video_cos(GOLDEN / model, clips, golden, model)
    assert min(worst.values()) >= COS, worst
    info = backbone("video", GOLDEN / model).describe()
    assert info["load_report"].get("lora_merged", 0) == (8 if model == "video_lora" else 0)  # 2 layers × 4 projections


@needs_emodb
@pytest.mark.parametrize("model", ["audio", "audio_lora"])
def test_audio_matches_languagebind(model, audio, golden, one_thread):
    assert audio_cos(GOLDEN / model, audio, golden[f"{model}_embed"]).min() >= COS
    bb = backbone("audio", GOLDEN / model)
    bb.embed(audio)
    info = bb.describe()
    assert (info["n_repeated"], info["n_long"]) == (3, 1)


# --- broken mappings fail the same comparison ------------------------------------------------------------


def test_broken_text_mapping_fails(tmp_path, golden, one_thread):
    def edit(state):
        swap(state, "text_model.encoder.layers.0.layer_norm1.weight", "text_model.encoder.layers.0.layer_norm2.weight")

    assert text_cos(edited_copy(tmp_path, "video", edit), golden["video_text"]).min() < COS


def test_broken_video_mapping_fails(tmp_path, clips, golden, one_thread):
    def edit(state):  # query/key swapped in the temporal attention of one block
        pre = "vision_model.encoder.layers.1.temporal_attn."
        swap(state, pre + "q_proj.weight", pre + "k_proj.weight")

    worst = video_cos(edited_copy(tmp_path, "video", edit), clips, golden, "video")
    assert worst["embed"] < COS and worst["frames"] < COS, worst


def test_lora_factors_dropped_fail(tmp_path, clips, golden, one_thread):
    def edit(state):
        for key in [k for k in state if ".lora_" in k]:
            del state[key]

    worst = video_cos(edited_copy(tmp_path, "video_lora", edit), clips, golden, "video_lora")
    assert worst["embed"] < COS, worst


@needs_emodb
def test_broken_audio_mapping_fails(tmp_path, audio, golden, one_thread):
    def edit(state):
        pre = "vision_model.encoder.layers.0.self_attn."
        swap(state, pre + "q_proj.weight", pre + "k_proj.weight")

    assert audio_cos(edited_copy(tmp_path, "audio", edit), audio, golden["audio_embed"]).min() < COS


# --- strict loading -----------------------------------------------------------------------------------


def test_extra_missing_and_mis_shaped_tensors_are_named(tmp_path):
    import torch

    def extra(state):
        state["vision_model.encoder.layers.0.temporal_mlp.fc1.weight"] = torch.zeros(37, 32)

    with pytest.raises(BackboneError, match=r"unexpected \['vision_model.encoder.layers.0.temporal_mlp.fc1.weight'\]"):
        backbone("video", edited_copy(tmp_path / "a", "video", extra))

    def missing(state):
        del state["vision_model.post_layernorm.bias"]

    with pytest.raises(BackboneError, match=r"missing \['vision_model.post_layernorm.bias'\]"):
        backbone("video", edited_copy(tmp_path / "b", "video", missing))

    def mis_shaped(state):
        state["text_projection.weight"] = torch.zeros(16, 32)

    with pytest.raises(BackboneError, match=r"mis-shaped \['text_projection.weight \(checkpoint \(16, 32\)"):
        backbone("text", edited_copy(tmp_path / "c", "video", mis_shaped))

    def half_lora(state):
        del state[next(k for k in state if ".lora_B." in k)]

    with pytest.raises(BackboneError, match=r"LoRA factors of .*temporal_attn\.\w+_proj are incomplete"):
        backbone("video", edited_copy(tmp_path / "d", "video_lora", half_lora))


def test_wrong_checkpoint_kind_and_damaged_weights_are_refused(tmp_path):
    with pytest.raises(BackboneError, match=r"model_type 'LanguageBindAudio'.*\('LanguageBindVideo',\)"):
        backbone("video", GOLDEN / "audio")
    out = tmp_path / "damaged"
    shutil.copytree(GOLDEN / "video", out)
    (out / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneError, match=r"cannot read weights .*pytorch_model.bin"):
        backbone("video", out)
    (out / "pytorch_model.bin").unlink()
    with pytest.raises(BackboneError, match="no model.safetensors or pytorch_model.bin"):
        backbone("video", out)


def test_video_without_frames_gets_zeros_and_is_counted(one_thread):
    bb = backbone("video", GOLDEN / "video")
    (emb,) = bb.embed([np.zeros((0, 224, 224, 3), np.uint8)])
    assert emb.pooled.shape == (24,) and not emb.pooled.any() and emb.frames.shape == (0, 24)
    assert bb.describe()["n_empty"] == 1
    assert bb.describe()["frame_rate"] == "8 per utterance (linspace)"  # not the segment fps


def test_normalize_option_gives_unit_vectors(one_thread):
    bb = backbone("text", GOLDEN / "video", normalize=True)
    vectors = np.stack([e.pooled for e in bb.embed(META["sentences"])])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


# --- params entries and fetch ------------------------------------------------------------------------


def test_fetch_then_the_shipped_params_entries_load_it(in_tmp_cwd, monkeypatch, one_thread):
    """``python -m pipeline.tools.models fetch languagebind_video`` (hub faked: it lays down a checkpoint in
    the published layout) fills the directory that ``languagebind_video`` and ``languagebind_text`` read."""
    import huggingface_hub
    import yaml

    from pipeline.core.config import load_params, section
    from pipeline.tools.models import main

    root = Path(__file__).resolve().parents[1]
    calls = {}

    class Info:
        sha = "0123456789abcdef0123456789abcdef01234567"

    def model_info(self, repo_id, revision=None):
        calls["repo"] = repo_id
        return Info()

    def snapshot_download(repo_id, *, revision, local_dir, allow_patterns, ignore_patterns):
        shutil.copytree(GOLDEN / ("audio" if repo_id.endswith("Audio_FT") else "video"), local_dir, dirs_exist_ok=True)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    params = root / "params.yaml"
    for name, repo in (("languagebind_video", "LanguageBind/LanguageBind_Video_FT"),
                       ("languagebind_audio", "LanguageBind/LanguageBind_Audio_FT")):
        assert main(["fetch", name, "--params", str(params)]) == 0 and calls["repo"] == repo
    cfg = load_params(str(params))
    built = {n: build_backbone(n, {**section(cfg, "backbones", n, path=str(params)), "device": "cpu"})
             for n in ("languagebind_video", "languagebind_text", "languagebind_audio")}
    assert built["languagebind_text"].describe()["revision"].startswith("huggingface:LanguageBind/LanguageBind_Video_FT@")
    assert built["languagebind_text"].embed(["hello"])[0].pooled.shape == (24,)
    assert built["languagebind_video"].embed([np.zeros((3, 32, 32, 3), np.uint8)])[0].frames.shape == (8, 24)
    assert built["languagebind_audio"].embed([np.zeros(16000, np.float32)])[0].pooled.shape == (24,)
    assert yaml.safe_load(params.read_text())["backbones"]["languagebind_audio"]["crop_seed"] == 0


def test_audio_under_one_window_is_padded_and_counted(one_thread):
    bb = backbone("audio", GOLDEN / "audio")
    out = bb.embed([np.zeros(0, np.float32), np.full(100, 0.1, np.float32)])
    assert all(np.isfinite(e.pooled).all() and e.pooled.shape == (24,) for e in out)
    assert (bb.describe()["n_padded"], bb.describe()["n_repeated"]) == (2, 2)


def test_merge_lora_handles_both_peft_layouts():
    """peft < 0.7 keeps the base weight at ``<mod>.weight``; later versions at ``<mod>.base_layer.weight``."""
    import torch

    from pipeline.features.backbones.languagebind import merge_lora

    gen = torch.Generator().manual_seed(0)
    w, a, b, bias = (torch.randn(s, generator=gen) for s in ((4, 4), (2, 4), (4, 2), (4,)))
    pre = "vision_model.encoder.base_model.model.layers.0.self_attn.q_proj"
    for base in ("", ".base_layer"):
        state = {f"{pre}{base}.weight": w, f"{pre}{base}.bias": bias,
                 f"{pre}.lora_A.default.weight": a, f"{pre}.lora_B.default.weight": b}
        merged, mods = merge_lora("x", state, alpha=8, r=2)
        key = "vision_model.encoder.layers.0.self_attn.q_proj"
        assert set(merged) == {f"{key}.weight", f"{key}.bias"} and mods == [key]
        torch.testing.assert_close(merged[f"{key}.weight"], w + b @ a * 4.0)
    with pytest.raises(BackboneError, match=r"has LoRA factors \(.*q_proj\) but its vision_config.lora_r is 0"):
        merge_lora("x", state, alpha=8, r=0)
