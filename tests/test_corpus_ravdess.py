"""RAVDESS recipe: filename codes, modality/song selection, actor-independent folds, bad input."""

import shutil
from pathlib import Path

import pytest

from pipeline.corpora.base import get_recipe
from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.manifest import validate
from pipeline.core.errors import MediaError
from pipeline.core.segments import Segments
from pipeline.segment.decode import segment_corpus
from tests.conftest import RAVDESS_MP4, needs_ravdess
from tests.data.media import write_wav
from tests.data.ravdess.data import EMOTIONS, clip_name, generate


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("ravdess") / "tree")


@pytest.fixture
def tree(template, in_tmp_cwd):
    """A fresh copy per test (tests damage it), relative to the working directory like a root in
    params.yaml, so paths in messages stay short."""
    return Path(shutil.copytree(template, "ravdess", symlinks=True))


def prepare(root, **cfg):
    return get_recipe("ravdess")({"root": str(root), **cfg}, root.parent / "out")


def test_speech_audio_rows_carry_the_filename_codes(tree):
    corpus = prepare(tree)
    df = corpus.manifest.set_index("id")
    assert len(df) == 48 and sorted(df["speaker"].unique()) == ["01", "02", "03", "04", "05", "06"]
    assert corpus.task("emotion").classes == EMOTIONS
    assert df.groupby("emotion").size().to_dict() == {e: 6 for e in EMOTIONS}
    row = df.loc["03-01-05-02-02-01-04"]
    assert (row.speaker, row.emotion, row.intensity, row.gender) == ("04", "angry", "strong", "female")
    assert row.text == "Dogs are sitting by the door" and row.video == ""
    assert row.audio == "ravdess/Actor_04/03-01-05-02-02-01-04.wav"
    assert df.loc["03-01-01-01-01-01-01", "gender"] == "male"
    assert (df["vocal_channel"] == "speech").all()
    # Nothing dropped silently: the other files are counted.
    assert corpus.info["excluded"] == {"audiovisual": 4, "video-only": 1, "song": 6}


def test_kfold_deals_sorted_actors_round_robin(tree):
    df = prepare(tree).manifest
    assert (df["split"] == "train").all()
    assert df.groupby("speaker")["fold"].nunique().max() == 1
    assert df.groupby("speaker")["fold"].first().to_dict() == {"01": 0, "02": 1, "03": 2, "04": 3, "05": 4, "06": 0}
    assert df["fold"].value_counts().sort_index().tolist() == [16, 8, 8, 8, 8]
    for k in range(5):  # every class is in every fold's training part
        assert set(df.loc[df["fold"] != k, "emotion"]) == set(EMOTIONS)
    three = prepare(tree, folds=3).manifest
    assert three["fold"].value_counts().sort_index().tolist() == [16, 16, 16]


def test_loso_gives_one_fold_per_actor(tree):
    corpus = prepare(tree, protocol="loso")
    df = corpus.manifest
    assert corpus.info["folds"] == 6 and df["fold"].value_counts().tolist() == [8] * 6
    assert df.groupby("fold")["speaker"].nunique().max() == 1


def test_song_and_audiovisual_options(tree):
    with_song = prepare(tree, song=True)
    assert len(with_song.manifest) == 54 and (with_song.manifest["vocal_channel"] == "song").sum() == 6
    assert "song" not in with_song.info["excluded"]
    av = prepare(tree, modality="audiovisual").manifest
    assert len(av) == 4 and (av["video"] == av["audio"]).all() and av["audio"].str.endswith(".mp4").all()
    assert sorted(av["emotion"]) == ["happy", "happy", "neutral", "neutral"]


@pytest.mark.parametrize(
    "cfg,message",
    [
        ({"protocol": "official"}, r"corpora\.ravdess\.protocol = 'official': Input should be 'kfold', 'loso' or 'emobox'"),
        ({"modality": "video"}, r"corpora\.ravdess\.modality = 'video'"),
        ({"protocol": "kfold", "folds": 1}, r"corpora\.ravdess\.folds = 1: Input should be greater than or equal to 2"),
    ],
)
def test_bad_options_name_the_param(tree, cfg, message):
    with pytest.raises(ConfigError, match=message):
        prepare(tree, **cfg)


