"""``lora_multimodal``: LoRA on LanguageBind's text, video and audio towers end to end, through the real
experiment runner, on the tiny towers LanguageBind's own code saved in its published layout
(tests/golden/languagebind/). The corpus is synthetic and learnable: each class has its own words, frame
colour and tone pitch; it goes through the real segment writer (wav reader and a frame reader standing in
for ffmpeg). One dev utterance has no video (its video embedding is zero)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.io import read_json
from tests.conftest import RAVDESS_MP4, needs_ravdess
from tests.data.media import write_wav
from tests.factories import read_wav

pytestmark = [
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

GOLDEN = Path(__file__).parent / "golden" / "languagebind"
CLASSES = ["calm", "glad", "grim"]
COLOURS = {"calm": (40, 90, 200), "glad": (230, 200, 40), "grim": (120, 30, 30)}
WORDS = {"calm": "quiet slow soft", "glad": "bright happy sun", "grim": "dark angry storm"}
SPLIT = {"s1": "train", "s2": "train", "s3": "dev", "s4": "test"}
TOWERS = {
    "languagebind_text": {"type": "languagebind_text", "source": str(GOLDEN / "video")},
    "languagebind_video": {"type": "languagebind_video", "source": str(GOLDEN / "video_lora")},
    "languagebind_audio": {"type": "languagebind_audio", "source": str(GOLDEN / "audio"), "normalize": True},
}
TVA = "languagebind_text+languagebind_video+languagebind_audio"
CFG = {"type": "lora_multimodal", "epochs": 3, "batch_size": 4, "learning_rate": 5e-3, "r": 4, "logging_steps": 1,
       "progress": False, "warmup_ratio": 0.0}


def fake_frames(path, fps, size, start=None, end=None, streams=None):
    """Stand-in for ffmpeg: the .npy clip's frames."""
    return np.load(path)


def av_corpus(root: Path):
    from pipeline.core.inputs import write_items
    from pipeline.core.manifest import Corpus, Task, save
    from pipeline.core.segments import Segments
    from pipeline.segment.decode import segment_corpus

    rng = np.random.default_rng(0)
    rows = []
    for spk, split in SPLIT.items():
        for k, cls in enumerate(CLASSES):
            for i in range(2):
                uid = f"{spk}_{cls}_{i}"
                n = int(16000 * rng.uniform(0.4, 0.7))
                audio = 0.3 * np.sin(2 * np.pi * 200 * 2**k * np.arange(n) / 16000) + 0.01 * rng.normal(size=n)
                frames = np.clip(np.array(COLOURS[cls])[None, None, None] + rng.normal(0, 12, (4, 32, 32, 3)), 0, 255)
                video = root / "media" / f"{uid}.npy"
                video.parent.mkdir(parents=True, exist_ok=True)
                np.save(video, frames.astype(np.uint8))
                no_video = split == "dev" and k == 0 and i == 0
                rows.append({"id": uid, "speaker": spk, "split": split, "audio": str(write_wav(root / "media" / f"{uid}.wav", audio, 16000)),
                             "video": "" if no_video else str(video), "text": f"{WORDS[cls]} number {i}", "emotion": cls})
    corpus = Corpus("av", pd.DataFrame(rows), [Task("emotion", "classification", CLASSES)], str(root))
    save(corpus, root / "prepared")
    write_items(corpus, root / "prepared")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("pipeline.segment.decode.decode_audio", read_wav)
        mp.setattr("pipeline.segment.decode.decode_frames", fake_frames)
        mp.setattr("pipeline.segment.decode.probe", lambda path: {})
        segment_corpus(corpus, root / "segments.zarr", fps=5, frame_size=32, workers=1)
    return corpus, Segments(root / "segments.zarr")


def finetune(tmp: Path, corpus, segments, cfg, backbone=TVA, towers=TOWERS):
    from pipeline.heads.finetune.learner import run_finetune

    return run_finetune(corpus, segments, "lora_multimodal", cfg, backbone=backbone, source=None,
                        model_dir=tmp / "models", metrics_path=tmp / "experiment.json",
                        predictions_dir=tmp / "predictions", live_dir=tmp / "curves", towers=towers)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from pipeline.heads.finetune import trainer

    tmp = tmp_path_factory.mktemp("lb_lora")
    corpus, segments = av_corpus(tmp / "corpus")
    seen = {}
    original = trainer.fit

    def spy(model, train_ds, dev_ds, *args, **kwargs):
        seen.update(train=list(train_ds.ids), dev=list(dev_ds.ids))
        return original(model, train_ds, dev_ds, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "fit", spy)
        result = finetune(tmp / "run", corpus, segments, CFG)
    return {"tmp": tmp / "run", "corpus": corpus, "segments": segments, "result": result, "seen": seen}


