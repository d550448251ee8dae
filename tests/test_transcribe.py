"""Transcription: a tiny random Whisper through the real transformers loading path, funasr's
fail-fast, and fill_missing_transcripts on a small corpus segmented from real wav files."""

import time

import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import ConfigError
from pipeline.core.manifest import Corpus, Task
from pipeline.core.segments import Segments
from pipeline.segment.decode import segment_corpus
from pipeline.transcribe.asr import TranscribeError, fill_missing_transcripts, transcribe
from tests.conftest import tone, write_wav

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|de|>", "<|translate|>", "<|transcribe|>",
            "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """Tiny random Whisper + a byte-level BPE tokenizer trained here, saved with save_pretrained."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
        WhisperProcessor, WhisperTokenizerFast,
    )

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        ["hello world this is a test", "the quick brown fox jumps over the lazy dog"],
        trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    # Whisper's layout: text tokens, then the specials, <|notimestamps|> last (ids above it are timestamps)
    bpe.add_special_tokens(SPECIALS)
    eot = "<|endoftext|>"
    tok = WhisperTokenizerFast(tokenizer_object=bpe, unk_token=eot, bos_token=eot, eos_token=eot, pad_token=eot)
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIALS}
    config = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_source_positions=1500, max_target_positions=64, pad_token_id=ids[eot], bos_token_id=ids[eot],
        eos_token_id=ids[eot], decoder_start_token_id=ids["<|startoftranscript|>"],
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids[eot], pad_token_id=ids[eot],
        bos_token_id=ids[eot], no_timestamps_token_id=ids["<|notimestamps|>"], is_multilingual=True,
        lang_to_id={"<|en|>": ids["<|en|>"], "<|de|>": ids["<|de|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        # a random model would often stop at once; suppressing the specials makes it emit text tokens
        suppress_tokens=sorted(ids.values()), max_length=64,
    )
    out = tmp_path_factory.mktemp("whisper")
    model.save_pretrained(out)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tok).save_pretrained(out)
    return out


def test_whisper_returns_strings_and_windows_long_audio(tiny_whisper):
    cfg = {"backend": "whisper", "source": str(tiny_whisper), "language": "en", "max_new_tokens": 4}
    rng = np.random.default_rng(0)
    short = tone(1.0, 16000).astype(np.float32)
    long = rng.normal(0, 0.1, 16000 * 65).astype(np.float32)  # 65 s → windows of 30 + 30 + 5 s
    texts = transcribe([short, long], cfg)
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
    # nothing truncated: the long input's text is its three windows' texts joined, in order
    parts = transcribe([long[: 30 * 16000], long[30 * 16000 : 60 * 16000], long[60 * 16000 :]], cfg)
    assert texts[1] == " ".join(parts)


def test_whisper_offline_errors():
    with pytest.raises(ConfigError, match="transcripts.backend = 'kaldi': Input should be 'none', 'whisper' or 'funasr'"):
        transcribe([np.zeros(16000, np.float32)], {"backend": "kaldi"})
    with pytest.raises(TranscribeError, match="backend must be one of"):
        transcribe([np.zeros(16000, np.float32)], {"backend": "none"})
    with pytest.raises(Exception, match="not available offline"):
        transcribe([np.zeros(16000, np.float32)], {"backend": "whisper", "source": "openai/not-cached-whisper"})


def test_funasr_hub_name_fails_fast(monkeypatch, tmp_path):
    import pipeline.transcribe.asr as tr

    def no_funasr(*_a, **_k):
        raise AssertionError("funasr must not be called for a hub name")

    monkeypatch.setattr(tr, "load_funasr", no_funasr)
    start = time.perf_counter()
    with pytest.raises(TranscribeError, match="'paraformer-zh' is not a local directory"):
        transcribe([np.zeros(16000, np.float32)], {"backend": "funasr", "source": "paraformer-zh"})
    with pytest.raises(TranscribeError, match="modelscope download --model iic/SenseVoiceSmall"):
        transcribe([np.zeros(16000, np.float32)], {"backend": "funasr", "source": "iic/SenseVoiceSmall"})
    with pytest.raises(TranscribeError, match="missing \\['config.yaml', 'model.pt'\\]"):
        transcribe([np.zeros(16000, np.float32)], {"backend": "funasr", "source": str(tmp_path)})
    assert time.perf_counter() - start < 2.0


