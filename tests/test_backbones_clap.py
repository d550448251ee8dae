"""clap: a tiny random ClapModel through both loading paths (transformers dir, LAION .pt checkpoint).

The LAION checkpoint is synthetic: the tiny model's state dict renamed to LAION's module names by
inverting the converter's mapping, plus tensors that exist only in LAION's modules, saved as a
DDP-style ``{"state_dict": {"module.…": …}}`` file and converted back on load.
"""

import json

import numpy as np
import pytest

from pipeline.core.errors import ConfigError, BackboneError
from pipeline.features.backbones.base import build_backbone
from pipeline.features.backbones.clap import resample, zero_shot_scores
from pipeline.features.backbones.laion_clap import hf_to_laion
from pipeline.core.media import decode_audio
from tests.conftest import EMODB, needs_emodb

SR = 16000
AUDIO = dict(spec_size=64, num_mel_bins=16, window_size=4, patch_size=4, patch_stride=2, patch_embeds_hidden_size=8,
             depths=[2, 2], num_attention_heads=[2, 2], hidden_size=16, enable_fusion=True)
TEXT = dict(vocab_size=300, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=20,
            max_position_embeddings=80)
CONFIG = dict(audio_config=AUDIO, text_config=TEXT, projection_dim=8)
# 48 kHz, hop 480 → 201 mel frames per 2 s window (the tiny HTS-AT takes up to 64 × 4 = 256)
EXTRACTOR = dict(feature_size=16, sampling_rate=48000, hop_length=480, max_length_s=2, fft_window_size=1024,
                 frequency_min=50, frequency_max=14000)

# Tensors that only LAION's modules have (HTS-AT front end and AudioSet head, shifted-window mask,
# training-only MLPs): reported as ignored, never loaded.
LAION_ONLY = {
    "audio_branch.spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024),
    "audio_branch.spectrogram_extractor.stft.conv_imag.weight": (513, 1, 1024),
    "audio_branch.logmel_extractor.melW": (513, 16),
    "audio_branch.layers.0.blocks.1.attn_mask": (16, 16, 16),
    "audio_branch.tscam_conv.weight": (527, 16, 2, 3),
    "audio_branch.head.weight": (527, 527),
    "audio_transform.sequential.0.weight": (8, 8),
    "text_transform.sequential.3.bias": (8,),
}


def _tokenizer(out):
    """A byte-level BPE RoBERTa tokenizer with no merges (every byte is a token)."""
    from transformers import RobertaTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in bytes_to_unicode().values():
        vocab.setdefault(ch, len(vocab))
    vocab["<mask>"] = len(vocab)
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n")
    return RobertaTokenizer(str(out / "vocab.json"), str(out / "merges.txt"))


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory):
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("clap")
    model = ClapModel(ClapConfig(**CONFIG)).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that a mix-up would show
        for name, buf in model.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                buf.uniform_(0.5, 1.5)
    model.save_pretrained(out)
    ClapProcessor(feature_extractor=ClapFeatureExtractor(**EXTRACTOR), tokenizer=_tokenizer(out)).save_pretrained(out)
    return out, model


@pytest.fixture(scope="module")
def bb(clap_dir):
    return build_backbone("clap", {"type": "clap", "source": str(clap_dir[0])})


def _noise(*seconds, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.1, int(s * SR)).astype(np.float32) for s in seconds]


def _laion_checkpoint(model, path, drop=(), extra=None):
    """LAION-named, DDP-prefixed checkpoint made from ``model``'s tensors."""
    import torch

    laion = hf_to_laion(model.state_dict())
    laion.update({k: torch.zeros(s) for k, s in LAION_ONLY.items()})
    laion.update(extra or {})
    for key in drop:
        del laion[key]
    torch.save({"epoch": 16, "state_dict": {f"module.{k}": v for k, v in laion.items()}}, path)
    return path


