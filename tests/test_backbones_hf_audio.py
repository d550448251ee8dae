"""hf_audio: every supported family as a tiny random checkpoint, loaded through the real path.

Each model is saved with ``save_pretrained`` and read back by ``build_backbone``; shapes, frame
rates and frame counts are derived from the configs, never hard-coded. Padded batches must equal
one-at-a-time results.
"""

import math

import numpy as np
import pytest

from pipeline.core.errors import BackboneError
from pipeline.features.backbones.base import build_backbone
from pipeline.core.audio import even_windows, group_by_seconds
from pipeline.core.media import decode_audio
from tests.conftest import EMODB, needs_emodb
from tests.factories import SSL_KINDS, tiny_ast_encoder, tiny_ssl, tiny_whisper

SR = 16000


def _noise(*lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.1, n).astype(np.float32) for n in lengths]


def _save(tmp_path_factory, name, model, extractor):
    out = tmp_path_factory.mktemp(name)
    model.save_pretrained(out)
    extractor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def ssl_dirs(tmp_path_factory):
    """wav2vec2 (layer and group norm), Chinese-HuBERT-large-shaped HuBERT, WavLM, data2vec-audio."""
    return {name: tiny_ssl(name, tmp_path_factory.mktemp(name)) for name in SSL_KINDS}


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    """Tiny Whisper saved as WhisperForConditionalGeneration (encoder + decoder tensors); 2 s chunks."""
    return tiny_whisper(tmp_path_factory.mktemp("whisper"), chunk_length=2, num_mel_bins=16)


