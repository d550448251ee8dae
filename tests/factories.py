"""Shared test factories: tiny random models saved with ``save_pretrained`` (loaded back through the
real code paths, as a real checkpoint would be) and small synthetic corpora and feature stores.

One place for them, so test modules never import each other. Real-layout fake corpora live in
``tests/data/<corpus>/data.py`` (torchgeo style); media helpers in ``tests/data/media.py``.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.inputs import write_items
from pipeline.core.manifest import Corpus, Task, save
from pipeline.core.segments import Segments
from pipeline.core.store import FeatureStore, write_store
from pipeline.heads.probe.run import run_probe
from pipeline.segment.decode import segment_corpus
from tests.data.media import write_wav

FEATURE_CLASSES = ["a", "b", "c"]  # feature_corpus: one informative dimension per class
TONE_CLASSES = ["low", "mid", "high"]  # tone_corpus: the class is the pitch (octave) of a tone
TONE_SPLIT = {"s1": ("train", None), "s2": ("train", None), "s3": ("dev", None), "s4": ("test", None)}
TONE_CV = {"a": ("train", 1), "b": ("train", 2), "c": ("train", 3)}
LLM_CLASSES = ["neutral", "happy", "sad", "angry"]  # the demo's classes: tiny_llm's vocabulary covers them
LLM_TASK = Task("emotion", "classification", LLM_CLASSES)
LLM_SENTENCES = ["I will be there tomorrow", "The box is on the table", "We talked about it"]


# --- tiny encoders and LLMs ---------------------------------------------------------------------


def tiny_wav2vec2(path: Path, *, layer_norm: bool = False, hidden: int = 16, layers: int = 3,
                  intermediate: int = 20, conv: int = 8):
    """A tiny random wav2vec2 + its feature extractor; returns ``(path, config)``. Group-norm conv stack
    by default (like wav2vec2-base: batched one item at a time); ``layer_norm`` as in the large models."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    norm = {"feat_extract_norm": "layer", "do_stable_layer_norm": True} if layer_norm else {}
    config = Wav2Vec2Config(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=intermediate,
        conv_dim=(conv,) * 3, conv_stride=(5, 4, 2), conv_kernel=(10, 4, 2),
        num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, **norm,
    )
    Wav2Vec2Model(config).save_pretrained(path)
    extractor = {"do_normalize": True, "return_attention_mask": True} if layer_norm else {}
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, **extractor).save_pretrained(path)
    return path, config


def tiny_ast(path: Path) -> Path:
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(0)
    config = ASTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        num_mel_bins=16, max_length=64, patch_size=16, frequency_stride=10, time_stride=10, num_labels=2,
    )
    ASTForAudioClassification(config).save_pretrained(path)
    ASTFeatureExtractor(num_mel_bins=16, max_length=64).save_pretrained(path)
    return path


def tiny_hubert(path: Path) -> Path:
    import torch
    from transformers import HubertConfig, HubertForSequenceClassification, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=20, conv_dim=(8, 8),
        conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        classifier_proj_size=8,
    )
    HubertForSequenceClassification(config).save_pretrained(path)
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True, return_attention_mask=False)
    extractor.save_pretrained(path)
    return path


def tiny_llm(out, initializer_range=0.2):
    """Train a BPE tokenizer on the prompt/label vocabulary, wrap it, add a chat template; save a tiny Qwen2.

    A wider initialisation than Qwen's 0.02 gives the frozen random LLM non-uniform outputs that
    soft tokens can steer; with 0.02 every input yields near-uniform logits (loss ≈ ln |vocab|).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

    from pipeline.heads.audio_llm.data import PROMPTS, TRANSCRIBE, instruction
    from pipeline.heads.audio_llm.parse import LabelParser

    parser = LabelParser(LLM_CLASSES)
    texts = [instruction(LLM_TASK, parser, lang) for lang in PROMPTS] + LLM_SENTENCES + [TRANSCRIBE, "Describe the speaker."]
    texts += [f"A {g}speaker says something in a {c} tone." for g in ("", "female ", "male ") for c in LLM_CLASSES]
    texts += parser.options("en") + parser.options("zh") + ["The emotion is: Happy.", "高兴 生气 难过 平静"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(texts * 5, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<unk>"
    )
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tok.save_pretrained(out)
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=256,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True, initializer_range=initializer_range,
    )
    import torch

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    return out


# --- tiny audio / vision encoders with realistic geometry (golden parity and strict-loading tests) ----


def spread_weights(model, std: float = 0.3, seed: int = 0):
    """Add N(0, std) noise to every floating parameter (in place) and return the model.

    Freshly initialised models have unit LayerNorms and near-uniform attention (init std 0.02):
    swapping two LayerNorms or a layer's query and key projections would then change nothing, and a
    parity test could not notice a loader that mixed them up. Spread weights make every tensor count.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
    return model


