"""Integrity of the library's own stores and caches (the DVC-level behaviour is in test_integrity_dvc.py).

Incremental segmenting through the segment cache; damaged cache shards found on read, reported and
re-decoded; truncated media an error or a listed skip naming the file; quality warnings listed;
stores never sealed with a NaN and checked on read; the ``verify`` tool naming what is damaged.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core import io
from pipeline.core.errors import MediaError, StoreError
from pipeline.core.inputs import link_inputs, list_inputs, load_items, write_items
from pipeline.core.manifest import Corpus
from pipeline.core.segments import Segments
from pipeline.core.store import FeatureStore, write_store
from pipeline.segment.decode import segment_corpus
from pipeline.tools import verify
from tests.conftest import tone, write_wav


def make_corpus(root: Path, n: int = 6) -> Corpus:
    rows = []
    for i in range(n):
        path = write_wav(root / f"u{i}.wav", tone(0.3 + 0.05 * i, freq=200 + 30 * i, seed=i) * 0.3)
        rows.append({"id": f"u{i}", "speaker": f"s{i % 2}", "split": "train", "audio": str(path), "video": "", "text": ""})
    return Corpus("toy", pd.DataFrame(rows), [], str(root))


def chunk_files(group: Path, array: str) -> list[Path]:
    return sorted(p for p in (group / array).rglob("*") if p.is_file() and p.name != "zarr.json")


@pytest.fixture
def corpus(in_tmp_cwd):
    return make_corpus(in_tmp_cwd / "media")


def test_segment_decodes_only_new_and_edited_items(corpus, in_tmp_cwd, capsys):
    first = segment_corpus(corpus, "seg.zarr", fps=0, workers=1)
    assert (first.decoded, first.cached) == (6, 0)
    again = segment_corpus(corpus, "seg2.zarr", fps=0, workers=1)
    assert (again.decoded, again.cached) == (0, 6)
    seg1, seg2 = Segments("seg.zarr"), Segments("seg2.zarr")
    assert all(np.array_equal(seg1.audio(u), seg2.audio(u)) for u in seg1.ids)  # the cache gives the same store

    grown = make_corpus(in_tmp_cwd / "media", n=7)  # one new file (the others rewritten as they were)
    write_wav(corpus.manifest.loc[2, "audio"], tone(0.5, freq=500, seed=9) * 0.3)  # and one edited in place
    report = segment_corpus(grown, "seg3.zarr", fps=0, workers=1)
    assert (report.decoded, report.cached) == (2, 5)
    seg3 = Segments("seg3.zarr")
    assert not np.array_equal(seg3.audio("u2"), seg1.audio("u2")) and np.array_equal(seg3.audio("u3"), seg1.audio("u3"))
    assert list(seg3.group["audio_digest"][:]) != [""] * 7  # what each item was decoded from


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_damaged_segment_cache_shard_is_reported_and_re_decoded(corpus, capsys, damage):
    segment_corpus(corpus, "seg.zarr", fps=0, workers=1)
    clean = Segments("seg.zarr")
    shard = next(Path(".cache/segment").glob("*/shards/*.zarr"))
    chunk = chunk_files(shard, "audio")[0]
    if damage == "delete":
        chunk.unlink()
    else:
        chunk.write_bytes(chunk.read_bytes()[:100])
    report = segment_corpus(corpus, "seg2.zarr", fps=0, workers=1)
    err = capsys.readouterr().err
    assert f"segment cache shard {shard} is damaged" in err and "recomputed" in err.replace("computed again", "recomputed")
    assert report.decoded == 6
    again = Segments("seg2.zarr")
    assert all(np.array_equal(clean.audio(u), again.audio(u)) for u in clean.ids)


def test_truncated_media_is_an_error_or_a_listed_skip_naming_the_file(corpus):
    path = Path(corpus.manifest.loc[1, "audio"])
    data = path.read_bytes()
    path.write_bytes(data[: 44 + (len(data) - 44) // 2])  # the header still declares the full length
    with pytest.raises(MediaError, match=rf"{path.name}: .*truncated"):
        segment_corpus(corpus, "seg.zarr", fps=0, workers=1)
    report = segment_corpus(corpus, "seg.zarr", fps=0, workers=1, on_bad_media="skip")
    assert [(s["id"], "truncated" in s["reason"]) for s in report.skipped] == [("u1", True)]
    assert "u1" not in Segments("seg.zarr").ids


def test_silent_and_very_short_items_are_listed_as_warnings(corpus):
    write_wav(corpus.manifest.loc[0, "audio"], np.zeros(8000, np.float32))
    write_wav(corpus.manifest.loc[3, "audio"], tone(0.02, seed=3) * 0.3)
    report = segment_corpus(corpus, "seg.zarr", fps=0, workers=1)
    assert {w["id"]: w["warnings"] for w in report.warnings} == {"u0": ["silent"], "u3": ["short"]}
    assert report.counts() == {"skipped": 0, "short": 1, "silent": 1}


def test_items_table_and_inputs_link(corpus, in_tmp_cwd):
    out = in_tmp_cwd / "prepared"
    out.mkdir()
    items = write_items(corpus, out)
    assert list(items.columns[:3]) == ["id", "audio", "video"] and items["audio_digest"].str.len().eq(32).all()
    loaded = load_items("toy", out)
    assert loaded.manifest["audio_digest"].tolist() == items["audio_digest"].tolist()
    stale = in_tmp_cwd / f".inputs.tmp-{dead_pid()}@{io._ORIGIN}~abcdefgh"  # a killed inputs stage's link
    stale.symlink_to(in_tmp_cwd / "media")
    assert link_inputs("toy", str(in_tmp_cwd / "media"), in_tmp_cwd / "inputs") == str(in_tmp_cwd / "media")
    assert not stale.is_symlink()
    assert (in_tmp_cwd / "inputs").is_symlink() and (in_tmp_cwd / "inputs" / "u0.wav").exists()
    assert link_inputs("demo", None, in_tmp_cwd / "inputs") is None  # a synthesised corpus: a marker folder
    assert not (in_tmp_cwd / "inputs").is_symlink() and (in_tmp_cwd / "media" / "u0.wav").exists()


def test_the_inputs_listing_changes_exactly_when_some_file_under_the_root_does(corpus, in_tmp_cwd):
    root = str(in_tmp_cwd / "media")
    (in_tmp_cwd / "media" / "sub").mkdir()
    (in_tmp_cwd / "media" / "sub" / "notes.txt").write_text("a label file deeper down\n")
    first = list_inputs("toy", root)
    assert first["files"] == 7 and first["root"] == root and len(first["digest"]) == 32
    wav = in_tmp_cwd / "media" / "u0.wav"
    os.utime(wav, (1e9, 1e9))  # touched: stat changes, content does not
    assert list_inputs("toy", root) == first
    original = wav.read_bytes()
    wav.write_bytes(original[:-2] + b"\x01\x02")  # edited in place, same size
    edited = list_inputs("toy", root)["digest"]
    wav.write_bytes(original)
    assert edited != first["digest"] and list_inputs("toy", root) == first
    (in_tmp_cwd / "media" / "sub" / "notes.txt").rename(in_tmp_cwd / "media" / "sub" / "notes2.txt")  # renamed
    assert list_inputs("toy", root)["digest"] not in (first["digest"], edited)
    (in_tmp_cwd / "media" / "sub" / "notes2.txt").rename(in_tmp_cwd / "media" / "sub" / "notes.txt")
    (in_tmp_cwd / "media" / "sub" / "empty").mkdir()  # an empty folder: DVC ignores it too
    assert list_inputs("toy", root) == first
    (in_tmp_cwd / "media" / "u9.wav").write_bytes(original)  # added (a copy of a file)
    assert list_inputs("toy", root)["files"] == 8
    shutil.copytree(in_tmp_cwd / "media", in_tmp_cwd / "copy")  # the same content elsewhere: same digest
    (in_tmp_cwd / "media" / "u9.wav").unlink()
    (in_tmp_cwd / "copy" / "u9.wav").unlink()
    assert list_inputs("toy", str(in_tmp_cwd / "copy"))["digest"] == first["digest"]
    assert list_inputs("demo", None) == {"corpus": "demo", "root": None, "synthesised": True}


def test_a_store_is_never_sealed_with_a_nan_and_is_checked_on_read(in_tmp_cwd):
    ids = ["a", "b", "c"]
    with pytest.raises(StoreError, match="NaN"):
        write_store("bad.zarr", ids=ids, pooled=np.array([[1.0], [np.nan], [2.0]]), attrs={})
    assert not Path("bad.zarr").exists()
    write_store("s.zarr", ids=ids, pooled=np.arange(6, dtype=np.float32).reshape(3, 2),
                frames=[np.ones((2, 2)), np.ones((1, 2)), np.zeros((3, 2))], attrs={})
    assert FeatureStore("s.zarr").frames("c").shape == (3, 2)
    for chunk in chunk_files(Path("s.zarr"), "pooled"):
        chunk.unlink()  # Zarr would read the fill value (NaN) silently
    with pytest.raises(StoreError, match=r"s\.zarr: array pooled fails its checksum"):
        FeatureStore("s.zarr").pooled()


def test_verify_names_damaged_stores_and_repairs_cache_shards(corpus, capsys):
    segment_corpus(corpus, "data/toy/segments.zarr", fps=0, workers=1)
    write_store("features/toy/x.zarr", ids=["a"], pooled=np.ones((1, 3)), attrs={})
    import zarr

    old = zarr.open_group(".cache/embed/oldkey/shards/old.zarr", mode="w")  # a previous format's shard
    old.attrs["complete"] = True
    assert verify.main([]) == 0
    out = capsys.readouterr().out
    assert "all sound" in out and "obsolete: .cache/embed/oldkey/shards/old.zarr: records no checksums" in out
    chunk_files(Path("features/toy/x.zarr"), "pooled")[0].write_bytes(b"\x00" * 12)
    shard = next(Path(".cache/segment").glob("*/shards/*.zarr"))
    chunk_files(shard, "audio")[0].unlink()
    assert verify.main([]) == 1
    out = capsys.readouterr().out
    assert "damaged: features/toy/x.zarr: array pooled fails its checksum" in out and "dvc checkout" in out
    assert f"damaged: {shard}: array audio" in out and "--repair" in out
    stale = Path(f"data/toy/.segments.zarr.tmp-{dead_pid()}@{io._ORIGIN}~abcdefgh")  # a killed writer's temp
    stale.mkdir()
    assert verify.main(["--repair"]) == 1
    assert not shard.exists() and Path("features/toy/x.zarr").exists()  # shards go; DVC outputs are only reported
    assert not stale.exists() and "removed 1 temporary directory" in capsys.readouterr().out


def dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_the_inputs_stage_warns_about_a_label_file_outside_the_root(in_tmp_cwd, capsys):
    import argparse

    from stages import inputs

    make_corpus(in_tmp_cwd / "media")
    (in_tmp_cwd / "elsewhere").mkdir()
    (in_tmp_cwd / "elsewhere" / "labels.csv").write_text("path,emotion\nu0.wav,a\n")
    cfg = {"recipe": "manifest", "root": str(in_tmp_cwd / "media"), "tasks": ["emotion"]}
    params = {"corpora": {"toy": {**cfg, "file": str(in_tmp_cwd / "elsewhere" / "labels.csv")}}}
    inputs.main(argparse.Namespace(corpus="toy"), params)
    assert "elsewhere/labels.csv is outside the corpus root, so DVC does not watch it" in capsys.readouterr().err
    assert Path("data/toy/inputs").is_symlink()
    listing = json.loads(Path("data/toy/inputs.json").read_text())  # what prepare depends on
    assert listing == list_inputs("toy", str(in_tmp_cwd / "media")) and listing["files"] == len(list((in_tmp_cwd / "media").rglob("*.*")))
    params["corpora"]["toy"]["file"] = "labels.csv"  # under the root: watched, no warning
    inputs.main(argparse.Namespace(corpus="toy"), params)
    assert "warning" not in capsys.readouterr().err