@pytest.fixture(scope="module")
def qwen_dirs(tmp_path_factory):
    """Tiny full Qwen2-Audio (audio tower + LM), the same tower saved on its own, and a sharded copy
    of the full checkpoint from which every shard without audio-tower tensors was deleted (what a
    partial download of Qwen/Qwen2-Audio-7B-Instruct looks like)."""
    import json
    import torch
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, WhisperFeatureExtractor

    torch.manual_seed(0)
    fe = WhisperFeatureExtractor(feature_size=16, chunk_length=2)
    config = Qwen2AudioConfig(
        audio_config=dict(num_mel_bins=16, d_model=16, encoder_layers=2, encoder_attention_heads=2,
                          encoder_ffn_dim=32, max_source_positions=fe.nb_max_frames // 2),
        text_config=dict(model_type="qwen2", hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=32, vocab_size=6400),
    )
    model = Qwen2AudioForConditionalGeneration(config)
    full = _save(tmp_path_factory, "qwen_full", model, fe)
    tower = _save(tmp_path_factory, "qwen_tower", model.model.audio_tower, fe)
    partial = tmp_path_factory.mktemp("qwen_partial")
    model.save_pretrained(partial, max_shard_size="100KB")
    fe.save_pretrained(partial)
    weight_map = json.loads((partial / "model.safetensors.index.json").read_text())["weight_map"]
    needed = {f for k, f in weight_map.items() if k.startswith("audio_tower.")}
    for shard in set(weight_map.values()) - needed:
        (partial / shard).unlink()
    assert len(set(weight_map.values())) > len(needed)
    return full, tower, config.audio_config, fe, partial


@pytest.fixture(scope="module")
def ast_dir(tmp_path_factory):
    return tiny_ast_encoder(tmp_path_factory.mktemp("ast"), max_length=128)


def _assert_batched_equals_single(path, inputs, **cfg):
    batched = build_backbone("b", {"type": "hf_audio", "source": str(path), "batch_seconds": 100, **cfg})
    calls = []
    run = batched.family.run
    batched.family.run = lambda windows: calls.append(len(windows)) or run(windows)
    single = build_backbone("s", {"type": "hf_audio", "source": str(path), "batch_seconds": 0, **cfg})
    for a, b in zip(batched.embed(inputs), single.embed(inputs)):
        np.testing.assert_allclose(a.pooled, b.pooled, atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(a.frames, b.frames, atol=2e-5, rtol=1e-4)
    return calls, batched


# -- helpers ------------------------------------------------------------------------------------


def test_even_windows_covers_everything_in_near_equal_aligned_parts():
    audio = np.arange(1000, dtype=np.float32)
    parts = even_windows(audio, window=300, align=20)
    assert len(parts) == 4 and all(len(p) <= 300 and len(p) % 20 == 0 for p in parts[:-1])
    np.testing.assert_array_equal(np.concatenate(parts), audio)
    assert even_windows(audio, window=1000)[0] is audio


def test_group_by_seconds_respects_padded_budget():
    groups = group_by_seconds([10, 40, 30, 20], budget_samples=80)
    assert groups == [[1, 2], [3, 0]]  # 2×40 ≤ 80, then 2×20 ≤ 80; longest first
    assert group_by_seconds([10, 40], budget_samples=0) == [[1], [0]]
    assert group_by_seconds([5, 5, 5], budget_samples=100, fixed_samples=50) == [[0, 1], [2]]


# -- SSL family -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["w2v_layer", "hubert_zh_large", "wavlm"])
def test_ssl_padded_batches_equal_single_items(ssl_dirs, name):
    path, config = ssl_dirs[name]
    inputs = _noise(3000, 8000, 5000, 12000)
    calls, bb = _assert_batched_equals_single(path, inputs)
    assert max(calls) > 1 and bb.describe()["batching"] == "padded batches"
    stride = math.prod(config.conv_stride)
    (emb,) = bb.embed(inputs[1:2])
    assert emb.pooled.shape == (config.num_hidden_layers + 1, config.hidden_size)
    assert len(emb.frames) == int(bb.model._get_feat_extract_output_lengths(8000))
    assert bb.describe()["frame_rate"] == SR / stride and bb.describe()["model_type"] == config.model_type


@pytest.mark.parametrize("name, reason", [("w2v_group", "group"), ("data2vec", "data2vec-audio")])
def test_ssl_models_that_padding_would_change_run_per_item(ssl_dirs, name, reason):
    path, config = ssl_dirs[name]
    calls, bb = _assert_batched_equals_single(path, _noise(3000, 8000, 5000))
    assert calls == [1, 1, 1] and reason in bb.describe()["batching"]


def test_ast_only_settings_on_another_family_are_an_error(ssl_dirs):
    path, _ = ssl_dirs["hubert_zh_large"]
    with pytest.raises(BackboneError, match=r"backbones\.h: mean, std apply to AST checkpoints only"):
        build_backbone("h", {"type": "hf_audio", "source": str(path), "mean": -4.0, "std": 4.0})


def test_ssl_pads_inputs_shorter_than_the_receptive_field(ssl_dirs):
    path, config = ssl_dirs["hubert_zh_large"]
    bb = build_backbone("h", {"type": "hf_audio", "source": str(path), "min_seconds": 0})
    (emb,) = bb.embed(_noise(20))  # receptive field of (10,4,2)/(5,4,2) convs is 45 samples
    assert len(emb.frames) == 1 and bb.describe()["n_padded"] == 1


def test_ssl_without_preprocessor_config_uses_the_norm_convention(ssl_dirs, tmp_path):
    import shutil

    path, config = ssl_dirs["hubert_zh_large"]
    shutil.copytree(path, tmp_path / "m")
    (tmp_path / "m" / "preprocessor_config.json").unlink()
    bb = build_backbone("h", {"type": "hf_audio", "source": str(tmp_path / "m")})
    assert bb.describe()["feature_extractor"].startswith("default") and bb.extractor.do_normalize  # layer norm
    ref = build_backbone("r", {"type": "hf_audio", "source": str(path)})
    x = _noise(4000)
    np.testing.assert_allclose(bb.embed(x)[0].pooled, ref.embed(x)[0].pooled, atol=1e-6)


# -- Whisper ----------------------------------------------------------------------------------------


def test_whisper_encoder_only_trimmed_and_windowed(whisper_dir):
    path, config, fe = whisper_dir
    bb = build_backbone("wh", {"type": "hf_audio", "source": str(path)})
    info = bb.describe()
    rate = fe.sampling_rate / (fe.hop_length * fe.nb_max_frames / config.max_source_positions)
    assert info["frame_rate"] == rate == 50 and info["model_type"] == "whisper"
    assert "model.encoder.*" in info["loaded"] and info["window_seconds"] == fe.chunk_length
    n_encoder = len(bb.model.state_dict())
    assert f"({n_encoder} of " in info["loaded"]  # decoder tensors were not read
    short, long = _noise(8000, 5 * SR)
    e_short, e_long = bb.embed([short, long])
    assert e_short.pooled.shape == (config.encoder_layers + 1, config.d_model)
    assert len(e_short.frames) == math.ceil(8000 / SR * rate)  # padding frames dropped
    assert abs(len(e_long.frames) - 5 * rate) <= 3 and bb.describe()["n_windowed"] == 1  # 5 s > 2 s chunk


def test_whisper_batches_equal_single_items(whisper_dir):
    calls, _ = _assert_batched_equals_single(whisper_dir[0], _noise(8000, 20000, 3000))
    assert max(calls) > 1


@needs_emodb
def test_whisper_on_real_emodb_utterance(whisper_dir):
    path, config, fe = whisper_dir
    audio = decode_audio(EMODB / "03a01Fa.wav")
    bb = build_backbone("wh", {"type": "hf_audio", "source": str(path), "frame_layer": 1})
    (emb,) = bb.embed([audio])
    assert abs(len(emb.frames) - len(audio) / SR * 50) <= 2 and np.isfinite(emb.pooled).all()


# -- Qwen2-Audio --------------------------------------------------------------------------------------


def test_qwen2_audio_tower_from_full_checkpoint_and_encoder_dir(qwen_dirs):
    full, tower, audio_config, fe, partial = qwen_dirs
    a = build_backbone("qa", {"type": "hf_audio", "source": str(full)})
    b = build_backbone("qt", {"type": "hf_audio", "source": str(tower)})
    c = build_backbone("qp", {"type": "hf_audio", "source": str(partial)})
    info = a.describe()
    assert info["model_type"] == "qwen2_audio" and "audio_tower.*" in info["loaded"]
    assert type(a.model).__name__ == "Qwen2AudioEncoder"  # the language model is never built
    n_tower = len(a.model.state_dict())
    assert f"({n_tower} of " in info["loaded"] and not info["loaded"].endswith(f"of {n_tower} tensors)")
    # 2x conv stride, then the tower's 2x average pool: 25 frames/s
    assert info["frame_rate"] == fe.sampling_rate / (fe.hop_length * 2 * 2) == 25
    inputs = _noise(8000, 20000)
    for x, y, z in zip(a.embed(inputs), b.embed(inputs), c.embed(inputs)):
        np.testing.assert_allclose(x.pooled, y.pooled, atol=1e-6)
        np.testing.assert_allclose(x.pooled, z.pooled, atol=1e-6)
    e = a.embed(inputs)[0]
    assert e.pooled.shape == (audio_config.encoder_layers + 1, audio_config.d_model)
    # the tower's own output length (2x conv, 2x pool over 50 mel frames): 12, not ceil(0.5 s x 25) = 13
    assert len(e.frames) == 12


def test_qwen2_audio_tower_matches_what_the_language_model_receives(qwen_dirs):
    """Golden parity: transformers' Qwen2AudioForConditionalGeneration audio path (extractor mask →
    encoder attention mask, output lengths from _get_feat_extract_output_lengths), captured at the
    tower's output inside the full model's forward, against our frames — per item, cos ≥ 0.9999 and
    the same frame counts. Without the mask, real frames attended to the padding (cos 0.71–0.92)."""
    import torch
    from transformers import Qwen2AudioForConditionalGeneration, WhisperFeatureExtractor

    full = qwen_dirs[0]
    ref = Qwen2AudioForConditionalGeneration.from_pretrained(full).eval()
    ref.config.audio_token_id = 5  # a token inside the tiny vocabulary
    fe = WhisperFeatureExtractor.from_pretrained(full)
    inputs = _noise(8000, 20001, 31000, seed=3)  # each within one 2-s window of this tiny extractor
    feats = fe(inputs, sampling_rate=SR, return_attention_mask=True, return_tensors="pt")
    captured = []
    hook = ref.model.audio_tower.register_forward_hook(lambda m, i, o: captured.append(o.last_hidden_state))
    with torch.inference_mode():
        ids = torch.tensor([[1, 5, 2]] * len(inputs))
        ref(input_ids=ids, attention_mask=torch.ones_like(ids), input_features=feats["input_features"],
            feature_attention_mask=feats["attention_mask"])
    hook.remove()
    _, lengths = ref.model.audio_tower._get_feat_extract_output_lengths(feats["attention_mask"].sum(-1))
    ours = build_backbone("q", {"type": "hf_audio", "source": str(full)}).embed(inputs)
    for e, want, n in zip(ours, captured[0], lengths):
        want = want[: int(n)].numpy()
        assert e.frames.shape == want.shape
        cos = (e.frames * want).sum(-1) / np.linalg.norm(e.frames, axis=-1) / np.linalg.norm(want, axis=-1)
        assert cos.min() >= 0.9999, cos.min()


def test_qwen2_audio_batches_equal_single_items(qwen_dirs):
    calls, _ = _assert_batched_equals_single(qwen_dirs[0], _noise(8000, 20000, 3000))
    assert max(calls) > 1


# -- AST ------------------------------------------------------------------------------------------------


def test_ast_frames_are_time_columns_and_mean_std_override(ast_dir):
    path, config = ast_dir
    bb = build_backbone("ast", {"type": "hf_audio", "source": str(path)})
    info = bb.describe()
    assert info["frame_rate"] == 100 / config.time_stride and info["model_type"] == "audio-spectrogram-transformer"
    window = (config.max_length - 1) * 160 + 400
    assert info["window_seconds"] == window / SR  # 1.28 s of fbank frames at this tiny max_length
    e_short, e_long = bb.embed(_noise(8000, 3 * SR))
    assert e_short.pooled.shape == (config.num_hidden_layers + 1, config.hidden_size)
    assert len(e_short.frames) == math.ceil((1 + (8000 - 400) // 160) / config.time_stride)
    assert abs(len(e_long.frames) - 3 * info["frame_rate"]) <= 3 and info["n_windowed"] == 0
    assert bb.describe()["n_windowed"] == 1

    custom = build_backbone("ast2", {"type": "hf_audio", "source": str(path), "mean": 1.0, "std": 2.0})
    assert custom.describe()["normalisation"] == {"mean": 1.0, "std": 2.0}
    assert not np.allclose(custom.embed(_noise(8000))[0].pooled, e_short.pooled)

    cls = build_backbone("ast3", {"type": "hf_audio", "source": str(path), "ast_pooling": "cls"})
    (c,) = cls.embed(_noise(8000))
    assert c.pooled.shape == e_short.pooled.shape and "cls" in cls.describe()["pooling"]


def test_ast_batches_equal_single_items(ast_dir):
    calls, _ = _assert_batched_equals_single(ast_dir[0], _noise(8000, 20000, 3000))
    assert max(calls) > 1


# -- errors -------------------------------------------------------------------------------------------


def test_unsupported_model_type_is_named(tmp_path):
    from transformers import BertConfig

    config = BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20)
    config.save_pretrained(tmp_path)
    with pytest.raises(BackboneError, match="backbones.x: model_type 'bert' is not supported by hf_audio"):
        build_backbone("x", {"type": "hf_audio", "source": str(tmp_path)})
