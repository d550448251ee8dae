"""``protocol: emobox``: EmoBox's published folds, exactly (issue 12, item 4).

The committed lists are checked against EmoBox's published partition sizes, their digests and
label maps; the recipes are run on the fake corpora against the committed lists (EmoDB, whose fake
can use EmoBox's own file names) and against fake EmoBox folders in EmoBox's layout
(``tests/data/emobox``) for the corpora whose fakes cannot carry EmoBox's labels.
"""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import ConfigError, ManifestError
from pipeline.corpora import _emobox
from pipeline.corpora._emobox import SPECS, committed_lists, read_emobox_dir, write_lists
from pipeline.corpora.base import corpus_settings, get_recipe
from pipeline.experiment.protocol import plan_folds
from tests.conftest import EMODB, needs_emodb
from tests.data.cremad import data as cremad_data
from tests.data.emobox import data as emobox_data
from tests.data.emodb import data as emodb_data
from tests.data.iemocap import data as iemocap_data
from tests.data.meld import data as meld_data
from tests.data.ravdess import data as ravdess_data

COMMIT = "08280f279d47fb55d2c614061c70523d0a338d6b"
# Partition sizes as EmoBox's fold files give them (counted from the files at COMMIT).
PUBLISHED = {
    "iemocap": {"1": 1085, "2": 1023, "3": 1151, "4": 1031, "5": 1241},
    "emodb": {str(k): 107 for k in range(1, 6)},
    "ravdess": {str(k): 240 for k in range(1, 7)},
    "cremad": {"train": 5586, "test": 1856},
    "meld": {"train": 9988, "valid": 1108, "test": 2610},
}
# The recipes' classes -> EmoBox's raw labels, written out independently of SPECS.
TO_EMOBOX = {
    "emodb": {"anger": "anger", "boredom": "boredem", "disgust": "disgust", "fear": "fear", "happiness": "happy",
              "neutral": "neutral", "sadness": "sad"},
    "ravdess": {c: c.title() for c in ravdess_data.EMOTIONS},
    "cremad": dict(zip(["anger", "disgust", "fear", "happy", "neutral", "sad"], cremad_data.EMOTION_CODES)),
    "meld": {e: e for e in meld_data.EMOTIONS},
}


def speaker_of(corpus: str, key: str) -> str:
    if corpus == "iemocap":
        return key[:5] + key.rsplit("_", 1)[1][0]
    return {"emodb": key[:2], "ravdess": key.split("-")[-1], "cremad": key.split("-")[0]}[corpus]


# --- the committed lists --------------------------------------------------------------------------


@pytest.mark.parametrize("corpus", sorted(PUBLISHED))
def test_committed_lists_are_emobox_partitions_with_provenance(corpus):
    table, prov = committed_lists(corpus)  # also checks the file against its recorded SHA-256
    assert table["part"].value_counts().to_dict() == PUBLISHED[corpus]
    assert table["key"].is_unique
    assert prov["repo"] == "emo-box/EmoBox" and prov["commit"] == COMMIT
    assert prov["file"] == f"pipeline/corpora/emobox/{corpus}.tsv.gz"
    assert all(path.startswith(f"data/{corpus}/") for path in prov["sources"]), prov["sources"]
    # Our label merge is EmoBox's: two raw labels share a class here iff label_map.json merges them.
    label_map = {k.lower(): v for k, v in prov["label_map"].items()}  # EmoDB's map says "Neutral"
    raw = sorted(set(table["emo"]))
    assert set(raw) <= set(SPECS[corpus].labels)
    for a in raw:
        for b in raw:
            same_here = SPECS[corpus].labels[a] == SPECS[corpus].labels[b]
            assert same_here == (label_map[a.lower()] == label_map[b.lower()]), (a, b)
    # Whether EmoBox's partition is speaker-independent is what SPECS (and info) say.
    if corpus != "meld":
        sides = table.assign(speaker=table["key"].map(lambda k: speaker_of(corpus, k)))
        independent = bool((sides.groupby("speaker")["part"].nunique() == 1).all())
        assert independent == SPECS[corpus].speaker_independent


def test_iemocap_folds_are_sessions_and_the_four_class_set():
    table, _ = committed_lists("iemocap")
    assert (table["key"].str[3:5].astype(int).astype(str) == table["part"]).all()
    assert set(table["emo"]) == {"neu", "hap", "exc", "ang", "sad"}


