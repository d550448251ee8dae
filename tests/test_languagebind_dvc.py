"""The SemEval-2024 Task 3 seed as a recipe, through the real `dvc repro` on generated ECF fakes:
LanguageBind text + video (+ audio) embeddings concatenated (``fusion_concat``: a linear probe on the
concatenation), weighted F1 reported. The towers are the tiny random checkpoints LanguageBind's own code
saved in its published layout (tests/golden/languagebind/). Slow (~140 s): run with --runslow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dvc_util import make_repo, sh

pytestmark = [pytest.mark.slow, pytest.mark.dvc]  # ~140 s on 2 cores: run with --runslow

GOLDEN = Path(__file__).parent / "golden" / "languagebind"
TV = "languagebind_text+languagebind_video"
TVA = TV + "+languagebind_audio"


def test_ecf_languagebind_concat_through_dvc_repro(tmp_path):
    from tests.data.ecf.data import generate

    root = generate(tmp_path / "ecf", seed=0)
    params = {
        "run": {
            "corpora": ["ecf"],
            "backbones": ["languagebind_text", "languagebind_video", "languagebind_audio"],
            "heads": [],
            "fusions": [{"head": "fusion_concat", "backbone": TV}, {"head": "fusion_concat", "backbone": TVA}],
        },
        "corpora": {"ecf": {"root": str(root)}},
        "segment": {"fps": 5, "frame_size": 32},
        "backbones": {
            "languagebind_text": {"source": str(GOLDEN / "video")},
            "languagebind_video": {"source": str(GOLDEN / "video")},
            "languagebind_audio": {"source": str(GOLDEN / "audio")},
        },
    }
    repo = make_repo(tmp_path / "repo", tmp_path / "remote", **params)
    sh(repo, "dvc", "repro")
    rows = json.loads((repo / "metrics/leaderboard.json").read_text())
    test_rows = {r["backbone"]: r for r in rows if r["split"] == "test" and r["head"] == "fusion_concat"}
    assert set(test_rows) == {TV, TVA}
    for row in test_rows.values():
        assert row["corpus"] == "ecf" and row["n"] > 0
        assert 0.0 <= row["weighted_f1"] <= 1.0
