"""DAIC-WOZ / E-DAIC recipe on fake trees in both real layouts (tests/data/daicwoz/data.py)."""

import dataclasses
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

import tests.data.daicwoz.data as fake
from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.manifest import validate
from pipeline.core.segments import Segments
from pipeline.corpora import daicwoz
from pipeline.corpora.base import get_recipe
from pipeline.experiment.scoring import evaluate
from pipeline.segment.decode import segment_corpus
from tests.dvc_util import make_repo, sh

prepare = get_recipe("daicwoz")
SCORES = {**fake.TRAIN, **fake.DEV, **fake.TEST}


def at(path) -> str:
    """Regex for an error message that starts with ``path``."""
    return "^" + re.escape(str(path))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return fake.generate(tmp_path_factory.mktemp("daicwoz") / "DAIC-WOZ")


@pytest.fixture(scope="module")
def edaic(tmp_path_factory):
    return fake.generate(tmp_path_factory.mktemp("edaic") / "E-DAIC", layout="edaic")


@pytest.fixture
def copy(tree, tmp_path):
    """A private copy of the fake tree that a test may damage."""
    return shutil.copytree(tree, tmp_path / "DAIC-WOZ")


def transcript(tree, pid) -> pd.DataFrame:
    """A session's transcript as pandas reads it, independently of the recipe."""
    return pd.read_csv(tree / f"{pid}_P" / f"{pid}_TRANSCRIPT.csv", sep="\t")


