"""Impossible protocols fail at prepare, small ones fall back (and say so); symlinked corpora are read.

Protocols: :func:`pipeline.core.manifest.check_protocol` (run by every recipe's ``validate``) and
:func:`pipeline.experiment.protocol.plan_folds` share one set of rules: cross-validation needs two
folds, each fold needs training rows a dev set can be carved from, an official split needs train
and test rows. A dev carve too small to stratify is drawn unstratified, and the fold's
``dev_note`` says so.

Symlinks: media paths are checked lexically against the corpus root, so links to files or
directories elsewhere (and a root that is itself a link) are accepted and keep the links' paths;
``..`` or an absolute path that leaves the root is still an error.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import HeadError, ManifestError
from pipeline.core.manifest import Corpus, Task, display_path, validate
from pipeline.core.segments import Segments
from pipeline.core.store import FeatureStore, write_store
from pipeline.corpora.base import get_recipe
from pipeline.corpora.common import find_media
from pipeline.experiment.protocol import plan_folds
from pipeline.segment.decode import segment_corpus
from tests.data.emodb.data import generate as generate_emodb
from tests.data.manifest.data import write_labels
from tests.data.media import write_wav
from tests.factories import run_head

FIVE = ["angry", "calm", "happy", "neutral", "sad"]


def clips(root: Path, speakers: dict[str, int], classes: list[str] = FIVE, write: bool = True) -> list[dict]:
    """``n`` clips per speaker at ``clips/<spk>/<k>.wav``, classes dealt in turn; returns the label rows."""
    rows = []
    for spk, n in speakers.items():
        for k in range(n):
            row = {"path": f"clips/{spk}/{k:03d}.wav", "speaker": spk, "emotion": classes[k % len(classes)]}
            if write:
                write_wav(root / row["path"], seconds=0.1, freq=200.0 + 40 * (k % len(classes)), seed=k)
            rows.append(row)
    return rows


def prepare(root: Path, rows: list[dict], file: str = "labels.csv", **cfg) -> Corpus:
    write_labels(root / file, rows)
    options = {"root": str(root), "file": file, "tasks": ["emotion"], **cfg}
    return get_recipe("manifest")(options, Path("data/mycorpus/prepared"))


# --- A: impossible protocols are prepare-time errors ---------------------------------------------


def test_kfold_with_one_speaker_is_an_error_at_prepare(in_tmp_cwd):
    rows = clips(Path("corpus"), {"spk1": 24})
    message = r"^corpus mycorpus: protocol kfold needs at least 2 speakers to make folds; found 1 \(spk1\)$"
    with pytest.raises(ManifestError, match=message):
        prepare(Path("corpus"), rows, protocol="kfold", folds=2)
    with pytest.raises(ManifestError, match=r"^corpus mycorpus: protocol loso needs at least 2 speakers"):
        prepare(Path("corpus"), rows, protocol="loso")
    grouped = [r | {"speaker": f"p{i % 3}", "group": "session1"} for i, r in enumerate(rows)]
    with pytest.raises(ManifestError, match=r"protocol kfold needs at least 2 groups to make folds; found 1 \(session1\)"):
        prepare(Path("corpus"), grouped, protocol="kfold")


def test_two_speakers_and_five_classes_fall_back_to_an_unstratified_dev(in_tmp_cwd):
    """12 training clips per fold carve a 3-clip dev set: too few for 5 classes to stratify.

    Not an error: the protocol (2 speaker-independent folds) is sound, only the dev carve is small,
    and dev only picks hyper-parameters. The fold says its dev is unstratified; the probe runs.
    """
    corpus = prepare(Path("corpus"), clips(Path("corpus"), {"spk1": 12, "spk2": 12}), protocol="kfold", folds=2)
    df = corpus.manifest
    assert corpus.info["folds"] == 2 and corpus.info["speakers_per_fold"] == {0: ["spk1"], 1: ["spk2"]}
    folds = plan_folds(df, df["emotion"].to_numpy(object))
    assert len(folds) == 2
    for fold in folds:
        assert "unstratified: 3 dev / 9 training utterances cannot cover all 5 classes" in fold.dev_note
        assert fold.dev.sum() == 3 and fold.train.sum() == 9 and fold.test.sum() == 12
        assert not (fold.train & fold.dev).any() and ((fold.train | fold.dev) == ~fold.test).all()

    rng = np.random.default_rng(0)
    pooled = rng.normal(0, 1, (len(df), 6)).astype(np.float32) + 3 * np.eye(6)[[FIVE.index(e) for e in df["emotion"]]]
    write_store(Path("f.zarr"), ids=df["id"].tolist(), pooled=pooled, attrs={"backbone": "toy"})
    res = run_head(in_tmp_cwd, corpus, FeatureStore(Path("f.zarr")), "logreg", {"C_grid": [0.1, 1.0]})
    entry = res["tasks"]["emotion"]
    assert entry["test"]["n"] == 24 and all("unstratified" in f["dev_note"] for f in entry["folds"])


def test_kfold_with_fewer_speakers_than_folds_says_so(in_tmp_cwd):
    corpus = prepare(Path("corpus"), clips(Path("corpus"), {"a": 10, "b": 10, "c": 10}), protocol="kfold", folds=5)
    assert corpus.info["folds"] == 3 and corpus.info["folds_note"] == "3 speaker(s): 3 fold(s) instead of 5"
    assert "folds_note" not in prepare(Path("corpus"), corpus_rows(corpus), protocol="kfold", folds=3).info


def corpus_rows(corpus: Corpus) -> list[dict]:
    return [{"path": Path(a).relative_to("corpus").as_posix(), "speaker": s, "emotion": e}
            for a, s, e in zip(corpus.manifest["audio"], corpus.manifest["speaker"], corpus.manifest["emotion"])]  # fmt: skip


def test_official_split_without_test_rows_is_an_error_at_prepare(in_tmp_cwd):
    rows = [r | {"split": "train" if r["speaker"] != "c" else "dev"}
            for r in clips(Path("corpus"), {"a": 5, "b": 5, "c": 5})]  # fmt: skip
    message = r"^corpus mycorpus: protocol official needs test rows; the split has none \(train 10, dev 5, test 0\)$"
    with pytest.raises(ManifestError, match=message):
        prepare(Path("corpus"), rows)


def manifest(splits: list[str], speakers: list[str], folds: list | None = None, labels: list | None = None) -> Corpus:
    n = len(splits)
    df = pd.DataFrame({
        "id": [f"u{i}" for i in range(n)], "speaker": speakers, "split": splits,
        "audio": [f"root/u{i}.wav" for i in range(n)], "video": "", "text": "",
        "emotion": labels or ["happy", "sad"] * (n // 2) + ["happy"] * (n % 2),
    })  # fmt: skip
    if folds is not None:
        df["fold"] = folds
    return Corpus("toy", df, [Task("emotion", "classification", ["happy", "sad"])], "root", {"protocol": "p"})


@pytest.mark.parametrize(
    "corpus,message",
    [
        (manifest(["dev", "dev", "test", "test"], ["a", "a", "b", "b"]), "needs training rows; the split has none"),
        (manifest(["train", "dev", "dev"], ["a", "b", "b"]), r"needs test rows; the split has none \(train 1, dev 2, test 0\)"),
        (manifest(["train", "test", "test"], ["a", "b", "b"]),
         r"needs at least 2 training utterances to carve a dev set \(the split has no dev rows\); found 1 \(u0\)"),
        (manifest(["train"] * 4, ["a", "a", "b", "b"], [0, 0, 0, 0]), "needs at least 2 folds; all 2 speakers are in fold 0"),
        (manifest(["train"] * 4, ["a", "b", "b", "b"], [0, 1, 1, 1]),
         "needs at least 2 training utterances per fold to carve a dev set; fold 1 leaves 1"),
        (manifest(["train"] * 4, ["a", "a", "b", "b"], [0, 0, 1, 1], labels=["happy", "sad", None, ""]),
         r"needs at least 2 speakers to make folds; found 1 \(a\) \(task emotion, labelled rows\)"),
        (manifest(["train", "train", "dev", "test"], ["a", "a", "b", "c"], labels=[None] * 4),
         r"has no labelled utterances \(task emotion, labelled rows\)"),
    ],
    ids=["no-train", "no-test", "one-train-no-dev", "one-fold", "fold-leaves-one", "task-one-fold", "task-unlabelled"],
)
def test_impossible_protocols_are_manifest_errors_naming_corpus_and_protocol(corpus, message):
    with pytest.raises(ManifestError, match=rf"^corpus toy: protocol p {message}"):
        validate(corpus, "meta.csv")


@pytest.mark.parametrize(
    "corpus",
    [
        manifest(["train", "train", "test"], ["a", "a", "b"]),  # 2 training utterances: a 1-utterance dev
        manifest(["train"] * 4, ["a", "a", "b", "b"], [0, 0, 1, 1]),  # 2 folds of 2
        manifest(["train", "train", "dev", "test"], ["a", "a", "b", "c"], labels=["happy", "sad", "sad", None]),
    ],
    ids=["two-train-utterances", "two-small-folds", "task-test-unlabelled"],
)
def test_small_protocols_pass(corpus):
    validate(corpus, "meta.csv")
    task = corpus.tasks[0]
    rows = corpus.manifest[corpus.manifest[task.name].notna()]
    folds = plan_folds(rows, rows[task.name].to_numpy(object))
    assert all(f.train.any() and (f.dev.any()) for f in folds)


# --- plan_folds: fallbacks in the dev note, HeadError (never a raw ValueError) -------------------


def rows_of(speakers, splits=None, folds=None):
    df = pd.DataFrame({"id": [f"u{i}" for i in range(len(speakers))], "speaker": speakers})
    df["split"] = splits or ["train"] * len(speakers)
    if folds is not None:
        df["fold"] = folds
    return df.set_index("id")  # as the runner passes them


def test_plan_folds_keeps_stratifying_when_it_can():
    y = np.array(["a", "b"] * 10, object)
    folds = plan_folds(rows_of(["s1"] * 10 + ["s2"] * 10, folds=[0] * 10 + [1] * 10), y)
    assert [f.dev_note for f in folds] == ["dev = random 20% of training utterances (only 2 folds: no held-out group left)"] * 2
    assert all(sorted(y[f.dev]) == ["a", "b"] for f in folds)  # 2 dev utterances, one per class


def test_plan_folds_falls_back_to_unstratified_dev_and_says_why():
    y = np.array(["a", "a", "a", "a", "b", "a", "b", "a"], object)  # b: once in s1's rows
    rows = rows_of(["s1"] * 5 + ["s2"] * 3, splits=["train"] * 5 + ["test"] * 3)
    (fold,) = plan_folds(rows, y)
    assert fold.dev_note == "dev = random 20% of training utterances; unstratified: class 'b' has 1 training utterance"
    assert fold.dev.sum() == 1 and fold.train.sum() == 4 and fold.test.sum() == 3
    (reg,) = plan_folds(rows, np.linspace(0, 1, 8), regression=True)
    assert reg.dev_note == "dev = random 20% of training utterances"  # regression is never stratified


@pytest.mark.parametrize(
    "rows,message",
    [
        (rows_of(["s1"] * 4, folds=[0] * 4), r"protocol needs at least 2 speakers to make folds; found 1 \(s1\)"),
        (rows_of(["s1", "s2", "s2"], folds=[0, 1, 1]), "fold 1 leaves 1"),
        (rows_of(["s1", "s2"], splits=["train", "test"]), r"to carve a dev set .*found 1 \(u0\)"),
        (rows_of(["s1", "s2"], splits=["dev", "test"]), "needs training rows"),
    ],
)
def test_plan_folds_raises_a_head_error_for_impossible_protocols(rows, message):
    with pytest.raises(HeadError, match=message):
        plan_folds(rows, np.array(["a", "b"] * 2, object)[: len(rows)])


def test_plan_folds_accepts_an_unlabelled_test_set():
    (fold,) = plan_folds(rows_of(["s1"] * 5 + ["s2"] * 5, splits=["train"] * 10), np.array(["a", "b"] * 5, object))
    assert not fold.test.any() and fold.dev.sum() == 2 and fold.train.sum() == 8


# --- B: symlinked corpora -----------------------------------------------------------------------


@pytest.fixture
def real_emodb(in_tmp_cwd):
    """The real dataset, outside every corpus root used below."""
    return generate_emodb(Path("dataset"))


def prepare_emodb(root) -> Corpus:
    return get_recipe("emodb")({"root": str(root)}, Path("out"))


def test_emodb_of_symlinked_wavs_is_prepared_with_the_links_paths(real_emodb):
    (Path("emodb") / "wav").mkdir(parents=True)
    for wav in sorted((real_emodb / "wav").iterdir()):
        (Path("emodb") / "wav" / wav.name).symlink_to(wav.resolve())
    corpus = prepare_emodb("emodb")
    df = corpus.manifest.set_index("id")
    assert len(df) == 40 and corpus.root == "emodb"
    assert df.loc["03a01Wa", "audio"] == "emodb/wav/03a01Wa.wav" and Path(df.loc["03a01Wa", "audio"]).is_symlink()
    assert df["audio"].str.startswith("emodb/wav/").all()
    corpus.manifest = corpus.manifest.iloc[:2].reset_index(drop=True)
    segment_corpus(corpus, Path("seg.zarr"), on_bad_media="error", workers=1)  # an unreadable file raises
    seg = Segments(Path("seg.zarr"))
    assert all(0.25 < seg.duration(uid) < 0.35 for uid in corpus.manifest["id"])  # decoded through the links


def test_emodb_with_a_symlinked_wav_directory_and_a_nested_link(real_emodb):
    Path("emodb").mkdir()
    (Path("emodb") / "wav").symlink_to((real_emodb / "wav").resolve(), target_is_directory=True)
    df = prepare_emodb("emodb").manifest
    assert len(df) == 40 and df["audio"].str.startswith("emodb/wav/").all()
    # a speaker's folder linked in below wav/ (find_media must follow directory links)
    extra = generate_emodb(Path("more"), speakers=("11",)) / "wav"
    Path("emodb2/wav").mkdir(parents=True)
    (Path("emodb2/wav") / "speaker11").symlink_to(extra.resolve(), target_is_directory=True)
    for wav in (real_emodb / "wav").glob("03*.wav"):
        shutil.copy(wav, "emodb2/wav")
    df = prepare_emodb("emodb2").manifest.set_index("id")
    assert len(df) == 20 and df.loc["11a04Ea", "audio"] == "emodb2/wav/speaker11/11a04Ea.wav"
    assert df.groupby("speaker")["fold"].first().to_dict() == {"03": 0, "11": 1}


def test_symlinked_corpus_root(real_emodb):
    os.symlink(real_emodb.resolve(), "linked", target_is_directory=True)
    corpus = prepare_emodb("linked")
    assert corpus.root == "linked" and corpus.manifest["audio"].iloc[0] == "linked/wav/03a01Wa.wav"


def test_find_media_follows_directory_links_and_walks_a_loop_once(real_emodb):
    (real_emodb / "wav" / "loop").symlink_to("..", target_is_directory=True)  # wav/loop/wav/loop/...
    extra = generate_emodb(Path("more"), speakers=("11",)) / "wav"
    (real_emodb / "wav" / "more").symlink_to(extra.resolve(), target_is_directory=True)
    files = find_media(real_emodb / "wav", (".wav",))
    assert len(files) == 50 and files[0] == Path("dataset/wav/03a01Wa.wav")
    assert Path("dataset/wav/more/11a01Wa.wav") in files


def test_display_path_is_lexical(in_tmp_cwd):
    Path("target").mkdir()
    Path("link").symlink_to(in_tmp_cwd / "target", target_is_directory=True)
    assert display_path("link/x.wav") == "link/x.wav"
    assert display_path(in_tmp_cwd / "link" / "sub" / ".." / "x.wav") == "link/x.wav"
    outside = in_tmp_cwd.parent / "elsewhere.wav"
    assert display_path(outside) == Path(os.path.abspath(outside)).as_posix()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_manifest_paths_leaving_the_root_are_errors_naming_the_path(in_tmp_cwd, fmt):
    root = Path("corpus")
    rows = clips(root, {"a": 4, "b": 4, "c": 4})
    write_wav(Path("outside.wav"), seconds=0.1)
    line = 3 if fmt == "csv" else 2  # the second row
    os.symlink("corpus", "alias", target_is_directory=True)  # leaves root lexically, resolves back inside
    for bad in ["../outside.wav", str(in_tmp_cwd / "outside.wav"), "clips/../../outside.wav", "../alias/clips/a/000.wav"]:
        edited = [rows[0], rows[1] | {"path": bad}, *rows[2:]]
        message = rf"^corpus/labels\.{fmt}:{line}: media path {re.escape(repr(bad))} escapes the corpus root corpus$"
        with pytest.raises(ManifestError, match=message):
            prepare(root, edited, file=f"labels.{fmt}")


def test_manifest_paths_through_symlinks_and_absolute_inside_are_accepted(in_tmp_cwd):
    root = Path("corpus")
    rows = clips(root, {"a": 4, "b": 4, "c": 4})
    external = write_wav(Path("external/x.wav"), seconds=0.1)
    (root / "linked.wav").symlink_to(external.resolve())
    (root / "linkdir").symlink_to(Path("external").resolve(), target_is_directory=True)
    extra = [
        {"path": "linked.wav", "speaker": "a", "emotion": "sad"},
        {"path": "linkdir/x.wav", "id": "via_dir", "speaker": "b", "emotion": "sad"},
        {"path": str(in_tmp_cwd / "corpus" / "clips" / "c" / "000.wav"), "id": "abs", "speaker": "c", "emotion": "sad"},
    ]
    df = prepare(root, [*rows[1:], *extra], protocol="loso").manifest.set_index("id")
    assert df.loc["linked", "audio"] == "corpus/linked.wav" and df.loc["via_dir", "audio"] == "corpus/linkdir/x.wav"
    assert df.loc["abs", "audio"] == "corpus/clips/c/000.wav"