def test_audio_embeddings_are_get_audio_features(clap_dir, bb):
    import torch

    path, model = clap_dir
    short, mid = _noise(0.5, 1.5)
    (emb,) = bb.embed([short])
    assert emb.pooled.shape == (model.config.projection_dim,) and emb.frames is None
    assert np.isclose(np.linalg.norm(emb.pooled), 1.0, atol=1e-5)
    # the same audio through transformers' own API: resample 16→48 kHz, LAION int16 quantisation
    wave = resample(short, 48000)
    assert len(wave) == 3 * len(short)
    wave = (np.clip(wave, -1, 1) * 32767).astype(np.int16).astype(np.float32) / 32767
    inputs = bb.extractor([wave], sampling_rate=48000, return_tensors="pt")
    with torch.no_grad():
        ref = model.get_audio_features(inputs["input_features"], is_longer=torch.zeros(1, 1, dtype=torch.bool))
    np.testing.assert_allclose(emb.pooled, ref.pooler_output[0].numpy(), atol=1e-5)
    info = bb.describe()
    assert info["sampling_rate"] == 48000 and "soxr_hq" in info["resampler"]
    assert info["fusion"] is True and info["window_seconds"] is None and info["long_inputs"].startswith("fusion")


def test_resample_is_librosa_soxr_hq():
    """LAION's documented path loads with librosa.load(sr=48000): soxr at soxr_hq (scipy's resample_poly
    differed by up to ~6 dB in the log-mel above 7.5 kHz)."""
    import librosa

    x = _noise(1.37, seed=3)[0]
    for rate in (48000, 44100):
        ours = resample(x, rate)
        ref = librosa.resample(x, orig_sr=SR, target_sr=rate, res_type="soxr_hq")
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        np.testing.assert_array_equal(ours, ref)
    assert resample(x, SR) is x


def test_long_inputs_fused_by_fusion_models_windowed_otherwise(clap_dir):
    path = clap_dir[0]
    inputs = _noise(0.5, 5.0, 1.5)  # 5 s > the 2 s max_length_s
    for extra, fused, windowed in (({}, 1, 0), ({"window_seconds": 2}, 0, 1)):
        cfg = {"type": "clap", "source": str(path), "output": "both", **extra}
        batched = build_backbone("b", {**cfg, "batch_seconds": 100})
        single = build_backbone("s", {**cfg, "batch_seconds": 0})
        for a, b in zip(batched.embed(inputs), single.embed(inputs)):
            np.testing.assert_allclose(a.pooled, b.pooled, atol=1e-5)
        info = batched.describe()
        assert (info["n_fused"], info["n_windowed"]) == (fused, windowed)
    fused_bb = build_backbone("f", {"type": "clap", "source": str(path)})
    windowed_bb = build_backbone("w", {"type": "clap", "source": str(path), "window_seconds": 2})
    long = inputs[1:2]
    # the is_longer path is not the window average
    assert float(fused_bb.embed(long)[0].pooled @ windowed_bb.embed(long)[0].pooled) < 0.9999
    # crops: a fresh RandomState(crop_seed) per item, so the result does not depend on what came before
    np.random.seed(123)
    first = fused_bb.embed(long)[0].pooled
    np.random.seed(456)
    np.testing.assert_allclose(fused_bb.embed(inputs)[1].pooled, first, atol=1e-5)
    other = build_backbone("o", {"type": "clap", "source": str(path), "crop_seed": 7}).embed(long)[0].pooled
    assert not np.allclose(other, first, atol=1e-5)


