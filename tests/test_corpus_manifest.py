"""Generic manifest recipe: CSV/JSONL label files, task specs, every protocol, bad input by line."""

import json
import math
import re
import shutil
from pathlib import Path

import pytest

import pandas as pd

from pipeline.corpora.base import get_recipe
from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.errors import MediaError
from pipeline.segment.decode import segment_corpus
from tests.data.manifest.data import EMOTIONS, generate, plan, write_labels

TASKS = {"emotion": {"type": "classification"}, "valence": {"type": "regression"}}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = generate(tmp_path_factory.mktemp("manifest") / "tree")
    write_labels(root / "labels.jsonl", plan())
    return root


@pytest.fixture
def tree(template, in_tmp_cwd):
    """A fresh copy per test, relative to the working directory (short paths in messages)."""
    return Path(shutil.copytree(template, "corpus"))


def prepare(root, file="labels.csv", out=Path("data/mycorpus/prepared"), **cfg):
    return get_recipe("manifest")({"root": str(root), "file": file, "tasks": TASKS, **cfg}, out)


def labels(root, rows, name="labels.csv"):
    return write_labels(root / name, rows).name


def test_csv_rows_ids_and_tasks(tree):
    corpus = prepare(tree)
    df = corpus.manifest.set_index("id")
    assert corpus.name == "mycorpus" and len(df) == 40
    assert df.index[0] == "clips_s1_s1_000" and df.loc["clips_s1_s1_000", "audio"] == "corpus/clips/s1/s1_000.wav"
    assert corpus.task("emotion").classes == EMOTIONS  # sorted unique labels
    assert corpus.task("valence").type == "regression" and df["valence"].dtype == float
    assert df.loc["clips_s2_s2_001", ["emotion", "valence"]].tolist() == ["happy", pytest.approx(0.81)]
    assert df.loc["clips_s1_s1_000", "text"] == "sentence 0 of s1" and (df["video"] == "").all()
    assert corpus.info["speaker_independent"] is True and corpus.info["file"] == "corpus/labels.csv"


def test_jsonl_gives_the_same_manifest_as_csv(tree):
    a, b = prepare(tree).manifest, prepare(tree, file="labels.jsonl").manifest
    assert a.drop(columns="valence").equals(b.drop(columns="valence"))
    assert a["valence"].tolist() == pytest.approx(b["valence"].tolist())


def test_kfold_is_the_default_without_a_split_column(tree):
    corpus = prepare(tree, folds=3)
    df = corpus.manifest
    assert corpus.info["protocol"] == "kfold" and (df["split"] == "train").all()
    assert df.groupby("speaker")["fold"].first().to_dict() == {"s1": 0, "s2": 1, "s3": 2, "s4": 0, "s5": 1}
    loso = prepare(tree, protocol="loso").manifest
    assert loso["fold"].nunique() == 5 and loso.groupby("fold")["speaker"].nunique().max() == 1


def test_official_split_column_and_carved_dev(tree):
    file = labels(tree, plan(split=True), "split.csv")
    corpus = prepare(tree, file=file)
    assert corpus.info["protocol"] == "official" and "fold" not in corpus.manifest
    assert corpus.manifest.groupby("split")["speaker"].unique().map(sorted).to_dict() == {
        "train": ["s1", "s2", "s3"], "dev": ["s4"], "test": ["s5"]
    }  # fmt: skip
    no_dev = [r | {"split": "train"} if r["split"] == "dev" else r for r in plan(split=True)]
    carved = prepare(tree, file=labels(tree, no_dev, "nodev.csv"), dev_fraction=0.25)
    df = carved.manifest
    assert carved.info["dev"] == "carved from train by whole speakers"
    assert df.loc[df["split"] == "dev", "speaker"].nunique() == 1
    assert set(df.loc[df["split"] == "test", "speaker"]) == {"s5"}
    # The split column may be ignored in favour of cross-validation.
    assert prepare(tree, file=file, protocol="kfold").manifest["fold"].nunique() == 5


def test_random_split_deals_whole_speakers_by_fractions(tree):
    corpus = prepare(tree, protocol="random_split", fractions={"train": 0.6, "dev": 0.2, "test": 0.2}, seed=3)
    df = corpus.manifest
    assert df.groupby("split")["speaker"].nunique().to_dict() == {"dev": 1, "test": 1, "train": 3}
    assert df.groupby("speaker")["split"].nunique().max() == 1
    again = prepare(tree, protocol="random_split", fractions={"train": 0.6, "dev": 0.2, "test": 0.2}, seed=3).manifest
    assert again["split"].equals(df["split"])
    with pytest.raises(ManifestError, match=r"corpora\.mycorpus\.fractions must give train/dev/test summing to 1"):
        prepare(tree, protocol="random_split", fractions={"train": 0.9, "dev": 0.2, "test": 0.2})