SSL_TINY = {
    "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 20,
    "conv_dim": (8, 8, 8), "conv_stride": (5, 4, 2), "conv_kernel": (10, 4, 2),
    "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2,
}
SSL_KINDS = ("w2v_layer", "w2v_group", "hubert_zh_large", "wavlm", "data2vec")


def tiny_ssl(kind: str, path: Path, *, spread: float = 0.0):
    """A tiny random SSL encoder of ``kind`` (SSL_KINDS) + its feature extractor; returns ``(path, config)``.

    ``w2v_layer``: wav2vec2 with a layer-norm conv stack and stable layer norm (the large models);
    ``w2v_group``: the group-norm stack of wav2vec2-base; ``hubert_zh_large``: the
    TencentGameMate/chinese-hubert-large layout (bias-free layer-norm convs, stable layer norm,
    feature-projection layer norm); ``wavlm``; ``data2vec`` (data2vec-audio)."""
    import torch
    from transformers import (
        Data2VecAudioConfig,
        Data2VecAudioModel,
        HubertConfig,
        HubertModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
        WavLMConfig,
        WavLMModel,
    )

    torch.manual_seed(0)
    layer = {"feat_extract_norm": "layer", "do_stable_layer_norm": True}
    if kind == "w2v_layer":
        model = Wav2Vec2Model(Wav2Vec2Config(**SSL_TINY, **layer))
    elif kind == "w2v_group":
        model = Wav2Vec2Model(Wav2Vec2Config(**SSL_TINY))
    elif kind == "hubert_zh_large":
        model = HubertModel(HubertConfig(**SSL_TINY, **layer, feat_proj_layer_norm=True, conv_bias=False))
    elif kind == "wavlm":
        model = WavLMModel(WavLMConfig(**SSL_TINY, **layer, num_buckets=16, max_bucket_distance=40))
    elif kind == "data2vec":
        d2v = {k: v for k, v in SSL_TINY.items() if k != "num_conv_pos_embeddings"}
        model = Data2VecAudioModel(Data2VecAudioConfig(**d2v, num_conv_pos_embeddings=5, conv_pos_kernel_size=5))
    else:
        raise ValueError(kind)
    normalise = getattr(model.config, "feat_extract_norm", "layer") == "layer"
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=normalise,
                                  return_attention_mask=normalise)
    if spread:
        spread_weights(model, spread)
    model.save_pretrained(path)
    fe.save_pretrained(path)
    return path, model.config


def tiny_whisper(path: Path, *, chunk_length: int = 30, num_mel_bins: int = 80, spread: float = 0.0):
    """A tiny random WhisperForConditionalGeneration (encoder + decoder tensors) with Whisper's real
    input geometry by default (80 mel bins, 30-s chunks, 1500 encoder positions); returns
    ``(path, config, feature_extractor)``."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.manual_seed(0)
    fe = WhisperFeatureExtractor(feature_size=num_mel_bins, chunk_length=chunk_length)
    config = WhisperConfig(
        num_mel_bins=num_mel_bins, d_model=16, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, vocab_size=100,
        max_source_positions=fe.nb_max_frames // 2, max_target_positions=16,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )
    model = WhisperForConditionalGeneration(config)
    if spread:
        spread_weights(model, spread)
    model.save_pretrained(path)
    fe.save_pretrained(path)
    return path, config, fe


def tiny_ast_encoder(path: Path, *, max_length: int = 1024, spread: float = 0.0):
    """A tiny random ASTModel with AST's real input length (1024 fbank frames = 10.24 s) by default
    and 16 mel bins; returns ``(path, config)``."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    torch.manual_seed(0)
    config = ASTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=20,
                       patch_size=8, frequency_stride=4, time_stride=10, max_length=max_length, num_mel_bins=16)
    model = ASTModel(config)
    if spread:
        spread_weights(model, spread)
    model.save_pretrained(path)
    ASTFeatureExtractor(num_mel_bins=16, max_length=max_length).save_pretrained(path)
    return path, config


