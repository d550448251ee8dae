"""Golden parity of the backbones whose models ship inside wheels, against each library's own
documented file-based inference path, on real EmoDB audio from the shared sample.

The store decodes media with ffmpeg to 16 kHz float32 (pipeline.core.media.decode_audio) and hands
the array to the backbone; the references read the .wav themselves (openSMILE ``process_file``,
resemblyzer ``preprocess_wav(path)`` → ``VoiceEncoder.embed_utterance``). Equal outputs therefore
also check that decoding and the backbone's own preprocessing add nothing.
"""

import numpy as np
import pytest

from pipeline.core.media import decode_audio
from pipeline.features.backbones.base import build_backbone
from tests.conftest import EMODB, needs_emodb

pytestmark = needs_emodb

WAVS = ["03a01Fa.wav", "03a02Nc.wav", "03a04Fd.wav"]


def _cos(a, b) -> np.ndarray:
    """Row-wise cosine of two [N, D] arrays."""
    a, b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture(scope="module")
def audio():
    return {w: decode_audio(EMODB / w) for w in WAVS}


@pytest.mark.parametrize("feature_set", ["eGeMAPSv02", "ComParE_2016"])
def test_opensmile_equals_smile_process_file(audio, feature_set):
    import opensmile

    bb = build_backbone("smile", {"type": "opensmile", "feature_set": feature_set, "lld": True})
    ours = bb.embed([audio[w] for w in WAVS])
    level = opensmile.FeatureLevel
    functionals = opensmile.Smile(feature_set=feature_set, feature_level=level.Functionals)
    llds = opensmile.Smile(feature_set=feature_set, feature_level=level.LowLevelDescriptors)
    for wav, emb in zip(WAVS, ours):
        ref = functionals.process_file(str(EMODB / wav)).to_numpy(np.float32)[0]
        ref_lld = llds.process_file(str(EMODB / wav)).to_numpy(np.float32)
        assert list(bb.describe()["feature_names"]) == list(functionals.feature_names)
        np.testing.assert_allclose(emb.pooled, ref, rtol=1e-5, atol=1e-5, err_msg=wav)
        assert emb.frames.shape == ref_lld.shape, wav
        np.testing.assert_allclose(emb.frames, ref_lld, rtol=1e-5, atol=1e-5, err_msg=wav)


def test_resemblyzer_equals_embed_utterance_of_preprocess_wav(audio):
    from resemblyzer import VoiceEncoder, preprocess_wav

    bb = build_backbone("spk", {"type": "resemblyzer", "partials": True})
    ours = bb.embed([audio[w] for w in WAVS])
    encoder = VoiceEncoder("cpu", verbose=False)
    for wav, emb in zip(WAVS, ours):
        ref, partials, _ = encoder.embed_utterance(preprocess_wav(EMODB / wav), return_partials=True)
        assert _cos(emb.pooled, ref)[0] >= 0.9999, wav
        assert emb.frames.shape == partials.shape, wav
        assert _cos(emb.frames, partials).min() >= 0.9999, wav
