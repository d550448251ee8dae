"""Golden parity of the ``clap`` backbone's LAION ``.pt`` path against ``laion_clap``'s own inference path.

``laion_clap`` cannot be installed here (numpy<2, torchvision, roberta-base download), so
``tests/golden/laion_clap/make_golden.py`` ran it once in a throw-away venv (README there) on the same
seeded random HTSAT-tiny weights (:mod:`tests.golden.laion_clap.weights`) and stored its outputs. Here the
same ``.pt`` is regenerated from the seed and loaded through our ``checkpoint:`` path; every item's pooled
embedding (512-d projection and 768-d encoder output) must match LAION's at cos >= 0.9999: three EmoDB
utterances (fusion and non-fusion) and, for the fusion model, two concatenations over 10 s (10.5 s and
15.6 s), which go through the model's is_longer path (global view + 3 crops; LAION seeded with
``np.random.seed(0)`` per item, ours ``crop_seed: 0``).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.media import decode_audio
from pipeline.features.backbones.base import build_backbone
from tests.conftest import EMODB, needs_emodb
from tests.golden.laion_clap import weights

GOLDEN = Path(__file__).parent / "golden" / "laion_clap"
META = json.loads((GOLDEN / "golden_meta.json").read_text())
COS = 0.9999

pytestmark = needs_emodb


def cos(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(GOLDEN / "golden.npz"))


@pytest.fixture(scope="module")
def audio():
    """name → 16 kHz input, as make_golden.py built it (EmoDB files concatenated at 16 kHz)."""
    return {name: np.concatenate([decode_audio(EMODB / f) for f in files]) for name, files in META["items"].items()}


def write_checkpoint(path: Path, fusion: bool) -> Path:
    import torch

    state = {f"module.{k}": torch.from_numpy(v) for k, v in weights.laion_state(fusion, META["seed"]).items()}
    torch.save({"epoch": 1, "state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    out = tmp_path_factory.mktemp("laion_clap")
    return {tag: write_checkpoint(out / f"{tag}.pt", tag == "fusion") for tag in ("fusion", "nonfusion")}


def backbone(checkpoints, tag, **extra):
    config = {"type": "clap", "checkpoint": str(checkpoints[tag]), "config": str(GOLDEN / tag), "output": "both",
              "device": "cpu", **extra}
    return build_backbone(f"laion_{tag}", config)


def assert_matches(bb, golden, audio, tag, names):
    index = {n: i for i, n in enumerate(golden["items"])}
    embs = bb.embed([audio[n] for n in names])
    got = {}
    for name, emb in zip(names, embs):
        proj, enc = emb.pooled[:512], emb.pooled[512:]
        got[name] = (cos(proj, golden[f"{tag}_projection"][index[name]]), cos(enc, golden[f"{tag}_encoder"][index[name]]))
    bad = {n: c for n, c in got.items() if min(c) < COS}
    assert not bad, f"{tag}: (projection, encoder) cos below {COS}: {bad}"
    return got


@pytest.mark.parametrize("tag", ["fusion", "nonfusion"])
def test_short_utterances_match_laion(checkpoints, golden, audio, tag):
    bb = backbone(checkpoints, tag)
    assert bb.describe()["conversion"]["missing"] == [] and bb.describe()["fusion"] is (tag == "fusion")
    assert_matches(bb, golden, audio, tag, ["03a01Fa", "03a02Wb", "09b03Ed"])


def test_fusion_inputs_over_10s_match_laion_is_longer_path(checkpoints, golden, audio):
    bb = backbone(checkpoints, "fusion")
    names = ["long_10s", "long_15s"]
    assert all(len(audio[n]) > 10 * 16000 for n in names)
    assert_matches(bb, golden, audio, "fusion", names)
    info = bb.describe()
    assert info["n_fused"] == 2 and info["n_windowed"] == 0 and info["window_seconds"] is None
    # per item: the same crops alone, in a batch with short inputs, and in another order
    mixed = bb.embed([audio["03a01Fa"], audio["long_15s"], audio["long_10s"]])
    alone = bb.embed([audio["long_15s"]])[0]
    np.testing.assert_allclose(mixed[1].pooled, alone.pooled, atol=1e-5)
    # the crops are what crop_seed draws: another seed gives other crops (and no longer LAION's seed-0 output)
    other = backbone(checkpoints, "fusion", crop_seed=1).embed([audio["long_15s"]])[0]
    assert cos(other.pooled[:512], alone.pooled[:512]) < 0.99999


def test_text_tower_from_inline_config_matches_laion(checkpoints, golden):
    """An inline ``config`` dict without layer_norm_eps: the text LayerNorms must use RoBERTa's 1e-5."""
    import torch

    config = json.loads((GOLDEN / "fusion" / "config.json").read_text())
    del config["text_config"]["layer_norm_eps"]
    for key in ("model_type", "architectures"):
        config.pop(key)
    config["text_config"].pop("model_type")
    config["audio_config"].pop("model_type")
    bb = build_backbone("laion_inline", {"type": "clap", "checkpoint": str(checkpoints["fusion"]), "config": config,
                                         "processor": str(GOLDEN / "fusion"), "device": "cpu"})
    assert bb.model.text_model.embeddings.LayerNorm.eps == 1e-5
    ids = torch.from_numpy(golden["text_ids"])
    with torch.inference_mode():
        text = bb.model.get_text_features(input_ids=ids, attention_mask=torch.from_numpy(golden["text_mask"]))
    text = text.pooler_output.numpy()
    got = [cos(t, g) for t, g in zip(text, golden["fusion_text"])]
    assert min(got) >= COS, got