def test_a_changed_committed_list_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "emobox"
    shutil.copytree(_emobox.DATA, copy)
    text = gzip.decompress((copy / "emodb.tsv.gz").read_bytes()).decode().replace("\t1\n", "\t2\n", 1)
    (copy / "emodb.tsv.gz").write_bytes(gzip.compress(text.encode()))
    monkeypatch.setattr(_emobox, "DATA", copy)
    monkeypatch.setattr(_emobox, "PROVENANCE", copy / "provenance.json")
    with pytest.raises(ManifestError, match=r"emodb.tsv.gz: content differs from the digest in provenance.json"):
        committed_lists("emodb")


def test_converter_round_trip_is_byte_identical(tmp_path):
    rows = [("03a01Wa", "anger", 1), ("08a02Lb", "boredem", 2), ("09a04Nc", "neutral", 3), ("10b01Fa", "happy", 1)]
    emobox = tmp_path / "EmoBox"
    emobox_data.write(emobox / "data", "emodb", rows)
    first = write_lists(emobox, tmp_path / "out1", "abc123", ["emodb"], "2025-01-01")
    write_lists(emobox, tmp_path / "out2", "abc123", ["emodb"], "2025-01-01")
    assert (tmp_path / "out1/emodb.tsv.gz").read_bytes() == (tmp_path / "out2/emodb.tsv.gz").read_bytes()
    back = pd.read_csv(tmp_path / "out1/emodb.tsv.gz", sep="\t", dtype=str)
    assert back.values.tolist() == [[k, e, str(p)] for k, e, p in sorted(rows, key=lambda r: r[2])]
    entry = first["corpora"]["emodb"]
    assert first["commit"] == "abc123" and entry["parts"] == {"1": 2, "2": 1, "3": 1}
    assert set(entry["sources"]) == {f"data/emodb/fold_{k}/emodb_{s}_fold_{k}.jsonl" for k in (1, 2, 3)
                                     for s in ("train", "test")} | {"data/emodb/label_map.json"}


def test_fold_files_that_are_not_a_partition_are_errors(tmp_path):
    rows = [("03a01Wa", "anger", 1), ("08a02Lb", "boredem", 2), ("09a04Nc", "neutral", 3)]
    emobox_data.write(tmp_path, "emodb", rows)
    train = tmp_path / "emodb/fold_2/emodb_train_fold_2.jsonl"
    train.write_text(train.read_text().splitlines(keepends=True)[0])  # drops one training item
    with pytest.raises(ManifestError, match=r"emodb_train_fold_2.jsonl: not the complement of emodb_test_fold_2"):
        read_emobox_dir(tmp_path, "emodb")
    emobox_data.write(tmp_path, "emodb", rows)
    test1, test2 = tmp_path / "emodb/fold_1/emodb_test_fold_1.jsonl", tmp_path / "emodb/fold_2/emodb_test_fold_2.jsonl"
    test2.write_text(test2.read_text() + test1.read_text())  # one item in two test files
    with pytest.raises(ManifestError, match=r"emodb_test_fold_2.jsonl: '03a01Wa' is also in .*emodb_test_fold_1"):
        read_emobox_dir(tmp_path, "emodb")


def test_settings_typos_are_errors():
    with pytest.raises(ConfigError, match=r"corpora.emodb.emobox_missing"):
        corpus_settings("emodb", {"protocol": "emobox", "emobox_missing": "ignore"})
    with pytest.raises(ConfigError, match=r"unknown key 'emobox_mising'"):
        corpus_settings("emodb", {"protocol": "emobox", "emobox_mising": "skip"})


# --- EmoDB against the committed lists ---------------------------------------------------------


@pytest.fixture(scope="module")
def emodb_subset(tmp_path_factory):
    """A fake EmoDB of 2 utterances per EmoBox fold and emotion, named as EmoBox names them."""
    table, _ = committed_lists("emodb")
    subset = table.groupby(["part", "emo"]).head(2)
    root = emodb_data.generate(tmp_path_factory.mktemp("emodb") / "root", stems=list(subset["key"]))
    return root, subset


