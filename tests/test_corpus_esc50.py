"""ESC-50 recipe: esc50.csv columns, the 5 official folds, src_file as speaker, bad input."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.corpora.base import get_recipe
from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.errors import MediaError
from pipeline.segment.decode import segment_corpus
from tests.data.esc50.data import generate, rows, write_meta

CSV = "esc50/meta/esc50.csv"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("esc50") / "tree")


@pytest.fixture
def tree(template, in_tmp_cwd):
    """A fresh copy per test, relative to the working directory (short paths in messages)."""
    return Path(shutil.copytree(template, "esc50"))


def prepare(root, **cfg):
    return get_recipe("esc50")({"root": str(root), **cfg}, Path("out"))


def rewrite(root, edit):
    """Rewrite meta/esc50.csv after ``edit(rows)``; returns the rows written."""
    meta = rows()
    edit(meta)
    write_meta(root / "meta" / "esc50.csv", meta)
    return meta


def test_rows_tasks_and_classes_come_from_the_csv(tree):
    corpus = prepare(tree)
    df = corpus.manifest.set_index("id")
    meta = pd.read_csv(tree / "meta" / "esc50.csv", dtype=str)
    assert len(df) == 35 and list(df.index) == meta["filename"].str.removesuffix(".wav").tolist()
    assert corpus.task("category").classes == ["dog", "rooster", "crow", "rain", "clapping"]  # by target
    assert corpus.task("esc10").classes == ["dog", "rooster", "rain"]
    first = meta.iloc[0]
    row = df.loc[first["filename"].removesuffix(".wav")]
    assert (row.speaker, row.fold, row.category) == (first["src_file"], int(first["fold"]) - 1, first["category"])
    assert row["take"] == first["take"]
    assert row.audio == f"esc50/audio/{first['filename']}" and row.video == "" and row.text == ""
    esc10 = df["esc10"]
    assert esc10[df["category"].isin(["crow", "clapping"])].isna().all()  # unlabelled, skipped by the probe
    assert (esc10.dropna() == df.loc[esc10.notna(), "category"]).all() and esc10.notna().sum() == 20


def test_official_folds_keep_takes_of_one_source_together(tree):
    corpus = prepare(tree)
    df = corpus.manifest
    assert corpus.info["protocol"] == "official" and corpus.info["folds"] == 5
    assert (df["split"] == "train").all() and df["fold"].value_counts().sort_index().tolist() == [7] * 5
    assert df.groupby("speaker")["fold"].nunique().max() == 1 and df["speaker"].nunique() == 25
    for k in range(5):
        assert set(df.loc[df["fold"] != k, "category"]) == {"dog", "rooster", "crow", "rain", "clapping"}


def test_unknown_protocol_names_the_param(tree):
    with pytest.raises(ConfigError, match=r"corpora\.esc50\.protocol = 'kfold'"):
        prepare(tree, protocol="kfold")


def test_a_source_split_across_folds_is_rejected(tree):
    def leak(meta):
        take_b = next(r for r in meta if r["take"] == "B")
        other = "5" if take_b["fold"] != "5" else "4"
        take_b["filename"] = other + take_b["filename"][1:]
        take_b["fold"] = other

    rewrite(tree, leak)
    with pytest.raises(ManifestError, match=rf"^{CSV}: speakers appear on both sides of the split/fold partition"):
        prepare(tree)


def _set(i, **values):
    def edit(meta):
        meta[i].update(values)

    return edit


@pytest.mark.parametrize(
    "edit,message",
    [
        (_set(2, filename="1-123-A.wav"), r":4: filename '1-123-A.wav' does not follow \{FOLD\}-\{CLIP_ID\}-"),
        (_set(0, fold="6"), r":2: fold '6' is not one of 1\.\.5"),
        (_set(0, fold="2"), r":2: filename '1-.*' disagrees with its fold column \('2'\)"),
        (_set(0, target="10"), r":2: filename '1-.*' disagrees with its target column \('10'\)"),
        (_set(0, esc10="yes"), r":2: esc10 value 'yes' is not True/False"),
        (_set(0, category="cat"), r":3: target 9 / category 'crow' disagrees with earlier rows \(target 9 = 'cat'"),
        (_set(0, filename="1-../../../../evil-A-9.wav"), r":2: media path 'audio/1-(\.\./){4}evil-A-9\.wav' escapes"),
        (lambda meta: meta.append(dict(meta[3])), rf":{35 + 2}: duplicate filename '.*' \(first at line 5\)"),
    ],
)
def test_bad_csv_rows_name_the_file_and_line(tree, edit, message):
    rewrite(tree, edit)
    with pytest.raises(ManifestError, match=rf"^{CSV}{message}"):
        prepare(tree)


def test_missing_column_and_malformed_line(tree):
    csv = tree / "meta" / "esc50.csv"
    text = csv.read_text()
    csv.write_text(text.replace(",src_file,take", ",source,take", 1))
    with pytest.raises(ManifestError, match=r"esc50\.csv: missing columns \['src_file'\]"):
        prepare(tree)
    lines = text.splitlines()
    lines[3] += ",extra,fields"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"esc50\.csv: cannot parse .*line 4"):
        prepare(tree)


def test_missing_media_is_reported_by_name(tree):
    corpus = prepare(tree)
    corpus.manifest = corpus.manifest.iloc[:3].reset_index(drop=True)
    gone = corpus.manifest["audio"][2]
    Path(gone).unlink()
    with pytest.raises(MediaError, match=rf"^{gone}: file not found"):
        segment_corpus(corpus, Path("seg.zarr"), on_bad_media="error", workers=1)
    assert [s["file"] for s in segment_corpus(corpus, Path("seg.zarr"), on_bad_media="skip").skipped] == [gone]
