"""The funasr ASR backend loads its checkpoint checked, like emotion2vec (pipeline.core.funasr)."""

import shutil

import numpy as np
import pytest

from pipeline.transcribe.asr import TranscribeError, build_transcriber
from tests.test_transcribe import write_paraformer_dir

TOKENS = ["<blank>", "<s>", "</s>", *"你好世界今天很高兴", "<unk>"]


def test_funasr_asr_checkpoint_must_fit(tmp_path):
    import torch

    pytest.importorskip("kaldi_native_fbank", reason="funasr needs kaldi-native-fbank for fbank features")
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    write_paraformer_dir(good, TOKENS)
    shutil.copytree(good, bad)
    state = torch.load(good / "model.pt", weights_only=True)
    key = "decoder.output_layer.weight"
    assert key in state
    state["decoder.extra.weight"] = state.pop(key)  # one tensor renamed: missing + unexpected
    torch.save(state, bad / "model.pt")
    cfg = {"backend": "funasr", "source": str(bad), "device": "cpu"}
    with pytest.raises(TranscribeError, match=f"transcripts: .*{bad}.*missing \\['{key}'\\], "
                                              "unexpected \\['decoder.extra.weight'\\].*strict: false"):
        build_transcriber(cfg)
    with pytest.warns(UserWarning, match=key):
        loose = build_transcriber({**cfg, "strict": False})
    report = loose.describe()["load_report"]
    assert report["missing"] == [key] and report["unexpected"] == ["decoder.extra.weight"]
    fine = build_transcriber({**cfg, "source": str(good)}).describe()["load_report"]
    assert fine["loaded"] == len(state) and not (fine["missing"] or fine["unexpected"] or fine["shape_mismatch"])
    assert isinstance(loose([np.zeros(8000, np.float32)])[0], str)
