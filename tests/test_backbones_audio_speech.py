"""Audio backbones beyond hf_audio: emotion2vec (funasr, tiny random checkpoints), openSMILE and
resemblyzer (real EmoDB sample)."""

import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import BackboneError, ConfigError
from pipeline.core.media import decode_audio
from pipeline.features.backbones.base import build_backbone
from pipeline.features.backbones.emotion2vec import E2V_LABELS, zero_shot_predict
from tests.conftest import EMODB, needs_emodb

EMOTION2VEC_TOKENS = ["生气/angry", "厌恶/disgusted", "恐惧/fearful", "开心/happy", "中立/neutral",
                      "其他/other", "难过/sad", "吃惊/surprised", "<unk>"]


def tiny_emotion2vec_config(depth: int = 2, dim: int = 16) -> dict:
    """emotion2vec's config.yaml layout (data2vec 2.0 audio) with tiny dims; same conv strides (320)."""
    audio = {
        "type": "AUDIO", "prenet_depth": 1, "prenet_layerdrop": 0.0, "prenet_dropout": 0.0,
        "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0, "num_extra_tokens": 2,
        "init_extra_token_zero": False, "mask_noise_std": 0.01, "mask_prob_min": None, "mask_prob": 0.5,
        "inverse_mask": False, "mask_prob_adjust": 0.05, "keep_masked_pct": 0.0, "mask_length": 5,
        "add_masks": False, "remove_masks": False, "mask_dropout": 0.0, "encoder_zero_mask": True,
        "mask_channel_prob": 0.0, "mask_channel_length": 64, "ema_local_encoder": False,
        "local_grad_mult": 1.0, "use_alibi_encoder": True, "alibi_scale": 1.0, "learned_alibi": False,
        "alibi_max_pos": None, "learned_alibi_scale": True, "learned_alibi_scale_per_head": True,
        "learned_alibi_scale_per_layer": False, "num_alibi_heads": 2, "model_depth": depth, "decoder": None,
        "extractor_mode": "layer_norm",
        "feature_encoder_spec": "[(8, 10, 5)] + [(8, 3, 2)] * 4 + [(8, 2, 2)] * 2",
        "conv_pos_width": 9, "conv_pos_groups": 2, "conv_pos_depth": 2, "conv_pos_pre_ln": False,
    }
    return {
        "model": "Emotion2vec",
        "model_conf": {
            "loss_beta": 0.0, "loss_scale": None, "depth": depth, "start_drop_path_rate": 0.0,
            "end_drop_path_rate": 0.0, "num_heads": 2, "norm_eps": 1e-5, "norm_affine": True,
            "encoder_dropout": 0.1, "post_mlp_drop": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.0,
            "dropout_input": 0.0, "layerdrop": 0.05, "embed_dim": dim, "mlp_ratio": 2.0,
            "layer_norm_first": False, "average_top_k_layers": depth, "end_of_block_targets": False,
            "clone_batch": 1, "normalize": True, "modalities": {"audio": audio},
        },
    }


def write_emotion2vec_dir(out: Path, classifier: bool) -> dict:
    """A funasr model directory (config.yaml + model.pt [+ tokens.txt]) with random weights."""
    import torch
    import yaml
    from funasr.models.emotion2vec.model import Emotion2vec

    cfg = tiny_emotion2vec_config()
    if classifier:  # emotion2vec+ layout: a CharTokenizer over tokens.txt sizes the 9-way head
        cfg["tokenizer"] = "CharTokenizer"
        cfg["tokenizer_conf"] = {"unk_symbol": "<unk>", "split_with_space": True}
        (out / "tokens.txt").write_text("\n".join(EMOTION2VEC_TOKENS) + "\n", encoding="utf-8")
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    torch.manual_seed(0)
    model = Emotion2vec(model_conf=cfg["model_conf"], vocab_size=len(EMOTION2VEC_TOKENS) if classifier else -1)
    torch.save(model.state_dict(), out / "model.pt")
    return cfg


@pytest.fixture(scope="module")
def e2v_dirs(tmp_path_factory):
    base, plus = tmp_path_factory.mktemp("e2v_base"), tmp_path_factory.mktemp("e2v_plus")
    return (base, write_emotion2vec_dir(base, classifier=False)), (plus, write_emotion2vec_dir(plus, classifier=True))


@pytest.fixture(scope="module")
def e2v_plus(e2v_dirs):
    (_, _), (plus, _) = e2v_dirs
    return build_backbone("e2v_plus", {"type": "emotion2vec", "source": str(plus)})


def conv_stride(cfg: dict) -> int:
    return int(np.prod([layer[2] for layer in eval(cfg["model_conf"]["modalities"]["audio"]["feature_encoder_spec"])]))


