"""End-to-end fine-tuning (LoRA and full) on segments, with tiny random AST and HuBERT encoders.

The encoders are random configs saved with ``save_pretrained`` and loaded back through the real
path; the corpus is a few synthetic tones per class written as wav files and run through the real
segment writer (``segment_corpus``), with a plain wav reader standing in for ffmpeg to stay fast.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline.heads.finetune.augment import SEED_SPECS, AugmentError, Augmenter
from pipeline.core.io import read_json
from tests.factories import TONE_CLASSES, TONE_CV, TONE_SPLIT, tiny_ast, tiny_hubert, tone_corpus

CLASSES, SPLIT, CV = TONE_CLASSES, TONE_SPLIT, TONE_CV
# peft still reads the attribute transformers 5 deprecated; nothing for us to change.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]


AST_LORA = {
    "type": "lora", "epochs": 3, "batch_size": 4, "learning_rate": 5e-3, "logging_steps": 1,
    "progress": False, "augment": [{"name": "AddGaussianSNR", "p": 1.0, "min_snr_db": 20, "max_snr_db": 30}],
}


def finetune(tmp: Path, corpus, segments, source, cfg, head="lora"):
    from pipeline.heads.finetune.learner import run_finetune

    return run_finetune(
        corpus, segments, head, cfg, backbone="ast" if "ast" in str(source) else "hubert", source=source,
        model_dir=tmp / "models", metrics_path=tmp / "experiment.json", predictions_dir=tmp / "predictions",
        live_dir=tmp / "curves",
    )


def fingerprint(audio: np.ndarray) -> bytes:
    return np.asarray(audio, np.float32)[:400].tobytes()


@pytest.fixture(scope="module")
def ast_lora(tmp_path_factory):
    """AST + LoRA on a train/dev/test corpus, recording which audio the augmenter saw."""
    tmp = tmp_path_factory.mktemp("ast_lora")
    corpus, segments = tone_corpus(tmp / "corpus", SPLIT)
    source = tiny_ast(tmp / "ast")
    seen: list[bytes] = []
    original = Augmenter.__call__

    def spy(self, audio, key):
        seen.append(fingerprint(audio))
        return original(self, audio, key)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Augmenter, "__call__", spy)
        result = finetune(tmp / "run", corpus, segments, source, AST_LORA)
    return {"tmp": tmp, "corpus": corpus, "segments": segments, "source": source, "result": result, "seen": seen}


def split_ids(corpus, split):
    df = corpus.manifest
    return df.loc[df["split"] == split, "id"].tolist()


# --- augmentation -------------------------------------------------------------------------------


def test_augmenter_is_seeded_per_key_and_leaves_global_rngs_alone():
    specs = [{"name": n, "p": 1.0} for n in SEED_SPECS]
    aug = Augmenter(specs, seed=3)
    audio = (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    random.seed(1)
    np.random.seed(1)
    before = (random.random(), np.random.random())
    random.seed(1)
    np.random.seed(1)
    a, b, c = aug(audio, (0, 0)), aug(audio, (0, 0)), aug(audio, (0, 1))
    assert (random.random(), np.random.random()) == before  # global generators untouched
    assert aug.names == list(SEED_SPECS)
    assert np.array_equal(a, b) and not np.allclose(a, c) and not np.allclose(a, audio)
    assert np.array_equal(a, Augmenter(specs, seed=3)(audio, (0, 0)))
    assert not np.allclose(a, Augmenter(specs, seed=4)(audio, (0, 0)))
    with pytest.raises(AugmentError, match="NoSuchTransform"):
        Augmenter([{"name": "NoSuchTransform"}])
    with pytest.raises(AugmentError, match="Gain"):
        Augmenter([{"name": "Gain", "min_gain_db": 5, "max_gain_db": -5}])
    assert np.array_equal(Augmenter(specs, p=0.0)(audio, (0, 0)), audio)  # augment_p: 0 → never
    shuffled = Augmenter(specs, shuffle=True, seed=3)
    assert np.array_equal(shuffled(audio, (0, 0)), shuffled(audio, (0, 0)))


def test_augmentation_touches_training_audio_only(ast_lora):
    seg, corpus = ast_lora["segments"], ast_lora["corpus"]
    by_print = {fingerprint(seg.audio(u)): u for u in seg.ids}
    augmented = [by_print[f] for f in ast_lora["seen"]]
    train = split_ids(corpus, "train")
    assert sorted(set(augmented)) == sorted(train)
    assert all(augmented.count(u) == AST_LORA["epochs"] for u in train)  # once per epoch, dev/test never


# --- training, checkpoints ---------------------------------------------------------------------


def test_training_reduces_training_loss_and_logs_curves(ast_lora):
    live = ast_lora["tmp"] / "run" / "curves" / "emotion" / "plots" / "metrics"
    loss = pd.read_csv(live / "loss.tsv", sep="\t")
    uar = pd.read_csv(live / "eval" / "uar.tsv", sep="\t")
    assert list(loss["step"]) == list(range(1, 10)) and list(uar["step"]) == [3, 6, 9]  # 12 items, batches of 4
    assert loss["loss"].iloc[-3:].mean() < loss["loss"].iloc[:3].mean() - 0.05
    selection = ast_lora["result"]["tasks"]["emotion"]["folds"][0]["selection"]
    assert selection["epochs"] == [1, 2, 3] and selection["dev_uar"] == list(uar["uar"])
    curves = sorted(p.relative_to(live).as_posix() for p in live.glob("**/*.tsv"))
    assert curves == ["eval/loss.tsv", "eval/macro_f1.tsv", "eval/uar.tsv", "eval/war.tsv", "grad_norm.tsv", "learning_rate.tsv", "loss.tsv"]


def test_writes_the_probe_metrics_contract(ast_lora):
    from pipeline.experiment.results import leaderboard_rows

    tmp, result = ast_lora["tmp"] / "run", ast_lora["result"]
    written = read_json(tmp / "experiment.json")
    assert (written["corpus"], written["backbone"], written["head"]) == ("syn", "ast", "lora")
    entry = result["tasks"]["emotion"]
    assert entry["test"]["n"] == 6 and set(entry["test"]["per_class_recall"]) == set(CLASSES)
    assert np.sum(entry["dev"]["confusion"]) == 6 and entry["folds_run"] == "first" and entry["n_folds_planned"] == 1
    rows = leaderboard_rows(result)
    assert {(r["backbone"], r["head"], r["split"]) for r in rows} == {("ast", "lora", "dev"), ("ast", "lora", "test")}
    preds = pd.read_csv(tmp / "predictions" / "emotion.csv")
    assert list(preds.columns) == ["id", "split", "fold", "speaker", "actual", "predicted"] + [f"p_{c}" for c in CLASSES]
    assert np.allclose(preds[[f"p_{c}" for c in CLASSES]].sum(1), 1.0)
    saved = {p.name for p in (tmp / "models" / "emotion").iterdir()}
    assert {"finetune.json", "preprocessor_config.json", "adapter_config.json", "adapter_model.safetensors"} <= saved


def saved_logits(model_dir: Path, segments, ids, base=None):
    from pipeline.core.audio import fit_length
    from pipeline.heads.finetune.model import load_finetuned, predict_outputs

    model, extractor, meta = load_finetuned(model_dir, base)
    audios = [fit_length(segments.audio(u), int(meta["max_seconds"] * 16000), int(meta["min_seconds"] * 16000)) for u in ids]
    return model, extractor, predict_outputs(model, extractor, audios)


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_lora_adapter_reloads_to_identical_logits_and_merges(ast_lora):
    import torch

    from pipeline.heads.finetune.data import extract

    tmp, seg = ast_lora["tmp"] / "run", ast_lora["segments"]
    preds = pd.read_csv(tmp / "predictions" / "emotion.csv")
    test = preds[preds["split"] == "test"]
    model, extractor, logits = saved_logits(tmp / "models" / "emotion", seg, test["id"], base=ast_lora["source"])
    # Reloaded base + adapter reproduce the probabilities the trained model wrote at evaluation time.
    assert np.allclose(softmax(logits), test[[f"p_{c}" for c in CLASSES]].to_numpy(), atol=1e-6)
    inputs = extract(extractor, [seg.audio(u) for u in test["id"][:3]])
    with torch.inference_mode():
        before = model(**inputs).logits
        merged = model.merge_and_unload()
        after = merged(**inputs).logits
    assert not hasattr(merged, "peft_config")
    assert torch.allclose(before, after, atol=1e-5)


def test_ast_normalisation_comes_from_the_training_split(ast_lora):
    from transformers import AutoFeatureExtractor

    from pipeline.heads.finetune.data import fit_ast_normalisation

    seg, corpus = ast_lora["segments"], ast_lora["corpus"]
    saved = read_json(ast_lora["tmp"] / "run" / "models" / "emotion" / "preprocessor_config.json")
    fresh = AutoFeatureExtractor.from_pretrained(ast_lora["source"])
    train = fit_ast_normalisation(fresh, [seg.audio(u) for u in split_ids(corpus, "train")], progress=False)
    everything = fit_ast_normalisation(fresh, [seg.audio(u) for u in seg.ids], progress=False)
    assert saved["do_normalize"] and np.isclose(saved["mean"], train["mean"]) and np.isclose(saved["std"], train["std"])
    assert not np.isclose(saved["mean"], everything["mean"])


def test_test_split_never_influences_training(ast_lora, tmp_path):
    """Scrambled test labels and test audio replaced by noise: same epoch chosen, same model, same dev."""
    corpus, segments = tone_corpus(tmp_path / "corpus", SPLIT, noisy_test=True)
    df = corpus.manifest
    test = df["split"] == "test"
    df.loc[test, "emotion"] = np.random.default_rng(5).permutation(df.loc[test, "emotion"].to_numpy())
    second = finetune(tmp_path / "run", corpus, segments, ast_lora["source"], AST_LORA)
    first = ast_lora["result"]["tasks"]["emotion"]
    second = second["tasks"]["emotion"]
    assert first["folds"][0]["selection"] == second["folds"][0]["selection"]
    assert first["dev"] == second["dev"]
    runs = (ast_lora["tmp"] / "run", tmp_path / "run")
    stats = [read_json(d / "models" / "emotion" / "preprocessor_config.json") for d in runs]
    assert (stats[0]["mean"], stats[0]["std"]) == (stats[1]["mean"], stats[1]["std"])
    assert first["test"]["confusion"] != second["test"]["confusion"]


def test_best_epoch_is_the_best_on_dev(ast_lora):
    selection = ast_lora["result"]["tasks"]["emotion"]["folds"][0]["selection"]
    scores = dict(zip(selection["epochs"], selection["dev_uar"]))
    best = max(scores.values())
    assert selection["metric"] == "dev_uar"
    assert selection["chosen"] == min(e for e, s in scores.items() if s == best)  # ties: the earlier epoch
    # The saved model is that epoch's checkpoint: re-scoring dev after training gives its dev UAR.
    assert ast_lora["result"]["tasks"]["emotion"]["dev"]["uar"] == pytest.approx(best)


def test_best_epoch_weights_are_restored_exactly():
    import torch

    from pipeline.heads.finetune.trainer import _keep_best, snapshot

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    model[1].weight.requires_grad_(False)
    keep, seen = _keep_best("uar"), {}
    for epoch, score in enumerate([0.5, 0.9, 0.9, 0.7], start=1):
        with torch.no_grad():
            model[0].weight.add_(1.0)  # "training"
        keep.on_evaluate(None, SimpleNamespace(epoch=float(epoch)), None, model=model, metrics={"eval_uar": score})
        seen[epoch] = model[0].weight.clone()
    keep.restore(model)
    assert keep.epoch == 2 and torch.equal(model[0].weight, seen[2])  # best, and the earlier of a tie
    assert "1.weight" not in snapshot(model) and "0.weight" in snapshot(model)  # frozen weights are not copied


# --- HuBERT, cross-validation -------------------------------------------------------------------


def test_hubert_lora_all_folds_pools_out_of_fold_predictions(tmp_path):
    corpus, segments = tone_corpus(tmp_path / "corpus", CV)
    source = tiny_hubert(tmp_path / "hubert")
    cfg = {"type": "lora", "epochs": 1, "batch_size": 6, "folds": "all", "progress": False}
    result = finetune(tmp_path / "run", corpus, segments, source, cfg)
    entry = result["tasks"]["emotion"]
    assert [f["fold"] for f in entry["folds"]] == ["fold1", "fold2", "fold3"] and "fold_summary" in entry
    assert entry["test"]["n"] == len(corpus.manifest)  # every utterance scored once, out of fold
    models = tmp_path / "run" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["emotion.fold1", "emotion.fold2", "emotion.fold3"]
    adapter = read_json(models / "emotion.fold2" / "adapter_config.json")
    assert sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]
    assert set(adapter["modules_to_save"]) == {"projector", "classifier"}
    preds = pd.read_csv(tmp_path / "run" / "predictions" / "emotion.csv")
    part = preds[(preds["fold"] == "fold2") & (preds["split"] == "test")]
    _, _, logits = saved_logits(models / "emotion.fold2", segments, part["id"], base=source)
    assert np.allclose(softmax(logits), part[[f"p_{c}" for c in CLASSES]].to_numpy(), atol=1e-6)


def test_regression_task_trains_on_standardised_targets_and_reports_ccc(tmp_path):
    from pipeline.heads.finetune.model import load_finetuned, outputs_to_predictions, predict_outputs

    corpus, segments = tone_corpus(tmp_path / "corpus", SPLIT, regression=True)
    source = tiny_ast(tmp_path / "ast")
    cfg = {"type": "full", "epochs": 2, "batch_size": 6, "progress": False}
    entry = finetune(tmp_path / "run", corpus, segments, source, cfg, head="ast_full")["tasks"]["octave"]
    assert entry["type"] == "regression" and entry["test"]["uar"] is None and np.isfinite(entry["test"]["ccc"])
    selection = entry["folds"][0]["selection"]
    assert selection["metric"] == "dev_ccc" and selection["epochs"] == [1, 2]
    assert entry["dev"]["ccc"] == pytest.approx(max(selection["dev_ccc"]), abs=1e-6)  # the full model is the best epoch's
    preds = pd.read_csv(tmp_path / "run" / "predictions" / "octave.csv")
    assert list(preds.columns) == ["id", "split", "fold", "speaker", "actual", "predicted"]
    model, extractor, meta = load_finetuned(tmp_path / "run" / "models" / "octave")
    assert meta["target_scale"]["mean"] == pytest.approx(1.0) and model.config.num_labels == 1
    test = preds[preds["split"] == "test"]
    values, proba = outputs_to_predictions(predict_outputs(model, extractor, [segments.audio(u) for u in test["id"]]), meta)
    assert proba is None and np.allclose(values, test["predicted"], atol=1e-5)


def test_bad_params_are_one_line_errors(tmp_path):
    from pipeline.core.errors import ConfigError
    from pipeline.heads.base import head_settings

    with pytest.raises(ConfigError, match="unknown head type 'adapter'"):
        head_settings("x", {"type": "adapter"})
    with pytest.raises(ConfigError, match=r"heads.lora: unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        head_settings("lora", {"epoch": 3})
    with pytest.raises(ConfigError, match="unknown key 'backbone'"):  # the run item names the encoder
        head_settings("lora", {"backbone": "ast"})
    with pytest.raises(ConfigError, match="heads.full.folds = 2: Input should be 'first' or 'all'"):
        head_settings("full", {"folds": 2})
    with pytest.raises(ConfigError, match=r"heads.lora.augment = .*augment\[1\]: unknown audiomentations transform 'Reverb'"):
        head_settings("lora", {"augment": [{"name": "Gain"}, {"name": "Reverb"}]})
    s = head_settings("full", {"learning_rate": "3e-5", "epochs": 2})
    assert s.learning_rate == 3e-5 and s.epochs == 2.0 and s.folds == "first" and s.mode == "full"
    assert head_settings("lora", {}).learning_rate == 5e-4  # the mode's default
