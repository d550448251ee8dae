"""HEAR 2021 interop: any HEAR module as a backbone (type ``hear``), any audio backbone as a HEAR module.

Two workarounds, both confined to this test side:

- ``hearbaseline`` 2021.1.1's naive module calls ``librosa.filters.mel`` with ``sr`` positionally, which
  librosa >= 0.10 rejects; ``tests/data/hear_naive.py`` says why its one-call mend is faithful. In-process
  tests patch ``librosa.filters.mel`` with that mend (fixture ``naive_loads``) and name the real module
  ``hearbaseline.naive``; the DVC test names the shim module itself (its stages are subprocesses).
- ``hearvalidator.validate`` imports TensorFlow at its top, only for TensorFlow models: its torch path
  touches ``tf.Module`` (an ``isinstance`` check that must be False for a torch model) and, for
  TensorFlow models only, ``tf.device``. TensorFlow is not part of this stack, so fixture
  ``validator`` puts a stand-in module in ``sys.modules`` that holds exactly those two names — a
  class nothing is an instance of, and a ``device`` that fails the test if called — and raises on any
  other attribute. Everything else is the validator's own code (``ValidateModel``: import, load,
  sample rate, sizes, three timestamp runs, one scene run), which must pass on every exported backbone
  and fail on each deliberately broken one.
"""

from __future__ import annotations

import importlib
import itertools
import json
import sys
import textwrap
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.core.errors import BackboneError, ConfigError
from pipeline.core.media import decode_audio
from pipeline.core.store import FeatureStore
from pipeline.features.backbones.base import build_backbone
from pipeline.features.backbones.clap import resample
from pipeline.features.embed.engine import embed_corpus
from tests.conftest import EMODB, ROOT, needs_emodb
from tests.dvc_util import make_repo, sh
from tests.factories import TONE_SPLIT, tiny_wav2vec2, tone_corpus

WAVS = ["03a01Fa.wav", "03a02Nc.wav", "03a04Fd.wav"]
EXPORT = "pipeline.tools.hear_export"
_names = itertools.count()


def _cos(a, b) -> np.ndarray:
    """Row-wise cosine of two [N, D] arrays."""
    a, b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture
def naive_loads(monkeypatch):
    """hearbaseline.naive's load_model works: librosa.filters.mel takes ``sr`` positionally again."""
    import librosa

    from tests.data.hear_naive import mel_accepting_positional_sr

    monkeypatch.setattr(librosa.filters, "mel", mel_accepting_positional_sr)


@pytest.fixture
def write_module(tmp_path, monkeypatch):
    """Write a module into a folder on sys.path; returns its (unique) importable name."""
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))

    def write(source: str) -> str:
        name = f"hear_test_module_{next(_names)}"
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return name

    return write


# --- the `hear` backbone ---------------------------------------------------------------------------


@needs_emodb
def test_hear_backbone_equals_the_module_on_librosa_loaded_audio(naive_loads):
    """Our store path (ffmpeg-decoded 16 kHz → soxr to 44.1 kHz → the module) against what a HEAR user
    does: ``librosa.load(wav, sr=model.sample_rate)`` and the module's own functions."""
    import librosa
    from hearbaseline import naive

    scene = build_backbone("naive", {"type": "hear", "module": "hearbaseline.naive", "frames": True})
    stamps = build_backbone("naive_ts", {"type": "hear", "module": "hearbaseline.naive", "embedding": "timestamp"})
    model = naive.load_model()
    for wav in WAVS:
        audio = decode_audio(EMODB / wav)
        ours, ours_ts = scene.embed([audio])[0], stamps.embed([audio])[0]
        x, _ = librosa.load(EMODB / wav, sr=model.sample_rate)
        with torch.no_grad():
            ref = naive.get_scene_embeddings(torch.from_numpy(x)[None], model)[0].numpy()
            ref_frames, ref_times = naive.get_timestamp_embeddings(torch.from_numpy(x)[None], model)
        assert _cos(ours.pooled, ref)[0] >= 0.9999, wav
        assert ours.frames.shape == ref_frames[0].shape, wav
        assert _cos(ours.frames, ref_frames[0].numpy()).min() >= 0.9999, wav
        assert _cos(ours_ts.pooled, ref_frames[0].numpy().mean(0))[0] >= 0.9999, wav
        assert ours_ts.frames is None  # frames only when asked for
    info = scene.describe()
    assert info["frame_rate"] == 1000.0 / float(np.diff(ref_times[0].numpy()).mean()) == 20.0
    assert (info["hear_module"], info["hear_module_version"], info["hear_sample_rate"]) == (
        "hearbaseline.naive", "2021.1.1", 44100)


