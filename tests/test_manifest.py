import pandas as pd
import pytest

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import Corpus, Task, load, save, validate


def make(tmp_path, **over):
    (tmp_path / "root").mkdir(exist_ok=True)
    rows = {
        "id": ["a", "b", "c", "d"],
        "speaker": ["s1", "s1", "s2", "s3"],
        "split": ["train", "train", "dev", "test"],
        "audio": [str(tmp_path / "root" / f"{i}.wav") for i in "abcd"],
        "video": ["", "", "", ""],
        "text": ["", "", "", ""],
        "emotion": ["happy", "sad", "happy", "sad"],
    }
    rows.update(over)
    return Corpus("t", pd.DataFrame(rows), [Task("emotion", "classification", ["happy", "sad"])], str(tmp_path / "root"))


def test_valid_corpus_round_trips(tmp_path):
    corpus = make(tmp_path)
    validate(corpus, "meta.csv")
    save(corpus, tmp_path / "out")
    back = load(tmp_path / "out")
    assert back.manifest["id"].tolist() == ["a", "b", "c", "d"] and back.task("emotion").classes == ["happy", "sad"]


@pytest.mark.parametrize(
    "override,message",
    [
        ({"id": ["a", "a", "c", "d"]}, "meta.csv: duplicate utterance ids \\['a'\\]"),
        ({"emotion": ["happy", "bored", "happy", "sad"]}, "meta.csv: unknown emotion label.*bored.*first at b"),
        ({"split": ["train", "train", "dev", "holdout"]}, "unknown split values"),
        ({"speaker": ["s1", "s2", "s2", "s2"]}, "speakers appear on both sides of the split partition"),
    ],
)
def test_bad_manifests_name_the_file_and_problem(tmp_path, override, message):
    with pytest.raises(ManifestError, match=message):
        validate(make(tmp_path, **override), "meta.csv")


def test_path_escaping_the_root_is_rejected(tmp_path):
    corpus = make(tmp_path)
    corpus.manifest.loc[1, "audio"] = str(tmp_path / "root" / ".." / "elsewhere.wav")
    with pytest.raises(ManifestError, match="audio path of b .* escapes the corpus root"):
        validate(corpus, "meta.csv")


def test_shared_speakers_allowed_only_when_protocol_says_so(tmp_path):
    validate(make(tmp_path, speaker=["s1", "s2", "s2", "s2"]), "meta.csv", speakers_shared=True)


def test_fold_protocol_keeps_each_speaker_in_one_fold(tmp_path):
    ok = make(tmp_path, split=["train"] * 4, fold=[0, 0, 1, 2])
    validate(ok, "meta.csv")
    with pytest.raises(ManifestError, match="speakers appear on both sides of the split/fold partition"):
        validate(make(tmp_path, split=["train"] * 4, fold=[0, 1, 1, 2]), "meta.csv")


def test_group_column_guards_conversations_even_when_speakers_are_shared(tmp_path):
    corpus = make(tmp_path, speaker=["s1", "s1", "s1", "s1"], group=["d1", "d1", "d2", "d2"], split=["train", "train", "dev", "test"])
    with pytest.raises(ManifestError, match="groups appear on both sides"):
        validate(corpus, "meta.csv", speakers_shared=True)
