"""Cross-corpus probes: train on corpus A (selection on A's dev only), test on every item of corpus B
through a declared label map; unmapped labels dropped and counted; a map typo is an error naming it.

Unit tests run on two small synthetic corpora with feature stores written directly (0.2-1 s each);
the DVC test (slow: three `dvc repro` runs, 1.5 min of CPU) trains on a generated fake CREMA-D and tests
on a generated fake EmoDB.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import LabelMap
from pipeline.core.errors import ConfigError
from pipeline.core.manifest import Corpus, Task
from pipeline.core.store import FeatureStore, write_store
from pipeline.experiment.results import leaderboard_rows
from pipeline.heads.probe.cross import run_cross_probe
from pipeline.tools.validate import validate_params
from tests.dvc_util import make_repo, ran, set_params, sh

SHARED = ["neutral", "happy", "sad", "angry"]
ALPHA = SHARED  # corpus A: the demo's classes, official train/dev/test split by speaker
BETA = ["anger", "boredom", "happiness", "sadness", "neutral"]  # corpus B: EmoDB-like, one fold per speaker
BETA_TO_SHARED = {"neutral": "neutral", "happiness": "happy", "sadness": "sad", "anger": "angry"}
MAP = {
    "classes": SHARED,
    "corpora": {
        "alpha": {"labels": {c: c for c in SHARED}},
        "beta": {"labels": BETA_TO_SHARED},
    },
}
CENTRES = np.random.default_rng(0).normal(0, 3, (len(SHARED) + 1, 8))  # one per shared class (+ boredom)


def centre(label: str) -> np.ndarray:
    shared = BETA_TO_SHARED.get(label, label)
    return CENTRES[SHARED.index(shared)] if shared in SHARED else CENTRES[-1]


def make_corpus(tmp_path, name: str, classes: list[str], splits: dict[str, str] | None, n: int, shift: float, seed: int):
    """Corpus ``name`` with speakers s0.. (split per ``splits``, or one fold per speaker when None), ``n``
    items per class and speaker, ids like ``s0_3`` (the same ids in both corpora), and its feature store:
    class centre + a per-corpus shift + noise."""
    rng = np.random.default_rng(seed)
    speakers = list(splits) if splits else [f"s{i}" for i in range(4)]
    rows, X = [], []
    for k, spk in enumerate(speakers):
        for j, label in enumerate(c for c in classes for _ in range(n)):
            row = {"id": f"{spk}_{j}", "speaker": spk, "split": splits[spk] if splits else "train",
                   "audio": "", "video": "", "text": "", "emotion": label}
            if not splits:
                row["fold"] = k
            rows.append(row)
            X.append(centre(label) + shift + rng.normal(0, 0.8, 8))
    df = pd.DataFrame(rows)
    corpus = Corpus(name, df, [Task("emotion", "classification", classes)], str(tmp_path / name),
                    {"protocol": "official" if splits else "loso"})
    path = tmp_path / f"{name}.zarr"
    write_store(path, ids=list(df["id"]), pooled=np.asarray(X), attrs={"backbone": "feat", "type": "test"})
    return corpus, FeatureStore(path)


ALPHA_SPLITS = {"s0": "train", "s1": "train", "s2": "train", "s3": "train", "s4": "dev", "s5": "dev", "s6": "test"}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    base = tmp_path_factory.mktemp("cross")
    alpha = make_corpus(base, "alpha", ALPHA, ALPHA_SPLITS, 5, 0.0, 1)
    beta = make_corpus(base, "beta", BETA, None, 4, 0.5, 2)
    return alpha, beta


def run(out, train, test, cfg=None, lmap=MAP):
    (a, store_a), (b, store_b) = train, test
    return run_cross_probe(
        a, b, (store_a, store_b), "logreg", cfg or {"C_grid": [0.01, 0.1, 1.0, 10.0]},
        ("shared4", LabelMap.model_validate(lmap)),
        model_dir=out / "m", metrics_path=out / "e.json", predictions_dir=out / "p",
    )


def test_trains_on_a_selects_on_a_dev_and_scores_every_mapped_item_of_b(corpora, tmp_path):
    alpha, beta = corpora
    res = run(tmp_path, alpha, beta)
    preds = pd.read_csv(tmp_path / "p" / "shared4.csv")
    a_df, b_df = alpha[0].manifest, beta[0].manifest
    mapped = b_df[b_df["emotion"] != "boredom"]
    # test = every mapped item of B, with its label mapped; dev = A's official dev; A's test never used
    test = preds[preds["split"] == "test"].set_index("id")
    assert set(test.index) == {f"beta/{i}" for i in mapped["id"]}
    assert (test["actual"] == [BETA_TO_SHARED[v] for v in mapped.set_index("id").loc[[i[5:] for i in test.index], "emotion"]]).all()
    dev = preds[preds["split"] == "dev"]
    assert set(dev["id"]) == {f"alpha/{i}" for i in a_df.loc[a_df["split"] == "dev", "id"]}
    assert not any(i.startswith("alpha/s6_") for i in preds["id"])
    fold = res["tasks"]["shared4"]["folds"][0]
    assert fold["fold"] == "cross" and fold["dev_note"].startswith("official dev (train/dev from alpha: official split; its 20 test rows unused)")
    assert "test = all 64 rows of beta" in fold["dev_note"]
    # the map: boredom dropped and counted, never silently; classes are the shared ones
    info = res["cross_corpus"]
    assert info["dropped"] == {"alpha": {}, "beta": {"boredom": 16}}
    assert info["kept"] == {"alpha": 140, "beta": 64} and info["tasks"] == {"alpha": "emotion", "beta": "emotion"}
    assert res["tasks"]["shared4"]["classes"] == SHARED
    # rows carry both corpus names; the shared class centres make B learnable from A
    rows = {r["split"]: r for r in leaderboard_rows(res)}
    assert rows["test"]["corpus"] == "alpha-to-beta" and rows["test"]["task"] == "shared4"
    assert (rows["test"]["train_corpus"], rows["test"]["test_corpus"]) == ("alpha", "beta")
    assert (rows["dev"]["train_corpus"], rows["dev"]["test_corpus"]) == ("alpha", "alpha")
    assert rows["test"]["n"] == 64 and rows["test"]["uar"] > 0.8
    assert json.loads((tmp_path / "e.json").read_text())["test_corpus"] == "beta"


def test_nothing_selected_or_predicted_depends_on_b_labels_or_a_test_rows(corpora, tmp_path):
    (a, store_a), (b, store_b) = corpora
    first = run(tmp_path / "1", (a, store_a), (b, store_b))
    rng = np.random.default_rng(3)
    a2, b2 = a.manifest.copy(), b.manifest.copy()
    a_test = a2["split"] == "test"
    a2.loc[a_test, "emotion"] = rng.permutation(a2.loc[a_test, "emotion"].to_numpy())
    b2["emotion"] = rng.permutation(b2["emotion"].to_numpy())
    second = run(tmp_path / "2", (Corpus("alpha", a2, a.tasks, a.root, a.info), store_a),
                 (Corpus("beta", b2, b.tasks, b.root, b.info), store_b))
    pick = [f["selection"] for r in (first, second) for f in r["tasks"]["shared4"]["folds"]]
    assert pick[0] == pick[1]
    p1, p2 = (pd.read_csv(tmp_path / d / "p" / "shared4.csv").set_index("id") for d in ("1", "2"))
    common = p1.index.intersection(p2.index)  # B's rows with a mapped label in both runs
    assert len(common) > 20 and (p1.loc[common, "predicted"] == p2.loc[common, "predicted"]).all()


def test_a_cross_validated_training_corpus_trains_on_every_fold_and_tests_all_of_b(corpora, tmp_path):
    alpha, beta = corpora
    res = run(tmp_path, beta, alpha)  # B = the official-split corpus: all its splits are test items
    preds = pd.read_csv(tmp_path / "p" / "shared4.csv")
    assert set(preds.loc[preds["split"] == "test", "id"]) == {f"alpha/{i}" for i in alpha[0].manifest["id"]}
    dev_speakers = {i.split("/")[1].split("_")[0] for i in preds.loc[preds["split"] == "dev", "id"]}
    assert len(dev_speakers) == 1  # one of the 4 training groups held out (20 %, at least one), never test
    assert res["tasks"]["shared4"]["folds"][0]["dev_note"].startswith(
        "dev = 1 held-out training group(s) (train/dev from beta: 4 folds, all training data); test = all 140 rows of alpha")
    assert res["cross_corpus"]["dropped"]["beta"] == {"boredom": 16}


def test_a_dev_that_cannot_be_speaker_independent_is_said_so_on_the_cross_rows(corpora, tmp_path):
    _, beta = corpora
    small = make_corpus(tmp_path, "alpha", ALPHA, {"s0": "train", "s1": "train", "s2": "test"}, 5, 0.0, 4)
    res = run(tmp_path, small, beta)  # two training speakers, no dev: a random 20 % of their utterances
    note = res["tasks"]["shared4"]["folds"][0]["dev_note"]
    assert note.startswith("dev = random 20% of training utterances (train/dev from alpha: official split")
    assert {r["split"]: r["dev_independent"] for r in leaderboard_rows(res)} == {"dev": False, "test": False}


def test_speaker_norm_keeps_corpora_apart_though_their_ids_and_speakers_collide(corpora, tmp_path):
    res = run(tmp_path, *corpora, cfg={"C_grid": [0.1, 1.0], "speaker_norm": True})
    assert res["tasks"]["shared4"]["norm"] == "speaker"
    preds = pd.read_csv(tmp_path / "p" / "shared4.csv")
    assert preds["id"].is_unique and set(preds["speaker"].str.split("/").str[0]) == {"alpha", "beta"}
    assert leaderboard_rows(res)[-1]["uar"] > 0.8  # per-speaker z-scoring also removes B's shift


@pytest.mark.parametrize("change, message", [
    ({"beta": {"labels": {**BETA_TO_SHARED, "hapiness": "happy"}}},
     (r"run\.label_maps\.shared4\.corpora\.beta\.labels: 'hapiness' is not a class of beta's task 'emotion' "
      r"\(did you mean 'happiness'\?\); its classes: anger, boredom")),
    ({"beta": {"task": "emotoin", "labels": BETA_TO_SHARED}},
     r"run\.label_maps\.shared4\.corpora\.beta\.task = 'emotoin': beta has no such task \(did you mean 'emotion'\?\)"),
    ({"alpha": {"labels": {"neutral": "neutral", "happy": "happy", "angry": "angry"}}},
     r"class\(es\) \['sad'\] have no items in alpha \(the training corpus\)"),
])
def test_a_label_map_that_does_not_fit_a_corpus_is_an_error_naming_it(corpora, tmp_path, change, message):
    lmap = {"classes": SHARED, "corpora": {**MAP["corpora"], **change}}
    with pytest.raises(ConfigError, match=message):
        run(tmp_path, *corpora, lmap=lmap)
    assert not (tmp_path / "e.json").exists()


def params_with(**run):
    import yaml

    from pipeline.core.hashing import ROOT

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["run"] = {**params["run"], "corpora": ["demo", "emodb"], **run}
    return params


@pytest.mark.parametrize("item, maps, message", [
    ({"train": "demo", "test": "emodb", "label_map": "emobox4"}, None, None),
    ({"train": "demo", "test": "cremad", "label_map": "emobox4"}, None,
     r"run\.cross_corpus\[0\]\.test names 'cremad', which is not in run\.corpora"),
    ({"train": "demo", "test": "emodb", "label_map": "emobox"}, None,
     r"run\.cross_corpus\[0\]\.label_map names 'emobox', but there is no run\.label_maps\.emobox"),
    ({"train": "demo", "test": "demo", "label_map": "emobox4"}, None, r"trains and tests on 'demo'"),
    ({"train": "demo", "test": "emodb", "label_map": "m"}, {"m": {"classes": SHARED, "corpora": {"demo": MAP["corpora"]["alpha"]}}},
     r"run\.label_maps\.m\.corpora has no entry for 'emodb'"),
    ({"train": "demo", "test": "emodb", "label_map": "m"},
     {"m": {"classes": SHARED, "corpora": {"demo": {"labels": {"happy": "hapy"}}, "emodb": {"labels": {"anger": "angry"}}}}},
     r"run\.label_maps\.m\.corpora\.demo\.labels map onto \['hapy'\], which is not among run\.label_maps\.m\.classes"),
    ({"train": "demo", "tset": "emodb", "label_map": "emobox4"}, None, r"run\.cross_corpus\.0: unknown key 'tset' \(did you mean 'test'\?\)"),
])
def test_cross_corpus_params_are_checked_by_validate(item, maps, message):
    params = params_with(cross_corpus=[item], **({"label_maps": maps} if maps else {}))
    if message is None:
        assert "experiments per corpus" in validate_params(params)
        return
    with pytest.raises(ConfigError, match=message) as err:
        validate_params(params)
    assert "\n" not in str(err.value) and str(err.value).startswith("params.yaml: run")


EMODB_LETTERS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}
CREMAD_CODES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
EMOBOX4 = {"cremad": {"anger", "happy", "neutral", "sad"}, "emodb": {"anger", "happiness", "sadness", "neutral"}}


def label_counts(root, corpus: str) -> tuple[int, dict[str, int]]:
    """(kept, dropped per label) under the shipped emobox4 map, counted from the generated files."""
    if corpus == "emodb":
        labels = [EMODB_LETTERS[p.stem[5]] for p in root.glob("wav/*.wav")]
    else:
        labels = [CREMAD_CODES[p.stem.split("_")[2]] for p in root.glob("AudioWAV/*.wav")]
    dropped = Counter(x for x in labels if x not in EMOBOX4[corpus])
    return len(labels) - sum(dropped.values()), dict(sorted(dropped.items()))


def dropped_text(corpus: str, kept: int, dropped: dict[str, int]) -> str:
    detail = ", ".join(f"{k} {n}" for k, n in dropped.items())
    return f"{corpus}: kept {kept}, dropped {sum(dropped.values())}" + (f" ({detail})" if dropped else "")


def test_the_cross_stage_depends_on_both_corpora_and_both_stores():
    import yaml

    from pipeline.core.hashing import ROOT

    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["probe_cross"]
    for side in ("train", "test"):
        assert f"features/${{item.cross.{side}}}/${{item.backbone}}.zarr" in stage["deps"]
        assert f"data/${{item.cross.{side}}}/prepared/manifest.parquet" in stage["deps"]
    assert "run.label_maps.${item.cross.label_map}" in stage["params"]
    assert "--test-corpus ${item.cross.test} --label-map ${item.cross.label_map}" in stage["cmd"]


@pytest.mark.slow
@pytest.mark.dvc
def test_cross_corpus_through_dvc_repro_and_reruns_when_the_test_corpus_changes(tmp_path):
    """Fake CREMA-D (train; 5 actor folds) -> fake EmoDB (test), eGeMAPS + logreg, through `dvc repro`."""
    from tests.data.cremad.data import generate as cremad
    from tests.data.emodb.data import generate as emodb

    roots = {"cremad": cremad(tmp_path / "cremad", seed=0), "emodb": emodb(tmp_path / "emodb", seed=0)}
    (kept_a, drop_a), (kept_b, drop_b) = label_counts(roots["cremad"], "cremad"), label_counts(roots["emodb"], "emodb")
    params = {
        "run": {"corpora": ["cremad", "emodb"], "backbones": ["egemaps"], "heads": ["logreg"],
                "cross_corpus": [{"train": "cremad", "test": "emodb", "label_map": "emobox4"}]},
        "corpora": {name: {"root": str(root)} for name, root in roots.items()},
    }
    repo = make_repo(tmp_path / "repo", tmp_path / "remote", **params)
    out = sh(repo, "dvc", "repro")
    assert "probe_cross@cross0-egemaps-logreg" in ran(out)
    assert f"label map emobox4: {dropped_text('cremad', kept_a, drop_a)}; {dropped_text('emodb', kept_b, drop_b)}" in out
    rows = json.loads((repo / "metrics/leaderboard.json").read_text())
    cross = [r for r in rows if r["corpus"] == "cremad-to-emodb"]
    assert {(r["split"], r["task"], r["train_corpus"], r["test_corpus"]) for r in cross} == {
        ("test", "emobox4", "cremad", "emodb"), ("dev", "emobox4", "cremad", "cremad")}
    test_row = next(r for r in cross if r["split"] == "test")
    assert test_row["n"] == kept_b and test_row["uar"] is not None
    assert all(r["train_corpus"] == r["test_corpus"] == r["corpus"] for r in rows if r not in cross)
    assert "cremad-to-emodb" in (repo / "metrics/leaderboard.md").read_text()
    result = json.loads((repo / "metrics/experiments/cremad-to-emodb/egemaps/logreg.json").read_text())
    assert result["cross_corpus"]["dropped"] == {"cremad": drop_a, "emodb": drop_b}
    # B's corpus changes (one neutral clip removed): its store changes, so the cross stage reruns
    next(roots["emodb"].glob("wav/*Na.wav")).unlink()
    out = sh(repo, "dvc", "repro")
    assert {"embed@emodb-egemaps", "probe_cross@cross0-egemaps-logreg", "report"} <= ran(out)
    assert "probe@cremad-egemaps-logreg" not in ran(out)
    rows = json.loads((repo / "metrics/leaderboard.json").read_text())
    assert [r["n"] for r in rows if r["corpus"] == "cremad-to-emodb" and r["split"] == "test"] == [kept_b - 1]
    # a label-map edit reruns the cross stage only (and validate and the report, which depend on run)
    set_params(repo, run={"label_maps": {"emobox4": {"corpora": {"emodb": {"labels": {"boredom": "neutral"}}}}}})
    out = sh(repo, "dvc", "repro")
    assert ran(out) == {"validate", "probe_cross@cross0-egemaps-logreg", "report"}
    assert f"emodb: kept {kept_b - 1 + drop_b['boredom']}, dropped {sum(drop_b.values()) - drop_b['boredom']}" in out
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "repro")
