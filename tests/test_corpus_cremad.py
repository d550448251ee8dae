"""CREMA-D recipe: filename codes, audio / audio-visual clips, actor-independent folds, bad input."""

import shutil
from pathlib import Path

import pytest

from pipeline.corpora.base import get_recipe
from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.manifest import validate
from pipeline.core.errors import MediaError
from pipeline.segment.decode import segment_corpus
from tests.data.cremad.data import generate
from tests.data.media import write_wav

EMOTIONS = ["anger", "disgust", "fear", "happy", "neutral", "sad"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("cremad") / "tree", video_actors=2)


@pytest.fixture
def tree(template, in_tmp_cwd):
    """A fresh copy per test, relative to the working directory (short paths in messages)."""
    return Path(shutil.copytree(template, "cremad", symlinks=True))


def prepare(root, **cfg):
    return get_recipe("cremad")({"root": str(root), **cfg}, Path("out"))


def test_rows_carry_actor_sentence_emotion_and_level(tree):
    corpus = prepare(tree)
    df = corpus.manifest.set_index("id")
    assert len(df) == 36 and sorted(df["speaker"].unique()) == [str(a) for a in range(1001, 1007)]
    assert corpus.task("emotion").classes == EMOTIONS
    assert df.groupby("emotion").size().to_dict() == {e: 6 for e in EMOTIONS}
    row = df.loc["1001_IEO_ANG_LO"]
    assert (row.speaker, row.emotion, row.intensity, row.text) == ("1001", "anger", "low", "It's eleven o'clock")
    assert row.audio == "cremad/AudioWAV/1001_IEO_ANG_LO.wav" and row.video == ""
    assert df.loc["1002_ITH_DIS_XX", "text"] == "I think I have a doctor's appointment"
    assert set(df["intensity"]) == {"low", "medium", "high", "unspecified"}


def test_kfold_and_loso_keep_each_actor_in_one_fold(tree):
    kfold = prepare(tree).manifest
    assert (kfold["split"] == "train").all() and kfold.groupby("speaker")["fold"].nunique().max() == 1
    assert kfold["fold"].value_counts().sort_index().tolist() == [12, 6, 6, 6, 6]
    assert kfold.loc[kfold["speaker"] == "1006", "fold"].unique().tolist() == [0]
    for k in range(5):
        assert set(kfold.loc[kfold["fold"] != k, "emotion"]) == set(EMOTIONS)
    loso = prepare(tree, protocol="loso")
    assert loso.info["folds"] == 6 and loso.manifest["fold"].value_counts().tolist() == [6] * 6


def test_root_may_be_the_audio_folder_itself(tree):
    df = prepare(tree / "AudioWAV").manifest
    assert len(df) == 36 and df["audio"].iloc[0] == "cremad/AudioWAV/1001_IEO_ANG_LO.wav"


def test_audiovisual_uses_the_flash_videos(tree):
    df = prepare(tree, modality="audiovisual").manifest
    assert len(df) == 12 and (df["audio"] == df["video"]).all()
    assert df["audio"].str.match(r"cremad/VideoFlash/.*\.flv").all()
    assert sorted(df["speaker"].unique()) == ["1001", "1002"]


@pytest.mark.parametrize(
    "cfg,message",
    [
        ({"protocol": "official"}, r"corpora\.cremad\.protocol = 'official': Input should be 'kfold', 'loso' or 'emobox'"),
        ({"modality": "video"}, r"corpora\.cremad\.modality = 'video'"),
        ({"protocl": "loso"}, r"corpora\.cremad: unknown key 'protocl' \(did you mean 'protocol'\?\)"),
    ],
)
def test_bad_options_name_the_param(tree, cfg, message):
    with pytest.raises(ConfigError, match=message):
        prepare(tree, **cfg)


@pytest.mark.parametrize(
    "stem,message",
    [
        ("1001_IEO_ANG", r"does not follow the naming scheme \{ActorID\}_\{Sentence\}_\{Emotion\}_\{Level\}"),
        ("1001_XYZ_ANG_XX", "unknown sentence code 'XYZ'"),
        ("1001_IEO_ANX_XX", "unknown emotion code 'ANX'"),
        ("0999_IEO_ANG_XX", r"unknown actor code '0999' .*expected 1001\.\.1091"),
        ("1001_IEO_ANG_ZZ", "unknown level code 'ZZ'"),
    ],
)
def test_unparseable_file_name_is_an_error_naming_the_file(tree, stem, message):
    write_wav(tree / "AudioWAV" / f"{stem}.wav", seconds=0.1)
    with pytest.raises(ManifestError, match=rf"^cremad/AudioWAV/{stem}\.wav: .*{message}"):
        prepare(tree)


def test_duplicate_clip_is_an_error(tree):
    (tree / "AudioWAV" / "copy").mkdir()
    shutil.copy(tree / "AudioWAV" / "1001_IEO_ANG_LO.wav", tree / "AudioWAV" / "copy")
    with pytest.raises(ManifestError, match=r"^cremad/AudioWAV/copy/1001_IEO_ANG_LO\.wav: duplicate id"):
        prepare(tree)


def test_media_symlinked_from_outside_the_root_are_read_through_the_link(tree):
    outside = write_wav(Path("elsewhere.wav"), seconds=0.1)
    (tree / "AudioWAV" / "1007_IEO_ANG_HI.wav").symlink_to(outside.resolve())
    df = prepare(tree).manifest
    assert df.loc[df["id"] == "1007_IEO_ANG_HI", "audio"].item().endswith("AudioWAV/1007_IEO_ANG_HI.wav")


def test_leakage_guard_rejects_an_actor_in_two_folds(tree):
    corpus = prepare(tree, protocol="loso")
    corpus.manifest.loc[0, "fold"] = 5  # one clip of actor 1001 moved to actor 1006's fold
    with pytest.raises(ManifestError, match="speakers appear on both sides of the split/fold partition"):
        validate(corpus, "cremad")


def test_missing_media_is_reported_by_name(tree):
    corpus = prepare(tree)
    corpus.manifest = corpus.manifest.iloc[:3].reset_index(drop=True)
    gone = corpus.manifest["audio"][1]
    Path(gone).unlink()
    with pytest.raises(MediaError, match=rf"^{gone}: file not found"):
        segment_corpus(corpus, Path("seg.zarr"), on_bad_media="error", workers=1)
    assert segment_corpus(corpus, Path("seg.zarr"), on_bad_media="skip").skipped == [
        {"id": corpus.manifest["id"][1], "file": gone, "reason": "file not found"}
    ]
