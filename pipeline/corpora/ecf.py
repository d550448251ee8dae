"""ECF 2.0 — SemEval-2024 Task 3, Multimodal Emotion Cause Analysis in Conversations (subtask 2).

Source: Wang et al., "SemEval-2024 Task 3: Multimodal Emotion Cause Analysis in Conversations"
(SemEval 2024); ECF 1.0 from Wang et al., "Multimodal Emotion-Cause Pair Extraction in
Conversations" (IEEE TAC 2022). Annotations: https://github.com/NUSTM/SemEval-2024_ECAC (``data/``).
Clips (cut from *Friends*, like MELD's): the competition-phase subtask 2 release shipped them as
``train/dia{C}utt{U}.mp4``; the current repository no longer does (copyright) and gives each
utterance's episode and times in ``video_source`` instead, so cut them under the ``video_name``
names. Licence: research use; the repository ships no licence file and the clips are excerpts of a
TV series.

Layout (option names in brackets, defaults shown)::

    <root>/Subtask_2_train.json        [json]      1,374 conversations, 13,619 utterances
    <root>/train/dia{C}utt{U}.mp4      [video_dir] one clip per utterance (``video_name``)
    <root>/Subtask_2_test.json         [test_json]       only for protocol ``official``
    <root>/test/dia{C}utt{U}.mp4       [test_video_dir]  only for protocol ``official``

The JSON is a list of ``{conversation_ID, conversation: [{utterance_ID, text, speaker, emotion,
video_name, video_source?}], emotion-cause_pairs}``. Other releases name the file differently
(``Subtask_2_2_train.json``…): set ``json``. ``video_source`` and the cause pairs are not needed
for emotion recognition; the number of pairs is recorded in ``info``. The ``test/`` folder name for
the evaluation clips is this recipe's choice (no public release fixes it).

Task: ``emotion`` (surprise, fear, sadness, neutral, joy, anger, disgust). The seeds' headline
metric for this corpus is weighted F1, already reported on the leaderboard.

Protocols (``protocol``):

- ``conversation_split`` (default): the training JSON was the only labelled file during the
  competition, so train/dev/test are drawn from it by whole conversations, seeded by ``seed``:
  ``round(test_fraction · n)`` conversations (default 0.1) go to test, ``round(dev_fraction · n)``
  (default 0.1) to dev, the rest (≈ 0.8) to train.
- ``split_file`` (the default when option ``split_file`` is set): a JSON (``{"ID": "split"}`` or
  ``{"train": [IDs], "dev": [...], "test": [...]}``) or CSV (``conversation_ID,split``) file assigns
  every conversation, for users who hold official splits. Every conversation must be assigned.
- ``official``: the organisers have since published labels for the evaluation set
  (``Subtask_2_test.json``, conversations 1375+): train = the training JSON minus a dev carved by
  conversation (``dev_fraction``), test = the evaluation JSON.

Rows: ``id`` = ``conv<C>_utt<U>``, ``group`` = ``conv<C>`` (the unit kept apart),
``speaker`` = the character name. Characters recur across conversations, so the manifest is
validated with ``speakers_shared=True``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import SPLITS, Corpus, Task, display_path, validate
from pipeline.corpora.base import CorpusSettings, register_corpus
from pipeline.corpora.common import carve_dev, corpus_root, media, read_table

EMOTIONS = ["surprise", "fear", "sadness", "neutral", "joy", "anger", "disgust"]
UTTERANCE_KEYS = ("utterance_ID", "text", "speaker", "emotion", "video_name")


def load_conversations(path: Path) -> list[dict[str, Any]]:
    """The JSON list of conversations; syntax errors name the line and column."""
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("*.json"))
        raise ManifestError(f"{path}: conversation file not found (JSON files there: {found}); set corpora.ecf.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path}: line {err.lineno} column {err.colno}: invalid JSON ({err.msg})") from err
    if not isinstance(data, list):
        raise ManifestError(f"{path}: expected a JSON list of conversations, got {type(data).__name__}")
    return data


def _as_id(value: Any, path: Path, where: str, key: str) -> int:
    """An integer ID (the JSON may hold 3 or "3"); anything else is malformed."""
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise ManifestError(f"{path}: {where}: {key} {value!r} is not a non-negative integer")
    return int(str(value).strip())


def utterance_row(path: Path, root: Path, video_dir: str, cid: int, utt: Any) -> dict[str, Any]:
    """The manifest row of one utterance of conversation ``cid``; malformed entries raise."""
    missing = [k for k in UTTERANCE_KEYS if not isinstance(utt, dict) or k not in utt]
    if missing:
        hint = " (a subtask 1 file has no video_name)" if missing == ["video_name"] else ""
        raise ManifestError(f"{path}: conversation {cid}: utterance lacks {missing}{hint}")
    uid = _as_id(utt["utterance_ID"], path, f"conversation {cid}", "utterance_ID")
    emotion = str(utt["emotion"]).strip().lower()
    if emotion not in EMOTIONS:
        raise ManifestError(
            f"{path}: conversation {cid} utterance {uid}: unknown emotion {utt['emotion']!r}; known: {EMOTIONS}"
        )
    clip = media(root, f"{video_dir}/{utt['video_name']}", str(path))
    return {
        "id": f"conv{cid}_utt{uid}",
        "speaker": str(utt["speaker"]).strip(),
        "split": "train",
        "audio": clip,
        "video": clip,
        "text": str(utt["text"]),
        "emotion": emotion,
        "group": f"conv{cid}",
    }


def conversation_rows(path: Path, root: Path, video_dir: str) -> tuple[list[dict[str, Any]], int]:
    """Manifest rows of every utterance in ``path`` and the number of emotion-cause pairs."""
    conversations = load_conversations(path)
    if not (root / video_dir).is_dir():
        raise ManifestError(f"{root / video_dir}: clip folder for {path.name} not found")
    rows: list[dict[str, Any]] = []
    seen: dict[int, int] = {}
    pairs = 0
    for index, conv in enumerate(conversations):
        where = f"conversation #{index}"
        well_formed = isinstance(conv, dict) and "conversation_ID" in conv
        if not well_formed or not isinstance(conv.get("conversation"), list):
            raise ManifestError(f"{path}: {where}: needs conversation_ID and a conversation list")
        cid = _as_id(conv["conversation_ID"], path, where, "conversation_ID")
        if cid in seen:
            raise ManifestError(f"{path}: {where}: duplicate conversation_ID {cid} (first at #{seen[cid]})")
        seen[cid] = index
        pairs += len(conv.get("emotion-cause_pairs") or [])
        utterances: set[str] = set()
        for utt in conv["conversation"]:
            row = utterance_row(path, root, video_dir, cid, utt)
            if row["id"] in utterances:
                raise ManifestError(f"{path}: conversation {cid}: duplicate utterance_ID {utt['utterance_ID']}")
            utterances.add(row["id"])
            rows.append(row)
    if not rows:
        raise ManifestError(f"{path}: no utterances")
    return rows, pairs


def split_conversations(groups: list[str], dev_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """Seeded group → split map: ``round(fraction · n)`` groups (at least one) to test and dev."""
    order = list(np.random.default_rng(seed).permutation(sorted(groups)))
    n_test = max(1, round(test_fraction * len(order))) if test_fraction > 0 else 0
    n_dev = max(1, round(dev_fraction * len(order))) if dev_fraction > 0 else 0
    if n_test + n_dev >= len(order):
        raise ManifestError(
            f"params.yaml: corpora.ecf: {len(order)} conversations cannot fill dev ({n_dev}), test ({n_test}) and train"
        )
    split = {g: "test" for g in order[:n_test]}
    split |= {g: "dev" for g in order[n_test : n_test + n_dev]}
    return split | {g: "train" for g in order[n_test + n_dev :]}


def read_split_file(path: Path) -> dict[int, str]:
    """conversation_ID → split from a JSON or CSV split file."""
    if not path.is_file():
        raise ManifestError(f"{path}: split file not found (corpora.ecf.split_file)")
    if path.suffix.lower() == ".csv":
        table = read_table(path, ["conversation_ID", "split"])
        pairs = [(cid, s, f"line {i + 2}") for i, (cid, s) in enumerate(zip(table["conversation_ID"], table["split"]))]
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ManifestError(f"{path}: line {err.lineno} column {err.colno}: invalid JSON ({err.msg})") from err
        if not isinstance(data, dict):
            raise ManifestError(f"{path}: expected a JSON object (ID → split, or split → list of IDs)")
        if data and all(isinstance(v, list) for v in data.values()):
            pairs = [(cid, s, f"entry {s}") for s, ids in data.items() for cid in ids]
        else:
            pairs = [(cid, s, f"entry {cid}") for cid, s in data.items()]
    mapping: dict[int, str] = {}
    for cid, split, where in pairs:
        if split not in SPLITS:
            raise ManifestError(f"{path}: {where}: unknown split {split!r} (expected one of {list(SPLITS)})")
        key = _as_id(cid, path, where, "conversation_ID")
        if mapping.get(key, split) != split:
            raise ManifestError(f"{path}: {where}: conversation {key} is assigned to both {mapping[key]} and {split}")
        mapping[key] = split
    return mapping


class EcfSettings(CorpusSettings):
    protocol: Literal["conversation_split", "split_file", "official"] | None = None  # default: split_file if given
    json_file: str = Field("Subtask_2_train.json", alias="json")  # the conversations file (under root)
    video_dir: str = "train"
    split_file: str | None = None  # conversation → split list (protocol split_file)
    test_json: str = "Subtask_2_test.json"  # protocol official: the evaluation file
    test_video_dir: str = "test"
    dev_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _protocol(self) -> "EcfSettings":
        if self.protocol is None:
            object.__setattr__(self, "protocol", "split_file" if self.split_file else "conversation_split")
        if self.protocol == "split_file" and not self.split_file:
            raise ValueError("protocol split_file needs split_file")
        return self


def splits_from_file(df: pd.DataFrame, split_file: str) -> tuple[pd.Series, int]:
    """The split of every row from ``split_file``, and how many of its IDs matched no row."""
    split_path = Path(split_file).expanduser()
    mapping = {f"conv{cid}": s for cid, s in read_split_file(split_path).items()}
    unassigned = sorted(set(df["group"]) - set(mapping))
    if unassigned:
        raise ManifestError(f"{split_path}: no split for {len(unassigned)} conversation(s), e.g. {unassigned[:5]}")
    return df["group"].map(mapping), len(set(mapping) - set(df["group"]))


def with_official_test(df: pd.DataFrame, s: EcfSettings, root: Path) -> tuple[pd.DataFrame, int]:
    """Training rows with a carved dev plus the evaluation file as test; also its cause-pair count."""
    test_path = root / s.test_json
    test_rows, pairs = conversation_rows(test_path, root, s.test_video_dir)
    test = pd.DataFrame(test_rows).assign(split="test")
    clash = sorted(set(df["group"]) & set(test["group"]))
    if clash:
        raise ManifestError(f"{test_path}: conversations also in the training file: {clash[:5]}")
    df = df.assign(split=carve_dev(df, s.dev_fraction, s.seed, group="group"))
    return pd.concat([df, test], ignore_index=True), pairs


@register_corpus(
    "ecf", settings=EcfSettings, tasks="emotion (7; weighted F1 is the seeds' headline)",
    protocol="`conversation_split` 0.8/0.1/0.1 (`split_file`, `official`)", unit="conversation",
)
def prepare_ecf(s: EcfSettings, out_dir: Path) -> Corpus:
    """Read the ECF 2.0 conversations and split them by conversation (see the module docstring)."""
    protocol = s.protocol
    root = corpus_root(s.root, "ecf")
    seed = s.seed
    json_path = root / s.json_file
    rows, pairs = conversation_rows(json_path, root, s.video_dir)
    df = pd.DataFrame(rows)
    info: dict[str, Any] = {"protocol": protocol, "seed": seed, "speakers_shared": True}
    if protocol == "conversation_split":
        fractions = s.dev_fraction, s.test_fraction
        df["split"] = df["group"].map(split_conversations(df["group"].unique().tolist(), *fractions, seed))
    elif protocol == "split_file":
        df["split"], info["split_file_unused_ids"] = splits_from_file(df, s.split_file)
    else:  # official
        df, test_pairs = with_official_test(df, s, root)
        pairs += test_pairs
    info["utterances"] = {s: int((df["split"] == s).sum()) for s in SPLITS}
    info["conversations"] = {s: int(df.loc[df["split"] == s, "group"].nunique()) for s in SPLITS}
    info["emotion_cause_pairs"] = pairs
    corpus = Corpus(
        name="ecf",
        manifest=df,
        tasks=[Task("emotion", "classification", EMOTIONS)],
        root=display_path(root),
        info=info,
    )
    validate(corpus, display_path(json_path), speakers_shared=True)
    return corpus