def test_emodb_folds_are_emobox_folds(emodb_subset, tmp_path):
    root, subset = emodb_subset
    corpus = get_recipe("emodb")({"root": str(root), "protocol": "emobox", "emobox_missing": "skip"}, tmp_path)
    df = corpus.manifest.set_index("id")
    assert len(df) == len(subset) == 70
    assert (df.loc[subset["key"], "fold"].astype(str).to_numpy() == subset["part"].to_numpy()).all()
    assert (df["split"] == "train").all()
    # EmoBox's EmoDB folds share speakers: the guard is off and info says so.
    assert df.groupby("speaker")["fold"].nunique().max() > 1
    info = corpus.info["emobox"]
    assert info["speaker_independent"] is False and "not speaker-independent" in info["note"]
    assert info["source"]["commit"] == COMMIT and info["source"]["file"].endswith("emodb.tsv.gz")
    assert len(info["missing"]) == 535 - 70 and info["not_listed"]["count"] == 0
    assert info["folds"] == 5 and "never test" in info["dev"]
    folds = plan_folds(corpus.manifest.reset_index(drop=True), corpus.manifest["emotion"].to_numpy())
    for fold in folds:  # every test fold is EmoBox's; dev comes from EmoBox's training items
        k = fold.name.removeprefix("fold")
        tested = set(corpus.manifest["id"][fold.test])
        assert tested == set(subset.loc[subset["part"] == k, "key"])
        assert not (fold.dev & fold.test).any() and not (fold.train & fold.test).any()


def test_emodb_missing_items_are_an_error_by_default(emodb_subset, tmp_path):
    root, _ = emodb_subset
    with pytest.raises(ManifestError, match=r"protocol emobox: 465 of EmoBox's 535 emodb items are not on disk "
                                            r"\(.*… \(465 in all\)\); corpora.emodb.emobox_missing: skip"):
        get_recipe("emodb")({"root": str(root), "protocol": "emobox"}, tmp_path)


def test_emodb_items_emobox_does_not_list_are_named(emodb_subset, tmp_path, capsys):
    root, subset = emodb_subset
    extra = tmp_path / "root"
    shutil.copytree(root, extra)
    emodb_data.generate(extra, stems=["03a01Wz"])  # a version letter EmoBox has no file for
    corpus = get_recipe("emodb")({"root": str(extra), "protocol": "emobox", "emobox_missing": "skip"}, tmp_path)
    assert "03a01Wz" not in set(corpus.manifest["id"]) and len(corpus.manifest) == len(subset)
    assert corpus.info["emobox"]["not_listed"] == {"count": 1, "ids": ["03a01Wz"], "outside_label_set": 0,
                                                   "left_out_by_emobox": []}
    assert "leaves out 1 emodb item(s) that EmoBox's lists do not hold (03a01Wz)" in capsys.readouterr().out


@needs_emodb
def test_real_emodb_sample_is_in_emobox_with_emobox_labels(tmp_path):
    corpus = get_recipe("emodb")({"root": str(EMODB), "protocol": "emobox", "emobox_missing": "skip"}, tmp_path)
    table, _ = committed_lists("emodb")
    parts = table.set_index("key")["part"]
    df = corpus.manifest
    assert len(df) == len(list(EMODB.glob("*.wav"))) == 92  # every real file is listed (labels checked)
    assert (df["fold"].astype(str).to_numpy() == parts.loc[df["id"]].to_numpy()).all()
    assert corpus.info["emobox"]["not_listed"]["count"] == 0


# --- the other recipes against fake EmoBox folders in EmoBox's layout ---------------------------


def prepared(name: str, root, tmp_path, **cfg):
    return get_recipe(name)({"root": str(root), **cfg}, tmp_path)


def test_iemocap_emobox_folds_tasks_and_label_merge(tmp_path):
    root = iemocap_data.generate(tmp_path / "iemocap")
    full = prepared("iemocap", root, tmp_path).manifest
    four = full[full["emotion4"] != ""]
    # EmoBox's raw label is the 6-class one (exc stays exc); its fold k is Session k.
    rows = [(uid, raw, int(uid[3:5])) for uid, raw in zip(four["id"], four["emotion6"])]
    emobox_data.write(tmp_path / "eb", "iemocap", rows)
    corpus = prepared("iemocap", root, tmp_path, protocol="emobox", emobox_data=str(tmp_path / "eb"))
    df = corpus.manifest
    assert [t.name for t in corpus.tasks] == ["emotion4"]
    assert sorted(df["id"]) == sorted(four["id"])
    assert (df["fold"] == df["id"].str[3:5].astype(int)).all() and (df["group"] == df["fold"].map("Session{}".format)).all()
    assert "exc" not in set(df["emotion4"]) and (df["emotion4"] == "hap").sum() == ((four["emotion6"] == "hap") | (four["emotion6"] == "exc")).sum()
    info = corpus.info["emobox"]
    assert info["not_listed"]["outside_label_set"] == len(full) - len(four) and info["not_listed"]["count"] == 0
    assert set(info["source"]["files"]) >= {"iemocap/fold_1/iemocap_test_fold_1.jsonl"}

    # A label EmoBox gives differently is an error naming the item and both labels.
    uid = four["id"].iloc[0]
    bad = [(u, "sad" if u == uid else raw, k) for u, raw, k in rows]
    emobox_data.write(tmp_path / "bad", "iemocap", bad)
    with pytest.raises(ManifestError, match=rf"1 EmoBox label\(s\) disagree with the corpus .*{uid}: EmoBox 'sad'"):
        prepared("iemocap", root, tmp_path, protocol="emobox", emobox_data=str(tmp_path / "bad"))
    with pytest.raises(ManifestError, match=r"protocol emobox uses every dialog; scripted must be 'both'"):
        prepared("iemocap", root, tmp_path, protocol="emobox", scripted=True)


