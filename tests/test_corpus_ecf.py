"""ECF 2.0 recipe on a fake release: parsing, the three split protocols and bad input."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from pipeline.corpora.base import get_recipe
from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.manifest import validate
from pipeline.core.errors import MediaError
from pipeline.segment.decode import segment_corpus
from tests.data.ecf.data import EMOTIONS, generate

prepare = get_recipe("ecf")


@pytest.fixture(scope="module")
def ecf_tree(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("ecf") / "tree")


@pytest.fixture
def tree(ecf_tree, tmp_path) -> Path:
    """A private copy of the fake release that a test may damage."""
    return Path(shutil.copytree(ecf_tree, tmp_path / "tree"))


def edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=4))


def per_split(df, column="group"):
    return {s: int(df.loc[df["split"] == s, column].nunique()) for s in ("train", "dev", "test")}


def test_rows_ids_labels_and_text(ecf_tree, in_tmp_cwd):
    corpus = prepare({"root": str(ecf_tree)}, in_tmp_cwd)
    df = corpus.manifest.set_index("id")
    assert len(df) == 30 and df.index.is_unique and corpus.task("emotion").classes == EMOTIONS
    assert df.index.str.fullmatch(r"conv\d+_utt\d").all()
    row = df.loc["conv4_utt2"]
    assert row["group"] == "conv4" and row["emotion"] == EMOTIONS[(3 * 3 + 1) % 7]
    assert row["text"] == f"Utterance 2 of conversation 4 , feeling {row['emotion']} ."
    assert row["audio"] == row["video"] and row["audio"].endswith("tree/train/dia4utt2.mp4")
    assert Path(row["audio"]).is_file()
    assert "Ross and Rachel" in set(df["speaker"])
    assert corpus.info["emotion_cause_pairs"] == sum(e != "neutral" for e in df["emotion"])


def test_conversation_split_is_seeded_and_by_conversation(ecf_tree, in_tmp_cwd):
    corpus = prepare({"root": str(ecf_tree), "seed": 3}, in_tmp_cwd)
    df = corpus.manifest
    assert corpus.info["protocol"] == "conversation_split"
    assert per_split(df) == {"train": 8, "dev": 1, "test": 1}
    assert corpus.info["utterances"] == {"train": 24, "dev": 3, "test": 3}
    assert df.groupby("group")["split"].nunique().max() == 1
    assert set(df.loc[df["split"] == "train", "emotion"]) == set(EMOTIONS)
    again = prepare({"root": str(ecf_tree), "seed": 3}, in_tmp_cwd).manifest
    other = prepare({"root": str(ecf_tree), "seed": 4}, in_tmp_cwd).manifest
    assert again["split"].equals(df["split"]) and not other["split"].equals(df["split"])
    wide = prepare({"root": str(ecf_tree), "dev_fraction": 0.2, "test_fraction": 0.3}, in_tmp_cwd).manifest
    assert per_split(wide) == {"train": 5, "dev": 2, "test": 3}
    with pytest.raises(ConfigError, match=r"corpora\.ecf\.test_fraction = 1\.5: Input should be less than 1"):
        prepare({"root": str(ecf_tree), "test_fraction": 1.5}, in_tmp_cwd)
    with pytest.raises(ManifestError, match="10 conversations cannot fill dev"):
        prepare({"root": str(ecf_tree), "dev_fraction": 0.5, "test_fraction": 0.5}, in_tmp_cwd)


def test_split_file_json_and_csv(ecf_tree, in_tmp_cwd):
    by_split = {"train": list(range(1, 8)), "dev": [8], "test": ["9", 10]}
    (in_tmp_cwd / "splits.json").write_text(json.dumps(by_split))
    corpus = prepare({"root": str(ecf_tree), "split_file": "splits.json"}, in_tmp_cwd)
    assert corpus.info["protocol"] == "split_file" and corpus.info["split_file_unused_ids"] == 0
    assert per_split(corpus.manifest) == {"train": 7, "dev": 1, "test": 2}
    assert set(corpus.manifest.loc[corpus.manifest["split"] == "test", "group"]) == {"conv9", "conv10"}

    lines = ["conversation_ID,split", *[f"{c},{'test' if c > 8 else 'train'}" for c in range(1, 12)]]
    (in_tmp_cwd / "splits.csv").write_text("\n".join(lines) + "\n")
    corpus = prepare({"root": str(ecf_tree), "split_file": "splits.csv"}, in_tmp_cwd)
    assert per_split(corpus.manifest) == {"train": 8, "dev": 0, "test": 2}
    assert corpus.info["split_file_unused_ids"] == 1  # conversation 11 is not in the training JSON

    (in_tmp_cwd / "partial.json").write_text(json.dumps({str(c): "train" for c in range(1, 10)}))
    with pytest.raises(ManifestError, match=r"partial\.json: no split for 1 conversation\(s\), e\.g\. \['conv10'\]"):
        prepare({"root": str(ecf_tree), "split_file": "partial.json"}, in_tmp_cwd)
    (in_tmp_cwd / "bad.csv").write_text("conversation_ID,split\n1,train\n2,holdout\n")
    with pytest.raises(ManifestError, match=r"bad\.csv: line 3: unknown split 'holdout'"):
        prepare({"root": str(ecf_tree), "split_file": "bad.csv"}, in_tmp_cwd)
    (in_tmp_cwd / "twice.json").write_text(json.dumps({"train": [1, 2], "test": [2]}))
    with pytest.raises(ManifestError, match="conversation 2 is assigned to both train and test"):
        prepare({"root": str(ecf_tree), "split_file": "twice.json"}, in_tmp_cwd)
    with pytest.raises(ConfigError, match=r"corpora\.ecf: protocol split_file needs split_file"):
        prepare({"root": str(ecf_tree), "protocol": "split_file"}, in_tmp_cwd)


def test_official_protocol_uses_the_evaluation_file(ecf_tree, in_tmp_cwd):
    corpus = prepare({"root": str(ecf_tree), "protocol": "official", "dev_fraction": 0.2}, in_tmp_cwd)
    df = corpus.manifest
    test = df[df["split"] == "test"]
    assert len(df) == 39 and len(test) == 9 and set(test["group"]) == {"conv11", "conv12", "conv13"}
    assert test["audio"].str.contains("/test/dia1[123]utt[123].mp4$").all()
    assert per_split(df) == {"train": 8, "dev": 2, "test": 3}
    assert df.groupby("group")["split"].nunique().max() == 1


def test_leakage_guard_and_unknown_protocol(ecf_tree, in_tmp_cwd):
    corpus = prepare({"root": str(ecf_tree)}, in_tmp_cwd)
    with pytest.raises(ManifestError, match="speakers appear on both sides"):
        validate(corpus, "ecf", speakers_shared=False)  # characters recur, hence speakers_shared
    leaky = corpus.manifest.copy()
    first_test = leaky.index[leaky["split"] == "test"][0]
    leaky.loc[first_test, "split"] = "train"
    with pytest.raises(ManifestError, match="groups appear on both sides"):
        validate(dataclasses.replace(corpus, manifest=leaky), "ecf", speakers_shared=True)
    with pytest.raises(ConfigError, match=r"corpora\.ecf\.protocol = 'loso'"):
        prepare({"root": str(ecf_tree), "protocol": "loso"}, in_tmp_cwd)


def test_bad_labels_structure_and_ids(tree, in_tmp_cwd):
    path = tree / "Subtask_2_train.json"
    original = path.read_text()
    cfg = {"root": str(tree)}

    edit_json(path, lambda d: d[2]["conversation"][1].update(emotion="happiness"))
    unknown = r"Subtask_2_train\.json: conversation 3 utterance 2: unknown emotion 'happiness'"
    with pytest.raises(ManifestError, match=unknown):
        prepare(cfg, in_tmp_cwd)

    path.write_text(original.replace('"utterance_ID": 2,', '"utterance_ID": 2', 1))
    with pytest.raises(ManifestError, match=r"Subtask_2_train\.json: line \d+ column \d+: invalid JSON"):
        prepare(cfg, in_tmp_cwd)

    path.write_text(original)
    edit_json(path, lambda d: d[0]["conversation"][0].pop("video_name"))
    with pytest.raises(ManifestError, match=r"conversation 1: utterance lacks \['video_name'\]"):
        prepare(cfg, in_tmp_cwd)

    path.write_text(original)
    edit_json(path, lambda d: d[4].update(conversation_ID=2))
    with pytest.raises(ManifestError, match=r"conversation #4: duplicate conversation_ID 2 \(first at #1\)"):
        prepare(cfg, in_tmp_cwd)

    path.write_text(original)
    edit_json(path, lambda d: d[1]["conversation"][2].update(utterance_ID=1))
    with pytest.raises(ManifestError, match="conversation 2: duplicate utterance_ID 1"):
        prepare(cfg, in_tmp_cwd)

    path.write_text(original)
    edit_json(path, lambda d: d[1].update(conversation_ID="2b"))
    with pytest.raises(ManifestError, match=r"conversation #1: conversation_ID '2b' is not"):
        prepare(cfg, in_tmp_cwd)


def test_paths_cannot_escape_and_files_must_exist(tree, in_tmp_cwd):
    path = tree / "Subtask_2_train.json"
    edit_json(path, lambda d: d[0]["conversation"][0].update(video_name="../../../secret.mp4"))
    escaped = r"Subtask_2_train\.json: media path 'train/\.\./\.\./\.\./secret\.mp4' escapes"
    with pytest.raises(ManifestError, match=escaped):
        prepare({"root": str(tree)}, in_tmp_cwd)
    not_found = r"Subtask_2_2_train\.json: conversation file not found .*Subtask_2_test\.json"
    with pytest.raises(ManifestError, match=not_found):
        prepare({"root": str(tree), "json": "Subtask_2_2_train.json"}, in_tmp_cwd)
    with pytest.raises(ManifestError, match=r"clips: clip folder for Subtask_2_train\.json not found"):
        prepare({"root": str(tree), "video_dir": "clips"}, in_tmp_cwd)


def test_missing_clip_is_named_by_the_segment_stage(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    df = corpus.manifest
    small = dataclasses.replace(corpus, manifest=df[df["group"] == "conv1"])
    gone = small.manifest["audio"].iloc[1]
    Path(gone).unlink()
    with pytest.raises(MediaError, match=re.escape(gone) + ": file not found"):
        segment_corpus(small, in_tmp_cwd / "seg.zarr", on_bad_media="error", workers=1)
    skipped = segment_corpus(small, in_tmp_cwd / "seg2.zarr", fps=0, on_bad_media="skip", workers=1).skipped
    assert skipped == [{"id": "conv1_utt2", "file": gone, "reason": "file not found"}]
