"""lhotse recipe: manifests written by lhotse itself → windowed items, labels from supervision fields,
per-part splits or protocols, every way a manifest can be wrong; segment decodes the supervised windows;
one `dvc repro` through prepare and segment."""

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import ConfigError, ManifestError
from pipeline.core.segments import Segments
from pipeline.corpora.base import corpus_settings, get_recipe
from pipeline.segment.decode import segment_corpus
from tests.data.lhotse.data import EMOTIONS, FREQ, LENGTH, PREFIX, generate
from tests.data.media import write_wav
from tests.dvc_util import make_repo, sh

TASKS = {"emotion": {"type": "classification"}, "arousal": {"type": "regression"}}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("lhotse") / "tree")


@pytest.fixture
def tree(template, in_tmp_cwd):
    """A fresh copy per test, relative to the working directory (short paths in messages)."""
    return Path(shutil.copytree(template, "corpus"))


def prepare(root, **cfg):
    return get_recipe("lhotse")({"root": str(root), "manifest_dir": "manifests", "tasks": TASKS, **cfg}, Path("x"))


def manifest(tree, kind, part="train"):
    return tree / "manifests" / f"{PREFIX}_{kind}_{part}.jsonl.gz"


def load(tree, kind, part="train"):
    from lhotse import load_manifest

    return load_manifest(manifest(tree, kind, part))


def save(tree, kind, items, part="train"):
    from lhotse import RecordingSet, SupervisionSet

    cls = RecordingSet if kind == "recordings" else SupervisionSet
    (cls.from_recordings if kind == "recordings" else cls.from_segments)(list(items)).to_file(manifest(tree, kind, part))


def edit_first(tree, kind, part="train", **changes):
    """Replace fields of the first recording/supervision of a part (lhotse's dataclasses, rewritten by lhotse)."""
    import dataclasses

    items = list(load(tree, kind, part))
    items[0] = dataclasses.replace(items[0], **changes)
    save(tree, kind, items, part)


def test_supervisions_become_windowed_items(tree):
    corpus = prepare(tree)
    df = corpus.manifest.set_index("id")
    assert len(df) == 40 and list(df.index[:2]) == ["s1_0", "s1_1"]
    row = df.loc["s2_5"]
    assert row.audio == "corpus/audio/s2/s2_session.wav" and row.video == ""
    assert (row.start, row.end) == (pytest.approx(2.55), pytest.approx(2.95))
    assert (row.speaker, row.text, row.emotion, row.arousal) == ("s2", "sentence 5 of s2", "happy", pytest.approx(0.65))
    assert corpus.task("emotion").classes == EMOTIONS and corpus.task("arousal").type == "regression"
    assert df.groupby("split")["speaker"].unique().map(sorted).to_dict() == {
        "train": ["s1", "s2", "s3"], "dev": ["s4"], "test": ["s5"]
    }  # fmt: skip
    info = corpus.info
    assert info["protocol"] == "official" and info["kind"] == "supervisions" and info["prefix"] == PREFIX
    assert info["parts"] == {"train": "train", "dev": "dev", "test": "test"} and info["speaker_independent"]
    assert "corpus/manifests/fakeemo_supervisions_dev.jsonl.gz" in info["manifests"]
    assert "fold" not in df and "unlabelled" not in info


def test_the_windows_decode_to_the_supervised_tones(tree, tmp_path):
    corpus = prepare(tree)
    segment_corpus(corpus, tmp_path / "seg.zarr", cache=tmp_path / "cache", workers=1)
    seg = Segments(tmp_path / "seg.zarr")
    for uid, emotion in zip(corpus.manifest["id"], corpus.manifest["emotion"]):
        audio = seg.audio(uid)
        assert abs(len(audio) - LENGTH * 16000) <= 16, uid  # the window, not the whole 4 s session
        peak = np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / len(audio)
        assert peak == pytest.approx(FREQ[emotion], abs=5), uid  # this slot's tone, not a neighbour's


@pytest.mark.parametrize("trim", [False, True], ids=["cut per recording", "cut per supervision"])
def test_cuts_give_the_same_items_as_recordings_and_supervisions(tree, trim):
    cuts = generate(Path("cuts"), cuts=True, trim=trim)
    a, b = prepare(tree).manifest, prepare(cuts).manifest
    assert prepare(cuts).info["kind"] == "cuts"
    b["audio"] = b["audio"].str.replace("cuts/", "corpus/", n=1)
    assert a.drop(columns=["start", "end", "arousal"]).equals(b.drop(columns=["start", "end", "arousal"]))
    for col in ("start", "end", "arousal"):
        assert b[col].tolist() == pytest.approx(a[col].tolist())


