"""Golden parity: the emotion2vec backbone's store output against funasr's own documented inference.

Reference side (the library called directly, not our wrapper): ``funasr.AutoModel(model=<dir>)
.generate(<wav path>, granularity="utterance" | "frame", extract_embedding=True)`` as the
emotion2vec model cards document it, funasr decoding the file itself and loading model.pt with its
own loader; and ModelScope's ``pipeline(Tasks.emotion_recognition, model=<dir>)``, where ModelScope's
pipeline stack can be imported. Our side: ``build_backbone(...).embed([decode_audio(path)])``, the
store's path. The model directory has the released emotion2vec+ layout (configuration.json,
config.yaml with a pre-training decoder that model.pt lacks, tokens.txt) with tiny random weights.

funasr has no long-input path of its own for emotion2vec (no windowing; its VAD path is for ASR),
so inputs longer than ``window_seconds`` are not compared here.
"""

import json

import numpy as np
import pytest

from pipeline.core.media import decode_audio
from pipeline.features.backbones.base import build_backbone
from pipeline.features.backbones.emotion2vec import E2V_LABELS, label_name
from tests.conftest import EMODB, needs_emodb
from tests.test_backbones_audio_speech import EMOTION2VEC_TOKENS, add_pretraining_decoder, write_emotion2vec_dir

pytestmark = needs_emodb

FILES = ["03a01Fa.wav", "03a02Ta.wav", "09a01Wb.wav", "09a02Eb.wav"]  # 2 speakers, 4 emotions, 1.5-1.9 s
CONFIGURATION = {  # ModelScope's configuration.json of the emotion2vec+ repositories
    "framework": "pytorch", "task": "emotion-recognition", "model": {"type": "funasr"},
    "pipeline": {"type": "funasr-pipeline"}, "model_name_in_hub": {"ms": "", "hf": ""},
    "file_path_metas": {"init_param": "model.pt", "config": "config.yaml", "tokenizer_conf": {"token_list": "tokens.txt"}},
}


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity along the last axis."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def randomise_every_tensor(model_dir, seed: int = 0) -> None:
    """Freshly initialised LayerNorms are all (1, 0) and many biases 0, so swapping two of them
    would change nothing: give every tensor its own random values, and the attention projections
    enough scale to attend sharply, so that any tensor loaded into the wrong place shows."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    state = torch.load(model_dir / "model.pt", weights_only=True)
    for key, t in state.items():
        noise = torch.randn(t.shape, generator=gen, dtype=t.dtype)
        if key.endswith(("norm1.weight", "norm2.weight", "norm.weight")) or ".2.1.weight" in key:
            state[key] = 1 + 0.5 * noise  # LayerNorm gains (conv-layer LayerNorms included)
        elif key.endswith("attn.qkv.weight"):
            state[key] = 3 * t.std() * noise
        else:
            state[key] = t + 0.5 * (t.std() if t.numel() > 1 and t.std() > 0 else 0.2) * noise
    torch.save(state, model_dir / "model.pt")


@pytest.fixture(scope="module")
def plus_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2v_plus_release_layout")
    write_emotion2vec_dir(out, classifier=True)
    randomise_every_tensor(out)
    add_pretraining_decoder(out)
    (out / "configuration.json").write_text(json.dumps(CONFIGURATION), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def reference(plus_dir):
    """funasr's documented inference, on the wav files themselves."""
    import torch
    from funasr import AutoModel

    model = AutoModel(model=str(plus_dir), device="cpu", disable_update=True, disable_pbar=True,
                      log_level="ERROR", ncpu=torch.get_num_threads())
    out = {}
    for name in FILES:
        (utt,) = model.generate(str(EMODB / name), granularity="utterance", extract_embedding=True)
        (frame,) = model.generate(str(EMODB / name), granularity="frame", extract_embedding=True)
        out[name] = {"utterance": utt, "frame": frame}
    return out


@pytest.fixture(scope="module")
def ours(plus_dir):
    audios = [decode_audio(EMODB / name) for name in FILES]  # 16 kHz mono float32, as the store decodes
    hidden = build_backbone("e2v", {"type": "emotion2vec", "source": str(plus_dir), "device": "cpu"})
    scores = build_backbone("e2v_scores", {"type": "emotion2vec", "source": str(plus_dir), "device": "cpu",
                                           "scores": True})
    return {
        "hidden": dict(zip(FILES, hidden.embed(audios))),
        "scores": dict(zip(FILES, scores.embed(audios))),
        "labels": scores.describe()["labels"],
        "load_report": hidden.describe()["load_report"],
    }


def test_the_release_layout_loads_with_only_the_decoder_ignored(ours):
    report = ours["load_report"]
    assert not (report["missing"] or report["unexpected"] or report["shape_mismatch"])
    assert list(report["ignored"].values()) == [6] and report["loaded"] == 71


@pytest.mark.parametrize("name", FILES)
def test_frames_and_pooled_equal_funasr(reference, ours, name):
    emb, ref = ours["hidden"][name], reference[name]
    ref_frames, ref_utt = np.asarray(ref["frame"]["feats"]), np.asarray(ref["utterance"]["feats"])
    assert emb.frames.shape == ref_frames.shape  # equal frame counts (T, D)
    per_frame = cos(emb.frames, ref_frames)
    assert per_frame.min() >= 0.9999, f"{name}: worst frame cos {per_frame.min():.6f}"
    # mean pooling of the last hidden state = funasr's utterance embedding
    assert cos(emb.pooled[-1], ref_utt) >= 0.9999, f"{name}: pooled cos {cos(emb.pooled[-1], ref_utt):.6f}"


@pytest.mark.parametrize("name", FILES)
def test_scores_and_label_order_equal_funasr(reference, ours, name):
    ref = reference[name]["utterance"]
    assert ref["labels"] == EMOTION2VEC_TOKENS  # funasr's order is tokens.txt's
    assert ours["labels"] == [label_name(t) for t in ref["labels"]] == E2V_LABELS
    got, want = ours["scores"][name].pooled, np.asarray(ref["scores"], np.float32)
    assert got.shape == want.shape == (9,) and int(got.argmax()) == int(want.argmax())
    assert cos(got, want) >= 0.9999 and np.abs(got - want).max() < 1e-5, (got, want)


def test_modelscope_pipeline_equals_ours(plus_dir, ours):
    """ModelScope's documented emotion_recognition pipeline on the local directory (offline)."""
    try:
        from modelscope.pipelines import pipeline
        from modelscope.utils.constant import Tasks
    except ImportError as err:  # modelscope's pipeline stack needs addict, datasets, simplejson, ...
        pytest.skip(f"modelscope pipelines cannot be imported here: {err}")
    pipe = pipeline(task=Tasks.emotion_recognition, model=str(plus_dir))
    for name in FILES[:2]:
        (res,) = pipe(str(EMODB / name), granularity="utterance", extract_embedding=True)
        assert cos(ours["hidden"][name].pooled[-1], res["feats"]) >= 0.9999
        assert [label_name(t) for t in res["labels"]] == ours["labels"]
        assert np.abs(ours["scores"][name].pooled - np.asarray(res["scores"])).max() < 1e-5
