"""The SemEval-2024 Task 3 seed as a recipe, through the real `dvc repro` on generated ECF fakes:
LanguageBind text + video (+ audio) embeddings concatenated (``fusion_concat``: a linear probe on the
concatenation), and its end-to-end variant (``lora_multimodal`` through ``finetune``: LoRA on the text and
video towers, the concatenation's linear head), weighted F1 reported. The towers are the tiny random
checkpoints LanguageBind's own code saved in its published layout (tests/golden/languagebind/). Slow:
run with --runslow."""

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
            "finetune": [{"head": "lora_multimodal", "backbone": TV}],
        },
        "heads": {"lora_multimodal": {"epochs": 2, "gradient_accumulation_steps": 1, "logging_steps": 2}},
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
    # the end-to-end variant: LoRA adapters on both towers, chosen on dev, scored on the same test utterances
    (lora,) = [r for r in rows if r["split"] == "test" and r["head"] == "lora_multimodal"]
    assert lora["backbone"] == TV and lora["n"] == test_rows[TV]["n"] and 0.0 <= lora["weighted_f1"] <= 1.0
    experiment = json.loads((repo / "metrics/experiments/ecf" / TV / "lora_multimodal.json").read_text())
    selection = experiment["tasks"]["emotion"]["folds"][0]["selection"]
    assert selection["metric"] == "dev_uar" and selection["epochs"] == [1, 2]
    saved = repo / "models/ecf" / TV / "lora_multimodal" / "emotion"
    adapter = json.loads((saved / "adapter_config.json").read_text())
    assert adapter["modules_to_save"] == ["head"] and (saved / "adapter_model.safetensors").is_file()
    assert (repo / "metrics/dvclive/ecf" / TV / "lora_multimodal" / "emotion/plots/metrics/loss.tsv").is_file()
