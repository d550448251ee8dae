"""Typed settings: every params section is validated; a typo or a bad value is one line naming it."""

from __future__ import annotations

import copy
import subprocess
import time

import pytest
import yaml

from pipeline.core.errors import ConfigError
from pipeline.core.hashing import ROOT
from pipeline.tools.validate import validate_params
from tests.dvc_util import BIN, make_repo, set_params

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def with_change(path: str, value, delete: str | None = None) -> dict:
    """params.yaml with ``path`` (dotted) set to ``value`` (and key ``delete`` removed there)."""
    params = copy.deepcopy(PARAMS)
    *parents, last = path.split(".")
    node = params
    for key in parents:
        node = node.setdefault(key, {})
    if delete:
        node[last].pop(delete)
    node[last] = value if delete is None else {**node[last], **value}
    return params


def test_the_shipped_params_are_valid():
    assert "experiments per corpus" in validate_params(PARAMS)


CASES = [
    # (section, where to put what, the line's expected content)
    ("run", ("run.heds", ["logreg"]), r"unknown top-level|run: unknown key 'heds' \(did you mean 'heads'\?\)"),
    ("run", ("run.corpora", []), r"run\.corpora = \[\]: List should have at least 1 item"),
    ("run", ("run.backbones", ["egemap"]), r"run\.backbones names 'egemap', but there is no backbones\.egemap"),
    ("run", ("run.heads", ["fusion_concat"]), r"heads\.fusion_concat has type 'concat', a fusion head: it belongs in run\.fusions"),
    ("run", ("run.fusions", [{"head": "fusion_concat", "backbone": "egemaps+nope"}]), r"run\.fusions\[0\] names 'nope'"),
    ("corpora", ("corpora.emodb.protcol", "loso"), r"corpora\.emodb: unknown key 'protcol' \(did you mean 'protocol'\?\)"),
    ("corpora", ("corpora.ravdess.folds", 1), r"corpora\.ravdess\.folds = 1: Input should be greater than or equal to 2"),
    ("corpora", ("corpora.demo.seed", "zero"), r"corpora\.demo\.seed = 'zero': Input should be a valid integer"),
    ("segment", ("segment.on_bad_media", "ignore"), r"segment\.on_bad_media = 'ignore': Input should be 'error' or 'skip'"),
    ("segment", ("segment.sample_rate", 22050), r"segment\.sample_rate = 22050: Input should be 16000"),
    ("transcripts", ("transcripts.backnd", "whisper"), r"transcripts: unknown key 'backnd' \(did you mean 'backend'\?\)"),
    ("embed", ("embed.executor", "dask"), r"embed\.executor = 'dask': Input should be 'local' or 'ray'"),
    ("embed", ("embed.ray.worker", 4), r"embed\.ray: unknown key 'worker' \(did you mean 'workers'\?\)"),
    ("backbones", ("backbones.egemaps.feature_sets", "compare"), r"backbones\.egemaps: unknown key 'feature_sets'"),
    ("backbones", ("backbones.fer.pooling", "median"), r"backbones\.fer\.pooling = 'median': Input should be 'mean', 'mean\+std' or 'max'"),
    ("backbones", ("backbones.wav2vec2.type", "hf_audi"), r"unknown backbone type 'hf_audi' \(did you mean 'hf_audio'\?\)"),
    ("heads", ("heads.logreg.speakernorm", True), r"heads\.logreg: unknown key 'speakernorm' \(did you mean 'speaker_norm'\?\)"),
    ("heads", ("heads.logreg.class_weight", "banana"), r"heads\.logreg\.class_weight = 'banana': Input should be 'balanced'"),
    ("heads", ("heads.logreg.C_grid", "abc"), r"heads\.logreg\.C_grid = 'abc': Input should be a valid list"),
    ("heads", ("heads.fusion_concat.probe", {"type": "logreg", "C_grd": [1.0]}), r"heads\.fusion_concat\.probe = .*unknown key 'C_grd'"),
    ("heads", ("heads.lora.backbone", "ast"), r"heads\.lora: unknown key 'backbone'"),
    ("heads", ("heads.audio_llm.instruct.lora.rank", 8), r"heads\.audio_llm\.instruct\.lora: unknown key 'rank'"),
    ("heads", ("heads.audio_llm.align.epochs", "three"), r"heads\.audio_llm\.align\.epochs = 'three': Input should be a valid integer"),
]


@pytest.mark.parametrize("section, change, message", CASES, ids=[f"{c[0]}:{c[1][0]}" for c in CASES])
def test_a_typo_or_bad_value_is_one_line_naming_it(section, change, message):
    with pytest.raises(ConfigError, match=message) as err:
        validate_params(with_change(*change))
    assert "\n" not in str(err.value) and str(err.value).startswith("params.yaml: ")


def test_defaults_live_in_the_schema_only():
    from pipeline.heads.base import head_settings
    from pipeline.heads.probe.logreg import DEFAULT_C_GRID

    assert head_settings("logreg", {}).C_grid == DEFAULT_C_GRID == PARAMS["heads"]["logreg"]["C_grid"]
    assert head_settings("mlp", {}).hidden == 256 and head_settings("linear", {}).hidden == 0
    with pytest.raises(ConfigError, match=r"heads\.linear\.hidden = 64: Input should be 0"):
        head_settings("linear", {"hidden": 64})  # a linear probe has no hidden layer: said, not ignored


@pytest.mark.dvc
def test_a_typo_fails_dvc_repro_within_seconds_naming_it(tmp_path):
    repo = make_repo(tmp_path / "repo", tmp_path / "remote")
    set_params(repo, heads={"logreg": {"speakernorm": True}})
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "dvc"), "repro"], cwd=repo, capture_output=True, text=True,
                          env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    elapsed = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Running stage 'validate'" in out
    assert "error: params.yaml: heads.logreg: unknown key 'speakernorm' (did you mean 'speaker_norm'?)" in out
    assert "Running stage 'prepare@demo'" not in out  # nothing else ran
    assert elapsed < 60, elapsed