def test_without_speakers_each_item_is_its_own(tree):
    rows = [{k: v for k, v in r.items() if k != "speaker"} for r in plan()]
    corpus = prepare(tree, file=labels(tree, rows, "nospk.csv"))
    df = corpus.manifest
    assert (df["speaker"] == df["id"]).all() and corpus.info["speaker_independent"] is False
    assert "speaker independence cannot be enforced" in corpus.info["note"]


def test_group_column_keeps_sessions_together(tree):
    group_of = {"s1": "A", "s2": "A", "s3": "B", "s4": "C", "s5": "C"}
    rows = [r | {"group": group_of[r["speaker"]]} for r in plan()]
    df = prepare(tree, file=labels(tree, rows, "groups.csv"), protocol="loso").manifest
    assert df.groupby("group")["fold"].first().to_dict() == {"A": 0, "B": 1, "C": 2}


def test_task_options_classes_column_and_empty_labels(tree):
    rows = plan()
    rows[1]["emotion"], rows[2]["valence"] = "", ""
    tasks = {
        "emo": {"column": "emotion", "classes": ["sad", "neutral", "happy", "angry", "bored"]},
        "valence": {"type": "regression"},
    }
    cfg = {"root": "corpus", "file": labels(tree, rows, "empty.csv"), "tasks": tasks}
    corpus = get_recipe("manifest")(cfg, Path("x"))
    df = corpus.manifest
    assert corpus.task("emo").classes == ["sad", "neutral", "happy", "angry", "bored"]  # order as given
    assert pd.isna(df["emo"][1]) and df["emo"][0] == "angry" and math.isnan(df["valence"][2])
    assert corpus.name == "manifest"  # not under data/<name>/prepared: the recipe's own name


def test_segments_video_and_av_paths(tree):
    rows = [
        {"path": "long/s1.wav", "speaker": "s1", "emotion": "happy", "start": "0.0", "end": "1.5"},
        {"path": "long/s1.wav", "id": "s1_b", "speaker": "s1", "emotion": "sad", "start": "1.5", "end": "3"},
        {"path": "av/s2.mp4", "speaker": "s2", "emotion": "sad", "start": "", "end": ""},
        {"path": "a/s3.wav", "speaker": "s3", "emotion": "happy", "video": "v/s3.avi", "start": "", "end": ""},
    ]
    cfg = {"root": "corpus", "file": labels(tree, rows, "seg.csv"), "tasks": ["emotion"], "protocol": "loso"}
    corpus = get_recipe("manifest")(cfg, Path("x"))
    df = corpus.manifest.set_index("id")
    assert list(df.index) == ["long_s1", "s1_b", "av_s2", "a_s3"]
    assert df.loc["s1_b", ["start", "end"]].tolist() == [1.5, 3.0] and math.isnan(df.loc["av_s2", "start"])
    assert df.loc["av_s2", "video"] == df.loc["av_s2", "audio"] == "corpus/av/s2.mp4"
    assert df.loc["a_s3", "video"] == "corpus/v/s3.avi" and df.loc["long_s1", "video"] == ""
    rows[1]["end"] = "1.0"
    with pytest.raises(ManifestError, match=r"^corpus/bad\.csv:3: segment end 1\.0 is not after start 1\.5"):
        get_recipe("manifest")(cfg | {"file": labels(tree, rows, "bad.csv")}, Path("x"))


def _edit(i, **values):
    def edit(rows):
        rows[i].update(values)
        return rows

    return edit


@pytest.mark.parametrize(
    "edit,cfg,message",
    [  # {n} is the 0-based row of the problem, turned into the file's line number below
        (_edit(3, emotion="bored"), {"tasks": {"emotion": {"classes": EMOTIONS}}}, r":{3}: unknown emotion label 'bor"),
        (_edit(4, valence="high"), {}, r":{4}: valence value 'high' is not a number"),
        (_edit(5, path="../../outside.wav"), {}, r":{5}: media path '\.\./\.\./outside\.wav' escapes the corpus root"),
        (_edit(6, path=""), {}, r":{6}: empty path"),
        (lambda rows: rows + [dict(rows[2])], {}, r":{40}: duplicate id 'clips_s1_s1_002' \(first at line {2}\)"),
        (lambda rows: [r | {"id": "x"} for r in rows], {}, r":{1}: duplicate id 'x' \(first at line {0}\)"),
        (lambda rows: [r | {"split": "val"} for r in rows], {}, r":{0}: unknown split 'val'"),
        (lambda rows: [{k: v for k, v in r.items() if k != "emotion"} for r in rows], {}, r": missing label column"),
    ],
)
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_bad_rows_name_the_file_and_line(tree, edit, cfg, message, fmt):
    header = 1 if fmt == "csv" else 0
    message = re.sub(r"\{(\d+)\}", lambda m: str(int(m[1]) + 1 + header), message)
    file = labels(tree, edit(plan()), f"bad.{fmt}")
    with pytest.raises(ManifestError, match=rf"^corpus/bad\.{fmt}{message}"):
        prepare(tree, file=file, **cfg)