def test_segments_hold_the_towers_inputs(trained):
    seg = trained["segments"]
    assert len(seg.frames("s3_calm_0")) == 0 and seg.frames("s1_glad_0").shape == (4, 32, 32, 3)


def test_lora_changes_adapters_and_head_only(trained):
    import torch

    from pipeline.heads.finetune.multimodal import build_base, load_multimodal

    model, _, meta = load_multimodal(trained["tmp"] / "models" / "emotion")
    fresh, _ = build_base(model.base_model.model.specs, len(CLASSES))
    fresh_state = fresh.state_dict()
    lora_b = {n: p for n, p in model.named_parameters() if ".lora_B." in n}
    towers = {n.split(".")[3] for n in lora_b}  # base_model.model.towers.<backbone>....
    assert towers == set(TOWERS)
    assert all(p.abs().sum() > 0 for p in lora_b.values())  # peft starts B at zero: these were trained
    assert any("temporal_attn.q_proj" in n for n in lora_b) and any("self_attn.v_proj" in n for n in lora_b)
    assert not any(".k_proj.lora" in n or ".out_proj.lora" in n for n in lora_b)  # target_modules: q_proj, v_proj
    unchanged = 0
    for name, value in model.state_dict().items():
        if "lora_" in name or ".head." in name:
            continue
        plain = name.replace("base_model.model.", "", 1).replace(".base_layer.", ".")
        assert torch.equal(value, fresh_state[plain]), f"{plain} changed: base weights must stay frozen"
        unchanged += 1
    assert unchanged == len(fresh_state) - 2  # every tower tensor (all but the head's weight and bias)
    trained_head = model.base_model.model.head.modules_to_save["default"].weight
    assert not torch.equal(trained_head, fresh.head.weight)  # (same seed, same init) the head was trained
    assert 0 < meta["n_trainable"] < sum(p.numel() for p in fresh.parameters()) / 5


def test_training_lowers_the_loss(trained):
    live = trained["tmp"] / "curves" / "emotion" / "plots" / "metrics"
    loss = pd.read_csv(live / "loss.tsv", sep="\t")
    assert list(loss["step"]) == list(range(1, 10))  # 12 training items, batches of 4, 3 epochs
    assert loss["loss"].iloc[-3:].mean() < loss["loss"].iloc[:3].mean() - 0.1


def test_epoch_is_selected_on_dev_only(trained):
    corpus, seen = trained["corpus"], trained["seen"]
    by_split = corpus.manifest.groupby("split")["id"].apply(set)
    assert set(seen["train"]) == by_split["train"] and set(seen["dev"]) == by_split["dev"]  # test never reaches fit
    entry = trained["result"]["tasks"]["emotion"]
    selection = entry["folds"][0]["selection"]
    scores = dict(zip(selection["epochs"], selection["dev_uar"]))
    assert selection["metric"] == "dev_uar" and selection["epochs"] == [1, 2, 3]
    assert selection["chosen"] == min(e for e, s in scores.items() if s == max(scores.values()))
    assert entry["dev"]["uar"] == pytest.approx(max(scores.values()))  # the saved model is that epoch's


def test_reports_weighted_f1_through_the_runner(trained):
    from pipeline.experiment.results import leaderboard_rows

    written = read_json(trained["tmp"] / "experiment.json")
    assert (written["corpus"], written["backbone"], written["head"]) == ("av", TVA, "lora_multimodal")
    entry = written["tasks"]["emotion"]
    assert entry["test"]["n"] == 6 and 0.0 <= entry["test"]["weighted_f1"] <= 1.0
    rows = leaderboard_rows(trained["result"])
    assert {(r["backbone"], r["split"]) for r in rows} == {(TVA, "dev"), (TVA, "test")}
    saved = {p.name for p in (trained["tmp"] / "models" / "emotion").iterdir()}
    assert {"finetune.json", "adapter_config.json", "adapter_model.safetensors"} <= saved
    meta = read_json(trained["tmp"] / "models" / "emotion" / "finetune.json")
    assert [t["name"] for t in meta["towers"]] == TVA.split("+") and meta["towers"][2]["normalize"] is True


def test_reload_gives_identical_predictions_and_merges(trained):
    import torch

    from pipeline.heads.finetune.multimodal import MultimodalItems, load_multimodal, predict_multimodal, texts_of

    preds = pd.read_csv(trained["tmp"] / "predictions" / "emotion.csv")
    model, prep, _ = load_multimodal(trained["tmp"] / "models" / "emotion")
    for split in ("dev", "test"):  # dev holds the utterance without video
        part = preds[preds["split"] == split]
        rows = trained["corpus"].manifest.set_index("id")
        items = MultimodalItems(trained["segments"], part["id"], texts_of(rows, part["id"]), None, prep)
        logits = predict_multimodal(model, prep, items, batch_size=4)
        proba = np.exp(logits - logits.max(1, keepdims=True))
        proba /= proba.sum(1, keepdims=True)
        assert np.allclose(proba, part[[f"p_{c}" for c in CLASSES]].to_numpy(), atol=1e-6)
    batch = prep([items[i] for i in range(3)])
    with torch.inference_mode():
        before = model(**batch)["logits"]
        merged = model.merge_and_unload()
        after = merged(**batch)["logits"]
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert torch.allclose(before, after, atol=1e-5)


