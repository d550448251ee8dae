"""MELD recipe on a fake release: parsing, official split, encodings, quirks and bad input."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.corpora.base import get_recipe
from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.manifest import validate
from pipeline.core.errors import MediaError
from pipeline.core.media import ffmpeg_exe
from pipeline.core.segments import Segments
from pipeline.segment.decode import segment_corpus
from tests.data.meld.data import EMOTIONS, QUOTE_UTF8_MOJIBAKE, generate

prepare = get_recipe("meld")


@pytest.fixture(scope="module")
def meld_tree(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("meld") / "tree")


@pytest.fixture
def tree(meld_tree, tmp_path) -> Path:
    """A private copy of the fake release that a test may damage."""
    return Path(shutil.copytree(meld_tree, tmp_path / "tree"))


def edit_rows(csv_path: Path, edit, encoding: str = "cp1252") -> None:
    """Rewrite a label file after ``edit(rows)`` changed its list of row dicts in place."""
    rows = list(csv.DictReader(io.StringIO(csv_path.read_bytes().decode(encoding), newline="")))
    edit(rows)
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    csv_path.write_bytes(buf.getvalue().encode(encoding))


def test_rows_ids_labels_and_text(meld_tree, in_tmp_cwd):
    corpus = prepare({"root": str(meld_tree)}, in_tmp_cwd)
    df = corpus.manifest
    assert corpus.info["protocol"] == "official" and corpus.info["utterances"] == {"train": 14, "dev": 7, "test": 7}
    assert df["id"].is_unique and df["id"].str.fullmatch(r"(train|dev|test)_dia\d+_utt\d+").all()
    assert (df["group"] == df["id"].str.replace(r"_utt\d+$", "", regex=True)).all()
    assert corpus.info["dialogues"] == {"train": 4, "dev": 3, "test": 3}
    for split, part in df.groupby("split"):
        assert sorted(part["emotion"]) == sorted(EMOTIONS * (2 if split == "train" else 1))
        assert set(part["sentiment"]) == {"neutral", "positive", "negative"}
    row = df.set_index("id").loc["dev_dia1_utt0"]
    assert row["audio"] == row["video"] and row["audio"].endswith("MELD.Raw/dev_splits_complete/dia1_utt0.mp4")
    assert Path(row["audio"]).is_file()
    assert [t.name for t in corpus.tasks] == ["emotion", "sentiment"]
    assert corpus.task("emotion").classes == EMOTIONS
    # The first train line is cp1252 with a 0x92 quote: UTF-8 fails, cp1252 decodes it.
    assert corpus.info["encodings"]["train_sent_emo.csv"] == "cp1252"
    assert df.loc[df["split"] == "train", "text"].iloc[0] == "I\u2019m fine, \"really\"."
    assert df["speaker"].str.len().gt(0).all()


def test_root_may_be_the_release_folder_or_its_parent(meld_tree, in_tmp_cwd):
    outer = prepare({"root": str(meld_tree)}, in_tmp_cwd)
    inner = prepare({"root": str(meld_tree / "MELD.Raw")}, in_tmp_cwd)
    assert outer.root == inner.root and outer.manifest.equals(inner.manifest)
    with pytest.raises(ManifestError, match="no train_sent_emo.csv here or in MELD.Raw"):
        prepare({"root": str(meld_tree / "MELD.Raw" / "train_splits")}, in_tmp_cwd)


def test_utf8_mojibake_is_kept_as_is(tree, in_tmp_cwd):
    path = tree / "MELD.Raw" / "train_sent_emo.csv"
    text = path.read_bytes().decode("cp1252").replace("\u2019", QUOTE_UTF8_MOJIBAKE)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # with a BOM, as Excel writes it
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    assert corpus.info["encodings"]["train_sent_emo.csv"] == "utf-8-sig"
    assert corpus.manifest["text"].iloc[0] == "I\u00e2\u20ac\u2122m fine, \"really\"."


def test_official_split_keeps_dialogues_apart_but_shares_speakers(meld_tree, in_tmp_cwd):
    corpus = prepare({"root": str(meld_tree)}, in_tmp_cwd)
    df = corpus.manifest
    assert df.groupby("group")["split"].nunique().max() == 1
    recurring = df.groupby("speaker")["split"].nunique()
    assert recurring.max() > 1  # characters recur: the protocol shares speakers
    with pytest.raises(ManifestError, match="speakers appear on both sides"):
        validate(corpus, "meld", speakers_shared=False)
    leaky = df.copy()
    leaky.loc[leaky["id"] == "dev_dia0_utt0", "group"] = "train_dia0"
    with pytest.raises(ManifestError, match="groups appear on both sides.*train_dia0"):
        validate(dataclasses.replace(corpus, manifest=leaky), "meld", speakers_shared=True)
    with pytest.raises(ConfigError, match=r"corpora\.meld\.protocol = 'loso'"):
        prepare({"root": str(meld_tree), "protocol": "loso"}, in_tmp_cwd)


def test_unknown_labels_name_file_line_and_value(tree, in_tmp_cwd):
    dev = tree / "MELD.Raw" / "dev_sent_emo.csv"
    edit_rows(dev, lambda rows: rows[2].update(Emotion="happy"))
    with pytest.raises(ManifestError, match=r"dev_sent_emo\.csv: line 4: unknown Emotion label 'happy'"):
        prepare({"root": str(tree)}, in_tmp_cwd)
    edit_rows(dev, lambda rows: rows[2].update(Emotion="Joy", Sentiment="mixed"))
    with pytest.raises(ManifestError, match=r"dev_sent_emo\.csv: line 4: unknown Sentiment label 'mixed'"):
        prepare({"root": str(tree)}, in_tmp_cwd)


def test_malformed_lines_and_duplicates(tree, in_tmp_cwd):
    test_csv = tree / "MELD.Raw" / "test_sent_emo.csv"
    original = test_csv.read_bytes()
    edit_rows(test_csv, lambda rows: rows[1].update(Utterance_ID="1a"))
    with pytest.raises(ManifestError, match=r"test_sent_emo\.csv: line 3: Utterance_ID '1a' is not"):
        prepare({"root": str(tree)}, in_tmp_cwd)
    test_csv.write_bytes(original + b"8,Too short,Joey,joy\r\n")
    with pytest.raises(ManifestError, match=r"test_sent_emo\.csv: line 9: expected 11 fields"):
        prepare({"root": str(tree)}, in_tmp_cwd)
    test_csv.write_bytes(original.replace(b"Dialogue_ID", b"Dialog_ID"))
    with pytest.raises(ManifestError, match=r"test_sent_emo\.csv: missing columns \['Dialogue_ID'\]"):
        prepare({"root": str(tree)}, in_tmp_cwd)

    def duplicate(rows):
        rows[4].update(Dialogue_ID=rows[0]["Dialogue_ID"], Utterance_ID=rows[0]["Utterance_ID"])

    test_csv.write_bytes(original)
    edit_rows(test_csv, duplicate)
    duplicated = r"test_sent_emo\.csv: line 6: duplicate utterance dia0_utt0 \(first at line 2\)"
    with pytest.raises(ManifestError, match=duplicated):
        prepare({"root": str(tree)}, in_tmp_cwd)


def test_paths_cannot_escape_the_root(tree, in_tmp_cwd):
    train = tree / "MELD.Raw" / "train_sent_emo.csv"
    original = train.read_bytes()
    edit_rows(train, lambda rows: rows[0].update(Dialogue_ID="../../../etc/passwd"))
    with pytest.raises(ManifestError, match=r"train_sent_emo\.csv: line 2: Dialogue_ID '\.\./"):
        prepare({"root": str(tree)}, in_tmp_cwd)
    # A clip folder that links to somewhere outside the release is read through the link (lexical path).
    train.write_bytes(original)
    outside = shutil.move(tree / "MELD.Raw" / "dev_splits_complete", in_tmp_cwd / "elsewhere")
    (tree / "MELD.Raw" / "dev_splits_complete").symlink_to(outside)
    df = prepare({"root": str(tree)}, in_tmp_cwd).manifest
    assert df.loc[df["split"] == "dev", "audio"].str.contains("MELD.Raw/dev_splits_complete/").all()


def test_missing_label_file_or_clip_folder(tree, in_tmp_cwd):
    shutil.rmtree(tree / "MELD.Raw" / "output_repeated_splits_test")
    no_folder = r"output_repeated_splits_test: clip folder for test_sent_emo\.csv not found"
    with pytest.raises(ManifestError, match=no_folder):
        prepare({"root": str(tree)}, in_tmp_cwd)
    (tree / "MELD.Raw" / "dev_sent_emo.csv").unlink()
    with pytest.raises(ManifestError, match=r"dev_sent_emo\.csv: label file not found"):
        prepare({"root": str(tree)}, in_tmp_cwd)


def test_final_videos_test_copies(tree, in_tmp_cwd):
    clips = tree / "MELD.Raw" / "output_repeated_splits_test"
    (clips / "dia1_utt1.mp4").rename(clips / "final_videos_testdia1_utt1.mp4")
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    audio = corpus.manifest.set_index("id")["audio"]
    assert audio["test_dia1_utt1"].endswith("/final_videos_testdia1_utt1.mp4")
    assert audio["test_dia1_utt0"].endswith("/dia1_utt0.mp4")
    assert corpus.info["test_clips_final_videos_test"] == 1
    shutil.copyfile(clips / "dia1_utt0.mp4", clips / "final_videos_testdia1_utt0.mp4")
    plain_first = prepare({"root": str(tree)}, in_tmp_cwd).manifest.set_index("id")["audio"]
    prefixed_first = prepare({"root": str(tree), "prefer_final_videos_test": True}, in_tmp_cwd)
    assert plain_first["test_dia1_utt0"].endswith("/dia1_utt0.mp4")
    prefixed_audio = prefixed_first.manifest.set_index("id")["audio"]
    assert prefixed_audio["test_dia1_utt0"].endswith("/final_videos_testdia1_utt0.mp4")
    assert prefixed_first.info["test_clips_final_videos_test"] == 2


def test_six_channel_audio_decodes_to_mono_and_missing_clips_are_named(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    df = corpus.manifest
    six = df.set_index("id").loc["train_dia0_utt0", "audio"]
    probe = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", six], capture_output=True, text=True).stderr
    assert re.search(r"Audio: .*(5\.1|6 channels)", probe), probe
    small = dataclasses.replace(corpus, manifest=df[df["id"].isin(["train_dia0_utt0", "dev_dia0_utt0"])])
    assert segment_corpus(small, in_tmp_cwd / "seg.zarr", fps=0, workers=1).skipped == []
    audio = Segments(in_tmp_cwd / "seg.zarr").audio("train_dia0_utt0")
    assert audio.ndim == 1 and abs(len(audio) - 0.4 * 16000) < 800 and abs(audio).max() > 0.1

    gone = df.set_index("id").loc["dev_dia0_utt0", "audio"]
    Path(gone).unlink()
    with pytest.raises(MediaError, match=re.escape(gone) + ": file not found"):
        segment_corpus(small, in_tmp_cwd / "seg2.zarr", on_bad_media="error", workers=1)
    skipped = segment_corpus(small, in_tmp_cwd / "seg3.zarr", fps=0, on_bad_media="skip", workers=1).skipped
    assert skipped == [{"id": "dev_dia0_utt0", "file": gone, "reason": "file not found"}]