def test_without_parts_the_protocol_is_kfold_by_speaker(in_tmp_cwd):
    root = generate(Path("flat"), parts=False)
    corpus = prepare(root, folds=3)
    df = corpus.manifest
    assert corpus.info["protocol"] == "kfold" and corpus.info["parts"] == {"(no part)": "train"}
    assert df.groupby("speaker")["fold"].first().to_dict() == {"s1": 0, "s2": 1, "s3": 2, "s4": 0, "s5": 1}
    assert prepare(root, protocol="loso").manifest["fold"].nunique() == 5
    split = prepare(root, protocol="random_split", seed=1).manifest
    assert split.groupby("speaker")["split"].nunique().max() == 1 and set(split["split"]) == {"train", "dev", "test"}
    with pytest.raises(ManifestError, match=r"protocol official needs test rows"):
        prepare(root, protocol="official")


def test_the_splits_option_names_parts_and_leaves_others_out(tree):
    corpus = prepare(tree, splits={"train": "train", "test": "test"}, dev_fraction=0.3)
    df = corpus.manifest
    assert corpus.info["parts_skipped"] == ["dev"] and "s4" not in set(df["speaker"])
    assert corpus.info["dev"] == "carved from train by whole speakers" and (df["split"] == "dev").sum() == 8
    # a part name that says no split must be mapped
    for kind in ("recordings", "supervisions"):
        manifest(tree, kind, "dev").rename(manifest(tree, kind, "fold1"))
    with pytest.raises(ManifestError, match=r"^corpus/manifests: part 'fold1' is not train\*.*say which split"):
        prepare(tree)
    moved = prepare(tree, splits={"train": "train", "fold1": "train", "test": "test"}).manifest
    assert set(moved.loc[moved["split"] != "test", "speaker"]) == {"s1", "s2", "s3", "s4"}
    with pytest.raises(ManifestError, match=r"splits names parts \['dev'\] that have no manifests"):
        prepare(tree, splits={"dev": "dev"})


def test_fields_from_custom_or_top_level_and_missing_labels(tree):
    sups = list(load(tree, "supervisions"))
    sups[0].custom.pop("emotion")
    for sup in sups:
        sup.language = "German"
    sups[1].language = "English"
    save(tree, "supervisions", sups)
    corpus = prepare(tree, tasks={"emotion": None, "lang": {"column": "language"}}, speaker=None, text=None,
                     group="recording")
    df = corpus.manifest.set_index("id")
    assert pd.isna(df.loc["s1_0", "emotion"]) and corpus.info["unlabelled"] == {"emotion": 1, "lang": 16}
    assert df.loc["s1_1", "lang"] == "English" and corpus.task("lang").classes == ["English", "German"]
    assert (df["text"] == "").all() and (df["speaker"] == df.index).all() and not corpus.info["speaker_independent"]
    assert df.loc["s3_2", "group"] == "s3_session"
    with pytest.raises(ManifestError, match=r"^corpus/manifests: no supervision has a field 'valence' \(top-level "
                                            r"fields: \[.*'speaker'.*\]; custom keys: \['arousal', 'emotion'\]\)"):
        prepare(tree, tasks=["valence"])
    with pytest.raises(ManifestError, match=r"^corpus/manifests/fakeemo_supervisions_train\.jsonl\.gz: supervision "
                                            r"'s1_2': unknown emotion label 'neutral' \(known: \['angry', 'happy'\]\)"):
        prepare(tree, tasks={"emotion": {"classes": ["angry", "happy"]}})


