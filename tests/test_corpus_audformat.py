"""audformat recipe: databases written by audformat itself (filewise and segmented tables, splits, schemes
with labels), labels through Database.get, split membership, every way a database can be wrong."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.segments import Segments
from pipeline.corpora.base import get_recipe
from pipeline.segment.decode import segment_corpus
from tests.data.audformat.data import EMOTIONS, LENGTH, generate

TASKS = {"emotion": {"type": "classification"}, "arousal": {"type": "regression"}}


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    base = tmp_path_factory.mktemp("audformat")
    return {"files": generate(base / "files"), "segments": generate(base / "segments", segmented=True)}


@pytest.fixture
def tree(templates, in_tmp_cwd):
    """A fresh copy per test, relative to the working directory (short paths in messages)."""
    return Path(shutil.copytree(templates["files"], "corpus"))


@pytest.fixture
def sessions(templates, in_tmp_cwd):
    return Path(shutil.copytree(templates["segments"], "sessions"))


def prepare(root, **cfg):
    return get_recipe("audformat")({"root": str(root), "tasks": TASKS, **cfg}, Path("x"))


def edit(root, change):
    """Load the database with audformat, change it, save it back with audformat."""
    import audformat

    db = audformat.Database.load(str(root), load_data=True)
    change(db, audformat)
    db.save(str(root))


def test_filewise_tables_splits_and_scheme_classes(tree):
    corpus = prepare(tree, tasks={**TASKS, "gender": None})
    df = corpus.manifest.set_index("id")
    assert len(df) == 40 and "start" not in df
    row = df.loc["wav_s2_5"]
    assert (row.audio, row.video, row.split) == ("corpus/wav/s2_5.wav", "", "train")
    assert (row.speaker, row.text, row.emotion) == ("s2", "sentence 5 of s2", "happy")
    assert row.arousal == pytest.approx(0.65) and row.gender == "male"  # gender: from the speaker scheme's labels
    assert corpus.task("emotion").classes == EMOTIONS  # the scheme's order, not sorted
    assert corpus.task("gender").classes == ["female", "male"]
    assert df.groupby("split")["speaker"].unique().map(sorted).to_dict() == {
        "train": ["s1", "s2", "s3"], "dev": ["s4"], "test": ["s5"]
    }  # fmt: skip
    assert corpus.info | {"rows_per_split": None} == {
        "protocol": "official", "database": "fake-emotion", "splits": {"dev": "dev", "test": "test", "train": "train"},
        "left_out": 0, "speaker_independent": True, "rows_per_split": None,
    }  # fmt: skip


def test_segmented_tables_are_windows(sessions, tmp_path):
    corpus = prepare(sessions, tasks={**TASKS, "gender": None})
    df = corpus.manifest.set_index("id")
    assert len(df) == 40 and "unlabelled" not in corpus.info  # no whole-file rows beside the segments
    row = df.loc["wav_s3_session_400-700"]
    assert (row.audio, row.start, row.end) == ("sessions/wav/s3_session.wav", pytest.approx(0.4), pytest.approx(0.7))
    assert (row.emotion, row.gender, row.speaker, row.split) == ("happy", "female", "s3", "train")
    segment_corpus(corpus, tmp_path / "seg.zarr", cache=tmp_path / "cache", workers=1)
    seg = Segments(tmp_path / "seg.zarr")
    for uid, emotion in zip(corpus.manifest["id"][:8], corpus.manifest["emotion"][:8]):
        audio = seg.audio(uid)
        assert abs(len(audio) - LENGTH * 16000) <= 16, uid
        peak = np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / len(audio)
        assert peak == pytest.approx(200.0 + 80.0 * EMOTIONS.index(emotion), abs=5), uid


def test_csv_tables_give_the_same_manifest(in_tmp_cwd):
    a = prepare(generate(Path("pq"))).manifest
    b = prepare(generate(Path("csv"), storage_format="csv")).manifest
    b["audio"] = b["audio"].str.replace("csv/", "pq/", n=1)
    assert a.equals(b)


def test_without_splits_the_protocol_is_kfold(in_tmp_cwd):
    root = generate(Path("nosplit"), splits=False)
    corpus = prepare(root, folds=3)
    assert corpus.info["protocol"] == "kfold" and "splits" not in corpus.info
    assert corpus.manifest.groupby("speaker")["fold"].first().to_dict() == {"s1": 0, "s2": 1, "s3": 2, "s4": 0, "s5": 1}
    with pytest.raises(ManifestError, match=r"^nosplit/db\.yaml: splits is set, but the database has no splits"):
        prepare(root, splits={"train": "train"})


def test_splits_can_be_mapped_left_out_or_ignored(tree):
    corpus = prepare(tree, splits={"train": "train", "dev": None, "test": "test"}, dev_fraction=0.3)
    assert corpus.info["left_out"] == 8 and "s4" not in set(corpus.manifest["speaker"])
    assert corpus.info["dev"] == "carved from train by whole speakers"
    loso = prepare(tree, protocol="loso")
    assert loso.manifest["fold"].nunique() == 5 and "splits" not in loso.info
    with pytest.raises(ManifestError, match=r"splits is set, but protocol loso does not use them"):
        prepare(tree, protocol="loso", splits={"dev": None})
    with pytest.raises(ManifestError, match=r"splits names \['valid'\], not splits of the database"):
        prepare(tree, splits={"valid": "dev"})
    edit(tree, lambda db, af: db.splits.__setitem__("dev", af.Split("other")))
    with pytest.raises(ManifestError, match=r"^corpus/db\.yaml: split 'dev' has type 'other'; say which split it is"):
        prepare(tree)
    assert prepare(tree, splits={"train": "train", "dev": "dev", "test": "test"}).info["rows_per_split"]["dev"] == 8


def test_tables_option_restricts_where_labels_are_read(tree):
    corpus = prepare(tree, tables=["emotion.categories.train", "emotion.categories.test"])
    assert sorted(corpus.manifest["speaker"].unique()) == ["s1", "s2", "s3", "s5"]
    with pytest.raises(ManifestError, match=r"^corpus/db\.yaml: no tables \['emotion'\] \(tables: \["):
        prepare(tree, tables=["emotion"])


def _add_table(table_id, files, emotions, split=None):
    def change(db, af):
        db[table_id] = af.Table(af.filewise_index(files), split_id=split)
        db[table_id]["emotion"] = af.Column(scheme_id="emotion")
        db[table_id]["emotion"].set(emotions)

    return change


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda t: (t / "db.yaml").unlink(), r"^corpus/db\.yaml: audformat database header not found"),
        (lambda t: (t / "db.yaml").write_text("name: [unclosed\n"),
         r"^corpus/db\.yaml: cannot load the audformat database \(ParserError: while parsing a flow sequence"),
        (lambda t: (t / "db.emotion.categories.dev.parquet").unlink(),
         r"^corpus/db\.yaml: cannot load the audformat database \(RuntimeError: No file found for table"),
        (lambda t: edit(t, _add_table("more", ["../outside.wav"], ["sad"], "train")),
         r"^corpus/db\.yaml: \.\./outside\.wav: media path '\.\./outside\.wav' escapes the corpus root corpus"),
        (lambda t: edit(t, _add_table("more", ["wav/s1_0.wav"], ["sad"], "test")),
         r"^corpus/db\.yaml: audformat cannot read '\w+' \(Found overlapping data in column 'emotion'"),
        (lambda t: edit(t, _add_table("more", ["wav/s1_0.wav"], ["neutral"], "test")),
         r"^corpus/db\.yaml: wav/s1_0\.wav lies in the tables of splits \['test', 'train'\], so it has no split"),
        (lambda t: edit(t, _add_table("more", ["wav/extra.wav"], ["sad"])),
         r"^corpus/db\.yaml: wav/extra\.wav lies in no split's table, so it has no split .*protocol kfold"),
    ],
    ids=["no header", "bad yaml", "no table file", "escapes root", "labels disagree", "two splits", "no split"],
)
def test_bad_databases_are_one_error_naming_db_yaml(tree, damage, message):
    damage(tree)
    with pytest.raises(ManifestError, match=message):
        prepare(tree)


def test_unknown_names_and_options(tree):
    with pytest.raises(ManifestError, match=r"^corpus/db\.yaml: no scheme or column 'valence' \(schemes: \['arousal', "
                                            r"'emotion', 'speaker', 'transcription'\]; columns: \['gender'\]\)"):
        prepare(tree, tasks=["valence"])
    with pytest.raises(ManifestError, match=r"no scheme or column 'spk'"):
        prepare(tree, speaker="spk")
    with pytest.raises(ManifestError, match=r"^corpus/db\.yaml: wav/s1_0\.wav: unknown emotion label 'neutral' "
                                            r"\(known: \['happy', 'sad'\]\)"):
        prepare(tree, tasks={"emotion": {"classes": ["happy", "sad"]}})
    with pytest.raises(ConfigError, match=r"corpora\.audformat: unknown key 'table' \(did you mean 'tables'"):
        prepare(tree, table="files")
