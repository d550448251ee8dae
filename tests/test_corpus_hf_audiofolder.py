"""hf_audiofolder recipe: real AudioFolder directories read by datasets (metadata CSV/JSONL, split folders,
folder-name labels), columns as written, the datasets cache kept out of the home folder, bad folders."""

import os
import shutil
from pathlib import Path

import pytest

from pipeline.core.errors import ConfigError, ManifestError
from pipeline.corpora.base import get_recipe
from tests.data.hf_audiofolder.data import EMOTIONS, generate, write_metadata
from tests.data.media import write_mp4, write_wav

TASKS = {"emotion": {"type": "classification"}, "valence": {"type": "regression"}}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("hf") / "tree")


@pytest.fixture
def tree(template, in_tmp_cwd):
    """A fresh copy per test, relative to the working directory (short paths in messages)."""
    return Path(shutil.copytree(template, "corpus"))


def prepare(root, **cfg):
    return get_recipe("hf_audiofolder")({"root": str(root), "tasks": TASKS, **cfg}, Path("x"))


def test_metadata_rows_columns_as_written_and_split_folders(tree):
    corpus = prepare(tree)
    df = corpus.manifest.set_index("id")
    assert len(df) == 40 and df.index[0] == "train_01_01_0"
    row = df.loc["validation_04_04_5"]
    assert row.audio == "corpus/validation/04/04_5.wav" and row.video == "" and row.split == "dev"
    assert (row.speaker, row.emotion, row.valence, row.text) == ("04", "happy", pytest.approx(0.85), "sentence 5 of 04")
    assert sorted(df["speaker"].unique()) == ["01", "02", "03", "04", "05"]  # not 1..5: read as text
    assert df.groupby("split")["speaker"].unique().map(sorted).to_dict() == {
        "train": ["01", "02", "03"], "dev": ["04"], "test": ["05"]
    }  # fmt: skip
    assert corpus.task("emotion").classes == EMOTIONS and corpus.task("valence").type == "regression"
    assert corpus.info | {"rows_per_split": None} == {
        "protocol": "official", "mode": "metadata", "splits": ["train", "validation", "test"],
        "speaker_independent": True, "rows_per_split": None,
    }  # fmt: skip


def test_jsonl_metadata_gives_the_same_manifest(in_tmp_cwd):
    a = prepare(generate(Path("csv"))).manifest
    b = prepare(generate(Path("jsonl"), fmt="jsonl")).manifest
    b["audio"] = b["audio"].str.replace("jsonl/", "csv/", n=1)
    assert a.drop(columns="valence").equals(b.drop(columns="valence"))
    assert a["valence"].tolist() == pytest.approx(b["valence"].tolist())


def test_folder_name_labels(in_tmp_cwd):
    root = generate(Path("folders"), layout="folders")
    corpus = prepare(root, tasks={"emotion": {"column": "label"}})
    df = corpus.manifest.set_index("id")
    assert corpus.info["mode"] == "folder labels" and corpus.task("emotion").classes == EMOTIONS
    assert df.loc["train_sad_02_3", ["audio", "emotion"]].tolist() == ["folders/train/sad/02_3.wav", "sad"]
    assert set(df.loc[df["split"] == "test", "emotion"]) == set(EMOTIONS)
    assert not corpus.info["speaker_independent"] and (df["speaker"] == df.index).all()
    with pytest.raises(ManifestError, match=r"^folders: no column 'emotion' in the audiofolder \(columns: \['label'\]\)"):
        prepare(root, tasks=["emotion"])


def test_without_split_folders_the_protocol_is_kfold(in_tmp_cwd):
    root = generate(Path("flat"), splits=False)
    corpus = prepare(root, folds=3)
    assert corpus.info["protocol"] == "kfold" and corpus.info["splits"] == ["train"]
    assert corpus.manifest.groupby("speaker")["fold"].first().to_dict() == {"01": 0, "02": 1, "03": 2, "04": 0, "05": 1}
    assert prepare(root, protocol="loso").manifest["fold"].nunique() == 5
    with pytest.raises(ManifestError, match=r"corpus hf_audiofolder: protocol official needs test rows"):
        prepare(root, protocol="official")


def test_id_speaker_text_and_group_columns(in_tmp_cwd):
    root = generate(Path("flat"), splits=False)
    rows = [{"file_name": f"01/01_{k}.wav", "uid": f"u{k}", "who": "A" if k < 4 else "B", "sess": "x" if k < 4 else "y",
             "emotion": EMOTIONS[k % 4], "valence": "" if k % 2 else 0.1 * k, "transcript": f"words {k}"} for k in range(8)]
    write_metadata(root / "metadata.csv", rows)
    corpus = prepare(root, id="uid", speaker="who", text="transcript", group="sess", protocol="random_split",
                     fractions={"train": 0.5, "dev": 0.0, "test": 0.5})
    df = corpus.manifest.set_index("id")
    assert list(df.index) == [f"u{k}" for k in range(8)] and df.loc["u5", ["speaker", "text"]].tolist() == ["B", "words 5"]
    assert corpus.info["unlabelled"] == {"valence": 4} and corpus.info["not_in_metadata"] == 32
    assert df.loc["u1", "group"] == "x" and df.groupby("group")["split"].nunique().max() == 1
    # an "id" column is the id by default; a video container is an audio-visual item
    write_mp4(root / "02/clip.mp4")
    rows = [{"id": r["uid"], **{k: v for k, v in r.items() if k != "uid"}} for r in rows]
    rows += [rows[-1] | {"file_name": "02/clip.mp4", "id": "", "who": "C"}]
    write_metadata(root / "metadata.csv", rows)
    df = prepare(root, speaker="who", protocol="loso").manifest.set_index("id")
    assert list(df.index) == [f"u{k}" for k in range(8)] + ["02_clip"]
    assert df.loc["02_clip", "video"] == df.loc["02_clip", "audio"] == "flat/02/clip.mp4" and df.loc["u0", "video"] == ""