def test_channels_and_sources(tree):
    from lhotse import AudioSource, Recording

    # a stereo file with a supervision on its left channel: averaging both would mix in the right one
    write_wav(tree / "audio/s1/stereo.wav", np.stack([np.zeros(64000), np.ones(64000) * 0.1], axis=1).astype("f4"))
    stereo = Recording("s1_session", [AudioSource("file", [0, 1], "audio/s1/stereo.wav")], 16000, 64000, 4.0)
    recs = list(load(tree, "recordings"))
    save(tree, "recordings", [stereo, *recs[1:]])
    with pytest.raises(ManifestError, match=r"^corpus/manifests/fakeemo_supervisions_train\.jsonl\.gz: supervision "
                                            r"'s1_0': lies on channel\(s\) \[0\] of recording 's1_session', whose "
                                            r"file audio/s1/stereo\.wav holds channels \[0, 1\].*multichannel: downmix"):
        prepare(tree)
    assert prepare(tree, multichannel="downmix").info["downmixed"] == 8
    # one file per channel: the supervision's channel is read from its own file
    per_channel = [AudioSource("file", [0], "audio/s2/s2_session.wav"), AudioSource("file", [1], "audio/s1/s1.wav")]
    shutil.copy(tree / "audio/s2/s2_session.wav", tree / "audio/s1/s1.wav")
    save(tree, "recordings", [Recording("s1_session", per_channel, 16000, 64000, 4.0), *recs[1:]])
    sups = list(load(tree, "supervisions"))
    for sup in sups[:8]:
        sup.channel = 1
    save(tree, "supervisions", sups)
    assert prepare(tree).manifest.set_index("id").loc["s1_3", "audio"] == "corpus/audio/s1/s1.wav"
    for sup in sups[:8]:
        sup.channel = [0, 1]
    save(tree, "supervisions", sups)
    with pytest.raises(ManifestError, match=r"supervision 's1_0': channel\(s\) \[0, 1\] of recording 's1_session' "
                                            r"lie in 2 audio sources"):
        prepare(tree)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda t: edit_first(t, "recordings", sources=[_source("url", "http://x/a.wav")]),
         r"supervisions_train\.jsonl\.gz: supervision 's1_0': recording 's1_session' has a 'url' audio source"),
        (lambda t: edit_first(t, "recordings", sources=[_source("file", "../outside.wav")]),
         r"supervision 's1_0': media path '\.\./outside\.wav' escapes the corpus root corpus"),
        (lambda t: edit_first(t, "recordings", transforms=[{"name": "Speed", "kwargs": {"factor": 1.1}}]),
         r"supervision 's1_0': recording 's1_session' has transforms \['Speed'\], which the segment stage does not"),
        (lambda t: edit_first(t, "supervisions", "dev", id="s1_0"),
         (r"^corpus/manifests/fakeemo_supervisions_dev\.jsonl\.gz: supervision 's1_0': duplicate supervision id "
         r"\(first in corpus/manifests/fakeemo_supervisions_train\.jsonl\.gz\)")),
        (lambda t: edit_first(t, "supervisions", duration=9.0),
         (r"^corpus/manifests/fakeemo_supervisions_train\.jsonl\.gz \(recordings: corpus/manifests/fakeemo_recordings_"
         r"train\.jsonl\.gz\): Supervision s1_0: exceeded the bounds of its corresponding recording")),
        (lambda t: edit_first(t, "supervisions", recording_id="nope"),
         r"supervisions_train\.jsonl\.gz .*: Supervision s1_0 references non-existent recording nope"),
        (lambda t: edit_first(t, "supervisions", custom={"emotion": ["angry"]}),
         r"supervision 's1_0': field 'emotion' is a list, not a label"),
        (lambda t: manifest(t, "supervisions").write_bytes(b"not gzip"),
         r"^corpus/manifests/fakeemo_supervisions_train\.jsonl\.gz: cannot read the lhotse manifest \(BadGzipFile"),
        (lambda t: _plain(t, lambda lines: lines[:1] + ['{"id": oops}'] + lines[1:]),
         r"fakeemo_supervisions_train\.jsonl: cannot read the lhotse manifest \(line 2: malformed JSON"),
        (lambda t: _plain(t, lambda lines: [json.dumps({"hello": 1})]),
         r"supervisions_train\.jsonl: cannot read the lhotse manifest \(not a lhotse RecordingSet, SupervisionSet or Cut"),
        (lambda t: _plain(t, lambda lines: []), r"supervisions_train\.jsonl: the lhotse manifest is empty"),
        (lambda t: shutil.copy(manifest(t, "recordings"), manifest(t, "supervisions")),
         r"fakeemo_supervisions_train\.jsonl\.gz: holds a RecordingSet, expected a SupervisionSet"),
        (lambda t: manifest(t, "recordings", "dev").unlink(),
         r"^corpus/manifests: fakeemo_supervisions_dev\.jsonl\.gz has no recordings manifest beside it"),
        (lambda t: shutil.copy(manifest(t, "recordings"), t / "manifests/other_recordings_train.jsonl.gz"),
         r"^corpus/manifests: manifests of several prefixes \['fakeemo', 'other'\]; set prefix"),
        (lambda t: shutil.rmtree(t / "manifests"), r"^corpus/manifests: lhotse manifest folder not found"),
    ],
    ids=["url", "escapes root", "speed", "duplicate", "beyond recording", "no recording", "list",
         "bad gzip", "bad json", "not lhotse", "empty", "wrong type", "no pair", "two prefixes", "no folder"],
)
def test_bad_manifests_are_one_error_naming_the_file(tree, damage, message):
    damage(tree)
    with pytest.raises(ManifestError, match=message):
        prepare(tree)