def test_bad_towers_and_params_are_one_line_errors(tmp_path, trained):
    from pipeline.core.errors import ConfigError, HeadError
    from pipeline.heads.base import head_settings
    from pipeline.heads.finetune.multimodal import load_multimodal, tower_specs

    with pytest.raises(HeadError, match=r"backbones.ast.type is 'ast'; lora_multimodal trains LanguageBind towers"):
        tower_specs("languagebind_text+ast", {**TOWERS, "ast": {"type": "ast", "source": "x"}})
    with pytest.raises(HeadError, match="backbones.languagebind_video has no source"):
        tower_specs("languagebind_video", {"languagebind_video": {"type": "languagebind_video"}})
    with pytest.raises(HeadError, match="joined by .+., each once"):
        tower_specs("languagebind_text+languagebind_text", TOWERS)
    with pytest.raises(HeadError, match=r"backbones.languagebind_video: .*model_type 'LanguageBindAudio'"):
        finetune(tmp_path, trained["corpus"], trained["segments"], CFG, backbone="languagebind_video",
                 towers={"languagebind_video": {"type": "languagebind_video", "source": str(GOLDEN / "audio")}})
    with pytest.raises(HeadError, match=r"target_modules \['query'\] are not modules of the towers"):
        finetune(tmp_path, trained["corpus"], trained["segments"], {**CFG, "target_modules": ["query"]},
                 backbone="languagebind_text")
    with pytest.raises(ConfigError, match=r"heads.lbl: unknown key 'max_seconds'"):
        head_settings("lbl", {"type": "lora_multimodal", "max_seconds": 5}, family="finetune")
    with pytest.raises(HeadError, match="not found; pass its directory"):
        load_multimodal(trained["tmp"] / "models" / "emotion", {"languagebind_text": tmp_path / "gone"})


def test_validate_accepts_tower_items_and_names_bad_ones():
    import copy

    import yaml

    from pipeline.core.errors import ConfigError
    from pipeline.core.hashing import ROOT
    from pipeline.tools.validate import validate_params

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["run"]["finetune"] = [{"head": "lora_multimodal", "backbone": "languagebind_text+languagebind_video"}]
    assert "experiments per corpus" in validate_params(params)
    for backbone, message in (("languagebind_text+ast", r"backbones.ast.type is 'hf_audio'"),
                              ("languagebind_text+nope", "names 'nope', but there is no backbones.nope section"),
                              ("languagebind_text+languagebind_text", r"run.finetune\[0\] backbone .*each once")):
        bad = copy.deepcopy(params)
        bad["run"]["finetune"][0]["backbone"] = backbone
        with pytest.raises(ConfigError, match=message):
            validate_params(bad)


@needs_ravdess
def test_predict_tool_runs_the_saved_model_on_a_real_video(trained, capsys):
    from pipeline.core.audio import SAMPLE_RATE
    from pipeline.core.media import decode_audio, decode_frames
    from pipeline.heads.finetune.multimodal import MultimodalItems, load_multimodal, predict_multimodal
    from pipeline.tools import predict

    params = {"segment": {"fps": 5, "frame_size": 32}}
    head_dir = trained["tmp"] / "models"
    with pytest.raises(predict.PredictError, match="has a text tower: pass the transcript with --text"):
        predict.predict(head_dir, RAVDESS_MP4, params=params)
    result = predict.predict(head_dir, RAVDESS_MP4, params=params, text="kids are talking by the door")["emotion"]
    assert result["kind"] == f"lora_multimodal fine-tuned {TVA}"
    # the same numbers as the model on the file decoded as the segment stage does
    model, prep, _ = load_multimodal(head_dir / "emotion")

    class One:
        def audio(self, uid):
            return decode_audio(RAVDESS_MP4, SAMPLE_RATE)

        def frames(self, uid):
            return decode_frames(RAVDESS_MP4, 5, 32)

    items = MultimodalItems(One(), ["x"], ["kids are talking by the door"], None, prep)
    logits = predict_multimodal(model, prep, items)[0]
    proba = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert np.allclose([result["probabilities"][c] for c in CLASSES], proba, atol=1e-6)
    assert result["prediction"] == CLASSES[int(proba.argmax())]
    assert predict.main([str(head_dir), str(RAVDESS_MP4), "--params", "/nonexistent.yaml", "--text", "x"]) != 0
    assert "pass --params" in capsys.readouterr().err