def test_non_fusion_model_takes_its_own_log_mel_whatever_the_processor(clap_dir, tmp_path):
    """A non-fusion model with a processor saved for fusion (truncation "fusion") still gets the
    one-channel Slaney log-mel it was trained on (it used to get the 4-channel fusion stack and fail)."""
    import torch
    from transformers import ClapConfig, ClapModel

    path, _ = clap_dir
    torch.manual_seed(1)
    unfused = ClapModel(ClapConfig(**{**CONFIG, "audio_config": {**AUDIO, "enable_fusion": False}})).eval()
    out = tmp_path / "unfused"
    unfused.save_pretrained(out)
    for f in path.iterdir():  # the fused model's processor and tokenizer files
        if f.name not in ("config.json", "model.safetensors"):
            (out / f.name).write_bytes(f.read_bytes())
    bb = build_backbone("u", {"type": "clap", "source": str(out)})
    assert bb.extractor.truncation == "fusion" and bb.describe()["fusion"] is False
    x = _noise(1.0, 5.0, seed=2)
    embs = bb.embed(x)
    wave = resample(x[0], 48000)
    wave = (np.clip(wave, -1, 1) * 32767).astype(np.int16).astype(np.float32) / 32767
    inputs = bb.extractor([wave], sampling_rate=48000, truncation="rand_trunc", return_tensors="pt")
    with torch.no_grad():
        ref = unfused.get_audio_features(inputs["input_features"]).pooler_output[0].numpy()
    np.testing.assert_allclose(embs[0].pooled, ref, atol=1e-5)
    assert bb.describe()["n_windowed"] == 1 and bb.describe()["long_inputs"] == "windows averaged"


def test_inline_config_text_layer_norm_eps_is_robertas(clap_dir, tmp_path):
    from transformers import ClapConfig

    path, model = clap_dir
    ckpt = _laion_checkpoint(model, tmp_path / "eps.pt")
    base = {"type": "clap", "checkpoint": str(ckpt), "processor": str(path)}
    bb = build_backbone("e", {**base, "config": dict(CONFIG)})  # TEXT gives no layer_norm_eps
    assert bb.model.config.text_config.layer_norm_eps == 1e-5
    assert bb.model.text_model.embeddings.LayerNorm.eps == 1e-5
    assert bb.model.text_model.encoder.layer[0].output.LayerNorm.eps == 1e-5
    given = {**CONFIG, "text_config": {**TEXT, "layer_norm_eps": 1e-7}}
    assert build_backbone("e", {**base, "config": given}).model.text_model.embeddings.LayerNorm.eps == 1e-7
    # a config dir (the checkpoint's own config.json) keeps the value it states
    stated = ClapConfig.from_pretrained(path).text_config.layer_norm_eps
    by_dir = build_backbone("e", {**base, "config": str(path)})
    assert by_dir.model.text_model.embeddings.LayerNorm.eps == stated


def test_text_embeddings_and_zero_shot_match_clap_forward(clap_dir, bb):
    import torch

    path, model = clap_dir
    prompts = ["a happy voice", "an angry voice", "a sad voice"]
    text = bb.text_embeddings(prompts)
    assert text.shape == (3, model.config.projection_dim)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    audio = _noise(0.5, 1.0, seed=1)
    probs = bb.zero_shot(audio, prompts)
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1.0)
    stored = np.stack([e.pooled for e in bb.embed(audio)])
    np.testing.assert_allclose(bb.zero_shot(stored, prompts), probs, atol=1e-6)
    # transformers' own contrastive logits over the same embeddings
    logits = torch.from_numpy(stored) @ torch.from_numpy(text).T * model.logit_scale_a.exp()
    np.testing.assert_allclose(probs, logits.softmax(-1).detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(zero_shot_scores(stored * 3, text, 1.0), zero_shot_scores(stored, text, 1.0))


@needs_emodb
def test_clap_on_real_emodb_utterance(bb):
    audio = decode_audio(EMODB / "03a01Fa.wav")
    (emb,) = bb.embed([audio])
    assert np.isfinite(emb.pooled).all() and bb.zero_shot(emb.pooled[None], ["speech", "music"]).shape == (1, 2)


def test_laion_checkpoint_round_trip(clap_dir, tmp_path):
    import torch

    path, model = clap_dir
    laion = hf_to_laion(model.state_dict())
    # names follow LAION's modules (htsat.py, model.py, feature_fusion.py)
    for key in (
        "audio_branch.bn0.running_mean", "audio_branch.patch_embed.proj.weight",
        "audio_branch.patch_embed.mel_conv2d.weight", "audio_branch.patch_embed.fusion_model.local_att.0.weight",
        "audio_branch.patch_embed.fusion_model.global_att.5.running_var",
        "audio_branch.layers.0.blocks.1.attn.qkv.weight", "audio_branch.layers.0.blocks.1.attn.proj.bias",
        "audio_branch.layers.0.blocks.0.attn.relative_position_bias_table",
        "audio_branch.layers.1.blocks.1.norm2.weight", "audio_branch.layers.1.blocks.0.mlp.fc1.weight",
        "audio_branch.layers.0.downsample.reduction.weight", "audio_branch.norm.bias",
        "audio_projection.0.weight", "audio_projection.2.bias", "text_projection.0.bias",
        "text_branch.encoder.layer.1.attention.self.query.weight", "text_branch.pooler.dense.weight",
        "logit_scale_a", "logit_scale_t",
    ):
        assert key in laion, key
    assert laion["audio_branch.layers.0.blocks.0.attn.qkv.weight"].shape == (3 * 8, 8)

    ckpt = _laion_checkpoint(model, tmp_path / "630k-tiny-fusion.pt")
    bb = build_backbone("lc", {"type": "clap", "checkpoint": str(ckpt), "config": str(path)})
    converted = bb.model.state_dict()
    assert converted.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(converted[key], value), key
    report = bb.describe()["conversion"]
    assert report["unexpected"] == report["missing"] == report["shape_mismatch"] == []
    assert sum(report["ignored"].values()) == len(LAION_ONLY)
    assert bb.describe()["revision"].startswith("sha256:") and bb.describe()["text_tower"] == "loaded"
    ref = build_backbone("hf", {"type": "clap", "source": str(path)})
    x = _noise(1.0)
    np.testing.assert_allclose(bb.embed(x)[0].pooled, ref.embed(x)[0].pooled, atol=1e-6)


def test_laion_checkpoint_unmapped_and_missing_keys_are_reported(clap_dir, tmp_path):
    import torch

    path, model = clap_dir
    ckpt = _laion_checkpoint(model, tmp_path / "bad.pt", drop=["audio_projection.2.weight"],
                             extra={"audio_branch.absolute_pos_embed": torch.zeros(1, 1024, 8)})
    cfg = {"type": "clap", "checkpoint": str(ckpt), "config": dict(CONFIG), "processor": str(path)}
    with pytest.raises(BackboneError, match=r"backbones\.lc: .*absolute_pos_embed.*audio_projection\.linear2\.weight"):
        build_backbone("lc", cfg)
    with pytest.warns(UserWarning, match="absolute_pos_embed"):
        bb = build_backbone("lc", {**cfg, "strict": False})
    report = bb.describe()["conversion"]
    assert report["unexpected"] == ["audio_branch.absolute_pos_embed"]
    assert report["missing"] == ["audio_projection.linear2.weight"]
    assert bb.embed(_noise(0.5))[0].pooled.shape == (8,)


def test_missing_text_tower_disables_zero_shot(clap_dir, tmp_path):
    path, model = clap_dir
    ckpt = _laion_checkpoint(model, tmp_path / "audio_only.pt", drop=["text_projection.0.weight"])
    with pytest.warns(UserWarning):
        bb = build_backbone("af", {"type": "clap", "checkpoint": str(ckpt), "config": str(path), "strict": False})
    assert bb.describe()["text_tower"].startswith("missing")
    with pytest.raises(BackboneError, match="text tower did not load"):
        bb.text_embeddings(["speech"])


def test_fusion_mismatch_hint_and_missing_config(clap_dir, tmp_path):
    path, model = clap_dir
    ckpt = _laion_checkpoint(model, tmp_path / "fused.pt")
    unfused = {**CONFIG, "audio_config": {**AUDIO, "enable_fusion": False}}
    with pytest.raises(BackboneError, match="enable_fusion"):
        build_backbone("lc", {"type": "clap", "checkpoint": str(ckpt), "config": unfused, "processor": str(path)})
    with pytest.raises(ConfigError, match="backbones.lc: 'checkpoint' needs 'config'"):
        build_backbone("lc", {"type": "clap", "checkpoint": str(ckpt)})
    with pytest.raises(BackboneError, match="does not exist"):
        build_backbone("lc", {"type": "clap", "checkpoint": str(tmp_path / "nope.pt"), "config": str(path)})