def test_cache_goes_to_the_working_directory_not_home(tree, monkeypatch, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    prepare(tree)
    assert list(home.iterdir()) == []
    assert any(Path(".cache/hf_datasets").iterdir())


def test_unlisted_audio_is_never_dropped_silently(tree, capsys):
    write_wav(tree / "train/01/extra.wav", seconds=0.2)
    corpus = prepare(tree)
    assert corpus.info["not_in_metadata"] == 1 and len(corpus.manifest) == 40
    assert "warning: corpus: 1 audio file(s) are in no metadata file and are not items, e.g. ['corpus/train/01/extra.wav']" \
        in capsys.readouterr().out


def test_symlinks(in_tmp_cwd):
    real = generate(Path("real"), layout="folders")
    os.symlink(real.absolute(), "linked")
    df = prepare(Path("linked"), tasks={"emotion": {"column": "label"}}).manifest
    assert df["audio"].str.startswith("linked/train/").any()  # the link's path, not the resolved one
    # datasets does not follow linked folders: in label mode that would silently drop files
    shutil.move("real/train/sad", "elsewhere")
    os.symlink(Path("elsewhere").absolute(), "real/train/sad")
    with pytest.raises(ManifestError, match=r"^real: datasets did not list 8 audio file\(s\) under the root, e\.g\. "
                                            r"\['real/train/sad/01_3\.wav'.*does not follow symlinked folders"):
        prepare(real, tasks={"emotion": {"column": "label"}})


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda t: [m.write_text(m.read_text().replace("file_name,", "name,")) for m in t.glob("*/metadata.csv")],
         (r"^corpus: datasets cannot read it as an audiofolder \(metadata: \['corpus/test/metadata\.csv', "
          r"'corpus/train/metadata\.csv', 'corpus/validation/metadata\.csv'\]\): `file_name`.* must be present")),
        (lambda t: (t / "train/metadata.csv").write_text("file_name,mood\n01/01_0.wav,sad\n"),
         r"^corpus: datasets cannot read it as an audiofolder .*: Metadata files .* have different features"),
        (lambda t: (t / "train/metadata.csv").write_text('file_name,emotion\n01/01_0.wav,"sad\n'),
         r"^corpus: datasets cannot read it as an audiofolder .*EOF inside string"),
        (lambda t: (t / "train/metadata.csv").write_text(
            (t / "train/metadata.csv").read_text().replace("01/01_0.wav", "../outside.wav")),
         r"^corpus: datasets cannot read it as an audiofolder .*Invalid metadata file_name '\.\./outside\.wav'"),
        (lambda t: (t / "test/metadata.csv").write_text(
            (t / "test/metadata.csv").read_text().replace("05/05_1.wav", "05/05_0.wav")),
         r"^corpus: test file test/05/05_0\.wav: duplicate id 'test_05_05_0' \(first: test/05/05_0\.wav\)"),
        (lambda t: shutil.rmtree(t / "train") or shutil.rmtree(t / "validation") or shutil.rmtree(t / "test"),
         r"^corpus: datasets cannot read it as an audiofolder \(metadata: none\): The directory at .* doesn't contain"),
    ],
    ids=["no file_name", "other columns", "broken csv", "leaves folder", "duplicate", "empty"],
)
def test_bad_folders_are_one_error_naming_the_folder(tree, damage, message):
    damage(tree)
    with pytest.raises(ManifestError, match=message):
        prepare(tree)


def test_unknown_columns_and_options(tree):
    with pytest.raises(ManifestError, match=r"^corpus: no column 'arousal' in the audiofolder \(columns: \['emotion', "
                                            r"'speaker', 'text', 'valence'\]\)"):
        prepare(tree, tasks=["arousal"])
    with pytest.raises(ManifestError, match=r"no column 'label' .*folder-name labels \(column 'label'\) need no metadata"):
        prepare(tree, tasks={"emotion": {"column": "label"}})
    with pytest.raises(ManifestError, match=r"^corpus: no column 'spk'"):
        prepare(tree, speaker="spk")
    with pytest.raises(ManifestError, match=r"^corpus: train file train/01/01_3\.wav: unknown emotion label 'sad' "
                                            r"\(known: \['angry', 'happy', 'neutral'\]\)"):
        prepare(tree, tasks={"emotion": {"classes": ["angry", "happy", "neutral"]}})
    with pytest.raises(ConfigError, match=r"corpora\.hf_audiofolder: unknown key 'speakers' \(did you mean 'speaker'"):
        prepare(tree, speakers="speaker")
