"""MER 2023 recipe on a fake release (tests/data/mer2023/data.py)."""

import re
import shutil

import pandas as pd
import pytest

from pipeline.corpora.base import get_recipe
from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.manifest import load, save
from pipeline.core.errors import MediaError
from pipeline.core.segments import Segments
from pipeline.segment.decode import segment_corpus
from tests.data.mer2023.data import EMOTIONS, generate

prepare = get_recipe("mer2023")


def at(path) -> str:
    """Regex for an error message that starts with ``path``."""
    return "^" + re.escape(str(path))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("mer") / "mer2023-dataset")


@pytest.fixture
def copy(tree, tmp_path):
    """A private copy of the fake release that a test may damage."""
    return shutil.copytree(tree, tmp_path / "mer2023-dataset")


def edit_csv(path, **cells):
    """Overwrite cells of a label file: ``name=(row, value)``."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col, (row, value) in cells.items():
        df.loc[row, col] = value
    df.to_csv(path, index=False)


def test_labels_paths_and_speakers(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    df = corpus.manifest.set_index("id")
    train = pd.read_csv(tree / "train-label.csv")
    test1 = pd.read_csv(tree / "test1-label.csv")
    assert sorted(df.index) == sorted([*train["name"], *test1["name"]])
    assert (df["speaker"] == df.index).all() and (df["audio"] == df["video"]).all() and (df["text"] == "").all()
    for _, row in pd.concat([train, test1]).iterrows():
        assert df.loc[row["name"], "emotion"] == row["discrete"]
        assert df.loc[row["name"], "valence"] == pytest.approx(row["valence"])
    assert df.loc["sample_00000002", "audio"].endswith("train/sample_00000002.avi")
    assert df.loc["samplenew_00001001", "audio"].endswith("test1/samplenew_00001001.mp4")  # mixed extensions
    assert {t.name: t.type for t in corpus.tasks} == {"emotion": "classification", "valence": "regression"}
    assert corpus.task("emotion").classes == EMOTIONS
    assert corpus.info["speakers_shared"] is True and "speaker" in corpus.info["speaker_note"]


def test_official_split_carves_dev_from_train(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree), "seed": 0}, in_tmp_cwd)
    df = corpus.manifest
    assert corpus.info["splits"] == {"dev": 2, "test": 6, "train": 16}
    assert set(df.loc[df["split"] == "test", "id"]) == set(pd.read_csv(tree / "test1-label.csv")["name"])
    assert set(df.loc[df["split"] == "train", "emotion"]) == set(EMOTIONS)
    other = prepare({"root": str(tree), "seed": 5, "dev_fraction": 0.25}, in_tmp_cwd).manifest
    assert (other["split"] == "dev").sum() == 5
    assert set(other.loc[other["split"] == "dev", "id"]) != set(df.loc[df["split"] == "dev", "id"])


def test_other_test_sets_and_unlabelled_test3(tree, in_tmp_cwd):
    test2 = prepare({"root": str(tree), "test_set": "test2"}, in_tmp_cwd)
    assert test2.manifest.loc[test2.manifest["split"] == "test", "audio"].str.endswith(".mp4").all()
    test3 = prepare({"root": str(tree), "test_set": "test3"}, in_tmp_cwd)
    rows = test3.manifest[test3.manifest["split"] == "test"]
    assert len(rows) == 3 and rows["emotion"].isna().all() and rows["valence"].isna().all()
    assert test3.info["unlabelled"]["test3"] == {"emotion": 3, "valence": 3}
    assert test3.info["unlabelled"]["train"] == {"emotion": 0, "valence": 0}
    save(test3, in_tmp_cwd / "prepared")  # missing labels survive the parquet round trip
    back = load(in_tmp_cwd / "prepared").manifest
    assert back.loc[back["split"] == "test", "emotion"].isna().all() and back["valence"].dtype == float
    with pytest.raises(ConfigError, match=r"corpora\.mer2023\.test_set = 'test4'"):
        prepare({"root": str(tree), "test_set": "test4"}, in_tmp_cwd)
    with pytest.raises(ConfigError, match=r"corpora\.mer2023\.protocol = 'loso'"):
        prepare({"root": str(tree), "protocol": "loso"}, in_tmp_cwd)


def test_video_folder_names_are_options(copy, in_tmp_cwd):
    (copy / "train").rename(copy / "video-labeled")
    with pytest.raises(ManifestError, match=at(copy / "train") + r": video folder not found.*video_dirs\.train"):
        prepare({"root": str(copy)}, in_tmp_cwd)
    corpus = prepare({"root": str(copy), "video_dirs": {"train": "video-labeled"}}, in_tmp_cwd)
    assert corpus.manifest.loc[corpus.manifest["split"] != "test", "audio"].str.contains("video-labeled/").all()


def test_clip_without_video_stream_gives_zero_frames(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    corpus.manifest = corpus.manifest[corpus.manifest["split"] == "test"].head(2)
    audio_only, normal = corpus.manifest["id"]
    assert corpus.manifest["video"].str.endswith(".mp4").tolist() == [True, False]
    assert segment_corpus(corpus, in_tmp_cwd / "seg.zarr", fps=5, on_bad_media="error").skipped == []
    seg = Segments(in_tmp_cwd / "seg.zarr")
    assert len(seg.frames(audio_only)) == 0 and len(seg.frames(normal)) > 0
    assert len(seg.audio(audio_only)) > 0.3 * 16000


def test_bad_labels_name_file_and_line(copy, in_tmp_cwd):
    label = copy / "train-label.csv"
    original = label.read_text()
    for cells, message in [
        ({"discrete": (3, "bored")}, r": line 5: unknown discrete emotion 'bored'"),
        ({"valence": (0, "high")}, r": line 2: valence 'high' is not a number"),
        ({"name": (4, " ")}, r": line 6: empty clip name"),
        ({"name": (2, "sample_00000002")}, r": duplicate clip name 'sample_00000002' on lines 3 and 4"),
    ]:
        label.write_text(original)
        edit_csv(label, **cells)
        with pytest.raises(ManifestError, match=at(label) + message):
            prepare({"root": str(copy)}, in_tmp_cwd)
    label.write_text(original + "sample_00000099,happy,1.0,extra\n")
    with pytest.raises(ManifestError, match=at(label) + r": cannot parse.*line 20"):
        prepare({"root": str(copy)}, in_tmp_cwd)
    label.write_text(original.replace("discrete", "emotion"))
    with pytest.raises(ManifestError, match=at(label) + r": missing columns \['discrete'\]"):
        prepare({"root": str(copy)}, in_tmp_cwd)


def test_clip_in_train_and_test_is_a_leak(copy, in_tmp_cwd):
    edit_csv(copy / "test1-label.csv", name=(1, "sample_00000002"))
    with pytest.raises(ManifestError, match=at(copy / "test1-label.csv") + r".*sample_00000002.*train/test leak"):
        prepare({"root": str(copy)}, in_tmp_cwd)


def test_clip_name_escaping_the_root_is_rejected(copy, in_tmp_cwd):
    edit_csv(copy / "train-label.csv", name=(0, "../../outside"))
    with pytest.raises(ManifestError, match=at(copy / "train-label.csv") + r": media path .*outside.* escapes"):
        prepare({"root": str(copy)}, in_tmp_cwd)


def test_clip_in_two_containers_is_ambiguous(copy, in_tmp_cwd):
    shutil.copy(copy / "train" / "sample_00000002.avi", copy / "train" / "sample_00000002.mp4")
    with pytest.raises(ManifestError, match="sample_00000002 exists as both"):
        prepare({"root": str(copy)}, in_tmp_cwd)


def test_missing_clip_is_reported_by_the_segment_stage(copy, in_tmp_cwd):
    (copy / "train" / "sample_00000004.avi").unlink()
    corpus = prepare({"root": str(copy)}, in_tmp_cwd)
    df = corpus.manifest
    assert df.set_index("id").loc["sample_00000004", "audio"].endswith("train/sample_00000004.avi")
    corpus.manifest = df[df["id"].isin(["sample_00000002", "sample_00000004"])]
    with pytest.raises(MediaError, match=r"train/sample_00000004\.avi: file not found"):
        segment_corpus(corpus, in_tmp_cwd / "seg.zarr", on_bad_media="error")
    skipped = segment_corpus(corpus, in_tmp_cwd / "seg.zarr", fps=0, on_bad_media="skip").skipped
    assert [(s["id"], s["reason"]) for s in skipped] == [("sample_00000004", "file not found")]
    assert skipped[0]["file"].endswith("train/sample_00000004.avi")
