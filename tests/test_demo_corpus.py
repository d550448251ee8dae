"""The synthetic demo corpus: deterministic, in its documented layout, speaker-independent."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from pipeline.corpora.base import get_recipe
from pipeline.corpora.synth.demo import generate_demo_corpus, plan_utterances
from pipeline.core.errors import ManifestError
from pipeline.core.media import decode_audio, decode_frames
from pipeline.corpora.synth.espeak import EspeakSynthesizer
from pipeline.corpora.synth.face import render_face


def test_plan_is_seeded_and_prosody_follows_the_class():
    plan = plan_utterances(0, 8, 5, ("neutral", "happy", "sad", "angry"))
    assert len(plan) == 160 and plan == plan_utterances(0, 8, 5, ("neutral", "happy", "sad", "angry"))
    assert plan != plan_utterances(1, 8, 5, ("neutral", "happy", "sad", "angry"))
    df = pd.DataFrame(plan).groupby("emotion")[["pitch", "rate", "volume"]].mean()
    assert (df.loc["happy"] > df.loc["sad"]).all()
    with pytest.raises(ValueError, match="unsupported emotions"):
        plan_utterances(0, 2, 1, ("bored",))


def test_espeak_is_deterministic_and_names_unknown_voices():
    tts = EspeakSynthesizer()
    a = tts.synthesize("Hello there.", voice="en-us+f2")
    tts.synthesize("Something else entirely.", voice="en+m3")
    b = tts.synthesize("Hello there.", voice="en-us+f2")
    assert tts.sample_rate == 22050 and a.dtype == np.float32 and len(a) > 0.3 * 22050
    np.testing.assert_array_equal(a, b)
    with pytest.raises(RuntimeError, match="en-gb"):
        tts.synthesize("Hello.", voice="en-gb")


def test_faces_differ_by_expression_only_where_they_should():
    frames = {e: render_face(e, None, 0.0, 96, np.random.default_rng(0)) for e in ("neutral", "happy", "sad", "angry")}
    assert all(f.shape == (96, 96, 3) and f.dtype == np.uint8 for f in frames.values())
    assert len({hashlib.sha1(f.tobytes()).hexdigest() for f in frames.values()}) == 4
    np.testing.assert_array_equal(frames["happy"], render_face("happy", None, 0.0, 96, np.random.default_rng(0)))


def test_generated_tree_is_byte_identical_and_decodable(tmp_path):
    a = generate_demo_corpus(tmp_path / "a", seed=3, n_speakers=1, utterances_per_class=1, workers=1, progress=False)
    b = generate_demo_corpus(tmp_path / "b", seed=3, n_speakers=1, utterances_per_class=1, workers=1, progress=False)
    meta = pd.read_csv(a / "metadata.csv")
    assert list(meta.columns) == ["utt_id", "speaker", "gender", "emotion", "text", "file"] and len(meta) == 4
    for f in [*meta["file"], "metadata.csv"]:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    clip = a / meta["file"][0]
    audio = decode_audio(clip)
    frames = decode_frames(clip, fps=10, size=96)
    assert np.abs(audio).max() > 0.05 and abs(len(frames) - 10 * len(audio) / 16000) <= 1.5
    assert not list(tmp_path.glob("*.tmp"))


def test_demo_recipe_split_is_speaker_independent(tiny_demo, in_tmp_cwd):
    corpus = get_recipe("demo")({"root": str(tiny_demo), "seed": 1, "dev_speakers": 1, "test_speakers": 1}, in_tmp_cwd)
    df = corpus.manifest
    assert len(df) == 32 and df.groupby("speaker")["split"].nunique().max() == 1
    assert sorted(df.groupby("split")["speaker"].nunique().items()) == [("dev", 1), ("test", 1), ("train", 2)]
    assert set(df["emotion"]) == {"neutral", "happy", "sad", "angry"} and (df["text"] != "").all()
    with pytest.raises(ManifestError, match="cannot fill train/dev/test"):
        get_recipe("demo")({"root": str(tiny_demo), "dev_speakers": 2, "test_speakers": 2}, in_tmp_cwd)