def test_malformed_files(tree):
    good = json.dumps({"path": "clips/s1/s1_000.wav", "speaker": "s1", "emotion": "sad", "valence": 0})
    (tree / "broken.jsonl").write_text(f'{good}\n\n{{"path": oops}}\n')
    with pytest.raises(ManifestError, match=r"^corpus/broken\.jsonl:3: malformed JSON line"):
        prepare(tree, file="broken.jsonl")
    (tree / "nopath.jsonl").write_text(json.dumps({"file": "a.wav", "emotion": "sad"}) + "\n")
    with pytest.raises(ManifestError, match=r"^corpus/nopath\.jsonl:1: missing required key 'path'"):
        prepare(tree, file="nopath.jsonl")
    (tree / "nopath.csv").write_text("file,emotion\na.wav,sad\n")
    with pytest.raises(ManifestError, match=r"^corpus/nopath\.csv: missing columns \['path'\]"):
        prepare(tree, file="nopath.csv")
    (tree / "ragged.csv").write_text("path,speaker,emotion,valence\na.wav,s1,sad,0.1\nb.wav,s1,sad,0.1,extra\n")
    with pytest.raises(ManifestError, match=r"^corpus/ragged\.csv: cannot parse .*line 3"):
        prepare(tree, file="ragged.csv")
    with pytest.raises(ManifestError, match=r"^corpus/labels\.xlsx: label file not found"):
        prepare(tree, file="labels.xlsx")
    (tree / "labels.xlsx").write_bytes(b"")
    with pytest.raises(ManifestError, match=r"unsupported label file type '\.xlsx'"):
        prepare(tree, file="labels.xlsx")


@pytest.mark.parametrize(
    "cfg,message",
    [
        ({"protocol": "official"}, r"corpora\.mycorpus\.protocol is 'official' but .* has no split column"),
        ({"file": None}, r"corpora\.\w+\.file = None: Input should be a valid string"),
        ({"tasks": {}}, r"corpora\.\w+\.tasks = \{\}: .*must name at least one task"),
        ({"tasks": {"emotion": {"type": "ordinal"}}}, r"corpora\.\w+\.tasks\.emotion\.type = 'ordinal'"),
    ],
)
def test_bad_options_name_the_param(tree, cfg, message):
    with pytest.raises((ConfigError, ManifestError), match=message):
        prepare(tree, **cfg)


def test_absolute_label_file_outside_root(tree, in_tmp_cwd):
    file = write_labels(in_tmp_cwd / "elsewhere" / "labels.jsonl", plan())
    assert len(prepare(tree, file=str(file)).manifest) == 40


def test_leakage_in_the_official_split_is_rejected(tree):
    rows = plan(split=True)
    rows[0]["split"] = "test"  # one clip of train speaker s1 in the test set
    with pytest.raises(ManifestError, match=r"^corpus/leak\.csv: speakers appear on both sides of the split partition"):
        prepare(tree, file=labels(tree, rows, "leak.csv"))


def test_missing_media_is_reported_by_name(tree):
    rows = plan()[:3] + plan()[8:11]  # two speakers: one alone makes no folds (an error at prepare)
    rows[1]["path"] = "clips/s1/not_there.wav"
    corpus = prepare(tree, file=labels(tree, rows, "three.csv"), protocol="loso")
    with pytest.raises(MediaError, match=r"^corpus/clips/s1/not_there\.wav: file not found"):
        segment_corpus(corpus, Path("seg.zarr"), on_bad_media="error", workers=1)
    skipped = segment_corpus(corpus, Path("seg.zarr"), on_bad_media="skip").skipped
    missing = {"id": "clips_s1_not_there", "file": "corpus/clips/s1/not_there.wav", "reason": "file not found"}
    assert skipped == [missing]