def tiny_clip(full: Path, vision_only: Path, *, spread: float = 0.0):
    """A full CLIPModel (text + vision towers, projections) and a vision-only CLIPVisionModel, each
    with a 32-px CLIPImageProcessor; returns ``(full, vision_only, vision_config)``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=3, num_attention_heads=2,
        image_size=32, patch_size=8, projection_dim=24,
    )
    text = {
        "hidden_size": 16, "intermediate_size": 20, "num_hidden_layers": 1, "num_attention_heads": 2,
        "vocab_size": 64, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
    }
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    for model, out in ((CLIPModel(CLIPConfig(text_config=text, vision_config=vision.to_dict(), projection_dim=24)), full),
                       (CLIPVisionModel(vision), vision_only)):
        if spread:
            spread_weights(model, spread)
        model.save_pretrained(out)
        processor.save_pretrained(out)
    return full, vision_only, vision


def tiny_videomae(path: Path, *, spread: float = 0.0):
    """A tiny random VideoMAEModel (4-frame clips, 32 px) + its image processor; returns ``(path, config)``."""
    import torch
    from transformers import VideoMAEConfig, VideoMAEImageProcessorPil, VideoMAEModel

    torch.manual_seed(0)
    config = VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
    )
    model = VideoMAEModel(config)
    if spread:
        spread_weights(model, spread)
    model.save_pretrained(path)
    VideoMAEImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path, config


def tiny_mae(path: Path, *, spread: float = 0.0):
    """A tiny random ViTMAEForPreTraining (32 px, 8-px patches; the published default mask_ratio 0.75) +
    its image processor; returns ``(path, config)``."""
    import torch
    from transformers import ViTImageProcessorPil, ViTMAEConfig, ViTMAEForPreTraining

    torch.manual_seed(0)
    config = ViTMAEConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=20,
    )
    model = ViTMAEForPreTraining(config)
    if spread:
        spread_weights(model, spread)
    model.save_pretrained(path)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)
    return path, config


EVA_TINY = {"image_size": 56, "num_heads": 2}  # the eva_clip settings tiny_eva's checkpoint needs


def tiny_eva(path: Path) -> Path:
    """A source directory holding the EVA golden's tiny random tower as ``eva_vit_g.pth`` (the published key
    layout, made by MiniGPT-4's own eva_vit.py: tests/golden/eva_clip/); use with ``EVA_TINY`` settings."""
    import shutil

    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).parent / "golden" / "eva_clip" / "eva_vit_tiny.pth", path / "eva_vit_g.pth")
    return path


def emotion_llama_backbones(root: Path) -> dict[str, dict]:
    """``backbones`` params for Emotion-LLaMA's four encoders as tiny random checkpoints under ``root``:
    HuBERT (audio frames), EVA (global, per-frame CLS), MAE (local, per face crop), VideoMAE (temporal)."""
    return {
        "hubert": {"type": "hf_audio", "source": str(tiny_ssl("hubert_zh_large", root / "hubert")[0]), "device": "cpu"},
        "eva": {"type": "eva_clip", "source": str(tiny_eva(root / "eva")), **EVA_TINY, "device": "cpu"},
        "mae": {"type": "mae", "source": str(tiny_mae(root / "mae")[0]), "device": "cpu"},
        "videomae": {"type": "videomae", "source": str(tiny_videomae(root / "videomae")[0]), "device": "cpu"},
    }


# --- tiny text encoders with tokenizers trained here ---------------------------------------------


TEXT_CORPUS = [
    "I am so happy today!", "What a joyful, wonderful day.", "The invoice is attached.",
    "She was angry about the delay.", "We never talk about the weather.", "Please call me back tomorrow.",
    "我今天非常高兴", "今天天气不错", "他很生气", "请明天给我回电话",
]


