"""CH-SIMS recipe on a fake tree (tests/data/chsims/data.py)."""

import re
import shutil

import pandas as pd
import pytest

from pipeline.corpora.base import get_recipe
from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.manifest import validate
from pipeline.core.errors import MediaError
from pipeline.segment.decode import segment_corpus
from tests.data.chsims.data import generate

prepare = get_recipe("chsims")


def at(path) -> str:
    """Regex for an error message that starts with ``path``."""
    return "^" + re.escape(str(path))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("sims") / "SIMS")


@pytest.fixture
def copy(tree, tmp_path):
    """A private copy of the fake tree that a test may damage."""
    return shutil.copytree(tree, tmp_path / "SIMS")


def edit_csv(path, row, **cells):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col, value in cells.items():
        df.loc[row, col] = value
    df.to_csv(path, index=False)


def test_labels_ids_and_paths(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    df = corpus.manifest.set_index("id")
    label = pd.read_csv(tree / "label.csv", dtype=str)
    assert len(df) == 25 and df.index[0] == "video_0001_0001" and df["speaker"].nunique() == 5
    assert (df["speaker"] == df.index.str[:10]).all() and (df["audio"] == df["video"]).all()
    assert df.loc["video_0002_0003", "audio"].endswith("Raw/video_0002/0003.mp4")
    for _, row in label.iterrows():
        item = df.loc[f"{row['video_id']}_{row['clip_id']}"]
        assert item["sentiment3"] == row["annotation"].lower() and item["text"] == row["text"]
        assert item["sentiment"] == pytest.approx(float(row["label"]))
    assert corpus.task("sentiment3").classes == ["negative", "neutral", "positive"]
    assert corpus.task("sentiment").type == "regression"


def test_official_split_and_shared_videos(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    df = corpus.manifest
    assert corpus.info["splits"] == {"dev": 5, "test": 5, "train": 15}
    assert set(df.loc[df["id"].str.endswith("_0004"), "split"]) == {"dev"}  # mode "valid" → dev
    assert set(df.loc[df["split"] == "train", "sentiment3"]) == {"negative", "neutral", "positive"}
    # the fake split, like the real one, is drawn over clips: every video straddles it
    assert corpus.info["speakers_shared"] is True and corpus.info["videos_across_splits"] == 5


def test_guard_stays_on_when_official_split_keeps_videos_apart(tmp_path, in_tmp_cwd):
    root = generate(tmp_path / "SIMS", shared_videos=False, clips_per_video=2)
    corpus = prepare({"root": str(root)}, in_tmp_cwd)
    assert corpus.info["speakers_shared"] is False and corpus.info["videos_across_splits"] == 0
    corpus.manifest.loc[0, "split"] = "test"  # video_0001 now straddles train/test
    with pytest.raises(ManifestError, match="speakers appear on both sides.*video_0001"):
        validate(corpus, "label.csv", speakers_shared=corpus.info["speakers_shared"])


def test_video_independent_protocol(tree, in_tmp_cwd):
    cfg = {"root": str(tree), "protocol": "video_independent", "seed": 3}
    corpus = prepare(cfg, in_tmp_cwd)
    df = corpus.manifest
    assert df.groupby("speaker")["split"].nunique().max() == 1
    assert df.groupby("split")["speaker"].nunique().to_dict() == {"dev": 1, "test": 1, "train": 3}
    assert corpus.info["speakers_shared"] is False and corpus.info["splits"] == {"dev": 5, "test": 5, "train": 15}
    assert prepare(cfg, in_tmp_cwd).manifest["split"].equals(df["split"])
    other = prepare({**cfg, "seed": 4}, in_tmp_cwd).manifest
    assert not other["split"].equals(df["split"])
    with pytest.raises(ConfigError, match=r"corpora\.chsims\.protocol = 'loso'"):
        prepare({"root": str(tree), "protocol": "loso"}, in_tmp_cwd)


def test_unpadded_clip_ids_find_the_padded_files(tmp_path, in_tmp_cwd):
    root = generate(tmp_path / "SIMS", clip_id_style="int", n_videos=3, clips_per_video=5)  # 5 clips: a test split
    df = prepare({"root": str(root)}, in_tmp_cwd).manifest.set_index("id")
    assert "video_0002_3" in df.index  # the id keeps the clip id as the CSV writes it
    assert df.loc["video_0002_3", "audio"].endswith("Raw/video_0002/0003.mp4")


@pytest.mark.parametrize(
    "cells,message",
    [
        ({"annotation": "Postive"}, r": line 4: unknown annotation 'Postive'"),
        ({"mode": "validation"}, r": line 4: unknown mode 'validation'"),
        ({"label": "strong"}, r": line 4: label 'strong' is not a number"),
        ({"label": "1.4"}, r": line 4: label 1.4 outside -1..1"),
        ({"label_A": ""}, r": line 4: label_A '' is not a number"),
        ({"clip_id": ""}, r": line 4: empty clip_id"),
        ({"clip_id": "0001"}, r": duplicate video_id/clip_id 'video_0001/0001' on lines 2 and 4"),
    ],
)
def test_bad_label_rows_name_file_and_line(copy, in_tmp_cwd, cells, message):
    edit_csv(copy / "label.csv", 2, **cells)
    with pytest.raises(ManifestError, match=at(copy / "label.csv") + message):
        prepare({"root": str(copy)}, in_tmp_cwd)


def test_malformed_csv_line(copy, in_tmp_cwd):
    with open(copy / "label.csv", "a", encoding="utf-8") as f:
        f.write("video_0009,0001,文本,0.2,0.2,0.2,0.2,Positive,train,extra\n")
    with pytest.raises(ManifestError, match=at(copy / "label.csv") + r": cannot parse.*line 27"):
        prepare({"root": str(copy)}, in_tmp_cwd)


def test_video_id_escaping_the_root_is_rejected(copy, in_tmp_cwd):
    edit_csv(copy / "label.csv", 0, video_id="../../etc")
    with pytest.raises(ManifestError, match=at(copy / "label.csv") + r": \.\./\.\./etc/0001: media path .* escapes"):
        prepare({"root": str(copy)}, in_tmp_cwd)


def test_missing_clip_is_reported_by_the_segment_stage(copy, in_tmp_cwd):
    (copy / "Raw" / "video_0003" / "0002.mp4").unlink()
    corpus = prepare({"root": str(copy)}, in_tmp_cwd)
    corpus.manifest = corpus.manifest[corpus.manifest["speaker"] == "video_0003"].head(3)
    with pytest.raises(MediaError, match=r"Raw/video_0003/0002\.mp4: file not found"):
        segment_corpus(corpus, in_tmp_cwd / "seg.zarr", on_bad_media="error")
    skipped = segment_corpus(corpus, in_tmp_cwd / "seg.zarr", on_bad_media="skip").skipped
    assert [(s["id"], s["reason"]) for s in skipped] == [("video_0003_0002", "file not found")]
