"""EATD-Corpus recipe on fake trees in both real layouts (tests/data/eatd/data.py)."""

import re
import shutil

import pytest

from pipeline.corpora.base import get_recipe
from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.manifest import validate
from pipeline.core.errors import MediaError
from pipeline.segment.decode import segment_corpus
from tests.data.eatd.data import generate

prepare = get_recipe("eatd")


def at(path) -> str:
    """Regex for an error message that starts with ``path``."""
    return "^" + re.escape(str(path))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("eatd") / "EATD-Corpus")


@pytest.fixture
def copy(tree, tmp_path):
    """A private copy of the fake tree that a test may damage."""
    return shutil.copytree(tree, tmp_path / "EATD-Corpus")


def test_answers_subjects_and_labels(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    df = corpus.manifest.set_index("id")
    assert len(df) == 12 * 3 and df["speaker"].nunique() == 12
    assert df.loc["t_2_neutral", "speaker"] == "t_2"
    assert df.loc["t_2_negative", "emotion3"] == "negative" and df.loc["v_3_positive", "emotion3"] == "positive"
    assert df.loc["t_1_positive", "audio"].endswith("t_1/positive.wav") and (df["video"] == "").all()
    assert df.loc["t_1_neutral", "text"] == "我平时周末在家看书，偶尔出去散步。"
    # index SDS from new_label.txt; depressed ⇔ index SDS ≥ 53
    assert df.loc["t_2_positive", "sds"] == float((tree / "t_2" / "new_label.txt").read_text())
    assert (df["depression"] == df["sds"].map(lambda s: "depressed" if s >= 53 else "healthy")).all()
    per_subject = df.groupby("speaker")["depression"].first()
    assert sorted(per_subject[per_subject == "depressed"].index) == ["t_2", "t_5", "t_7", "v_1", "v_3"]
    # t_8 has no new_label.txt: raw × 1.25, recorded
    assert df.loc["t_8_positive", "sds"] == pytest.approx(float((tree / "t_8" / "label.txt").read_text()) * 1.25)
    assert corpus.info["sds_source"] == {"new_label.txt": 11, "label.txt×1.25": 1}
    assert corpus.info["layout"] == "t_N/v_N" and corpus.info["depressed_subjects"] == {"test": 2, "train": 3}
    tasks = {t.name: t for t in corpus.tasks}
    assert tasks["depression"].classes == ["healthy", "depressed"] and tasks["depression"].positive == "depressed"
    assert tasks["depression"].unit == tasks["sds"].unit == "speaker" and tasks["sds"].type == "regression"
    assert tasks["emotion3"].classes == ["positive", "neutral", "negative"] and tasks["emotion3"].unit == "utterance"


def test_official_code_layout_gives_the_same_manifest(tree, tmp_path, in_tmp_cwd):
    official = generate(tmp_path / "official", layout="official")
    a = prepare({"root": str(tree)}, in_tmp_cwd).manifest
    b = prepare({"root": str(official)}, in_tmp_cwd).manifest
    assert prepare({"root": str(official)}, in_tmp_cwd).info["layout"] == "Data/ValidationData"
    cols = ["id", "speaker", "split", "text", "depression", "sds", "emotion3"]
    assert a[cols].equals(b[cols])
    assert b.set_index("id").loc["v_3_negative", "audio"].endswith("ValidationData/3/negative.wav")


def test_denoised_audio_option(tree, in_tmp_cwd):
    df = prepare({"root": str(tree), "audio": "denoised"}, in_tmp_cwd).manifest
    assert df["audio"].str.endswith("_out.wav").all()
    with pytest.raises(ConfigError, match=r"corpora\.eatd\.audio = 'clean'"):
        prepare({"root": str(tree), "audio": "clean"}, in_tmp_cwd)


def test_official_split_carves_dev_subjects_from_train(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree), "seed": 0}, in_tmp_cwd)
    df = corpus.manifest
    assert corpus.info["splits"] == {"dev": 3, "test": 12, "train": 21}
    assert corpus.info["subjects"] == {"dev": 1, "test": 4, "train": 7}
    assert set(df.loc[df["split"] == "test", "speaker"].str[0]) == {"v"}
    assert set(df.loc[df["split"] != "test", "speaker"].str[0]) == {"t"}
    assert df.groupby("speaker")["split"].nunique().max() == 1
    assert set(df.loc[df["split"] == "train", "depression"]) == {"healthy", "depressed"}
    bigger = prepare({"root": str(tree), "dev_fraction": 0.3}, in_tmp_cwd).info["subjects"]
    assert bigger["dev"] == 3 and bigger["train"] == 5
    with pytest.raises(ConfigError, match=r"corpora\.eatd\.protocol = 'loso'"):
        prepare({"root": str(tree), "protocol": "loso"}, in_tmp_cwd)


