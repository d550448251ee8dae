"""What the Audio-LLM learns from: frame features, stage-1 captions and stage-2 instructions.

Stage-1 (alignment) targets, one per training utterance (``stage1_target``):

- ``auto`` (default): the transcript where the corpus has one, else the templated description;
- ``transcript``: transcripts only (utterances without one are left out);
- ``description``: always the template "A {female |male }speaker says something in a {label} tone."
  (emotion-like tasks; other tasks: "A {gender }speaker; {task}: {label}.") built from the first
  instructed task's label and, where the manifest has a ``gender`` column, the speaker's gender.

Either way only *training* utterances of the fold are used — the description carries a label, and
a test label inside stage 1 would leak it into the projector. Dev captions are built the same way
but only score epochs (model selection on dev is allowed; training on it is not).

Stage-2 (instruction tuning) pairs every training utterance with one question per task and
language (``languages: [en, zh]``); the answer is the class's answer word
(:class:`~pipeline.heads.audio_llm.parse.LabelParser`). Frame features stay in memory as float32
(:class:`FrameBank`): the stages run several epochs over them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.core.manifest import Task
from pipeline.core.store import FeatureStore
from pipeline.experiment.runner import labelled
from pipeline.heads.audio_llm.parse import LabelParser

TRANSCRIBE = "Transcribe the speech."
DESCRIBE = "Describe the speaker."
# Instruction templates; ``{options}`` lists the answer words, ``{task}`` names a non-emotion task.
PROMPTS = {
    "en": {
        "emotion": "What emotion does the speaker express? Answer with one word from: {options}.",
        "other": "What is the {task} of the speaker? Answer with one word from: {options}.",
    },
    "zh": {
        "emotion": "说话人表达的是什么情绪？请从以下选项中选一个词回答：{options}。",
        "other": "说话人的{task}是什么？请从以下选项中选一个词回答：{options}。",
    },
}
TASK_ZH = {"sentiment": "情感倾向", "depression": "抑郁状态", "category": "声音类别"}
GENDERS = {"f": "female", "female": "female", "w": "female", "m": "male", "male": "male"}


@dataclass(frozen=True)
class Example:
    """One training or evaluation item: the utterance, the user's instruction and the answer."""

    uid: str
    prompt: str
    answer: str = ""
    task: str | None = None  # None for stage-1 captions
    language: str = "en"
    label: str | None = None


def is_emotion(task: Task) -> bool:
    return "emotion" in task.name.lower()


def instruction(task: Task, parser: LabelParser, language: str) -> str:
    """The question asked for ``task`` in ``language``."""
    kind = "emotion" if is_emotion(task) else "other"
    sep = ", " if language == "en" else "、"
    name = task.name
    if language == "zh":
        name = next((v for k, v in TASK_ZH.items() if task.name.startswith(k)), task.name)
    return PROMPTS[language][kind].format(options=sep.join(parser.options(language)), task=name)


def description(row: pd.Series, task: Task, parser: LabelParser) -> str:
    """The templated stage-1 caption of a training utterance."""
    gender = GENDERS.get(str(row.get("gender", "")).strip().lower(), "")
    who = f"A {gender} speaker" if gender else "A speaker"
    word = parser.answer(row[task.name], "en")
    if is_emotion(task):
        return f"{who} says something in a {word} tone."
    return f"{who}; {task.name}: {word}."


def stage1_examples(rows: pd.DataFrame, task: Task, parser: LabelParser, target: str = "auto") -> list[Example]:
    """Caption examples for the given rows (the caller passes training or dev rows, never test);
    ``target`` is ``heads.<name>.align.stage1_target`` (its schema allows auto, transcript, description)."""
    has_label = labelled(rows, task)
    out = []
    for (uid, row), ok in zip(rows.iterrows(), has_label):
        text = str(row.get("text", "") or "").strip()
        if text and target != "description":
            out.append(Example(uid, TRANSCRIBE, text))
        elif ok and target != "transcript":
            out.append(Example(uid, DESCRIBE, description(row, task, parser)))
    return out


def instruct_examples(
    rows: pd.DataFrame,
    tasks: Sequence[Task],
    parsers: dict[str, LabelParser],
    languages: Sequence[str],
    with_answer: bool = True,
) -> list[Example]:
    """One question per (utterance with a label, task, language)."""
    out = []
    for task in tasks:
        parser = parsers[task.name]
        prompts = {lang: instruction(task, parser, lang) for lang in languages}
        for uid, label in rows.loc[labelled(rows, task), task.name].items():
            for lang in languages:
                answer = parser.answer(label, lang) if with_answer else ""
                out.append(Example(uid, prompts[lang], answer, task.name, lang, label))
    return out


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """Consecutive mini-batches of at most ``size`` items."""
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]


def ids_digest(examples: Sequence[Example]) -> str:
    """Short hash of the utterance ids an example set draws on (recorded for provenance)."""
    return hashlib.sha256("\n".join(sorted({e.uid for e in examples})).encode()).hexdigest()[:16]


@dataclass
class FrameBank:
    """Token features [T, D] per utterance and token group (``audio``; ``video`` or one per further store)."""

    frames: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # group -> "frames" | "pooled (one token)"

    @classmethod
    def load(cls, stores: dict[str, FeatureStore], ids: Sequence[str]) -> "FrameBank":
        """Read each store's frame matrix once and slice it per utterance (views, no copies).

        Reads the store's documented ``frames``/``offsets`` arrays directly: one read instead of one
        per utterance (``FeatureStore.frames``), which matters for corpora of 10 000+ utterances.
        A store without frame features (a further group only: the plan refuses it for audio) gives one
        token per utterance, its pooled vector — the last layer of a layered store.
        """
        bank = cls()
        for group, store in tqdm(stores.items(), desc="loading frames", leave=False):
            rows = store.rows(ids)
            if not store.attrs.get("has_frames"):
                pooled = np.asarray(store.pooled(ids, layer=-1 if store.layered else None), np.float32)
                bank.frames[group] = {uid: pooled[i : i + 1] for i, uid in enumerate(ids)}
                bank.sources[group] = "pooled (one token)"
                continue
            flat = np.asarray(store.group["frames"][...], np.float32)
            offsets = np.asarray(store.group["offsets"][...], np.int64)
            bank.frames[group] = {uid: flat[offsets[r] : offsets[r + 1]] for uid, r in zip(ids, rows)}
            bank.sources[group] = "frames"
        return bank

    @property
    def groups(self) -> list[str]:
        return list(self.frames)

    def dim(self, group: str) -> int:
        return int(next(iter(self.frames[group].values())).shape[-1])

    def get(self, uid: str) -> dict[str, np.ndarray]:
        return {g: f[uid] for g, f in self.frames.items()}

    def stats(self, group: str, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and std over the frames of ``ids`` (label-free normalisation)."""
        stack = [self.frames[group][u] for u in ids if len(self.frames[group][u])]
        if not stack:
            dim = self.dim(group)
            return np.zeros(dim, np.float32), np.ones(dim, np.float32)
        x = np.concatenate(stack).astype(np.float64)
        sd = x.std(0)
        return x.mean(0).astype(np.float32), np.where(sd > 1e-6, sd, 1.0).astype(np.float32)


def describe_counts(examples: Sequence[Example]) -> dict[str, Any]:
    """How many examples and utterances a set holds, and a digest of its ids."""
    return {"examples": len(examples), "utterances": len({e.uid for e in examples}), "ids_sha": ids_digest(examples)}
