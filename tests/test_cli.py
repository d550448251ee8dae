"""The ``affectbench`` command: listings from the registries, params checks, and ``run`` as a real
``dvc exp run`` on the shared EmoDB sample from a shell that has not activated the venv."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.tools import cli
from tests.conftest import EMODB
from tests.dvc_util import BIN, ROOT, make_repo, sh

runner = CliRunner()


def invoke(*args: str, cwd: Path = ROOT):
    old, env = Path.cwd(), dict(os.environ)
    os.chdir(cwd)
    try:
        return runner.invoke(cli.app, list(args))
    finally:  # the command cds into the project and takes on DVC's environment: undo both
        os.chdir(old)
        os.environ.clear()
        os.environ.update(env)


@pytest.mark.parametrize("kind, expected", [("corpora", ["emodb", "demo", "manifest"]),
                                            ("backbones", ["opensmile", "clap", "fer"]),
                                            ("heads", ["logreg", "svm", "lora", "audio_llm"])])
def test_list_shows_every_registered_entry(kind, expected):
    from pipeline.tools.catalog import REGISTRIES

    result = invoke("list", kind)
    assert result.exit_code == 0, result.output
    names = [e.name for e in REGISTRIES[kind].entries()]
    assert set(expected) <= set(names)
    for name in names:
        assert name in result.output


def test_list_one_entry_gives_its_options_defaults_and_facts():
    result = invoke("list", "backbones", "opensmile")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "licence:" in out and "weights:" in out and "verified against:" in out
    assert "feature_set" in out  # an option with its default
    result = invoke("list", "heads", "logreg")
    assert "C_grid" in result.output and "[0.001, 0.01, 0.1, 1.0, 10.0]" in result.output


def test_list_unknown_entry_is_one_line_with_a_suggestion():
    result = invoke("list", "heads", "logrg")
    assert result.exit_code == 1
    assert "unknown head type 'logrg' (did you mean 'logreg'?)" in result.output


def test_validate_names_the_key_of_a_typo(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["heads"]["logreg"]["speakernorm"] = True
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = invoke("validate", cwd=tmp_path)
    assert result.exit_code == 1
    assert "heads.logreg: unknown key 'speakernorm' (did you mean 'speaker_norm'?)" in result.output
    assert invoke("validate").exit_code == 0


def test_outside_a_project_is_one_line(tmp_path):
    result = invoke("validate", cwd=tmp_path)
    assert result.exit_code == 1
    assert "not inside an AffectBench project" in result.output


def test_run_checks_names_before_dvc_and_prints_the_dvc_command():
    result = invoke("run", "-c", "emodb", "-b", "egemap", "--dry")
    assert result.exit_code == 1
    assert "run.backbones names 'egemap', but there is no backbones.egemap section" in result.output
    result = invoke("run", "-c", "emodb", "--root", str(ROOT), "-b", "egemaps", "-H", "logreg", "--dry")
    assert result.exit_code == 0, result.output
    assert f"++corpora.emodb.root={ROOT}" in result.output
    assert "'run.backbones=[egemaps]'" in result.output
    # a relative root is relative to where it was typed, not to the project root the command cds into
    result = invoke("run", "-c", "emodb", "--root", "..", "--dry", cwd=ROOT / "pipeline")
    assert result.exit_code == 0, result.output
    assert f"++corpora.emodb.root={ROOT}" in result.output


@pytest.mark.parametrize("value", ["/data/emodb", "/data/my corpus, v2 [final]", "it's", "null", "12", "a=b"])
def test_overrides_mean_what_they_say_to_dvcs_own_hydra_parser(tmp_path, value):
    """Each value reaches params.yaml as that string (not a list, null or number), through the parser
    `dvc exp run -S` itself uses."""
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"run": {"corpora": ["demo"], "backbones": ["x"]}, "corpora": {"demo": {}}}))
    apply_overrides(path, cli.run_overrides(["new"], value, None, ["a b", "c"], [], []))
    params = yaml.safe_load(path.read_text())
    assert params["run"]["corpora"] == ["new"]
    assert params["corpora"]["new"]["root"] == str(Path(value).resolve())
    assert params["run"]["backbones"] == ["a b", "c"]


def test_run_on_the_emodb_sample_without_activating_the_venv(tmp_path):
    """The README's `affectbench run` on the shared EmoDB sample, from a shell whose PATH has no venv:
    the command finds the venv, DVC's stages run with its python, the experiment lands in `dvc exp
    show` and the leaderboard in the workspace."""
    if not EMODB.exists():
        pytest.skip("shared EmoDB sample not present")
    repo = make_repo(tmp_path / "repo", tmp_path / "remote")
    env = {"HOME": os.environ.get("HOME", str(tmp_path)), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([str(BIN / "affectbench"), "run", "-c", "emodb", "--root", str(EMODB), "-b", "egemaps",
                           "-H", "logreg", "--name", "emodb-egemaps"], check=False, cwd=repo / "metrics", env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "$ dvc exp run -S 'run.corpora=[emodb]'" in proc.stdout
    assert "Running stage 'probe@emodb-egemaps-logreg'" in proc.stdout + proc.stderr
    rows = json.loads((repo / "metrics" / "leaderboard.json").read_text())
    assert {(r["corpus"], r["backbone"], r["head"], r["split"]) for r in rows} == {
        ("emodb", "egemaps", "logreg", "test"), ("emodb", "egemaps", "logreg", "dev")}
    test_row = next(r for r in rows if r["split"] == "test")
    assert test_row["n"] == len(list(EMODB.glob("*.wav")))
    assert f"{test_row['uar']:.3f}" in proc.stdout  # the table printed at the end
    shown = json.loads(sh(repo, "dvc", "exp", "show", "--json"))
    names = [e.get("name") for rev in shown for exps in (rev.get("experiments") or []) for e in exps["revs"]]
    assert "emodb-egemaps" in names
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["corpora"]["emodb"]["root"] == str(EMODB.resolve())
    assert params["run"]["corpora"] == ["emodb"]
