"""Every head family through one real `dvc repro` on the tiny demo: probe heads (logreg, mlp), a
fusion head (concat), LoRA fine-tuning of a tiny AST and the two-stage Audio-LLM on a tiny Qwen2.
Slow (several minutes on 2 cores): run with --runslow."""

from __future__ import annotations

import json

import pytest

from tests.dvc_util import make_repo, sh

pytestmark = [pytest.mark.slow, pytest.mark.dvc]

TINY_DEMO = {"speakers": 4, "utterances_per_class": 2, "dev_speakers": 1, "test_speakers": 1, "fps": 5, "frame_size": 64}


def test_every_head_family_through_dvc_repro(tmp_path):
    from tests.factories import tiny_ast, tiny_llm

    ast_dir = tiny_ast(tmp_path / "ast")
    llm_dir = tiny_llm(tmp_path / "llm")
    params = {
        "run": {
            "corpora": ["demo"],
            "backbones": ["egemaps", "fer"],
            "heads": ["logreg", "mlp"],
            "fusions": [{"head": "fusion_concat", "backbone": "egemaps+fer"}],
            "finetune": [{"head": "lora", "backbone": "ast"}],
            "audio_llm": [{"head": "audio_llm", "backbone": "egemaps"}],
        },
        "corpora": {"demo": TINY_DEMO},
        "segment": {"fps": 1, "frame_size": 64},
        "backbones": {"egemaps": {"lld": True}, "ast": {"type": "hf_audio", "source": str(ast_dir)}},
        "heads": {
            "mlp": {"epochs": 5, "seeds": [0]},
            "lora": {"epochs": 1, "augment": []},
            "audio_llm": {
                "llm": {"source": str(llm_dir)}, "languages": ["en"],
                "projector": {"hidden": 16, "downsample": 5, "max_tokens": 8},
                "align": {"epochs": 1}, "instruct": {"epochs": 1},
            },
        },
    }
    repo = make_repo(tmp_path / "repo", tmp_path / "remote", **params)
    sh(repo, "dvc", "repro")
    rows = json.loads((repo / "metrics/leaderboard.json").read_text())
    got = {(r["backbone"], r["head"]) for r in rows if r["split"] == "test"}
    assert got == {
        ("egemaps", "logreg"), ("fer", "logreg"), ("egemaps", "mlp"), ("fer", "mlp"),
        ("egemaps+fer", "fusion_concat"), ("ast", "lora"), ("egemaps", "audio_llm"),
    }
    assert (repo / "models/demo/egemaps/audio_llm/projector.pt").exists()
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "repro")