def test_hearbaseline_naive_under_librosa_10_is_one_line_naming_load_model():
    """Unmended, hearbaseline.naive's librosa call fails: reported as the module's failure, not hidden."""
    import librosa

    if int(librosa.__version__.split(".")[0]) == 0 and int(librosa.__version__.split(".")[1]) < 10:
        pytest.skip("librosa < 0.10 still takes sr positionally")
    with pytest.raises(BackboneError, match=r"backbones\.naive: hearbaseline\.naive\.load_model\(''\) failed: TypeError"):
        build_backbone("naive", {"type": "hear", "module": "hearbaseline.naive"})


def test_a_hear_module_runs_through_the_embed_engine(tmp_path):
    """The engine end to end (cache, store, attributes) with the naive module, against the module itself."""
    from hearbaseline import naive

    from tests.data import hear_naive

    corpus, seg = tone_corpus(tmp_path / "corpus", TONE_SPLIT, n_per=1)
    cfg = {"type": "hear", "module": "tests.data.hear_naive", "frames": True, "batch_size": 4}
    engine = {"cache": str(tmp_path / "cache"), "shard_size": 8}
    info = embed_corpus(corpus, seg, "naive", cfg, tmp_path / "a.zarr", engine=engine)
    assert (info["n"], info["computed"], info["dims"]) == (12, 12, 4096)
    store = FeatureStore(tmp_path / "a.zarr")
    attrs = store.attrs
    assert attrs["type"] == "hear" and attrs["hear_module"] == "tests.data.hear_naive"
    assert attrs["hear_module_version"] == "2021.1.1+librosa-shim" and attrs["frame_rate"] == 20.0
    assert attrs["revision"].startswith("tests.data.hear_naive==2021.1.1+librosa-shim; code sha256:")
    model = hear_naive.load_model()
    for uid in store.ids[:4]:
        x = torch.from_numpy(resample(seg.audio(uid), 44100))[None]
        with torch.no_grad():
            ref = naive.get_scene_embeddings(x, model)[0].numpy()
            ref_frames = naive.get_timestamp_embeddings(x, model)[0][0].numpy()
        np.testing.assert_allclose(store.pooled([uid])[0], ref, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(store.frames(uid), ref_frames, rtol=1e-5, atol=1e-4)
    again = embed_corpus(corpus, seg, "naive", cfg, tmp_path / "b.zarr", engine=engine)
    assert (again["computed"], again["cached"]) == (0, 12)  # the revision is stable: the cache key holds


TOY = """
    import torch

    class Toy(torch.nn.Module):
        sample_rate = {rate}
        scene_embedding_size = 3
        timestamp_embedding_size = 2

    def load_model(model_file_path=""):
        model = Toy()
        model.path = model_file_path
        return model

    def get_scene_embeddings(audio, model):
        n = torch.full((audio.shape[0],), float(audio.shape[1]))
        return torch.stack([n, audio.mean(1), audio.abs().max(1).values], 1)

    def get_timestamp_embeddings(audio, model):
        hop = model.sample_rate // 40  # 25 ms
        t = audio.shape[1] // hop
        frames = audio[:, : t * hop].reshape(audio.shape[0], t, hop)
        times = (torch.arange(t) * 25.0 + 12.5).expand(audio.shape[0], t)
        return torch.stack([frames.mean(-1), frames.std(-1)], -1), times
"""


def test_audio_reaches_the_module_at_its_rate_one_utterance_per_call(write_module):
    rng = np.random.default_rng(0)
    audio = [rng.uniform(-0.5, 0.5, n).astype(np.float32) for n in (16000, 12345)]
    same = build_backbone("toy", {"type": "hear", "module": write_module(TOY.format(rate=16000))})
    for x, emb in zip(audio, same.embed(audio)):  # at 16 kHz the samples arrive untouched
        np.testing.assert_allclose(emb.pooled, [len(x), x.mean(), np.abs(x).max()], rtol=1e-5, atol=1e-7)
    other = build_backbone("toy", {"type": "hear", "module": write_module(TOY.format(rate=22050)), "frames": True,
                                   "min_seconds": 1.0})
    embs = other.embed(audio)
    assert [e.pooled[0] for e in embs] == [22050.0, 22050.0]  # ceil(n × 22050 / 16000), the short one padded to 1 s
    assert other.describe()["n_padded"] == 1 and other.describe()["frame_rate"] == 40.0
    assert other.describe()["first_timestamp_ms"] == 12.5 and embs[0].frames.shape == (40, 2)


BROKEN = {
    "missing function": (("def get_timestamp_embeddings", "def timestamp_embeddings"),
                         r"'hear_test_module_\d+' lacks get_timestamp_embeddings"),
    "not a torch module": (("return model", "return object()"), r"returned a object, not a torch.nn.Module"),
    "no sample_rate": (("sample_rate = 16000", "rate = 16000"), r"returned lacks sample_rate"),
    "size not an int": (("scene_embedding_size = 3", "scene_embedding_size = 3.0"),
                        r"model.scene_embedding_size = 3.0 is not a positive int"),
    "mis-shaped scene": (("scene_embedding_size = 3", "scene_embedding_size = 4"),
                         r"get_scene_embeddings returned \(1, 3\) for 32000 samples, expected \(1, 4\)"),
    "mis-shaped timestamps": (("(torch.arange(t) * 25.0 + 12.5).expand(audio.shape[0], t)",
                               "(torch.arange(t + 1) * 25.0).expand(audio.shape[0], t + 1)"),
                              r"get_timestamp_embeddings \(timestamps\) returned \(1, 81\) for 32000 .*\(1, 80\)"),
    "non-finite": (("audio.mean(1)", "audio.mean(1) / 0"), r"get_scene_embeddings returned non-finite values"),
    "raises": (("n = torch.full", "raise RuntimeError('boom')\n        n = torch.full"),
               r"get_scene_embeddings failed on 32000 samples at 16000 Hz: RuntimeError: boom"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_hear_module_is_one_line_naming_it(write_module, case):
    (old, new), message = BROKEN[case]
    source = TOY.format(rate=16000)
    assert old in source
    name = write_module(source.replace(old, new, 1))
    cfg = {"type": "hear", "module": name, "frames": case == "mis-shaped timestamps"}
    with pytest.raises(BackboneError, match=message) as err:
        build_backbone("toy", cfg)
    assert "\n" not in str(err.value) and str(err.value).startswith("backbones.toy")


@pytest.mark.parametrize("module, message", [
    ("hearbaseline.naiv", r"backbones\.h\.module = 'hearbaseline\.naiv': no module 'hearbaseline\.naiv' is importable"),
    ("no_such_package.hear", r"no module 'no_such_package\.hear' is importable"),
    ("hear-baseline", r"not a module name"),
])
def test_a_bad_module_name_is_a_params_error(module, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_backbone("h", {"type": "hear", "module": module})
    assert str(err.value).startswith("params.yaml: ") and "\n" not in str(err.value)


def test_a_module_without_the_api_and_a_missing_model_file_are_errors(write_module):
    with pytest.raises(BackboneError, match=r"module 'json' lacks load_model, get_scene_embeddings, get_timestamp_emb"):
        build_backbone("h", {"type": "hear", "module": "json"})
    with pytest.raises(BackboneError, match=r"backbones\.h\.model_file: /nonexistent/w\.pt does not exist"):
        build_backbone("h", {"type": "hear", "module": write_module(TOY.format(rate=16000)),
                             "model_file": "/nonexistent/w.pt"})


def test_the_model_file_reaches_load_model_and_keys_the_revision(write_module, tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"one")
    name = write_module(TOY.format(rate=16000))
    bb = build_backbone("h", {"type": "hear", "module": name, "model_file": str(weights)})
    assert bb.model.path == str(weights)
    first = bb.describe()["revision"]
    assert first.startswith(f"{name}==?; code sha256:") and "model sha256:" in first  # no version: said so
    weights.write_bytes(b"two")
    assert bb.describe()["revision"] != first


# --- AffectBench backbones as HEAR modules -----------------------------------------------------------


@pytest.fixture
def validator(monkeypatch):
    """hear-validator's ``ValidateModel`` with a TensorFlow stand-in (see the module docstring); returns
    ``validate(module, model_file)``, which runs it and returns the warnings it gave."""
    tf = types.ModuleType("tensorflow")
    tf.__doc__ = "Stand-in: hear-validator's torch path needs only tf.Module and (TensorFlow models only) tf.device."
    tf.Module = type("Module", (), {})  # nothing here is a TensorFlow module: the validator takes its torch path

    def device(*args, **kwargs):
        raise AssertionError("hear-validator took its TensorFlow path (tf.device)")

    def missing(name):
        raise AttributeError(f"the tensorflow stand-in has no {name!r}: hear-validator's torch path used it")

    tf.device, tf.__getattr__ = device, missing
    monkeypatch.setitem(sys.modules, "tensorflow", tf)
    monkeypatch.delitem(sys.modules, "hearvalidator.validate", raising=False)
    from hearvalidator.validate import ValidateModel

    def validate(module: str, model_file: Path) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ValidateModel(module, str(model_file), device="cpu")()
        return [str(w.message) for w in caught]

    return validate


def model_file(path: Path, **content) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.fixture(scope="module")
def tiny_w2v(tmp_path_factory):
    torch.manual_seed(0)
    return tiny_wav2vec2(tmp_path_factory.mktemp("w2v") / "w2v", layer_norm=True)


def exports(tmp_path, tiny_w2v) -> dict[str, Path]:
    return {
        "egemaps LLD frames": model_file(tmp_path / "lld.yaml",
                                         backbone={"type": "opensmile", "feature_set": "eGeMAPSv02", "lld": True}),
        "egemaps from params.yaml, windows": model_file(tmp_path / "win.yaml", backbone="egemaps",
                                                        params=str(ROOT / "params.yaml"), hop_ms=250),
        "tiny wav2vec2, layer 1": model_file(tmp_path / "w2v.yaml", layer=1,
                                             backbone={"type": "hf_audio", "source": str(tiny_w2v[0])}),
    }


@pytest.mark.parametrize("case", ["egemaps LLD frames", "egemaps from params.yaml, windows", "tiny wav2vec2, layer 1"])
def test_hearvalidator_passes_on_exported_backbones(validator, tmp_path, tiny_w2v, case, capsys):
    said = validator(EXPORT, exports(tmp_path, tiny_w2v)[case])
    out = capsys.readouterr().out
    assert "Checking get_scene_embeddings" in out and out.count("Checking get_timestamp_embeddings") == 3
    assert not [w for w in said if "begin at" in w]  # the first timestamp is where the sound starts


CORRECT_WRAPPER = """
    import torch
    from pipeline.tools import hear_export as ok

    def load_model(model_file_path=""):
        model = ok.load_model(model_file_path)
        {load}
        return model

    def get_scene_embeddings(audio, model):
        return {scene}

    def get_timestamp_embeddings(audio, model):
        emb, times = ok.get_timestamp_embeddings(audio, model)
        {times}
        return emb, times
"""
BREAKS = {  # (what to break, hear-validator's message)
    "none": ({}, None),
    "scene size": ({"load": "model.scene_embedding_size += 1"}, "Output embedding size is 88"),
    "sample rate": ({"load": "model.sample_rate = 8000"}, "Input sample rate of 8000 is invalid"),
    "float64": ({"scene": "ok.get_scene_embeddings(audio, model).double()"}, "Expected embeddings to be torch.float32"),
    "one sound short": ({"scene": "ok.get_scene_embeddings(audio, model)[1:]"}, "Passed in a batch of 4 audio samples"),
    "irregular timestamps": ({"times": "times = times.clone(); times[:, ::2] += 3"},
                             "Timestamps should occur at regular intervals"),
    "past the end": ({"times": "times = times + 100"}, "Your timestamps end at"),
    "timestamps flat": ({"times": "times = times[:, 0]"}, "Output dimensions of the timestamps"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_hearvalidator_fails_on_a_broken_export(validator, write_module, tmp_path, case, capsys):
    from hearvalidator.validate import ModelError

    parts = {"load": "pass", "scene": "ok.get_scene_embeddings(audio, model)", "times": "pass", **BREAKS[case][0]}
    name = write_module(CORRECT_WRAPPER.format(**parts))
    lld = model_file(tmp_path / "lld.yaml", backbone={"type": "opensmile", "feature_set": "eGeMAPSv02", "lld": True})
    message = BREAKS[case][1]
    if message is None:  # the wrapper itself is sound: what fails below is the break alone
        validator(name, lld)
        return
    with pytest.raises(ModelError, match=message):
        validator(name, lld)


def test_exported_embeddings_are_the_backbones_own(tmp_path, tiny_w2v):
    from pipeline.tools import hear_export

    files = exports(tmp_path, tiny_w2v)
    audio = torch.from_numpy(np.random.default_rng(1).uniform(-0.5, 0.5, (2, 24000)).astype(np.float32))
    bb = build_backbone("x", {"type": "opensmile", "feature_set": "eGeMAPSv02", "lld": True})
    ref = bb.embed(list(audio.numpy()))
    frames = hear_export.load_model(str(files["egemaps LLD frames"]))
    assert (frames.sample_rate, frames.scene_embedding_size, frames.timestamp_embedding_size) == (16000, 88, 25)
    scene = hear_export.get_scene_embeddings(audio, frames)
    assert scene.dtype == torch.float32 and torch.equal(scene, torch.from_numpy(np.stack([r.pooled for r in ref])))
    emb, times = hear_export.get_timestamp_embeddings(audio, frames)
    assert torch.equal(emb, torch.from_numpy(np.stack([r.frames for r in ref])))
    assert times.shape == emb.shape[:2] and torch.allclose(times[1, :3], torch.tensor([5.0, 15.0, 25.0]))

    windows = hear_export.load_model(str(files["egemaps from params.yaml, windows"]))
    assert windows.timestamps == "windows" and windows.timestamp_embedding_size == 88
    emb, times = hear_export.get_timestamp_embeddings(audio, windows)
    assert times[0].tolist() == [250.0 * k for k in range(7)]  # 0 … 1500 ms, the end of 1.5 s
    for k, (a, b) in {0: (0, 8000), 3: (4000, 20000), 6: (16000, 24000)}.items():  # 1-s windows cut to the sound
        np.testing.assert_array_equal(emb[1, k].numpy(), bb.embed([audio[1, a:b].numpy()])[0].pooled)

    w2v = hear_export.load_model(str(files["tiny wav2vec2, layer 1"]))
    layered = build_backbone("w", {"type": "hf_audio", "source": str(tiny_w2v[0])}).embed(list(audio.numpy()))
    np.testing.assert_allclose(hear_export.get_scene_embeddings(audio, w2v).numpy(),
                               np.stack([e.pooled[1] for e in layered]), rtol=1e-5, atol=1e-6)
    assert w2v.info()["export"]["layer"] == 1 and w2v.info()["frame_rate"] == 400.0


def test_export_model_file_problems_are_one_line(tmp_path, monkeypatch):
    from pipeline.tools.hear_export import MODEL_ENV, load_model

    monkeypatch.delenv(MODEL_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"no model file: .* or set {MODEL_ENV}"):
        load_model()
    egemaps = {"type": "opensmile", "feature_set": "eGeMAPSv02"}
    cases = {
        "typo": ({"backbone": egemaps, "layr": 0}, r"typo\.yaml: hear: unknown key 'layr' \(did you mean 'layer'\?\)"),
        "unknown name": ({"backbone": "egemap", "params": str(ROOT / "params.yaml")},
                         r"params\.yaml: no backbones\.egemap \(named by .*unknown name\.yaml\); known: .*egemaps"),
        "video": ({"backbone": "fer", "params": str(ROOT / "params.yaml")}, r"'fer' is a video backbone"),
        "layer": ({"backbone": egemaps, "layer": 2}, r"layer: 2, but backbone 'layer' is not layered"),
        "no frames": ({"backbone": egemaps, "timestamps": "frames"}, r"timestamps: frames, but backbone 'no frames' has no"),
        "bad backbone option": ({"backbone": {**egemaps, "lldd": True}},
                                r"bad backbone option\.yaml: hear\.backbone: unknown key 'lldd' \(did you mean 'lld'\?\)"),
    }
    for case, (content, message) in cases.items():
        with pytest.raises(ConfigError, match=message) as err:
            load_model(str(model_file(tmp_path / f"{case}.yaml", **content)))
        assert "\n" not in str(err.value), case
    (tmp_path / "list.yaml").write_text("- egemaps\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: must be a mapping"):
        load_model(str(tmp_path / "list.yaml"))
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read it: No such file"):
        load_model(str(tmp_path / "nope.yaml"))
    monkeypatch.setenv(MODEL_ENV, str(model_file(tmp_path / "env.json", backbone=egemaps)))
    assert load_model().scene_embedding_size == 88  # load_model("") reads the file the variable names


# --- through DVC -------------------------------------------------------------------------------------

TINY_DEMO = {"speakers": 4, "utterances_per_class": 2, "dev_speakers": 1, "test_speakers": 1, "fps": 5, "frame_size": 64}


@pytest.mark.dvc
def test_a_hear_module_runs_as_a_backbone_through_dvc_repro(tmp_path, monkeypatch):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "hear_naive.py").write_text((ROOT / "tests/data/hear_naive.py").read_text())
    monkeypatch.setenv("PYTHONPATH", str(modules))  # the stages import the HEAR module by name
    params = {
        "run": {"corpora": ["demo"], "backbones": ["hear_naive"], "heads": ["logreg"]},
        "corpora": {"demo": TINY_DEMO},
        "segment": {"fps": 1, "frame_size": 64},
        "backbones": {"hear_naive": {"type": "hear", "module": "hear_naive"}},
    }
    repo = make_repo(tmp_path / "repo", tmp_path / "remote", **params)
    out = sh(repo, "dvc", "repro")
    assert "embed@demo-hear_naive" in out
    store = FeatureStore(repo / "features/demo/hear_naive.zarr")
    assert store.pooled().shape == (32, 4096)
    assert (store.attrs["hear_module"], store.attrs["hear_module_version"]) == ("hear_naive", "2021.1.1+librosa-shim")
    rows = json.loads((repo / "metrics/leaderboard.json").read_text())
    assert {(r["backbone"], r["head"]) for r in rows} == {("hear_naive", "logreg")}
    assert all(0.0 <= r["uar"] <= 1.0 for r in rows)
