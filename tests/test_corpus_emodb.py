"""EmoDB recipe: SSTTTEV codes, sentences, leave-one-speaker-out folds, bad input, the real sample."""

import shutil
from collections import Counter
from pathlib import Path

import pytest

from pipeline.corpora.base import get_recipe
from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.manifest import validate
from pipeline.core.errors import MediaError
from pipeline.segment.decode import segment_corpus
from tests.conftest import EMODB, needs_emodb
from tests.data.emodb.data import generate
from tests.data.media import write_wav

EMOTIONS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
LETTER = dict(zip("WLEAFTN", EMOTIONS))


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("emodb") / "tree")


@pytest.fixture
def tree(template, in_tmp_cwd):
    """A fresh copy per test, relative to the working directory (short paths in messages)."""
    return Path(shutil.copytree(template, "emodb", symlinks=True))


def prepare(root, **cfg):
    return get_recipe("emodb")({"root": str(root), **cfg}, Path("out"))


def test_rows_carry_speaker_text_emotion_and_version(tree):
    corpus = prepare(tree)
    df = corpus.manifest.set_index("id")
    assert len(df) == 40 and sorted(df["speaker"].unique()) == ["03", "08", "09", "10"]
    assert corpus.task("emotion").classes == EMOTIONS
    assert df["emotion"].value_counts().to_dict() == {
        "anger": 8, "fear": 8, "neutral": 8, "boredom": 4, "disgust": 4, "happiness": 4, "sadness": 4
    }  # fmt: skip
    row = df.loc["03a01Wa"]
    assert (row.speaker, row.emotion, row.gender) == ("03", "anger", "male")
    assert row.text == "Der Lappen liegt auf dem Eisschrank." and row.audio == "emodb/wav/03a01Wa.wav"
    assert df.loc["03a01Wb", "emotion"] == "anger"  # second version of the same recording
    assert df.loc["08b03Wa", "gender"] == "female"
    assert df.loc["08b03Wa", "text"].startswith("An den Wochenenden bin ich jetzt immer nach Hause gefahren")
    assert (df["text"] != "").all() and (df["video"] == "").all()


def test_loso_is_the_default_and_kfold_deals_speakers(tree):
    loso = prepare(tree)
    assert loso.info["protocol"] == "loso" and loso.info["folds"] == 4
    df = loso.manifest
    assert (df["split"] == "train").all() and df.groupby("fold")["speaker"].nunique().max() == 1
    assert df.groupby("speaker")["fold"].first().to_dict() == {"03": 0, "08": 1, "09": 2, "10": 3}
    for k in range(4):
        assert set(df.loc[df["fold"] != k, "emotion"]) == set(EMOTIONS)
    kfold = prepare(tree, protocol="kfold", folds=2).manifest
    assert kfold.groupby("speaker")["fold"].first().to_dict() == {"03": 0, "08": 1, "09": 0, "10": 1}
    assert kfold["fold"].value_counts().sort_index().tolist() == [20, 20]


def test_flat_folder_of_wavs_is_accepted(in_tmp_cwd):
    df = prepare(generate(Path("flat"), flat=True)).manifest
    assert len(df) == 40 and df["audio"].iloc[0] == "flat/03a01Wa.wav"


def test_unknown_protocol_names_the_param(tree):
    message = r"corpora\.emodb\.protocol = 'official': Input should be 'loso', 'kfold' or 'emobox'"
    with pytest.raises(ConfigError, match=message):
        prepare(tree, protocol="official")


@pytest.mark.parametrize(
    "stem,message",
    [
        ("3a01Wa", "does not follow the naming scheme SSTTTEV"),
        ("03a01Wab", "does not follow the naming scheme SSTTTEV"),
        ("03a03Wa", "unknown text code 'a03'"),
        ("03a01Xa", "unknown emotion code 'X'"),
        ("04a01Wa", "unknown speaker code '04'"),
    ],
)
def test_unparseable_file_name_is_an_error_naming_the_file(tree, stem, message):
    write_wav(tree / "wav" / f"{stem}.wav", seconds=0.1)
    with pytest.raises(ManifestError, match=rf"^emodb/wav/{stem}\.wav: .*{message}"):
        prepare(tree)


def test_duplicate_clip_is_an_error(tree):
    (tree / "wav" / "again").mkdir()
    shutil.copy(tree / "wav" / "03a01Wa.wav", tree / "wav" / "again")
    message = r"^emodb/wav/again/03a01Wa\.wav: duplicate id '03a01Wa' \(also emodb/wav/03a01Wa\.wav\)"
    with pytest.raises(ManifestError, match=message):
        prepare(tree)


def test_media_symlinked_from_outside_the_root_are_read_through_the_link(tree):
    # researchers symlink datasets: the link is a path under the root (only `..` or an absolute path
    # elsewhere escape it, tests/test_protocols_symlinks.py), and the manifest keeps the link's path
    outside = write_wav(Path("elsewhere.wav"), seconds=0.1)
    (tree / "wav" / "16b10Na.wav").symlink_to(outside.resolve())
    df = prepare(tree).manifest
    assert df.loc[df["id"] == "16b10Na", "audio"].item().endswith("emodb/wav/16b10Na.wav")


def test_leakage_guard_rejects_a_speaker_in_two_folds(tree):
    corpus = prepare(tree)
    corpus.manifest.loc[corpus.manifest["id"] == "03a01Wa", "fold"] = 1
    with pytest.raises(ManifestError, match="speakers appear on both sides of the split/fold partition"):
        validate(corpus, "emodb")


def test_missing_and_empty_media_are_reported_by_name(tree):
    corpus = prepare(tree)
    corpus.manifest = corpus.manifest.iloc[:3].reset_index(drop=True)
    gone, empty = corpus.manifest["audio"][0], corpus.manifest["audio"][2]
    Path(gone).unlink()
    Path(empty).write_bytes(b"")
    with pytest.raises(MediaError, match=rf"^({gone}: file not found|{empty}: file is empty)"):
        segment_corpus(corpus, Path("seg.zarr"), on_bad_media="error", workers=1)
    skipped = segment_corpus(corpus, Path("seg.zarr"), on_bad_media="skip").skipped
    assert sorted(s["file"] for s in skipped) == sorted([gone, empty])


@needs_emodb
def test_real_emodb_sample(in_tmp_cwd):
    corpus = prepare(EMODB)
    df = corpus.manifest
    files = sorted(EMODB.glob("*.wav"))
    assert len(df) == len(files) == 92
    assert sorted(df["speaker"].unique()) == ["03", "09"] and corpus.info["folds"] == 2
    assert df.groupby("speaker")["fold"].first().to_dict() == {"03": 0, "09": 1}
    assert Counter(df["emotion"]) == Counter(LETTER[f.name[5]] for f in files)
    assert set(df["id"]) == {f.stem for f in files} and (df["text"] != "").all()
    assert set(df.loc[df["speaker"] == "09", "gender"]) == {"female"}