def test_emotion2vec_layers_and_frames_follow_the_config(e2v_dirs):
    (path, cfg), _ = e2v_dirs
    conf = cfg["model_conf"]
    bb = build_backbone("e2v", {"type": "emotion2vec", "source": str(path), "window_seconds": 1.0})
    rng = np.random.default_rng(0)
    short, long = rng.normal(0, 0.1, 800).astype(np.float32), rng.normal(0, 0.1, 40000).astype(np.float32)
    embs = bb.embed([short, long])
    stride = conv_stride(cfg)
    assert stride == 320 and embs[0].pooled.shape == (conf["depth"] + 1, conf["embed_dim"])
    # 2.5 s > 1 s window → three windows whose frames are concatenated: ~50 frames/s, nothing dropped
    assert embs[1].frames.shape[1] == conf["embed_dim"]
    assert abs(len(embs[1].frames) - 40000 / stride) <= 3 * 2
    info = bb.describe()
    assert info["frame_rate"] == 16000 / stride == 50.0
    assert info["n_windowed"] == 1 and info["n_padded"] == 1 and info["labels"] == []
    assert info["revision"].startswith("sha256:") and info["num_layers"] == conf["depth"] + 1
    # the last layer's time-mean is funasr's own utterance embedding (same AutoModel path)
    (ref,) = bb.automodel.generate(long[:16000], granularity="utterance", extract_embedding=True)
    (one,) = bb.embed([long[:16000]])
    np.testing.assert_allclose(one.pooled[-1], ref["feats"], rtol=1e-4, atol=1e-5)
    # the layers differ (hooks really capture each block, not one tensor L times)
    assert not np.allclose(one.pooled[0], one.pooled[-1])


@needs_emodb
def test_emotion2vec_plus_on_real_speech(e2v_plus):
    audio = decode_audio(EMODB / "03a01Fa.wav")
    (emb,) = e2v_plus.embed([audio])
    assert emb.pooled.shape == (3, 16) and abs(len(emb.frames) - len(audio) / 320) <= 2
    assert e2v_plus.describe()["labels"] == E2V_LABELS
    scores = e2v_plus.class_scores([audio])
    assert scores.shape == (1, 9) and abs(scores.sum() - 1) < 1e-4


def test_emotion2vec_scores_option_and_zero_shot(e2v_dirs):
    (base, _), (plus, _) = e2v_dirs
    bb = build_backbone("e2v_scores", {"type": "emotion2vec", "source": str(plus), "scores": True})
    audio = np.random.default_rng(1).normal(0, 0.1, 24000).astype(np.float32)
    (emb,) = bb.embed([audio])
    assert emb.pooled.shape == (9,) and emb.frames is None and not bb.has_frames
    assert abs(emb.pooled.sum() - 1) < 1e-4 and bb.describe()["output"] == "scores"
    preds, class_scores = zero_shot_predict(emb.pooled[None], ["anger", "boredom", "happiness", "sadness"])
    assert class_scores.shape == (1, 4) and class_scores[0, 1] == 0 and preds[0] != "boredom"
    with pytest.raises(BackboneError, match="needs an emotion2vec\\+ classifier"):
        build_backbone("e2v", {"type": "emotion2vec", "source": str(base), "scores": True})