@pytest.fixture
def corpus_and_segments(tmp_path):
    root = tmp_path / "corpus"
    rows = []
    for i, text in enumerate(["already here", "", None, "  ", ""]):
        wav = write_wav(root / f"u{i}.wav", tone(0.5, 16000, freq=200 + 50 * i), 16000)
        rows.append({"id": f"u{i}", "speaker": f"s{i % 2}", "split": "train", "audio": str(wav), "video": "",
                     "text": text, "emotion": "neutral"})
    rows[4]["audio"] = str(root / "missing.wav")  # bad media: skipped by segmenting, so no audio to transcribe
    corpus = Corpus("tiny", pd.DataFrame(rows), [Task("emotion", classes=["neutral"])], str(root))
    skipped = segment_corpus(corpus, tmp_path / "seg.zarr", on_bad_media="skip", workers=1).skipped
    assert [s["id"] for s in skipped] == ["u4"]
    return corpus, Segments(tmp_path / "seg.zarr")


def test_fill_missing_transcripts_fills_only_empty_cells(tiny_whisper, corpus_and_segments):
    corpus, segments = corpus_and_segments
    cfg = {"backend": "whisper", "source": str(tiny_whisper), "language": "en", "max_new_tokens": 3, "batch_size": 2}
    filled, report = fill_missing_transcripts(corpus, segments, cfg)
    text = dict(zip(filled.manifest["id"], filled.manifest["text"]))
    assert text["u0"] == "already here"  # existing transcripts are never touched
    assert all(isinstance(text[u], str) and text[u].strip() for u in ("u1", "u2", "u3"))
    assert text["u4"] == ""  # no segmented audio: stays empty, and is reported
    assert report["n_missing"] == 4 and report["n_filled"] == 3 and report["n_no_audio"] == 1
    assert report["no_audio_ids"] == ["u4"] and report["revision"].startswith("sha256:")
    assert filled.info["transcripts"] == report and corpus.manifest["text"].iloc[1] == ""  # input not mutated


def test_fill_missing_transcripts_noop_when_complete(corpus_and_segments):
    corpus, segments = corpus_and_segments
    full = Corpus(corpus.name, corpus.manifest.assign(text="hello"), corpus.tasks, corpus.root)
    # no model is loaded at all: a bogus source would fail if it were
    filled, report = fill_missing_transcripts(full, segments, {"backend": "whisper", "source": "/no/such/dir"})
    assert report["n_missing"] == 0 and report["n_filled"] == 0
    assert (filled.manifest["text"] == "hello").all()


def write_paraformer_dir(out, tokens: list[str]) -> None:
    """A funasr Paraformer directory (config.yaml + model.pt + tokens.txt) with tiny random weights."""
    import torch
    import yaml
    from funasr.models.paraformer.model import Paraformer

    dim = 16
    cfg = {
        "model": "Paraformer",
        "model_conf": {"ctc_weight": 0.0, "lsm_weight": 0.1, "length_normalized_loss": True,
                       "predictor_weight": 1.0, "predictor_bias": 1, "sampling_ratio": 0.75},
        "encoder": "SANMEncoder",
        "encoder_conf": {"output_size": dim, "attention_heads": 2, "linear_units": 32, "num_blocks": 2,
                         "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1,
                         "input_layer": "pe", "pos_enc_class": "SinusoidalPositionEncoder", "normalize_before": True,
                         "kernel_size": 11, "sanm_shfit": 0, "selfattention_layer_type": "sanm"},
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 2, "dropout_rate": 0.1,
                         "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.1,
                         "src_attention_dropout_rate": 0.1, "att_layer_num": 2, "kernel_size": 11, "sanm_shfit": 0},
        "predictor": "CifPredictorV2",
        "predictor_conf": {"idim": dim, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
        "frontend": "WavFrontend",
        "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                          "lfr_m": 7, "lfr_n": 6},
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
    }
    (out / "tokens.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    torch.manual_seed(0)
    parts = {k: cfg[k] for k in ("encoder", "encoder_conf", "decoder", "decoder_conf", "predictor", "predictor_conf")}
    model = Paraformer(**cfg["model_conf"], **parts, input_size=80 * 7, vocab_size=len(tokens))  # LFR 7 × 80 mels
    torch.save(model.state_dict(), out / "model.pt")


def test_funasr_paraformer_from_a_local_dir(tmp_path):
    pytest.importorskip("kaldi_native_fbank", reason="funasr needs kaldi-native-fbank for fbank features")
    tokens = ["<blank>", "<s>", "</s>", *"你好世界今天很高兴", "<unk>"]
    write_paraformer_dir(tmp_path, tokens)
    rng = np.random.default_rng(0)
    audios = [rng.normal(0, 0.3, 32000).astype(np.float32), np.zeros(1600, np.float32)]
    texts = transcribe(audios, {"backend": "funasr", "source": str(tmp_path), "device": "cpu", "window_seconds": 1.0})
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert set("".join(texts).replace(" ", "")) <= set("".join(tokens[3:-1]))  # decoded from tokens.txt