def test_sessions_labels_and_official_split(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    df = corpus.manifest
    per_session = df.groupby("speaker").first()
    assert sorted(per_session.index) == sorted(str(p) for p in SCORES)  # 399 is in no label file
    assert corpus.info["unlisted_sessions"] == [399]
    for pid, split in [*((p, "train") for p in fake.TRAIN), *((p, "dev") for p in fake.DEV), *((p, "test") for p in fake.TEST)]:
        assert per_session.loc[str(pid), "split"] == split and per_session.loc[str(pid), "phq8"] == SCORES[pid]
    assert df.groupby("speaker")["split"].nunique().max() == 1  # participant-independent
    # depressed ⇔ PHQ-8 ≥ 10, from the score: 304's file says binary 0 with score 10
    assert (per_session["depression"] == per_session["phq8"].map(lambda s: "depressed" if s >= 10 else "healthy")).all()
    assert per_session.loc["304", "depression"] == "depressed"
    assert corpus.info["phq8_binary_mismatch"] == [
        {"participant": 304, "file": "train_split_Depression_AVEC2017.csv", "PHQ8_Binary": 0, "PHQ8_Score": 10.0}]
    assert corpus.info["sessions"] == {"dev": 2, "test": 4, "train": 6}
    assert corpus.info["depressed_sessions"] == {"dev": 1, "test": 2, "train": 3}
    assert corpus.info["layout"] == "daicwoz" and corpus.info["label_files"]["test"].endswith("full_test_split.csv")
    tasks = {t.name: t for t in corpus.tasks}
    assert tasks["depression"].classes == ["healthy", "depressed"] and tasks["depression"].positive == "depressed"
    assert tasks["depression"].unit == tasks["phq8"].unit == "speaker" and tasks["phq8"].type == "regression"
    assert (df["video"] == "").all()
    assert all(a.endswith(f"DAIC-WOZ/{p}_P/{p}_AUDIO.wav") for a, p in zip(df["audio"], df["speaker"]))


def test_interviewer_rows_excluded_and_times_from_the_transcript(tree, in_tmp_cwd):
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    df = corpus.manifest.set_index("id")
    for pid in (300, 323):
        tr = transcript(tree, pid)
        ellie, part = tr[tr["speaker"] == "Ellie"], tr[tr["speaker"] == "Participant"]
        mine = df[df["speaker"] == str(pid)]
        # one item per participant row except the <sync> marker, with the row's times and text
        expected = part[part["value"] != "<sync>"]
        assert list(mine["start"]) == list(expected["start_time"]) and list(mine["end"]) == list(expected["stop_time"])
        assert list(mine["text"]) == list(expected["value"])
        for start, end in zip(mine["start"], mine["end"]):  # no cut touches an interviewer row
            assert ((ellie["stop_time"] <= start) | (ellie["start_time"] >= end)).all()
        assert not set(mine["text"]) & set(ellie["value"])
    # ids number the participant rows in transcript order (row 1 is the <sync> marker)
    assert list(df[df["speaker"] == "300"].index) == ["300_002", "300_003", "300_004", "300_005"]
    assert corpus.info["interviewer_rows_excluded"] == 12 * sum(s == "Ellie" for s, *_ in fake.SCRIPT)
    assert corpus.info["dropped_turns"] == {"sync": 12, "zero_length": 0, "interruption": []}


def test_segments_hold_the_participant_not_the_interviewer(tree, in_tmp_cwd):
    """The cut audio is the participant's voice (250/160 Hz), never Ellie's 1200 Hz prompts, also for
    the misaligned session 318 once its offset is applied."""
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    corpus.manifest = corpus.manifest[corpus.manifest["speaker"].isin(["300", "301", "318"])]
    segment_corpus(corpus, in_tmp_cwd / "seg.zarr", fps=0)
    seg = Segments(in_tmp_cwd / "seg.zarr")
    for uid, speaker, start, end in corpus.manifest[["id", "speaker", "start", "end"]].itertuples(index=False):
        audio = seg.audio(uid)
        assert len(audio) == pytest.approx((end - start) * 16000, abs=2)
        spectrum = np.abs(np.fft.rfft(audio))
        peak = np.fft.rfftfreq(len(audio), 1 / 16000)[spectrum.argmax()]
        voice = fake.DEPRESSED_FREQ if SCORES[int(speaker)] >= 10 else fake.HEALTHY_FREQ
        assert peak == pytest.approx(voice, abs=5), uid
        assert spectrum[np.abs(np.fft.rfftfreq(len(audio), 1 / 16000) - fake.ELLIE_FREQ) < 20].max() < 0.05 * spectrum.max()


def test_known_misalignment_is_shifted_and_can_be_switched_off(tree, in_tmp_cwd):
    fixed = prepare({"root": str(tree)}, in_tmp_cwd)
    raw = prepare({"root": str(tree), "known_fixes": False}, in_tmp_cwd)
    a, b = (c.manifest[c.manifest["speaker"] == "318"].set_index("id") for c in (fixed, raw))
    tr = transcript(tree, 318)
    assert list(b["start"]) == list(tr.loc[(tr["speaker"] == "Participant") & (tr["value"] != "<sync>"), "start_time"])
    assert np.allclose(a["start"] - b["start"], fake.MISALIGNED_318) and np.allclose(a["end"] - b["end"], fake.MISALIGNED_318)
    assert fixed.info["misalignment_fixed"] == {"318": fake.MISALIGNED_318} and raw.info["misalignment_fixed"] == {}
    others = fixed.manifest["speaker"] != "318"
    assert fixed.manifest.loc[others, "start"].equals(raw.manifest.loc[raw.manifest["speaker"] != "318", "start"])


def test_rows_in_a_known_interruption_are_dropped(tree, in_tmp_cwd, monkeypatch):
    monkeypatch.setitem(daicwoz.INTERRUPTIONS, 301, (2.6, 4.4))  # overlaps rows 3 (2.75–3.3) and 4 (4.3–4.9)
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    assert sorted(corpus.manifest.loc[corpus.manifest["speaker"] == "301", "id"]) == ["301_002", "301_005"]
    assert corpus.info["dropped_turns"]["interruption"] == ["301_003", "301_004"]
    kept = prepare({"root": str(tree), "known_fixes": False}, in_tmp_cwd).manifest
    assert (kept["speaker"] == "301").sum() == 4


def test_merge_gap_joins_rows_of_one_answer_only(tree, in_tmp_cwd):
    df = prepare({"root": str(tree), "merge_gap": 0.5}, in_tmp_cwd).manifest.set_index("id")
    assert list(df[df["speaker"] == "300"].index) == ["300_002", "300_004", "300_005"]
    assert df.loc["300_002", ["start", "end", "text"]].tolist() == [1.9, 3.3, "i'm doing okay a little tired"]
    tight = prepare({"root": str(tree), "merge_gap": 0.1}, in_tmp_cwd).manifest  # rows 0.25 s apart stay apart
    assert (tight["speaker"] == "300").sum() == 4
    wide = prepare({"root": str(tree), "merge_gap": 60}, in_tmp_cwd).manifest  # never across an Ellie row
    assert (wide["speaker"] == "300").sum() == 3
    with pytest.raises(ConfigError, match=r"corpora\.daicwoz\.merge_gap"):
        prepare({"root": str(tree), "merge_gap": -1}, in_tmp_cwd)


def test_edaic_layout(edaic, in_tmp_cwd):
    corpus = prepare({"root": str(edaic)}, in_tmp_cwd)
    df = corpus.manifest.set_index("id")
    assert corpus.info["layout"] == "edaic" and corpus.info["label_files"]["test"].endswith("labels/test_split.csv")
    assert corpus.info["interviewer_rows_excluded"] == 0 and corpus.info["known_fixes"] is False
    tr = pd.read_csv(edaic / "300_P" / "300_Transcript.csv")
    mine = df[df["speaker"] == "300"]
    assert list(mine.index) == ["300_001", "300_002", "300_003", "300_004"]
    assert list(mine["start"]) == list(tr["Start_Time"]) and list(mine["text"]) == list(tr["Text"])
    assert corpus.info["sessions"] == {"dev": 2, "test": 4, "train": 6}
    assert df.groupby("speaker")["phq8"].first().to_dict() == {str(p): s for p, s in SCORES.items()}
    assert corpus.info["phq8_binary_mismatch"][0]["participant"] == 304
    with pytest.raises(ManifestError, match=r"train_split_Depression_AVEC2017\.csv not found .*layout daicwoz"):
        prepare({"root": str(edaic), "layout": "daicwoz"}, in_tmp_cwd)


def test_edaic_session_folders_under_data(edaic, tmp_path, in_tmp_cwd):
    root = shutil.copytree(edaic, tmp_path / "E-DAIC")
    (root / "data").mkdir()
    for folder in root.glob("*_P"):
        folder.rename(root / "data" / folder.name)
    a = prepare({"root": str(edaic)}, in_tmp_cwd).manifest
    b = prepare({"root": str(root)}, in_tmp_cwd)
    assert b.manifest["id"].equals(a["id"]) and b.manifest["audio"].str.contains("E-DAIC/data/").all()
    assert b.info["unlisted_sessions"] == [399]


def test_turn_predictions_are_scored_per_session(tree, in_tmp_cwd):
    """unit: speaker — one score per participant from the mean of its turns' probabilities."""
    corpus = prepare({"root": str(tree)}, in_tmp_cwd)
    test = corpus.manifest[corpus.manifest["split"] == "test"]
    task = corpus.task("depression")
    depressed = (test["depression"] == "depressed").to_numpy()
    # every turn is right except one wrong, less confident turn per session: the session mean stays right
    first = (test.groupby("speaker").cumcount() == 0).to_numpy()
    p = np.where(depressed, 0.8, 0.2)
    p[first] = np.where(depressed, 0.4, 0.6)[first]
    proba = np.stack([1 - p, p], axis=1)
    pred = np.where(p >= 0.5, "depressed", "healthy")
    metrics, _ = evaluate(task, test["depression"].to_numpy(), pred, proba, task.classes, test["speaker"].to_numpy())
    assert metrics["n"] == len(fake.TEST) and metrics["uar"] == 1.0
    per_turn = evaluate(dataclasses.replace(task, unit="utterance"), test["depression"].to_numpy(),
                                        pred, proba, task.classes, test["speaker"].to_numpy())[0]
    assert per_turn["n"] == len(test) and per_turn["uar"] == 0.75
    reg, _ = evaluate(corpus.task("phq8"), test["phq8"].to_numpy(), test["phq8"].to_numpy() + 1.0, None, None,
                      test["speaker"].to_numpy())
    assert reg["n"] == len(fake.TEST) and reg["mae"] == pytest.approx(1.0)


def test_leakage_guard_and_participant_in_two_label_files(copy, in_tmp_cwd):
    corpus = prepare({"root": str(copy)}, in_tmp_cwd)
    corpus.manifest.loc[corpus.manifest["id"] == "300_002", "split"] = "test"
    with pytest.raises(ManifestError, match="speakers appear on both sides.*300"):
        validate(corpus, "daicwoz")
    dev = copy / "dev_split_Depression_AVEC2017.csv"
    dev.write_text(dev.read_text() + "300,0,3,1,0,0,0,0,0,0,0,0\n")
    with pytest.raises(ManifestError, match=at(dev) + ": participant 300 is also in train_split"):
        prepare({"root": str(copy)}, in_tmp_cwd)


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


BAD_TRANSCRIPTS = [
    ("start_time\tstop_time", "begin\tstop_time", r": missing columns \['start_time'\]"),
    ("4.300\t4.900", "4.300\tabc", r": line 8: stop_time 'abc' is not a number"),
    ("4.300\t4.900", "4.900\t4.300", r": line 8: stop_time 4\.3 is before start_time 4\.9"),
    ("Participant\tlos", "Interviewer\tlos", r": line 8: unknown speaker 'Interviewer'"),
    ("4.300\t4.900\tParticipant\tlos angeles", "4.300\t4.900\tParticipant", r": line 8: expected 4 fields, got 3"),
    ("5.900\t6.700", "7.900\t8.700", r": line 10: participant row \[7\.9, 8\.7\] s lies outside the audio \(301_AUDIO\.wav is 7\.200 s\)"),
]


@pytest.mark.parametrize("old,new,message", BAD_TRANSCRIPTS, ids=["column", "time", "order", "speaker", "fields", "outside"])
def test_bad_transcript_names_the_file_and_line(copy, in_tmp_cwd, old, new, message):
    path = copy / "301_P" / "301_TRANSCRIPT.csv"
    _edit(path, old, new)
    with pytest.raises(ManifestError, match=at(path) + message):
        prepare({"root": str(copy)}, in_tmp_cwd)


def test_row_just_past_the_audio_end_is_clipped(copy, in_tmp_cwd):
    _edit(copy / "301_P" / "301_TRANSCRIPT.csv", "5.900\t6.700", "5.900\t7.500")  # audio is 7.2 s
    corpus = prepare({"root": str(copy)}, in_tmp_cwd)
    assert corpus.manifest.set_index("id").loc["301_005", "end"] == pytest.approx(7.2)
    assert corpus.info["clipped_to_audio"] == ["301_005"]
    with pytest.raises(ManifestError, match=r"lies outside the audio"):
        prepare({"root": str(copy), "end_tolerance": 0.1}, in_tmp_cwd)


def test_missing_or_bad_files_are_named(copy, in_tmp_cwd):
    (copy / "302_P" / "302_AUDIO.wav").unlink()
    with pytest.raises(ManifestError, match=at(copy / "302_P" / "302_AUDIO.wav") + ": audio file not found"):
        prepare({"root": str(copy)}, in_tmp_cwd)
    shutil.rmtree(copy / "302_P")
    with pytest.raises(ManifestError, match=at(copy / "302_P") + r": session folder for participant 302 \(listed in train"):
        prepare({"root": str(copy)}, in_tmp_cwd)
    (copy / "303_P" / "303_TRANSCRIPT.csv").write_bytes(b"\xb0\x01Mac OS X")  # an AppleDouble shadow
    shutil.copytree(copy / "300_P", copy / "302_P")
    for f in (copy / "302_P").iterdir():
        f.rename(f.with_name(f.name.replace("300", "302")))
    with pytest.raises(ManifestError, match=at(copy / "303_P" / "303_TRANSCRIPT.csv") + ": transcript is not UTF-8"):
        prepare({"root": str(copy)}, in_tmp_cwd)


@pytest.mark.parametrize("edit,message", [
    (("300,0,3", "300,0,3.5"), r": line 2: PHQ8_Score '3\.5' is not a PHQ-8 total"),
    (("300,0,3", "300,2,3"), r": line 2: PHQ8_Binary '2' is not 0 or 1"),
    (("300,0,3", "P300,0,3"), r": line 2: Participant_ID 'P300' is not a participant number"),
    (("PHQ8_Score", "Score"), r": missing column PHQ8_Score or PHQ_Score"),
], ids=["score", "binary", "id", "column"])
def test_bad_label_file_names_the_file_and_line(copy, in_tmp_cwd, edit, message):
    path = copy / "train_split_Depression_AVEC2017.csv"
    _edit(path, *edit)
    with pytest.raises(ManifestError, match=at(path) + message):
        prepare({"root": str(copy)}, in_tmp_cwd)


def test_layout_problems_are_named(copy, edaic, tmp_path, in_tmp_cwd):
    (copy / "full_test_split.csv").unlink()
    with pytest.raises(ManifestError, match=r"full_test_split\.csv: label file not found \(test_split_Depression_AVEC"):
        prepare({"root": str(copy)}, in_tmp_cwd)
    shutil.copytree(edaic / "labels", copy / "labels")
    with pytest.raises(ManifestError, match="holds both DAIC-WOZ .* and E-DAIC"):
        prepare({"root": str(copy)}, in_tmp_cwd)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no DAIC-WOZ or E-DAIC label files"):
        prepare({"root": str(tmp_path / "empty")}, in_tmp_cwd)
    with pytest.raises(ManifestError, match=r"corpora\.daicwoz\.root is not set"):
        prepare({}, in_tmp_cwd)
    with pytest.raises(ConfigError, match=r"corpora\.daicwoz\.protocol = 'loso'"):
        prepare({"root": str(edaic), "protocol": "loso"}, in_tmp_cwd)


@pytest.mark.dvc
def test_through_dvc_repro(tree, tmp_path):
    """prepare → segment → embed (eGeMAPS) → probe on the fake; the test rows are scored per session."""
    params = {
        "run": {"corpora": ["daicwoz"], "backbones": ["egemaps"], "heads": ["logreg"]},
        "corpora": {"daicwoz": {"root": str(tree)}},
        "segment": {"fps": 0},
    }
    repo = make_repo(tmp_path / "repo", tmp_path / "remote", **params)
    sh(repo, "dvc", "repro")
    rows = json.loads((repo / "metrics/leaderboard.json").read_text())
    got = {r["task"]: r for r in rows if r["corpus"] == "daicwoz" and r["split"] == "test"}
    assert set(got) == {"depression", "phq8"}
    assert got["depression"]["n"] == got["phq8"]["n"] == len(fake.TEST)  # sessions, not turns
    assert got["depression"]["uar"] is not None and got["phq8"]["ccc"] is not None
