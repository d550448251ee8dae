"""``python -m pipeline.tools.predict`` on models trained through the stages, in a temporary workspace.

One tiny AST is fully fine-tuned by ``stages.finetune`` and one logistic probe is trained on a tiny
HuBERT's features by ``stages.embed``/``stages.probe``; the CLI (called in-process) then scores a
new wav and an mp4 with each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from pipeline.tools import predict
from pipeline.core.media import ffmpeg_exe
from tests.conftest import write_wav
from tests.factories import TONE_CLASSES as CLASSES, TONE_CV as CV, tiny_ast, tiny_hubert, tone_corpus

pytestmark = [
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

PARAMS = {
    "segment": {"sample_rate": 16000, "fps": 1, "frame_size": 32},
    "backbones": {
        "ast": {"type": "hf_audio", "source": "models/pretrained/ast"},
        "hubert": {"type": "hf_audio", "source": "models/pretrained/hubert", "device": "cpu"},
    },
    "heads": {
        "ast_full": {"type": "full", "epochs": 1, "batch_size": 6, "progress": False},
        "logreg": {"C_grid": [0.1, 1.0]},
        "logreg_spknorm": {"type": "logreg", "C_grid": [1.0], "speaker_norm": True},
    },
}


def ns(**kw):
    return argparse.Namespace(**kw)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A repository-like working directory: prepared + segmented corpus ``cv``, encoders, params."""
    root = tmp_path_factory.mktemp("workspace")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        tone_corpus(root / "data" / "cv", CV, name="cv")
        tiny_ast(root / "models" / "pretrained" / "ast")
        tiny_hubert(root / "models" / "pretrained" / "hubert")
        (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
        t = np.arange(9600) / 16000
        wav = write_wav(root / "new" / "clip.wav", 0.3 * np.sin(2 * np.pi * 400 * t), 16000)
        mp4 = root / "new" / "clip.mp4"
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=32x32:d=0.6", "-i", str(wav),
             "-shortest", "-c:v", "mpeg4", "-c:a", "aac", str(mp4)],
            check=True,
        )
        yield {"root": root, "wav": str(wav), "mp4": str(mp4)}


def run_cli(capsys, *argv):
    capsys.readouterr()  # drop what earlier steps printed
    code = predict.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_finetune_stage_then_predict_on_audio_and_video(workspace, capsys):
    from pipeline.core.errors import ConfigError
    from stages import finetune

    with pytest.raises(ConfigError, match="heads.logreg has type 'logreg', a probe head: it belongs in run.heads"):
        finetune.main(ns(corpus="cv", backbone="ast", head="logreg"), PARAMS)
    finetune.main(ns(corpus="cv", backbone="ast", head="ast_full"), PARAMS)
    assert "cv/emotion/ast/ast_full test: UAR" in capsys.readouterr().out
    head_dir = workspace["root"] / "models" / "cv" / "ast" / "ast_full"
    # folds: first (the default) → only the first fold's model of the 3-fold protocol
    assert sorted(p.name for p in head_dir.iterdir()) == ["emotion.fold1"]
    assert (workspace["root"] / "metrics/dvclive/cv/ast/ast_full/emotion.fold1/plots/metrics/eval/uar.tsv").exists()
    saved = {p.name for p in (head_dir / "emotion.fold1").iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "finetune.json"} <= saved
    experiment = json.loads((workspace["root"] / "metrics/experiments/cv/ast/ast_full.json").read_text())
    assert experiment["tasks"]["emotion"]["n_folds_planned"] == 3 and experiment["tasks"]["emotion"]["folds_run"] == "first"
    assert (workspace["root"] / "metrics/predictions/cv/ast/ast_full/emotion.csv").exists()

    code, out, _ = run_cli(capsys, head_dir, workspace["wav"], "--top", "2")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("emotion  (full fine-tuned ast; 1 model)") and len(lines) == 3
    assert {ln.split()[0] for ln in lines[1:]} <= set(CLASSES)

    for target in (head_dir, head_dir / "emotion.fold1"):
        code, out, _ = run_cli(capsys, target, workspace["mp4"], "--json")
        probs = json.loads(out)["tasks"]["emotion"]["probabilities"]
        assert code == 0 and list(probs) == CLASSES and np.isclose(sum(probs.values()), 1.0)


def test_predict_runs_a_probe_head_on_its_backbone(workspace, capsys):
    from stages import embed, probe

    embed.main(ns(corpus="cv", backbone="hubert"), PARAMS)
    probe.main(ns(corpus="cv", backbone="hubert", head="logreg"), PARAMS)
    head_dir = workspace["root"] / "models" / "cv" / "hubert" / "logreg"
    code, out, _ = run_cli(capsys, head_dir, workspace["wav"], "--json")
    result = json.loads(out)["tasks"]["emotion"]
    assert code == 0 and len(result["models"]) == 3  # one logistic model per fold, averaged
    assert set(result["probabilities"]) == set(CLASSES) and np.isclose(sum(result["probabilities"].values()), 1.0)
    assert result["prediction"] == max(result["probabilities"], key=result["probabilities"].get)

    code, out, _ = run_cli(capsys, head_dir, workspace["wav"], "--top", "1")
    assert code == 0 and len(out.strip().splitlines()) == 2 and "mean over folds" in out

    shutil.copytree(head_dir, head_dir.parent / "logreg_spknorm")
    code, _, err = run_cli(capsys, head_dir.parent / "logreg_spknorm", workspace["wav"])
    assert code == 1 and "per-speaker normalisation" in err


def test_predict_explains_what_it_cannot_use(workspace, capsys):
    import joblib
    from sklearn.linear_model import LogisticRegression

    code, _, err = run_cli(capsys, workspace["root"] / "data", workspace["wav"])
    assert code == 1 and "not a model directory" in err
    head_dir = workspace["root"] / "models" / "cv" / "hubert" / "toy"
    head_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    joblib.dump(LogisticRegression().fit(rng.normal(size=(6, 16)), ["a", "b"] * 3), head_dir / "emotion.joblib")
    code, _, err = run_cli(capsys, head_dir, workspace["root"] / "missing.wav")
    assert code == 1 and "missing.wav: file not found" in err