@pytest.mark.parametrize(
    "name,message",
    [
        ("03-01-01-01-01-01.wav", "does not follow the naming scheme MM-VV-EE-II-SS-RR-AA"),  # 6 fields
        ("03-01-09-01-01-01-01.wav", "unknown emotion code '09'"),
        ("03-01-01-01-01-01-25.wav", "unknown actor code '25'"),
        ("04-01-01-01-01-01-01.wav", "unknown modality code '04'"),
    ],
)
def test_unparseable_file_name_is_an_error_naming_the_file(tree, name, message):
    write_wav(tree / "Actor_01" / name, seconds=0.1)
    with pytest.raises(ManifestError, match=rf"^ravdess/Actor_01/{name}: .*{message}"):
        prepare(tree)


def test_duplicate_clip_is_an_error(tree):
    src = tree / "Actor_01" / f"{clip_name(3, 1, 1, 1)}.wav"
    (tree / "extra").mkdir()
    shutil.copy(src, tree / "extra" / src.name)
    message = r"^ravdess/extra/03-01-01-01-01-01-01\.wav: duplicate id .*also ravdess/Actor_01"
    with pytest.raises(ManifestError, match=message):
        prepare(tree)


def test_media_symlinked_from_outside_the_root_are_read_through_the_link(tree):
    outside = write_wav(Path("elsewhere.wav"), seconds=0.1)
    (tree / "Actor_07").mkdir()
    (tree / "Actor_07" / f"{clip_name(3, 1, 1, 7)}.wav").symlink_to(outside.resolve())
    df = prepare(tree).manifest
    assert df.loc[df["speaker"] == "07", "audio"].item().endswith("Actor_07/03-01-01-01-01-01-07.wav")


def test_leakage_guard_rejects_an_actor_in_two_folds(tree):
    corpus = prepare(tree)
    corpus.manifest.loc[corpus.manifest["speaker"] == "02", "fold"] = [0] + [1] * 7
    with pytest.raises(ManifestError, match="speakers appear on both sides of the split/fold partition"):
        validate(corpus, "ravdess")


def test_missing_and_empty_media_are_reported_by_name(tree, in_tmp_cwd):
    corpus = prepare(tree)
    corpus.manifest = corpus.manifest.iloc[:4].reset_index(drop=True)
    gone, empty = corpus.manifest["audio"][1], corpus.manifest["audio"][2]
    (in_tmp_cwd / gone).unlink()
    (in_tmp_cwd / empty).write_bytes(b"")
    with pytest.raises(MediaError, match="file not found|file is empty"):
        segment_corpus(corpus, in_tmp_cwd / "seg.zarr", on_bad_media="error", workers=1)
    skipped = segment_corpus(corpus, in_tmp_cwd / "seg.zarr", on_bad_media="skip").skipped
    assert sorted((s["file"], s["reason"]) for s in skipped) == sorted(
        [(gone, "file not found"), (empty, "file is empty (0 bytes)")]
    )
    assert len(Segments(in_tmp_cwd / "seg.zarr").ids) == 2


@needs_ravdess
def test_real_ravdess_clip(in_tmp_cwd):
    with pytest.raises(ManifestError, match="no RAVDESS audio clips found"):
        prepare(RAVDESS_MP4.parent)  # the sample holds only the full-AV mp4
    # one actor makes no actor-independent folds: link the real clip in as two actors (symlinks are read)
    root = in_tmp_cwd / "ravdess"
    for actor in ("01", "02", "03"):
        (root / f"Actor_{actor}").mkdir(parents=True)
        (root / f"Actor_{actor}" / f"01-01-01-01-01-01-{actor}.mp4").symlink_to(RAVDESS_MP4.resolve())
    corpus = get_recipe("ravdess")({"root": str(root), "modality": "audiovisual"}, in_tmp_cwd)
    df = corpus.manifest
    assert len(df) == 3
    row = df.iloc[0]
    assert (row.id, row.speaker, row.emotion, row.fold) == ("01-01-01-01-01-01-01", "01", "neutral", 0)
    assert row.audio == row.video == "ravdess/Actor_01/01-01-01-01-01-01-01.mp4"  # the link's path, lexical
    assert segment_corpus(corpus, in_tmp_cwd / "seg.zarr").skipped == []
    seg = Segments(in_tmp_cwd / "seg.zarr")
    assert 3.0 < seg.duration(row.id) < 3.6 and len(seg.frames(row.id)) > 0