def train_tokenizer(kind: str):
    """A tokenizers.Tokenizer of the model family's kind, trained on TEXT_CORPUS (nothing downloaded)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if kind == "wordpiece":  # BERT / MacBERT: BertNormalizer also splits CJK characters
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok.train_from_iterator(TEXT_CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
        cls, sep = "[CLS]", "[SEP]"
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))],
        )
    elif kind == "bytebpe":  # RoBERTa
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok.train_from_iterator(TEXT_CORPUS, trainers.BpeTrainer(
            vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    else:  # XLM-R: sentencepiece-style unigram
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        trainer = trainers.UnigramTrainer(vocab_size=200, special_tokens=specials, unk_token="<unk>")
        tok.train_from_iterator(TEXT_CORPUS, trainer)
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def tiny_text_model(kind: str, out, *, spread: float = 0.0):
    """Save a tiny random checkpoint + its locally trained tokenizer with save_pretrained."""
    import torch
    from transformers import (
        BertConfig,
        BertModel,
        BertTokenizerFast,
        RobertaConfig,
        RobertaModel,
        RobertaTokenizerFast,
        XLMRobertaConfig,
        XLMRobertaModel,
        XLMRobertaTokenizerFast,
    )

    torch.manual_seed(0)
    common = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=37)
    if kind in ("bert", "macbert"):
        tok = BertTokenizerFast(tokenizer_object=train_tokenizer("wordpiece"), unk_token="[UNK]", pad_token="[PAD]",
                                cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
        config, model_cls = BertConfig(vocab_size=len(tok), max_position_embeddings=64, **common), BertModel
    else:
        tok_cls = RobertaTokenizerFast if kind == "roberta" else XLMRobertaTokenizerFast
        tok = tok_cls(tokenizer_object=train_tokenizer("bytebpe" if kind == "roberta" else "unigram"),
                      bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                      pad_token="<pad>", mask_token="<mask>")
        pair = (RobertaConfig, RobertaModel) if kind == "roberta" else (XLMRobertaConfig, XLMRobertaModel)
        config_cls, model_cls = pair
        config = config_cls(vocab_size=len(tok), max_position_embeddings=66, pad_token_id=1, **common)
    model = model_cls(config)
    if spread:
        spread_weights(model, spread)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return config


# --- synthetic corpora ----------------------------------------------------------------------------


def read_wav(path, sample_rate=16000, start=None, end=None, streams=None) -> np.ndarray:
    """Stand-in for ffmpeg decoding of the 16 kHz mono wavs written here."""
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32767


def tone_corpus(root: Path, speakers: dict, *, n_per: int = 2, noisy_test: bool = False, name: str = "syn",
                     regression: bool = False):
    """Tones whose pitch is the class, a few per speaker; returns (corpus, segments).

    ``noisy_test`` replaces every test utterance by white noise (same ids and labels);
    ``regression`` makes the task ``octave`` (0, 1, 2: a regression target) instead of ``emotion``.
    """
    rng = np.random.default_rng(0)
    rows = []
    for spk, (split, fold) in speakers.items():
        for k, cls in enumerate(TONE_CLASSES):
            for i in range(n_per):
                n = int(16000 * rng.uniform(0.4, 0.7))
                audio = 0.3 * np.sin(2 * np.pi * 200 * 2**k * np.arange(n) / 16000) + 0.01 * rng.normal(size=n)
                if noisy_test and split == "test":
                    audio = 0.3 * np.random.default_rng(i + 10 * k).normal(size=n).clip(-1, 1)
                path = write_wav(root / "media" / f"{spk}_{cls}_{i}.wav", audio, 16000)
                rows.append({"id": f"{spk}_{cls}_{i}", "speaker": spk, "split": split, "audio": str(path), "video": "",
                             "text": "", "emotion": cls, "octave": float(k), "fold": fold})
    df = pd.DataFrame(rows)
    if df["fold"].isna().all():
        df = df.drop(columns="fold")
    task = Task("octave", "regression") if regression else Task("emotion", "classification", TONE_CLASSES)
    corpus = Corpus(name, df, [task], str(root))
    save(corpus, root / "prepared")
    write_items(corpus, root / "prepared")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("pipeline.segment.decode.decode_audio", read_wav)
        segment_corpus(corpus, root / "segments.zarr", fps=0, workers=1)
    return corpus, Segments(root / "segments.zarr")


def feature_corpus(tmp_path, seed=0, n_per=30, layers=None):
    rng = np.random.default_rng(seed)
    ids, labels, splits, speakers, feats = [], [], [], [], []
    for split, spk in (("train", "s1"), ("dev", "s2"), ("test", "s3")):
        for k, c in enumerate(FEATURE_CLASSES):
            for i in range(n_per):
                ids.append(f"{split}_{c}_{i}")
                labels.append(c)
                splits.append(split)
                speakers.append(spk)
                feats.append(rng.normal(0, 1, 6) + 2.5 * np.eye(6)[k])
    X = np.asarray(feats, np.float32)
    if layers:
        X = np.stack([X * (l / layers) + rng.normal(0, 1, X.shape) * (1 - l / layers) for l in range(layers + 1)], 1)
    df = pd.DataFrame({"id": ids, "speaker": speakers, "split": splits, "audio": "", "video": "", "text": "", "emotion": labels})
    corpus = Corpus("syn", df, [Task("emotion", "classification", FEATURE_CLASSES)], str(tmp_path))
    write_store(tmp_path / "f.zarr", ids=ids, pooled=X, attrs={"backbone": "toy"})
    return corpus, FeatureStore(tmp_path / "f.zarr")


def run_head(tmp_path, corpus, store, head, cfg):
    """Probe with head ``head`` (params ``cfg``), outputs under ``tmp_path`` (m/, metrics.json, p/)."""
    out = {"model_dir": tmp_path / "m", "metrics_path": tmp_path / "metrics.json", "predictions_dir": tmp_path / "p"}
    return run_probe(corpus, store, head, cfg, **out)