def test_leakage_guard_rejects_a_subject_on_both_sides(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    corpus.manifest.loc[corpus.manifest["id"] == "t_1_positive", "split"] = "test"
    with pytest.raises(ManifestError, match="speakers appear on both sides.*t_1"):
        validate(corpus, "eatd")


@pytest.mark.parametrize("content", ["abc", "", "52 53", "nan"])
def test_bad_label_txt_names_the_file(copy, in_tmp_cwd, content):
    (copy / "t_3" / "label.txt").write_text(content)  # new_label.txt exists, label.txt is still checked
    with pytest.raises(ManifestError, match=at(copy / "t_3" / "label.txt") + ": SDS score .* is not a number"):
        prepare({"root": str(copy)}, in_tmp_cwd)


def test_subject_without_any_label_file(copy, in_tmp_cwd):
    (copy / "v_2" / "label.txt").unlink()
    (copy / "v_2" / "new_label.txt").unlink()
    with pytest.raises(ManifestError, match=at(copy / "v_2") + ": neither new_label.txt nor label.txt"):
        prepare({"root": str(copy)}, in_tmp_cwd)


def test_depression_threshold_is_inclusive(copy, in_tmp_cwd):
    (copy / "t_1" / "new_label.txt").write_text("53")
    (copy / "t_2" / "new_label.txt").write_text("52.75")
    corpus = prepare({"root": str(copy)}, in_tmp_cwd)
    by_subject = corpus.manifest.groupby("speaker")["depression"].first()
    assert by_subject["t_1"] == "depressed" and by_subject["t_2"] == "healthy"
    assert set(corpus.info["sds_mismatch"]) == {"t_1", "t_2"}  # new_label.txt ≠ label.txt × 1.25


def test_missing_transcript_gives_empty_text_and_is_recorded(copy, in_tmp_cwd):
    (copy / "t_4" / "neutral.txt").unlink()
    corpus = prepare({"root": str(copy)}, in_tmp_cwd)
    assert corpus.manifest.set_index("id").loc["t_4_neutral", "text"] == ""
    assert corpus.info["missing_text"] == ["t_4_neutral"]


def test_duplicate_subject_ids_are_rejected(tmp_path, in_tmp_cwd):
    root = generate(tmp_path / "official", layout="official")
    shutil.copytree(root / "Data" / "7", root / "Data" / "07")  # both become t_7
    with pytest.raises(ManifestError, match=r"duplicate utterance ids \['t_7_positive'"):
        prepare({"root": str(root)}, in_tmp_cwd)


def test_layout_problems_are_named(tmp_path, tree, in_tmp_cwd):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no EATD subject folders"):
        prepare({"root": str(tmp_path / "empty")}, in_tmp_cwd)
    only_train = tmp_path / "only_train"
    shutil.copytree(tree / "t_1", only_train / "t_1")
    with pytest.raises(ManifestError, match=r"no test subjects \(v_N"):
        prepare({"root": str(only_train)}, in_tmp_cwd)
    mixed = shutil.copytree(tree, tmp_path / "mixed")
    shutil.copytree(tree / "t_1", mixed / "Data" / "1")
    with pytest.raises(ManifestError, match="both t_N/v_N folders and Data/ValidationData"):
        prepare({"root": str(mixed)}, in_tmp_cwd)
    with pytest.raises(ManifestError, match=r"corpora\.eatd\.root is not set"):
        prepare({}, in_tmp_cwd)


def test_subject_folder_symlinked_from_elsewhere_is_read_through_the_link(copy, tmp_path, in_tmp_cwd):
    outside = shutil.move(copy / "v_4", tmp_path / "elsewhere")
    (copy / "v_4").symlink_to(outside, target_is_directory=True)
    df = prepare({"root": str(copy)}, in_tmp_cwd).manifest
    assert all("EATD-Corpus/v_4/" in p for p in df.loc[df["speaker"] == "v_4", "audio"])  # the link's path


def test_missing_wav_is_reported_by_the_segment_stage(copy, in_tmp_cwd):
    (copy / "t_1" / "neutral.wav").unlink()
    corpus = prepare({"root": str(copy)}, in_tmp_cwd)  # the recipe lists it anyway
    corpus.manifest = corpus.manifest[corpus.manifest["speaker"].isin(["t_1", "v_1"])]
    with pytest.raises(MediaError, match=r"t_1/neutral\.wav: file not found"):
        segment_corpus(corpus, in_tmp_cwd / "seg.zarr", on_bad_media="error")
    skipped = segment_corpus(corpus, in_tmp_cwd / "seg.zarr", on_bad_media="skip").skipped
    assert [(s["id"], s["reason"]) for s in skipped] == [("t_1_neutral", "file not found")]
    assert skipped[0]["file"].endswith("t_1/neutral.wav")
