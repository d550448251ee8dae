"""An atomic fetch: a failed download leaves no model directory, and a half-filled one is refused clearly.

Before, ``fetch`` created ``models/pretrained/<name>/`` first and downloaded into it, so a failed
offline fetch left a directory holding only the hub's ``.cache/``; loading then failed with
transformers' "Unrecognized model ... model_type" instead of the "fetch it again" message.
"""

from __future__ import annotations

import json
import os

import pytest

from pipeline.core.errors import BackboneError
from pipeline.core.runtime import resolve_source
from pipeline.tools.models import ModelFetchError, fetch, main

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CFG = {"source": "facebook/wav2vec2-base"}


@pytest.fixture
def hub(monkeypatch):
    """A fake Hugging Face: ``hub["fail"]`` set makes the download die halfway, as a dropped link does."""
    import huggingface_hub

    state = {"fail": None, "local_dirs": []}

    class Info:
        sha = COMMIT

    def snapshot_download(repo_id, *, revision, local_dir, allow_patterns, ignore_patterns):
        state["local_dirs"].append(local_dir)
        (local_dir / ".cache" / "huggingface" / "download").mkdir(parents=True, exist_ok=True)
        if state["fail"]:  # a new revision's first file arrives, then the link drops
            (local_dir / "config.json").write_text('{"model_type": "wav2vec2", "revision": "new"}')
            (local_dir / ".cache/huggingface/download/abc.etag.incomplete").write_bytes(b"\0" * 10)
            raise state["fail"]
        (local_dir / "config.json").write_text('{"model_type": "wav2vec2"}')
        (local_dir / "model.safetensors").write_bytes(b"\0" * 100)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, repo_id, revision=None: Info())
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr("pipeline.tools.models._hf_offline", lambda: False)
    return state


def _entries(directory):
    return sorted(os.listdir(directory)) if directory.exists() else []


def test_a_failed_fetch_leaves_nothing_behind(in_tmp_cwd, hub):
    hub["fail"] = OSError("[Errno 101] Network is unreachable")
    dest = in_tmp_cwd / "models" / "pretrained" / "wav2vec2"
    with pytest.raises(ModelFetchError, match="cannot reach Hugging Face"):
        fetch("wav2vec2", CFG, dest=dest)
    assert not dest.exists()
    assert _entries(dest.parent) == []  # no temporary either
    assert hub["local_dirs"][0].parent == dest.parent  # it was downloading beside dest, not into it


def test_an_interrupt_mid_download_leaves_nothing_behind(in_tmp_cwd, hub):
    hub["fail"] = KeyboardInterrupt()
    dest = in_tmp_cwd / "m" / "wav2vec2"
    with pytest.raises(KeyboardInterrupt):
        fetch("wav2vec2", CFG, dest=dest)
    assert _entries(dest.parent) == []


def test_a_failed_refetch_keeps_the_complete_model(in_tmp_cwd, hub):
    dest = in_tmp_cwd / "m" / "wav2vec2"
    fetch("wav2vec2", CFG, dest=dest)
    before = {p.name: p.read_bytes() for p in dest.iterdir() if p.is_file()}
    hub["fail"] = OSError("[Errno 101] Network is unreachable")
    with pytest.raises(ModelFetchError):
        fetch("wav2vec2", CFG, revision="v2", dest=dest)
    assert {p.name: p.read_bytes() for p in dest.iterdir() if p.is_file()} == before
    assert _entries(dest.parent) == ["wav2vec2"]
    assert json.loads((dest / "FETCHED.json").read_text())["revision"] == COMMIT


def test_a_killed_fetchs_temporary_is_removed_by_the_next_fetch(in_tmp_cwd, hub):
    dest = in_tmp_cwd / "m" / "wav2vec2"
    dest.parent.mkdir(parents=True)
    # what `kill -9` during a download leaves: a temporary of a pid that no longer exists
    stale = dest.parent / ".wav2vec2.tmp-999999999@nohost~abcdefgh"
    (stale / ".cache").mkdir(parents=True)
    from pipeline.core import io

    os.utime(stale, (0, 0))
    os.utime(stale / ".cache", (0, 0))
    assert io._TEMP.fullmatch(stale.name)
    fetch("wav2vec2", CFG, dest=dest)
    assert _entries(dest.parent) == ["wav2vec2"]
    assert (dest / "FETCHED.json").is_file() and (dest / "model.safetensors").is_file()


def test_the_cli_exit_status_and_message_on_failure(in_tmp_cwd, hub, capsys):
    (in_tmp_cwd / "params.yaml").write_text("backbones:\n  wav2vec2: {type: hf_audio, source: facebook/wav2vec2-base}\n")
    hub["fail"] = OSError("[Errno 101] Network is unreachable")
    assert main(["fetch", "wav2vec2"]) == 1
    assert "cannot reach Hugging Face" in capsys.readouterr().err
    assert not (in_tmp_cwd / "models" / "pretrained" / "wav2vec2").exists()


@pytest.mark.parametrize(
    "layout, expected",
    [
        ({}, "is empty"),
        ({".cache/huggingface/download/x.metadata": b""}, r"holds no model files, only \.cache,"),
        ({"config.json": b"{}", ".cache/huggingface/download/abc.etag.incomplete": b"\0"},
         r"is incomplete \(1 unfinished \*\.incomplete download"),
    ],
    ids=["empty", "only-the-hub-cache", "unfinished-download"],
)
def test_the_loader_names_what_is_missing(tmp_path, layout, expected):
    """What an interrupted fetch left before this fix: the clear "fetch it again" message, not the loader's."""
    model = tmp_path / "wav2vec2"
    model.mkdir()
    for rel, data in layout.items():
        (model / rel).parent.mkdir(parents=True, exist_ok=True)
        (model / rel).write_bytes(data)
    with pytest.raises(BackboneError, match=rf"backbones\.wav2vec2: source directory .* {expected}") as info:
        resolve_source("wav2vec2", str(model))
    assert "python -m pipeline.tools.models fetch wav2vec2" in str(info.value) and "dvc pull" in str(info.value)


def test_a_complete_local_model_directory_still_loads(tmp_path):
    model = tmp_path / "tiny"
    (model / ".cache" / "huggingface" / "download").mkdir(parents=True)  # `hf download --local-dir` leaves this
    (model / "config.json").write_text("{}")
    assert resolve_source("tiny", str(model)) == model
