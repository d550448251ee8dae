"""IEMOCAP recipe on a fake release: label parsing, task sets, LOSO folds and bad input."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from pipeline.corpora.base import get_recipe
from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.manifest import load, save, validate
from pipeline.core.errors import MediaError
from pipeline.core.segments import Segments
from pipeline.segment.decode import segment_corpus
from tests.data.iemocap.data import NO_TRANSCRIPT, generate

prepare = get_recipe("iemocap")
EMOTION4 = ["neu", "hap", "ang", "sad"]
EMOTION6 = ["neu", "hap", "ang", "sad", "exc", "fru"]


@pytest.fixture(scope="module")
def iemocap_tree(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("iemocap") / "tree")


@pytest.fixture
def tree(iemocap_tree, tmp_path) -> Path:
    """A private copy of the fake release that a test may damage."""
    return Path(shutil.copytree(iemocap_tree, tmp_path / "tree"))


def label_file(tree: Path, session: int, dialog: str) -> Path:
    return tree / "IEMOCAP_full_release" / f"Session{session}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"


def test_rows_labels_speakers_and_text(iemocap_tree, in_tmp_cwd):
    corpus = prepare({"root": str(iemocap_tree)}, in_tmp_cwd)
    df = corpus.manifest.set_index("id")
    assert len(df) == 60 and df.index.is_unique  # the Categorical/ file and the ._ shadow are not label files
    assert [t.name for t in corpus.tasks] == ["emotion4", "emotion6", "valence", "arousal", "dominance"]
    assert corpus.task("emotion4").classes == EMOTION4 and corpus.task("emotion6").classes == EMOTION6
    assert corpus.task("valence").type == "regression"

    row = df.loc["Ses01F_impro01_M000"]  # the male actor speaks in a dialog named after the female one
    assert (row["speaker"], row["group"], row["split"], row["video"]) == ("Ses01M", "Session1", "train", "")
    assert row["audio"].endswith("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav")
    assert Path(row["audio"]).is_file()
    assert row["text"] == "Line 1 of Ses01F_impro01, felt hap."
    labels = ("emotion4", "emotion6", "valence", "arousal", "dominance")
    assert tuple(row[c] for c in labels) == ("hap", "hap", 4.0, 3.5, 2.5)

    exc = df.loc["Ses02M_impro01_F001"]
    assert (exc["emotion4"], exc["emotion6"], exc["speaker"]) == ("hap", "exc", "Ses02F")
    fru = df.loc["Ses03F_impro01_M002"]
    assert fru["emotion4"] == "" and fru["emotion6"] == "fru"
    xxx = df.loc["Ses03F_impro01_F003"]
    assert xxx["emotion4"] == "" and xxx["emotion6"] == "" and xxx["valence"] == 2.5

    assert (df["emotion4"] != "").sum() == 45 and (df["emotion6"] != "").sum() == 50
    assert corpus.info["excluded"] == {"emotion4": {"fru": 5, "sur": 5, "xxx": 5}, "emotion6": {"sur": 5, "xxx": 5}}
    assert corpus.info["labels"] == {"ang": 10, "exc": 10, "fru": 5, "hap": 5, "neu": 10, "sad": 10, "sur": 5, "xxx": 5}
    assert df.loc[NO_TRANSCRIPT, "text"] == "" and corpus.info["missing_text"] == 1
    assert sorted(df["speaker"].unique()) == [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]


def test_saved_manifest_keeps_unlabelled_rows(iemocap_tree, in_tmp_cwd):
    corpus = prepare({"root": str(iemocap_tree)}, in_tmp_cwd)
    save(corpus, in_tmp_cwd / "prepared")
    loaded = load(in_tmp_cwd / "prepared")
    validate(loaded, "corpus.json")
    assert loaded.manifest["emotion4"].tolist() == corpus.manifest["emotion4"].tolist()
    assert loaded.info["excluded"] == corpus.info["excluded"] and loaded.manifest["fold"].dtype.kind == "i"


def test_root_may_be_the_release_or_its_parent(iemocap_tree, in_tmp_cwd):
    outer = prepare({"root": str(iemocap_tree)}, in_tmp_cwd)
    inner = prepare({"root": str(iemocap_tree / "IEMOCAP_full_release")}, in_tmp_cwd)
    assert outer.root == inner.root and outer.manifest.equals(inner.manifest)
    with pytest.raises(ManifestError, match="no Session<K> folders"):
        prepare({"root": str(in_tmp_cwd)}, in_tmp_cwd)


def test_loso_folds_are_sessions(iemocap_tree, in_tmp_cwd):
    corpus = prepare({"root": str(iemocap_tree)}, in_tmp_cwd)
    df = corpus.manifest
    assert corpus.info["protocol"] == "loso" and set(df["split"]) == {"train"}
    assert (df["fold"] == df["group"].str.removeprefix("Session").astype(int) - 1).all()
    assert corpus.info["folds"] == {str(k): 12 for k in range(5)}
    assert df.groupby("speaker")["fold"].nunique().max() == 1
    for k in range(5):
        rest = df[df["fold"] != k]
        assert set(rest["emotion4"]) == {"", *EMOTION4} and set(rest["emotion6"]) == {"", *EMOTION6}


def test_loso_speaker_has_ten_folds(iemocap_tree, in_tmp_cwd):
    corpus = prepare({"root": str(iemocap_tree), "protocol": "loso_speaker"}, in_tmp_cwd)
    df = corpus.manifest
    assert (df["group"] == df["speaker"]).all() and df["fold"].nunique() == 10
    assert df.groupby("fold")["speaker"].unique().map(list).to_dict() == {
        i: [s] for i, s in enumerate(f"Ses0{k}{g}" for k in range(1, 6) for g in "FM")
    }
    assert df.groupby("fold").size().tolist() == [6] * 10


def test_scripted_option(iemocap_tree, in_tmp_cwd):
    scripted = prepare({"root": str(iemocap_tree), "scripted": True}, in_tmp_cwd)
    assert len(scripted.manifest) == 20 and scripted.manifest["id"].str.contains("_script").all()
    assert scripted.info["left_out_by_scripted"] == {"impro_dialogs": 5, "impro_utterances": 40}
    impro = prepare({"root": str(iemocap_tree), "scripted": "false"}, in_tmp_cwd)
    assert len(impro.manifest) == 40 and impro.manifest["id"].str.contains("_impro").all()
    assert len(prepare({"root": str(iemocap_tree), "scripted": "both"}, in_tmp_cwd).manifest) == 60
    with pytest.raises(ConfigError, match=r"corpora\.iemocap\.scripted = 'sometimes'"):
        prepare({"root": str(iemocap_tree), "scripted": "sometimes"}, in_tmp_cwd)
    with pytest.raises(ConfigError, match=r"corpora\.iemocap\.protocol = 'official'"):
        prepare({"root": str(iemocap_tree), "protocol": "official"}, in_tmp_cwd)


def test_leakage_guard(iemocap_tree, in_tmp_cwd):
    corpus = prepare({"root": str(iemocap_tree)}, in_tmp_cwd)
    leaky = corpus.manifest.copy()
    leaky.loc[leaky["id"] == "Ses02M_script01_1_F000", "fold"] = 0  # one Session2 utterance into fold 0
    with pytest.raises(ManifestError, match="groups appear on both sides of the split/fold partition.*Session2"):
        validate(dataclasses.replace(corpus, manifest=leaky), "iemocap")
    by_speaker = prepare({"root": str(iemocap_tree), "protocol": "loso_speaker"}, in_tmp_cwd)
    leaky = by_speaker.manifest.copy()
    leaky.loc[leaky["id"] == "Ses01F_impro01_F000", ["fold", "group"]] = [1, "Ses01M"]
    with pytest.raises(ManifestError, match="speakers appear on both sides.*Ses01F"):
        validate(dataclasses.replace(by_speaker, manifest=leaky), "iemocap")


def test_malformed_and_unknown_labels(tree, in_tmp_cwd):
    path = label_file(tree, 2, "Ses02M_impro01")
    original = path.read_text()
    path.write_text(original.replace("\tang\t[1.5000, 4.0000", "\tang\t[1.5000; 4.0000"))
    with pytest.raises(ManifestError, match=r"Ses02M_impro01\.txt: line 21: malformed label line '\[11\.0000"):
        prepare({"root": str(tree)}, in_tmp_cwd)
    path.write_text(original.replace("\tang\t", "\tanger\t"))
    with pytest.raises(ManifestError, match=r"Ses02M_impro01\.txt: line 21: unknown emotion label 'anger'"):
        prepare({"root": str(tree)}, in_tmp_cwd)
    path.write_text(original.replace("Ses02M_impro01_M001\t", "Ses02M_impro01_X001\t"))
    with pytest.raises(ManifestError, match=r"line 21: utterance id 'Ses02M_impro01_X001' does not look like"):
        prepare({"root": str(tree)}, in_tmp_cwd)


def test_duplicate_ids_and_escaping_paths(tree, in_tmp_cwd):
    path = label_file(tree, 4, "Ses04M_script01_1")
    original = path.read_text()
    path.write_text(original.replace("Ses04M_script01_1_M001\t", "Ses04M_script01_1_M000\t"))
    with pytest.raises(ManifestError, match=r"Ses04M_script01_1\.txt: duplicate utterance id Ses04M_script01_1_M000"):
        prepare({"root": str(tree)}, in_tmp_cwd)
    escape = "Ses04M_script01_1_M000/" + "../" * 6 + "outside"
    path.write_text(original.replace("Ses04M_script01_1_M000\t", f"{escape}\t"))
    escaped = r"Ses04M_script01_1\.txt: media path .*outside\.wav' escapes the corpus root"
    with pytest.raises(ManifestError, match=escaped):
        prepare({"root": str(tree)}, in_tmp_cwd)


def test_missing_or_odd_label_files(tree, in_tmp_cwd):
    label_dir = label_file(tree, 3, "x").parent
    (label_dir / "Ses03F_rehearsal01.txt").write_text("")
    with pytest.raises(ManifestError, match="Ses03F_rehearsal01.txt: cannot tell an improvised from a scripted"):
        prepare({"root": str(tree)}, in_tmp_cwd)
    shutil.rmtree(label_dir)
    with pytest.raises(ManifestError, match=r"Session3/dialog/EmoEvaluation: no EmoEvaluation/<dialog>\.txt"):
        prepare({"root": str(tree)}, in_tmp_cwd)


def test_segmenting_names_missing_wavs(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    small = dataclasses.replace(corpus, manifest=corpus.manifest.iloc[:3])
    gone = small.manifest["audio"].iloc[1]
    Path(gone).unlink()
    with pytest.raises(MediaError, match=re.escape(gone) + ": file not found"):
        segment_corpus(small, in_tmp_cwd / "seg.zarr", on_bad_media="error", workers=1)
    skipped = segment_corpus(small, in_tmp_cwd / "seg2.zarr", on_bad_media="skip", workers=1).skipped
    assert skipped == [{"id": small.manifest["id"].iloc[1], "file": gone, "reason": "file not found"}]
    seg = Segments(in_tmp_cwd / "seg2.zarr")
    assert seg.ids == [small.manifest["id"].iloc[0], small.manifest["id"].iloc[2]]
    assert abs(seg.duration(seg.ids[0]) - 0.5) < 0.01 and len(seg.frames(seg.ids[0])) == 0