def test_ravdess_emobox_folds_drop_song_and_map_audiovisual(tmp_path, capsys):
    root = ravdess_data.generate(tmp_path / "ravdess", av_actors=3)
    full = prepared("ravdess", root, tmp_path, song=True).manifest
    speech = full[full["vocal_channel"] == "speech"]
    fold_of = {f"{a:02d}": 1 + (a - 1) // 2 for a in range(1, 7)}  # 3 folds of 2 actors
    rows = [(i, TO_EMOBOX["ravdess"][e], fold_of[s]) for i, e, s in zip(speech["id"], speech["emotion"], speech["speaker"])]
    emobox_data.write(tmp_path / "eb", "ravdess", rows)
    eb = str(tmp_path / "eb")
    corpus = prepared("ravdess", root, tmp_path, song=True, protocol="emobox", emobox_data=eb)
    df = corpus.manifest
    assert sorted(df["id"]) == sorted(speech["id"]) and (df["fold"] == df["speaker"].map(fold_of)).all()
    assert corpus.info["emobox"]["not_listed"]["count"] == 6  # the sung clips
    assert "leaves out 6 ravdess item(s)" in capsys.readouterr().out

    # audiovisual: an 01- mp4 takes the fold of the 03- wav with the same codes; the fake has such
    # twins for 4 of its 6 mp4s (actors 01 and 03), so 44 of EmoBox's 48 items are missing.
    clips = prepared("ravdess", root, tmp_path, modality="audiovisual").manifest["id"]
    twins = sorted(c for c in clips if "03" + c[2:] in set(speech["id"]))
    assert len(twins) == 4
    with pytest.raises(ManifestError, match=r"44 of EmoBox's 48 ravdess items are not on disk"):
        prepared("ravdess", root, tmp_path, modality="audiovisual", protocol="emobox", emobox_data=eb)
    av = prepared("ravdess", root, tmp_path, modality="audiovisual", protocol="emobox", emobox_data=eb,
                  emobox_missing="skip")
    assert sorted(av.manifest["id"]) == twins
    assert (av.manifest["fold"] == av.manifest["speaker"].map(fold_of)).all() and av.manifest["fold"].nunique() == 2
    assert (av.manifest["video"] != "").all() and av.info["emobox"]["not_listed"]["ids"] == sorted(set(clips) - set(twins))


def test_cremad_emobox_split_shares_actors_and_dev_never_comes_from_test(tmp_path):
    root = cremad_data.generate(tmp_path / "cremad", actors=6)
    full = prepared("cremad", root, tmp_path).manifest
    # Like EmoBox's CREMA-D split: every actor on both sides, no valid file.
    part = ["test" if i % 3 == 0 else "train" for i in range(len(full))]
    rows = [(i.replace("_", "-"), TO_EMOBOX["cremad"][e], p) for i, e, p in zip(full["id"], full["emotion"], part)]
    emobox_data.write(tmp_path / "eb", "cremad", rows)
    corpus = prepared("cremad", root, tmp_path, protocol="emobox", emobox_data=str(tmp_path / "eb"))
    df = corpus.manifest
    assert "fold" not in df.columns and set(df["split"]) == {"train", "test"}
    assert (df.set_index("id").loc[full["id"], "split"].to_numpy() == np.array(part)).all()
    assert df.groupby("speaker")["split"].nunique().min() == 2
    assert corpus.info["emobox"]["speaker_independent"] is False
    assert "never from test" in corpus.info["emobox"]["dev"]
    (fold,) = plan_folds(df, df["emotion"].to_numpy())
    test = df["split"].to_numpy() == "test"
    assert (fold.test == test).all() and fold.dev.any() and not (fold.dev & test).any()


def test_meld_emobox_split_is_its_files_with_valid_as_dev(tmp_path, capsys):
    root = meld_data.generate(tmp_path / "meld")
    full = prepared("meld", root, tmp_path).manifest
    file_of = {"train": "train", "dev": "valid", "test": "test"}
    rows = [(f"{i.split('_', 1)[1]}-{s}", e, file_of[s]) for i, s, e in zip(full["id"], full["split"], full["emotion"])]
    rows = [r for r in rows if r[0] != "dia1_utt1-train"]  # EmoBox lacks an utterance the CSV has
    emobox_data.write(tmp_path / "eb", "meld", rows)
    corpus = prepared("meld", root, tmp_path, protocol="emobox", emobox_data=str(tmp_path / "eb"))
    df = corpus.manifest.set_index("id")
    kept = full[full["id"] != "train_dia1_utt1"]
    assert [t.name for t in corpus.tasks] == ["emotion"]
    assert sorted(df.index) == sorted(kept["id"]) and (df.loc[kept["id"], "split"] == kept["split"].to_numpy()).all()
    assert corpus.info["emobox"]["not_listed"]["ids"] == ["train_dia1_utt1"]
    assert corpus.info["emobox"]["dev"] == "EmoBox's valid file"
    assert corpus.info["utterances"]["train"] == int((kept["split"] == "train").sum())
    assert "train_dia1_utt1" in capsys.readouterr().out


def test_emobox_lists_with_an_unknown_label_are_an_error(tmp_path):
    root = cremad_data.generate(tmp_path / "cremad", actors=3)
    full = prepared("cremad", root, tmp_path).manifest
    rows = [(i.replace("_", "-"), "XYZ" if n == 0 else TO_EMOBOX["cremad"][e], "train" if n % 2 else "test")
            for n, (i, e) in enumerate(zip(full["id"], full["emotion"]))]
    emobox_data.write(tmp_path / "eb", "cremad", rows)
    with pytest.raises(ManifestError, match=r"EmoBox label\(s\) \['XYZ'\] not in the cremad label map"):
        prepared("cremad", root, tmp_path, protocol="emobox", emobox_data=str(tmp_path / "eb"))


def test_corpus_json_records_the_provenance(emodb_subset, tmp_path):
    from pipeline.core import manifest

    root, _ = emodb_subset
    corpus = get_recipe("emodb")({"root": str(root), "protocol": "emobox", "emobox_missing": "skip"}, tmp_path)
    manifest.save(corpus, tmp_path)
    saved = json.loads((tmp_path / "corpus.json").read_text())["info"]["emobox"]["source"]
    recorded = json.loads(_emobox.PROVENANCE.read_text())
    assert saved["commit"] == recorded["commit"] == COMMIT
    assert saved["sha256"] == recorded["corpora"]["emodb"]["sha256"]
    assert saved["sources"] == recorded["corpora"]["emodb"]["sources"]
    from pipeline.experiment.results import experiment_header

    header = experiment_header(manifest.load(tmp_path), "egemaps", "logreg")  # what every experiment JSON starts with
    assert header["protocol"] == "emobox" and header["protocol_source"] == saved


# --- through DVC --------------------------------------------------------------------------------


@pytest.mark.dvc
def test_emodb_emobox_through_dvc_repro(emodb_subset, tmp_path):
    from tests.dvc_util import make_repo, sh

    root, subset = emodb_subset
    params = {
        "run": {"corpora": ["emodb"], "backbones": ["egemaps"], "heads": ["logreg"]},
        "corpora": {"emodb": {"root": str(root), "protocol": "emobox", "emobox_missing": "skip"}},
    }
    repo = make_repo(tmp_path / "repo", tmp_path / "remote", **params)
    sh(repo, "dvc", "repro")
    info = json.loads((repo / "data/emodb/prepared/corpus.json").read_text())["info"]
    assert info["protocol"] == "emobox" and info["emobox"]["source"]["commit"] == COMMIT
    folds = pd.read_parquet(repo / "data/emodb/prepared/manifest.parquet").set_index("id")["fold"]
    assert (folds.loc[subset["key"]].astype(str).to_numpy() == subset["part"].to_numpy()).all()
    (row,) = [r for r in json.loads((repo / "metrics/leaderboard.json").read_text())
              if r["corpus"] == "emodb" and r["task"] == "emotion" and r["split"] == "test"]
    assert row["n"] == len(subset) and row["uar"] is not None
    experiment = json.loads(next((repo / "metrics/experiments").rglob("*.json")).read_text())
    tested = {f["fold"] for f in experiment["tasks"]["emotion"]["folds"]}
    assert tested == {f"fold{k}" for k in range(1, 6)}
    assert experiment["protocol"] == "emobox" and experiment["protocol_source"]["commit"] == COMMIT
