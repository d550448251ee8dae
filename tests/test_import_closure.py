"""Stage deps cover what the stages run; code versions follow the code a backbone runs.

A reproducibility tool must never serve results computed by code that has since changed: every
project file a stage module can execute (its import closure, registries' discovered modules
included) must be a DVC dependency of that stage, and a backbone's cache key must change when any
file in its own closure changes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipeline.core.hashing import ROOT, code_digest, import_closure

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def code_deps(stage: dict) -> list[Path]:
    return [ROOT / d for d in stage["deps"] if str(d).startswith(("pipeline", "stages"))]


def covered(path: Path, deps: list[Path]) -> bool:
    return any(path == d or d in path.parents for d in deps)


@pytest.mark.parametrize("name", sorted(DVC))
def test_stage_deps_cover_the_stage_modules_import_closure(name):
    stage = DVC[name]
    module = re.match(r"python -m (stages\.\w+)", stage["cmd"]).group(1)
    closure = import_closure(module)
    assert ROOT / (module.replace(".", "/") + ".py") in closure
    missing = [p.relative_to(ROOT).as_posix() for p in closure if not covered(p, code_deps(stage))]
    assert not missing, f"dvc.yaml stage {name!r} runs {missing} but does not list them (or a folder above) in deps"


def test_every_stage_module_has_a_stage():
    modules = {re.match(r"python -m stages\.(\w+)", s["cmd"]).group(1) for s in DVC.values()}
    on_disk = {p.stem for p in (ROOT / "stages").glob("*.py") if not p.stem.startswith("_")}
    assert on_disk == modules


def test_closures_follow_function_level_imports_and_registries():
    embed = {p.relative_to(ROOT).as_posix() for p in import_closure("stages.embed")}
    # fer imports the face detectors inside a method; the backbone registry discovers fer at run time
    assert "pipeline/features/faces.py" in embed and "pipeline/features/backbones/fer.py" in embed
    assert "pipeline/core/segments.py" in embed and "pipeline/__init__.py" in embed
    assert not any(p.startswith(("pipeline/heads/", "pipeline/corpora/", "pipeline/report/")) for p in embed)
    probe = {p.relative_to(ROOT).as_posix() for p in import_closure("stages.probe")}
    assert "pipeline/heads/probe/torch_heads.py" in probe and not any(p.startswith("pipeline/features/") for p in probe)


# Each head family's stages run (and depend on) that family only: a probe edit never retrains an LLM.
FAMILY_STAGES = {
    "stages.probe": {"probe"},
    "stages.fuse": {"probe", "fusion"},
    "stages.finetune": {"finetune"},
    "stages.audio_llm_align": {"audio_llm"},
    "stages.audio_llm_instruct": {"audio_llm"},
    "stages.audio_llm_eval": {"audio_llm"},
}


@pytest.mark.parametrize("module", sorted(FAMILY_STAGES))
def test_a_head_stage_runs_its_own_family_only(module):
    closure = [p.relative_to(ROOT).parts for p in import_closure(module)]
    families = {parts[2] for parts in closure if parts[:2] == ("pipeline", "heads") and len(parts) > 3}
    assert families == FAMILY_STAGES[module]
    # ... and its deps say the same: no folder above the family packages
    stage = next(s for s in DVC.values() if s["cmd"].startswith(f"python -m {module} "))
    assert "pipeline/heads" not in stage["deps"] and "pipeline" not in stage["deps"]


def test_a_backbones_code_version_covers_its_own_closure_only():
    fer = {p.relative_to(ROOT).as_posix() for p in import_closure("pipeline.features.backbones.fer", follow_registries=False)}
    assert {"pipeline/features/faces.py", "pipeline/features/backbones/base.py", "pipeline/core/runtime.py"} <= fer
    assert "pipeline/features/backbones/opensmile.py" not in fer  # siblings do not invalidate each other
    smile = {p.relative_to(ROOT).as_posix() for p in import_closure("pipeline.features.backbones.opensmile", follow_registries=False)}
    assert "pipeline/features/faces.py" not in smile


def test_code_digest_ignores_comments_and_docstrings_but_not_code(tmp_path):
    def digest(text: str) -> str:
        path = ROOT / "pipeline" / f"_digest_probe_{tmp_path.name}.py"
        try:
            path.write_text(text)
            return code_digest([path])
        finally:
            path.unlink()

    base = digest('"""Doc."""\nX = 1\n\ndef f():\n    """f doc."""\n    return X\n')
    assert digest('"""Other doc."""\nX = 1  # a comment\n\ndef f():\n    """changed."""\n    return X\n') == base
    assert digest('"""Doc."""\nX = 2\n\ndef f():\n    """f doc."""\n    return X\n') != base


# What each package may import (its __init__ docstring says the same): dependencies point one way.
ALLOWED = {
    "core": {"core"},
    "corpora": {"core", "corpora"},
    "segment": {"core", "segment"},
    "transcribe": {"core", "transcribe"},
    "models": {"core", "models"},
    "features": {"core", "features", "models"},
    "experiment": {"core", "experiment"},
    "heads": {"core", "experiment", "heads", "models"},
    "report": {"core", "experiment", "report"},
}


# Within heads/: families import the shared base, and fusion the probes it wraps; nothing else.
HEAD_FAMILIES_ALLOWED = {
    "probe": {"probe"},
    "fusion": {"fusion", "probe"},
    "finetune": {"finetune"},
    "audio_llm": {"audio_llm"},
}


@pytest.mark.parametrize("family", sorted(HEAD_FAMILIES_ALLOWED))
def test_head_families_import_only_the_base_and_what_they_wrap(family):
    import ast

    bad = []
    for path in sorted((ROOT / "pipeline" / "heads" / family).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                parts = name.split(".")
                if parts[:2] == ["pipeline", "heads"] and len(parts) > 2 and parts[2] != "base" \
                        and parts[2] not in HEAD_FAMILIES_ALLOWED[family]:
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_what_they_may(package):
    import ast

    bad = []
    for path in sorted((ROOT / "pipeline" / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                parts = name.split(".")
                if parts[0] == "pipeline" and len(parts) > 1 and parts[1] not in ALLOWED[package]:
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad
