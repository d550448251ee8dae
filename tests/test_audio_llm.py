"""Audio-LLM head: a tiny Qwen2 and a locally trained BPE tokenizer, loaded through the real paths.

The LLM (hidden 32, 2 layers) and tokenizer are built once per module and saved with
``save_pretrained``; every stage loads them with ``AutoModelForCausalLM``/``AutoTokenizer``.
Features come from synthetic stores written with :func:`pipeline.core.store.write_store`.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.core import manifest
from pipeline.heads.audio_llm.data import (
    TRANSCRIBE,
    instruct_examples,
    stage1_examples,
)
from pipeline.heads.audio_llm.model import AudioLLM, Projector, build_projectors, load_llm, load_projectors, save_projectors
from pipeline.heads.audio_llm.parse import UNPARSED, LabelParser
from pipeline.heads.audio_llm.plan import make_plan
from pipeline.heads.audio_llm.train import align_fold, mean_loss, run_align, run_instruct
from pipeline.core.io import read_json
from pipeline.core.manifest import Corpus
from pipeline.experiment.results import leaderboard_rows
from pipeline.core.store import write_store
from tests.factories import LLM_CLASSES, LLM_SENTENCES, LLM_TASK, tiny_llm

CLASSES, SENTENCES, TASK = LLM_CLASSES, LLM_SENTENCES, LLM_TASK  # the vocabulary tiny_llm's tokenizer knows
SPLITS = {"s1": "train", "s2": "train", "s3": "train", "s4": "dev", "s5": "test"}


# ---------------------------------------------------------------------------------------------
# Fixtures: tiny tokenizer + Qwen2, synthetic corpus and stores


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory):
    return tiny_llm(tmp_path_factory.mktemp("qwen-tiny"))


def synthetic_corpus(root, n_per=2, seed=0, folds=False) -> Corpus:
    """5 speakers × 4 emotions × ``n_per``; transcripts on every other utterance; genders."""
    rows = []
    for s, split in SPLITS.items():
        for k, c in enumerate(CLASSES):
            for i in range(n_per):
                uid = f"{s}_{c}_{i}"
                text = SENTENCES[(k + i) % 3] if i % 2 == 0 else ""
                rows.append({"id": uid, "speaker": s, "split": split, "audio": "", "video": "", "text": text,
                             "gender": "f" if s in ("s1", "s3", "s5") else "m", "emotion": c})
    df = pd.DataFrame(rows)
    if folds:
        df["split"] = "train"
        df["fold"] = df["speaker"].map({"s1": 0, "s2": 0, "s3": 1, "s4": 1, "s5": 2})
    return Corpus("syn", df, [TASK], str(root))


def write_stores(root, corpus, seed=0, video=True):
    """Frame stores: class-dependent means so the projector has something to align."""
    rng = np.random.default_rng(seed)
    ids = corpus.manifest["id"].tolist()
    k = corpus.manifest["emotion"].map(CLASSES.index).to_numpy()
    audio = [rng.normal(0, 1, (rng.integers(3, 10), 6)) + 2.0 * np.eye(6)[j] + 5.0 for j in k]
    write_store(root / "features/syn/toy.zarr", ids=ids, pooled=np.stack([a.mean(0) for a in audio]),
                frames=audio, attrs={"backbone": "toy"})
    if video:
        vid = [rng.normal(0, 1, (rng.integers(1, 4), 5)) + np.eye(5)[j] for j in k]
        write_store(root / "features/syn/vid.zarr", ids=ids, pooled=np.stack([v.mean(0) for v in vid]),
                    frames=vid, attrs={"backbone": "vid"})


LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


def config(llm_dir, backbone="toy", video_backbone=None, **over):
    """``(heads.audio_llm settings, the run item's backbone)``; ``over`` replaces whole groups."""
    cfg = {
        "type": "audio_llm",
        "llm": {"source": str(llm_dir), "device": "cpu", "precision": "fp32", "seed": 0},
        "languages": ["en", "zh"],
        "projector": {"hidden": 16, "downsample": 2, "max_tokens": 4},
        "video_projector": {"hidden": 16, "downsample": 1, "max_tokens": 2},
        "align": {"lr": 1e-2, "epochs": 3, "batch_size": 8},
        "instruct": {"lr": 1e-2, "epochs": 2, "batch_size": 16, "select_by": "uar", "lora": LORA},
        "generate": {"max_new_tokens": 4, "eval_batch_size": 16},
    }
    for key, value in over.items():
        cfg[key] = {**value, "lora": LORA} if key == "instruct" and "lora" not in value else value
    return cfg, backbone + (f"+{video_backbone}" if video_backbone else "")


@pytest.fixture
def syn(tmp_path, monkeypatch):
    """A synthetic corpus with audio and video stores, the working directory in a temp dir."""
    monkeypatch.chdir(tmp_path)
    corpus = synthetic_corpus(tmp_path)
    write_stores(tmp_path, corpus)
    return corpus


def fresh_model(llm_dir, plan, bank):
    llm, tok = load_llm(llm_dir)
    projectors = build_projectors({g: bank.dim(g) for g in bank.groups}, llm.config.hidden_size, plan.settings)
    for g, p in projectors.items():
        p.set_normalisation(*bank.stats(g, plan.ids(plan.folds[0].train)))
    return AudioLLM(llm, tok, projectors)


# ---------------------------------------------------------------------------------------------
# Label parsing


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The emotion is: Happy.", "happy"),
        ("HAPPINESS!!!", "happy"),
        ("  angry ", "angry"),
        ("I think the speaker sounds sad, really.", "sad"),
        ("Neutral", "neutral"),
        ("unhappy", "sad"),  # word boundaries: not "happy"
        ("情绪是：开心。", "happy"),
        ("高兴", "happy"),
        ("生气", "angry"),
        ("愤怒！", "angry"),
        ("伤心", "sad"),
        ("难过", "sad"),
        ("中性", "neutral"),
        ("平静", "neutral"),
        ("他不开心", "sad"),  # the longer term wins where both start
        ("joyful, not sad", "happy"),  # first class mentioned
        ("", UNPARSED),
        ("banana banana", UNPARSED),
        ("hap", "happy"),
    ],
)
def test_parser_reads_messy_english_and_chinese_answers(text, expected):
    assert LabelParser(CLASSES).parse(text) == expected


def test_parser_maps_synonyms_to_each_corpus_own_label_names():
    meld = LabelParser(["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"])
    answers = ("Happy.", "angry", "sad", "surprised!", "害怕")
    assert [meld.parse(t) for t in answers] == ["joy", "anger", "sadness", "surprise", "fear"]
    iemocap = LabelParser(["neu", "hap", "ang", "sad"])
    assert iemocap.answer("hap", "en") == "happy" and iemocap.answer("hap", "zh") == "开心"
    assert iemocap.parse("The speaker is happy") == "hap"
    ravdess = LabelParser(["neutral", "calm", "happy"])
    assert ravdess.parse("平静") == "calm" and ravdess.parse("中性") == "neutral"  # own word beats synonym
    with pytest.raises(ValueError):
        LabelParser(["a", UNPARSED])


def test_unparseable_answers_count_as_errors_never_dropped():
    from pipeline.heads.audio_llm.evaluate import score

    frame = pd.DataFrame({"speaker": ["a"] * 4, "actual": ["happy", "sad", "angry", "neutral"],
                          "predicted": ["happy", UNPARSED, "angry", UNPARSED]})
    metrics = score(TASK, frame)
    assert metrics["n"] == 4 and metrics["unparsed"] == 2
    assert metrics["war"] == 0.5 and metrics["uar"] == 0.5
    assert metrics["per_class_recall"]["sad"] == 0.0


# ---------------------------------------------------------------------------------------------
# Data: stage-1 captions and stage-2 instructions come from training rows only


def test_stage_data_use_training_rows_only(syn, llm_dir):
    plan = make_plan(syn, *config(llm_dir))
    fold = plan.folds[0]
    train_ids = set(plan.ids(fold.train))
    assert train_ids == {u for u in syn.manifest["id"] if SPLITS[u.split("_")[0]] == "train"}
    parser = plan.parsers["emotion"]
    captions = stage1_examples(plan.rows[fold.train], TASK, parser)
    assert {e.uid for e in captions} == train_ids  # every training utterance, nothing else
    by_id = {e.uid: e for e in captions}
    assert by_id["s1_happy_0"].answer == SENTENCES[1] and by_id["s1_happy_0"].prompt == TRANSCRIBE
    assert by_id["s1_happy_1"].answer == "A female speaker says something in a happy tone."
    assert by_id["s2_sad_1"].answer == "A male speaker says something in a sad tone."
    described = stage1_examples(plan.rows[fold.train], TASK, parser, target="description")
    assert all("tone" in e.answer for e in described) and len(described) == len(train_ids)

    instr = instruct_examples(plan.rows[fold.train], plan.tasks, plan.parsers, ["en", "zh"])
    assert {e.uid for e in instr} == train_ids and len(instr) == 2 * len(train_ids)
    zh = next(e for e in instr if e.uid == "s1_angry_0" and e.language == "zh")
    assert zh.answer == "生气" and "开心" in zh.prompt and zh.label == "angry"


# ---------------------------------------------------------------------------------------------
# Model mechanics


def test_stage2_loss_covers_answer_tokens_only(syn, llm_dir):
    plan = make_plan(syn, *config(llm_dir))
    bank = plan.bank()
    model = fresh_model(llm_dir, plan, bank)
    examples = instruct_examples(plan.rows.iloc[[0, 5, 9]], plan.tasks, plan.parsers, ["en", "zh"])
    feats = [bank.get(e.uid) for e in examples]
    batch = model.assemble(examples, feats, with_answer=True)
    labels, mask = batch["labels"], batch["attention_mask"]
    tok = model.tokenizer
    for i, ex in enumerate(examples):
        answer = tok(ex.answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        length = int(mask[i].sum())
        assert labels[i, length - len(answer) : length].tolist() == answer  # the answer ends the row
        assert (labels[i, : length - len(answer)] == -100).all() and (labels[i, length:] == -100).all()
    # The loss is the cross-entropy of exactly those tokens (perturbing the prompt logits changes nothing).
    logits = model.llm(inputs_embeds=batch["inputs_embeds"], attention_mask=mask).logits
    keep = labels[:, 1:] != -100
    manual = torch.nn.functional.cross_entropy(logits[:, :-1][keep], labels[:, 1:][keep])
    assert torch.allclose(model.loss(examples, feats), manual, atol=1e-5)


def test_batched_left_padded_generation_matches_one_by_one(syn, llm_dir):
    plan = make_plan(syn, *config(llm_dir, video_backbone="vid"))
    bank = plan.bank()
    model = fresh_model(llm_dir, plan, bank)
    examples = instruct_examples(plan.rows.iloc[[0, 7, 13]], plan.tasks, plan.parsers, ["en", "zh"], with_answer=False)
    feats = [bank.get(e.uid) for e in examples]
    together = model.generate(examples, feats, max_new_tokens=4)
    alone = [model.generate([e], [f], max_new_tokens=4)[0] for e, f in zip(examples, feats)]
    assert together == alone
    n = [sum(p.n_tokens(len(f[g])) for g, p in model.projectors.items()) for f in feats]
    widths = [len(sum(model.prompt_ids(e.prompt), [])) + k for e, k in zip(examples, n)]
    assert model.assemble(examples, feats, with_answer=False)["inputs_embeds"].shape[1] == max(widths)


def test_projector_downsamples_caps_tokens_and_round_trips(tmp_path):
    torch.manual_seed(0)
    proj = Projector(6, 32, hidden=16, downsample=3, max_tokens=3)
    proj.set_normalisation(np.full(6, 1.0), np.full(6, 2.0))
    frames = torch.randn(20, 6)
    assert proj(frames[:7]).shape == (3, 32) and proj(frames).shape == (3, 32)  # 7 → ceil(7/3); 20 → capped
    assert proj(frames[:0]).shape == (0, 32)
    save_projectors(tmp_path / "projector.pt", {"audio": proj})
    back = load_projectors(tmp_path / "projector.pt")["audio"]
    assert back.config() == proj.config()
    for k, v in proj.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])
    assert torch.equal(proj(frames), back(frames))


def test_stage1_reduces_loss_and_leaves_the_llm_untouched(syn, llm_dir):
    plan = make_plan(syn, *config(llm_dir, align={"lr": 1e-2, "epochs": 4, "batch_size": 8}))
    bank = plan.bank()
    model = fresh_model(llm_dir, plan, bank)
    before_llm = {k: v.clone() for k, v in model.llm.state_dict().items()}
    before_proj = {k: v.clone() for k, v in model.projectors.state_dict().items()}
    train = stage1_examples(plan.rows[plan.folds[0].train], TASK, plan.parsers["emotion"])
    start = mean_loss(model, train, bank, 16)
    report = align_fold(model, plan, bank, 0)
    assert mean_loss(model, train, bank, 16) < start - 0.1
    assert all(torch.equal(v, model.llm.state_dict()[k]) for k, v in before_llm.items())
    assert any(not torch.equal(v, model.projectors.state_dict()[k]) for k, v in before_proj.items() if "net" in k)
    losses = [h["train_loss"] for h in report["history"]]
    assert losses[-1] < losses[0] and 1 <= report["chosen_epoch"] <= 4
    assert report["chosen_epoch"] == 1 + int(np.argmin([h["dev_loss"] for h in report["history"]]))


# ---------------------------------------------------------------------------------------------
# Stages: merge, selection without test labels, metrics contract


def run_both(corpus, cfg, root):
    settings, backbone = cfg
    run_align(corpus, settings, backbone, root / "align")
    run_instruct(corpus, settings, backbone, root / "align", root / "instruct")
    return root / "instruct"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, llm_dir):
    """Align + instruct once on the audio-only synthetic corpus (shared by several tests)."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        corpus = synthetic_corpus(root)
        write_stores(root, corpus)
        run_both(corpus, config(llm_dir), root / "run")
    return root, corpus


def test_merged_model_equals_base_plus_adapter(trained, llm_dir, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root, syn = trained
    monkeypatch.chdir(root)
    cfg = config(llm_dir)
    out = root / "run" / "instruct"
    assert {p.name for p in out.iterdir()} >= {"merged", "adapter", "projector.pt", "train.json"}
    plan = make_plan(syn, *cfg)
    bank = plan.bank()
    projectors = load_projectors(out / "projector.pt")
    examples = instruct_examples(plan.rows.iloc[[1, 22, 37]], plan.tasks, plan.parsers, ["en", "zh"])
    feats = [bank.get(e.uid) for e in examples]

    def logits(llm):
        model = AudioLLM(llm, merged_tok, projectors).eval()
        with torch.no_grad():
            batch = model.assemble(examples, feats, with_answer=True)
            return llm(inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"]).logits

    merged, merged_tok = load_llm(out / "merged")
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(llm_dir), out / "adapter")
    plain = AutoModelForCausalLM.from_pretrained(llm_dir)
    assert (logits(merged) - logits(adapted)).abs().max() < 1e-4
    assert (logits(merged) - logits(plain)).abs().max() > 1e-3  # the adapter did learn something
    tuned = load_projectors(out / "projector.pt")["audio"].state_dict()
    aligned = load_projectors(root / "run" / "align" / "projector.pt")["audio"].state_dict()
    assert not torch.equal(tuned["net.0.weight"], aligned["net.0.weight"])  # stage 2 trains the projector too
    assert torch.equal(tuned["mean"], aligned["mean"])  # normalisation fixed by stage 1 (training frames)


def test_test_labels_never_reach_training_or_selection(trained, llm_dir, tmp_path, monkeypatch):
    root, syn = trained
    monkeypatch.chdir(root)
    cfg = config(llm_dir)
    first = root / "run" / "instruct"
    scrambled = copy.deepcopy(syn)
    df = scrambled.manifest
    test = df["split"] == "test"
    df.loc[test, "emotion"] = np.random.default_rng(3).permutation(df.loc[test, "emotion"].to_numpy())
    df.loc[test, "text"] = "leaked test transcript"
    assert (df["emotion"] != syn.manifest["emotion"]).any()
    second = run_both(scrambled, cfg, tmp_path / "b")

    for name in ("projector.pt", "adapter/adapter_model.safetensors"):
        a, b = (torch.load(d / name) if name.endswith(".pt") else _safetensors(d / name) for d in (first, second))
        assert _flat(a).keys() == _flat(b).keys() and all(torch.equal(v, _flat(b)[k]) for k, v in _flat(a).items())
    ta, tb = read_json(first / "train.json"), read_json(second / "train.json")
    assert ta["selection"] == tb["selection"] and ta["history"] == tb["history"]
    assert read_json(root / "run/align/align.json")["train"] == read_json(tmp_path / "b/align/align.json")["train"]


def _safetensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def _flat(blob, prefix=""):
    if isinstance(blob, torch.Tensor):
        return {prefix: blob}
    if isinstance(blob, dict):
        return {k: v for key, val in blob.items() for k, v in _flat(val, f"{prefix}/{key}").items()}
    return {}


def test_stages_write_the_probe_metrics_contract_for_the_audio_visual_model(syn, llm_dir, tmp_path):
    from pipeline.report.build import build_report
    from stages import audio_llm_align, audio_llm_eval, audio_llm_instruct

    manifest.save(syn, tmp_path / "data/syn/prepared")
    cfg, backbone = config(llm_dir, video_backbone="vid")
    params = {"heads": {"audio_llm": cfg}}
    args = argparse.Namespace(corpus="syn", backbone=backbone, head="audio_llm")
    for stage in (audio_llm_align, audio_llm_instruct, audio_llm_eval):
        stage.main(args, params)

    model_root = tmp_path / "models/syn/toy+vid/audio_llm"
    assert (model_root / "merged/config.json").exists() and (model_root / "merged/tokenizer_config.json").exists()
    assert set(load_projectors(model_root / "projector.pt")) == {"audio", "video"}
    result = read_json(tmp_path / "metrics/experiments/syn/toy+vid/audio_llm.json")
    entry = result["tasks"]["emotion"]
    assert result["backbone"] == "toy+vid" and result["head"] == "audio_llm"
    assert entry["test"]["n"] == 8 and entry["dev"]["n"] == 8
    assert np.sum(entry["test"]["confusion"]) + entry["test"]["unparsed"] == 8  # unparsed: errors, not dropped
    assert set(entry["languages"]) == {"en", "zh"} and entry["eval_language"] == "en"
    assert entry["folds"][0]["selection"]["instruct_epoch"] in (1, 2)
    preds = pd.read_csv(tmp_path / "metrics/predictions/syn/toy+vid/audio_llm/emotion.csv", keep_default_na=False)
    assert list(preds.columns[:7]) == ["id", "split", "fold", "speaker", "actual", "predicted", "raw"]
    assert {"predicted_zh", "raw_zh", f"p_{UNPARSED}"} <= set(preds.columns)
    assert (preds[[f"p_{c}" for c in [*CLASSES, UNPARSED]]].sum(axis=1) == 1).all()
    assert set(preds["predicted"]) <= {*CLASSES, UNPARSED} and len(preds) == 16
    assert {(r["split"], r["n"]) for r in leaderboard_rows(result)} == {("dev", 8), ("test", 8)}
    report = build_report(tmp_path / "metrics", ["syn"], [("toy+vid", "audio_llm", "audio_llm_eval")])
    assert "audio_llm" in report["markdown"]


def test_several_visual_token_groups_emotion_llama_style(syn, llm_dir, tmp_path):
    """audio + three further stores (Emotion-LLaMA: global EVA, local MAE, temporal VideoMAE): one projector
    per group named after its store, in the run item's order; a store without frames (a layered pooled
    clip vector, as videomae writes) is one token per utterance, its last layer."""
    from pipeline.heads.audio_llm.evaluate import run_eval

    ids = syn.manifest["id"].tolist()
    rng = np.random.default_rng(1)
    write_store(tmp_path / "features/syn/clipvec.zarr", ids=ids, pooled=rng.normal(0, 1, (len(ids), 3, 7)),
                attrs={"backbone": "clipvec"})
    write_store(tmp_path / "features/syn/glob.zarr", ids=ids, pooled=rng.normal(0, 1, (len(ids), 4)),
                frames=[rng.normal(0, 1, (5, 4)) for _ in ids], attrs={"backbone": "glob"})
    cfg, backbone = config(llm_dir, backbone="toy+glob+vid+clipvec", align={"lr": 1e-2, "epochs": 1, "batch_size": 16},
                           instruct={"lr": 1e-2, "epochs": 1, "batch_size": 16, "select_by": "loss"}, languages=["en"])
    plan = make_plan(syn, cfg, backbone)
    assert list(plan.stores) == ["audio", "glob", "vid", "clipvec"]
    bank = plan.bank()
    assert bank.sources == {"audio": "frames", "glob": "frames", "vid": "frames", "clipvec": "pooled (one token)"}
    uid = ids[0]
    assert np.allclose(bank.get(uid)["clipvec"], plan.stores["clipvec"].pooled([uid])[:, -1])
    model = fresh_model(llm_dir, plan, bank)
    tokens = model.soft_tokens(bank.get(uid))
    assert [len(t) for t in tokens] == [model.projectors["audio"].n_tokens(len(bank.get(uid)["audio"])), 2, 2, 1]

    out = run_both(syn, (cfg, backbone), tmp_path / "groups")
    assert list(load_projectors(out / "projector.pt")) == ["audio", "glob", "vid", "clipvec"]
    assert read_json(tmp_path / "groups/align/align.json")["token_groups"]["clipvec"] == "pooled (one token)"
    result = run_eval(syn, cfg, backbone, out, metrics_path=tmp_path / "m.json", predictions_dir=tmp_path / "p")
    assert result["tasks"]["emotion"]["test"]["n"] == 8


def test_cross_validation_trains_one_model_per_fold_and_pools(tmp_path, monkeypatch, llm_dir):
    from pipeline.heads.audio_llm.evaluate import run_eval

    monkeypatch.chdir(tmp_path)
    corpus = synthetic_corpus(tmp_path, n_per=1, folds=True)
    write_stores(tmp_path, corpus, video=False)
    cfg = config(llm_dir, align={"lr": 1e-2, "epochs": 1, "batch_size": 16},
                 instruct={"lr": 1e-2, "epochs": 1, "batch_size": 16, "select_by": "loss"}, languages=["zh"])
    out = run_both(corpus, cfg, tmp_path / "cv")
    assert sorted(p.name for p in out.iterdir()) == ["fold0", "fold1", "fold2"]
    result = run_eval(corpus, *cfg, out, metrics_path=tmp_path / "m.json", predictions_dir=tmp_path / "p")
    entry = result["tasks"]["emotion"]
    assert [f["fold"] for f in entry["folds"]] == ["fold0", "fold1", "fold2"]
    assert entry["test"]["n"] == len(corpus.manifest)  # each utterance predicted once, out of fold
    assert set(entry["fold_summary"]["test"]["uar"]) == {"mean", "std"}


def test_bad_inputs_are_clear_errors(syn, llm_dir, tmp_path):
    from pipeline.core.errors import StoreError
    from pipeline.heads.audio_llm import AudioLLMError

    write_store(tmp_path / "features/syn/pooled.zarr", ids=["a"], pooled=np.zeros((1, 3)), attrs={"backbone": "pooled"})
    from pipeline.core.errors import ConfigError

    with pytest.raises(AudioLLMError, match="lld: true"):
        make_plan(syn, *config(llm_dir, backbone="pooled"))
    with pytest.raises(ConfigError, match=r"heads.audio_llm.align: unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        make_plan(syn, *config(llm_dir, align={"epoch": 3}))
    with pytest.raises(AudioLLMError, match="heads.audio_llm.llm: model 'no/such-model' is not available offline"):
        run_align(syn, *config(llm_dir, llm={"source": "no/such-model"}), tmp_path / "x")
    with pytest.raises(AudioLLMError, match="name the audio store"):
        make_plan(syn, *config(llm_dir, backbone="toy+vid+toy"))
    with pytest.raises(AudioLLMError, match="would clash with the audio token group"):
        make_plan(syn, *config(llm_dir, backbone="toy+vid+audio"))
    with pytest.raises(StoreError, match="features/syn/x.zarr: no feature store here"):
        make_plan(syn, *config(llm_dir, backbone="toy+vid+x"))
    with pytest.raises(AudioLLMError, match="the Audio-LLM's audio store needs frames"):  # a further group may be pooled
        make_plan(syn, *config(llm_dir, backbone="pooled+toy"))


def test_frame_bank_normalisation_uses_the_given_ids_only(syn, llm_dir):
    plan = make_plan(syn, *config(llm_dir))
    bank = plan.bank()
    train = plan.ids(plan.folds[0].train)
    mean, _ = bank.stats("audio", train)
    assert np.allclose(mean, np.concatenate([bank.frames["audio"][u] for u in train]).mean(0), atol=1e-5)
    assert not np.allclose(mean, bank.stats("audio", plan.ids(plan.folds[0].test))[0])