def _source(kind, path):
    from lhotse import AudioSource

    return AudioSource(kind, [0], path)


def _plain(tree, edit):
    """Rewrite the train supervisions as plain (uncompressed) JSONL lines, edited."""
    lines = gzip.decompress(manifest(tree, "supervisions").read_bytes()).decode().splitlines()
    manifest(tree, "supervisions").unlink()
    (tree / "manifests" / f"{PREFIX}_supervisions_train.jsonl").write_text("".join(f"{line}\n" for line in edit(lines)))


def test_cut_manifests_beside_supervisions_and_cut_types(tree):
    from lhotse import CutSet

    cuts = CutSet.from_manifests(recordings=load(tree, "recordings"), supervisions=load(tree, "supervisions"))
    cuts.to_file(tree / "manifests" / f"{PREFIX}_cuts_train.jsonl.gz")
    with pytest.raises(ManifestError, match=r"holds both cuts and recordings/supervisions manifests .* set kind"):
        prepare(tree)
    supervised = prepare(tree, kind="supervisions")
    assert len(supervised.manifest) == 40 and not any("_cuts_" in f for f in supervised.info["manifests"])
    assert len(prepare(tree, kind="cuts", protocol="loso").manifest) == 24  # only the train part has cuts
    first, second = list(cuts)[:2]
    CutSet.from_cuts([first.mix(second)]).to_file(tree / "manifests" / f"{PREFIX}_cuts_train.jsonl.gz")
    with pytest.raises(ManifestError, match=r"cuts_train\.jsonl\.gz: cut '[^']+': is a MixedCut; only cuts of one"):
        prepare(tree, kind="cuts", protocol="loso")


def test_absolute_sources_inside_the_root_and_options(in_tmp_cwd):
    root = generate(Path("abs"), absolute=True)
    assert prepare(root).manifest["audio"][0] == "abs/audio/s1/s1_session.wav"
    with pytest.raises(ConfigError, match=r"corpora\.lhotse: unknown key 'multichanel' \(did you mean 'multichannel'"):
        prepare(root, multichanel="downmix")
    with pytest.raises(ConfigError, match=r"corpora\.lhotse\.kind = 'features'"):
        prepare(root, kind="features")
    outside = corpus_settings("x", {"recipe": "lhotse", "root": "abs", "manifest_dir": "/elsewhere", "tasks": ["e"]})
    assert outside.files_outside_root() == ["/elsewhere"]  # DVC watches the root only: the inputs stage warns


@pytest.mark.dvc
def test_prepare_and_segment_through_dvc_repro(tmp_path):
    root = generate(tmp_path / "corpus", per_speaker=4)
    params = {
        "run": {"corpora": ["emolh"], "backbones": ["egemaps"], "heads": ["logreg"]},
        "corpora": {"emolh": {"recipe": "lhotse", "root": str(root), "manifest_dir": "manifests", "tasks": ["emotion"]}},
    }
    repo = make_repo(tmp_path / "repo", tmp_path / "remote", **params)
    out = sh(repo, "dvc", "repro", "segment@emolh")
    assert "Running stage 'prepare@emolh'" in out and "Running stage 'segment@emolh'" in out
    assert "prepared emolh: 20 utterances" in out
    seg = Segments(repo / "data/emolh/segments.zarr")
    assert len(seg.ids) == 20 and all(abs(seg.duration(u) - LENGTH) < 2e-3 for u in seg.ids)
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status", "segment@emolh")