def add_pretraining_decoder(model_dir: Path) -> Path:
    """Give config.yaml a data2vec pre-training decoder (released emotion2vec+ configs have one; their
    model.pt does not: funasr prints ~10 "miss key in ckpt: modality_encoders.AUDIO.decoder.*")."""
    import yaml

    cfg = yaml.safe_load((model_dir / "config.yaml").read_text(encoding="utf-8"))
    cfg["model_conf"]["modalities"]["audio"]["decoder"] = {
        "decoder_dim": 8, "decoder_groups": 2, "decoder_kernel": 3, "decoder_layers": 2, "input_dropout": 0.1,
        "add_positions_masked": False, "add_positions_all": False, "decoder_residual": True,
        "projection_layers": 1, "projection_ratio": 2.0,
    }
    (model_dir / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return model_dir


def tampered_e2v_dir(src: Path, out: Path, edit) -> Path:
    """A copy of the funasr directory ``src`` whose model.pt went through ``edit(state) -> state``."""
    import torch

    out.mkdir()
    for f in src.iterdir():
        if f.name != "model.pt":
            shutil.copy(f, out / f.name)
    torch.save(edit(torch.load(src / "model.pt", weights_only=True)), out / "model.pt")
    return out


def _renamed(state):  # every key under another name: funasr loads nothing, the model runs on random weights
    return {"encoder." + k: v for k, v in state.items()}


def _no_head(state):
    return {k: v for k, v in state.items() if not k.startswith("proj.")}


def _head_7_classes(state):  # a 7-way head in a directory whose tokens.txt says 9
    return {**state, "proj.weight": state["proj.weight"][:7], "proj.bias": state["proj.bias"][:7]}


def _extra(state):
    return {**state, "blocks.9.attn.qkv.weight": state["blocks.0.attn.qkv.weight"]}


def _wrapped(state):  # {"model": state}, as some trainers save it: funasr unwraps it, so do we
    return {"model": state}


@pytest.mark.parametrize(
    "edit, problem, key",
    [
        (_renamed, "missing", "blocks.0.attn.qkv.weight"),
        (_no_head, "missing", "proj.weight"),
        (_head_7_classes, "shape mismatch", "proj.weight: checkpoint (7, 16) vs model (9, 16)"),
        (_extra, "unexpected", "blocks.9.attn.qkv.weight"),
    ],
    ids=["renamed", "no_head", "head_shape", "extra"],
)
def test_emotion2vec_checkpoint_that_does_not_fit_fails_loudly(e2v_dirs, tmp_path, edit, problem, key):
    (_, _), (plus, _) = e2v_dirs
    bad = tampered_e2v_dir(plus, tmp_path / "bad", edit)
    spec = {"type": "emotion2vec", "source": str(bad)}
    with pytest.raises(BackboneError, match=f"{bad}.*{problem} \\[[^]]*{re.escape(repr(key))}.*strict: false"):
        build_backbone("e2v", spec)
    # strict: false loads the rest, warns with the same lists and records them in describe()
    with pytest.warns(UserWarning, match=re.escape(repr(key))):
        bb = build_backbone("e2v", {**spec, "strict": False})
    report = bb.describe()["load_report"]
    field = problem.replace(" ", "_")
    assert key in report[field] and report["loaded"] == (0 if edit is _renamed else 71 - 2 * (field != "unexpected"))
    if edit is _renamed:
        assert len(report["missing"]) == 71 and len(report["unexpected"]) == 71
    audio = np.random.default_rng(2).normal(0, 0.1, 16000).astype(np.float32)
    if edit in (_no_head, _head_7_classes):
        # a head that did not load never produces scores, strict or not; the encoder still embeds
        with pytest.raises(BackboneError, match="classifier head .* did not load.*proj.weight"), \
                pytest.warns(UserWarning, match="strict: false"):
            build_backbone("e2v", {**spec, "strict": False, "scores": True})
        with pytest.raises(BackboneError, match="classifier head .* did not load"):
            bb.class_scores([audio])
        assert bb.embed([audio])[0].pooled.shape == (3, 16)


def test_emotion2vec_load_accounts_for_every_tensor(e2v_dirs, tmp_path):
    """A fitting checkpoint loads without a warning, wrapped or not; the pre-training decoder, which
    emotion2vec+ checkpoints lack, is the one documented exception (ignored and removed)."""
    (_, _), (plus, _) = e2v_dirs
    wrapped = tampered_e2v_dir(plus, tmp_path / "wrapped", _wrapped)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bb = build_backbone("e2v", {"type": "emotion2vec", "source": str(wrapped)})
        ref = build_backbone("e2v", {"type": "emotion2vec", "source": str(plus)})
    report = bb.describe()["load_report"]
    assert report == {"loaded": 71, "ignored": {}, "missing": [], "unexpected": [], "shape_mismatch": []}
    audio = np.random.default_rng(3).normal(0, 0.1, 16000).astype(np.float32)
    np.testing.assert_array_equal(bb.embed([audio])[0].frames, ref.embed([audio])[0].frames)
    # config.yaml with a decoder (as the released emotion2vec+ configs have), checkpoint without it
    with_decoder = add_pretraining_decoder(tampered_e2v_dir(plus, tmp_path / "decoder", lambda s: s))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dec = build_backbone("e2v", {"type": "emotion2vec", "source": str(with_decoder)})
    (reason, count), = dec.describe()["load_report"]["ignored"].items()
    assert "pre-training decoder" in reason and count == 6  # 2 conv blocks (weight, bias) + projection
    assert dec.encoder.decoder is None and not dec.describe()["load_report"]["missing"]
    np.testing.assert_array_equal(dec.embed([audio])[0].frames, ref.embed([audio])[0].frames)


def test_zero_shot_mapping():
    eye = np.eye(9, dtype=np.float32)
    classes = ["neutral", "anger", "sadness", "happiness", "boredom"]
    preds, _ = zero_shot_predict(eye[[4, 0, 6, 3]], classes)
    assert preds == ["neutral", "anger", "sadness", "happiness"]
    # explicit mapping: several labels can feed one class
    preds, scores = zero_shot_predict(eye[[7, 4]] * 0.6 + 0.4 / 9, ["pos", "neu"],
                                      mapping={"pos": ["happy", "surprised"], "neu": "neutral"})
    assert preds == ["pos", "neu"] and scores.shape == (2, 2)
    with pytest.raises(BackboneError, match="none of"):
        zero_shot_predict(eye[:1], ["x", "y"])


def test_emotion2vec_hub_name_fails_fast_without_funasr(monkeypatch, tmp_path):
    import pipeline.features.backbones.emotion2vec as e2v

    def no_funasr(*_a, **_k):
        raise AssertionError("funasr must not be called for a hub name")

    monkeypatch.setattr(e2v, "load_funasr", no_funasr)
    start = time.perf_counter()
    hub_error = "'iic/emotion2vec_plus_large' is not a local directory.*modelscope download"
    with pytest.raises(BackboneError, match=hub_error):
        build_backbone("e2v", {"type": "emotion2vec", "source": "iic/emotion2vec_plus_large"})
    (tmp_path / "config.yaml").write_text("model: Emotion2vec\n")
    with pytest.raises(BackboneError, match="missing \\['model.pt'\\]"):
        build_backbone("e2v", {"type": "emotion2vec", "source": str(tmp_path)})
    assert time.perf_counter() - start < 2.0


@needs_emodb
@pytest.mark.parametrize(
    "feature_set, n_functionals, n_lld", [("eGeMAPSv02", 88, 25), ("compare", 6373, 65)]
)
def test_opensmile_functionals_and_llds_on_real_emodb(feature_set, n_functionals, n_lld):
    bb = build_backbone("os", {"type": "opensmile", "feature_set": feature_set, "lld": True})
    audio = decode_audio(EMODB / "03a01Fa.wav")
    emb, short = bb.embed([audio, audio[:400]])
    assert emb.pooled.shape == (n_functionals,) and np.isfinite(emb.pooled).all()
    assert emb.frames.shape[1] == n_lld and np.isfinite(emb.frames).all()
    info = bb.describe()
    assert abs(len(emb.frames) - len(audio) / 16000 * info["frame_rate"]) < 10  # LLDs at 100 frames/s
    assert len(info["feature_names"]) == n_functionals and len(info["lld_names"]) == n_lld
    # 25 ms is too short for openSMILE (it returns NaN): padded to min_seconds and counted
    assert np.isfinite(short.pooled).all() and info["n_padded"] == 1


def test_opensmile_options_are_checked():
    bb = build_backbone("os", {"type": "opensmile"})
    assert not bb.has_frames and bb.describe()["frame_rate"] is None
    assert bb.describe()["feature_set"] == "eGeMAPSv02"
    with pytest.raises(ConfigError, match="backbones.os.feature_set = 'nope': unknown openSMILE feature_set 'nope'.*ComParE_2016"):
        build_backbone("os", {"type": "opensmile", "feature_set": "nope"})
    with pytest.raises(ConfigError, match="backbones.os.lld = 'yes': Input should be a valid boolean"):
        build_backbone("os", {"type": "opensmile", "lld": "yes"})
    with pytest.raises(ConfigError, match=r"backbones.os: unknown key 'feature_sets' \(did you mean 'feature_set'\?\)"):
        build_backbone("os", {"type": "opensmile", "feature_sets": "compare"})


@needs_emodb
def test_resemblyzer_separates_real_speakers():
    bb = build_backbone("spk", {"type": "resemblyzer", "partials": True})
    files = sorted(EMODB.glob("*.wav"))
    by_speaker = {spk: [f for f in files if f.name.startswith(spk)][:4] for spk in ("03", "09")}
    embs = bb.embed([decode_audio(f) for fs in by_speaker.values() for f in fs])
    x = np.stack([e.pooled for e in embs])
    assert x.shape == (8, 256)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    sim = x @ x.T
    same = [sim[i, j] for i in range(8) for j in range(i + 1, 8) if (i < 4) == (j < 4)]
    cross = [sim[i, j] for i in range(4) for j in range(4, 8)]
    assert np.mean(same) > np.mean(cross) + 0.05
    info = bb.describe()
    assert all(e.frames.shape[1] == 256 and len(e.frames) >= 1 for e in embs)
    assert abs(info["frame_rate"] - 1.3) < 0.01 and info["revision"].startswith("sha256:")


def test_resemblyzer_silence_and_short_input_stay_finite():
    bb = build_backbone("spk", {"type": "resemblyzer"})
    silent, short = bb.embed([np.zeros(16000, np.float32), np.full(800, 0.01, np.float32)])
    assert silent.pooled.shape == (256,) and np.isfinite(silent.pooled).all() and np.isfinite(short.pooled).all()
    assert bb.describe()["n_padded"] >= 1
