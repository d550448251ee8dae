"""Answer words for class labels, and the robust reverse: free LLM text → class label.

The instruction-tuned model is taught to answer with one *answer word* per class (English: the
class name itself, or the readable word for an abbreviation such as IEMOCAP's ``hap``; Chinese: the
usual Chinese word, 开心 for happy). At evaluation the parser maps whatever the model generated back
to a class: case, punctuation and full-width characters are normalised, synonyms of a class count
(``happiness``/``joy``/``高兴`` → the task's happy-like class), extra words are ignored, and the
first class mentioned wins ("The emotion is: Happy." → happy; "不开心" → sad because the longer term
starts first). Text that names no class becomes :data:`UNPARSED` — a prediction like any other,
so it counts as an error and is never dropped.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

UNPARSED = "unparsed"  # predicted value for an answer that names no class


@dataclass(frozen=True)
class Concept:
    """One meaning: English words (the first is the readable answer), Chinese words, abbreviations."""

    en: tuple[str, ...]
    zh: tuple[str, ...] = ()
    abbr: tuple[str, ...] = ()


# Emotion and sentiment vocabulary of the supported corpora (demo, CREMA-D, EmoDB, IEMOCAP, MELD,
# ECF, MER2023, RAVDESS, CH-SIMS, EATD). Order inside a concept matters only for the first word.
CONCEPTS: tuple[Concept, ...] = (
    Concept(("neutral", "neutrality"), ("中性", "平静", "中立", "一般"), ("neu",)),
    Concept(("calm", "calmness", "relaxed"), ("平静", "冷静", "镇定")),
    Concept(("happy", "happiness", "joy", "joyful", "joyous", "glad", "cheerful", "delighted", "pleased", "happily"),
            ("开心", "高兴", "快乐", "喜悦", "愉快", "幸福"), ("hap",)),
    Concept(("excited", "excitement"), ("兴奋", "激动"), ("exc",)),
    Concept(("angry", "anger", "angrily", "mad", "furious", "annoyed", "irritated", "rage"),
            ("生气", "愤怒", "恼怒", "气愤"), ("ang",)),
    Concept(("sad", "sadness", "sadly", "unhappy", "sorrow", "sorrowful"),
            ("伤心", "难过", "悲伤", "悲哀", "不开心", "不高兴")),
    Concept(("fearful", "fear", "afraid", "scared", "frightened"), ("害怕", "恐惧", "恐慌"), ("fea",)),
    Concept(("disgusted", "disgust", "disgusting", "revulsion"), ("厌恶", "恶心", "反感"), ("dis",)),
    Concept(("surprised", "surprise", "astonished", "amazed"), ("惊讶", "吃惊", "意外"), ("sur",)),
    Concept(("frustrated", "frustration"), ("沮丧", "挫败"), ("fru",)),
    Concept(("bored", "boredom", "boring"), ("无聊", "厌倦")),
    Concept(("worried", "worry", "anxious", "anxiety", "nervous"), ("担心", "担忧", "焦虑")),
    Concept(("contempt", "contemptuous"), ("轻蔑", "蔑视")),
    Concept(("other", "others"), ("其他",), ("oth",)),
    Concept(("positive",), ("积极", "正面", "正向")),
    Concept(("negative",), ("消极", "负面", "负向")),
    Concept(("depressed", "depression"), ("抑郁",)),
    Concept(("healthy",), ("健康",)),
)


def normalise(text: str) -> str:
    """Lower-case, NFKC (full-width → ASCII punctuation), ``_``/``-`` as spaces."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    return re.sub(r"[_\-]+", " ", text)


def _concept_of(label: str) -> Concept | None:
    key = normalise(label)
    for concept in CONCEPTS:
        if key in concept.en or key in concept.abbr or key in concept.zh:
            return concept
    return None


def _term_pattern(term: str) -> str:
    # ASCII words need word boundaries ("unhappy" must not read as "happy"); Chinese has no spaces.
    if term.isascii():
        return rf"(?<![a-z0-9]){re.escape(term)}(?![a-z0-9])"
    return re.escape(term)


class LabelParser:
    """Answer words for, and parsing back to, the classes of one classification task."""

    def __init__(self, classes: Sequence[str]):
        self.classes = list(classes)
        if UNPARSED in self.classes:
            raise ValueError(f"class name {UNPARSED!r} is reserved for unparseable answers")
        self._answers: dict[str, dict[str, str]] = {}
        ranks: dict[str, dict[str, int]] = {}  # term -> {class: rank}; rank 0 = the class's own words

        def add(term: str, cls: str, rank: int) -> None:
            per = ranks.setdefault(normalise(term), {})
            per[cls] = min(rank, per.get(cls, rank))

        concepts = {cls: _concept_of(cls) for cls in self.classes}
        for cls, concept in concepts.items():
            en = cls
            if concept is not None and normalise(cls) in concept.abbr:
                en = concept.en[0]  # "hap" is no word a language model says: teach "happy"
            zh = concept.zh[0] if concept is not None and concept.zh else en
            self._answers[cls] = {"en": en, "zh": zh}
        zh_words = [normalise(a["zh"]) for a in self._answers.values()]
        for cls, a in self._answers.items():
            if zh_words.count(normalise(a["zh"])) > 1:  # two classes of one concept (happy + joy)
                a["zh"] = a["en"]
        for cls, concept in concepts.items():
            for term in (cls, *self._answers[cls].values()):
                add(term, cls, 0)
            if concept is not None:
                for term in (*concept.en, *concept.zh, *concept.abbr):
                    add(term, cls, 1)
        # A term shared by several classes goes to the one it names most directly (平静 is calm's own
        # Chinese word, only a synonym of neutral); a tie leaves the term out rather than guess.
        self._term_class: dict[str, str] = {}
        for term, per in ranks.items():
            best = min(per.values())
            winners = [c for c, r in per.items() if r == best]
            if len(winners) == 1:
                self._term_class[term] = winners[0]
        for lang in ("en", "zh"):
            words = [self._answers[c][lang] for c in self.classes]
            if len(set(map(normalise, words))) != len(words):
                raise ValueError(f"classes {self.classes} have clashing {lang} answer words {words}")
        terms = sorted(self._term_class, key=len, reverse=True)  # longest first: 不开心 before 开心
        self._pattern = re.compile("|".join(_term_pattern(t) for t in terms))

    def answer(self, cls: str, language: str) -> str:
        """The word the model is taught to answer for ``cls`` in ``language`` (``en`` or ``zh``)."""
        return self._answers[cls][language]

    def options(self, language: str) -> list[str]:
        return [self.answer(c, language) for c in self.classes]

    def parse(self, text: str) -> str:
        """The first class the text names, else :data:`UNPARSED`."""
        match = self._pattern.search(normalise(text))
        return self._term_class[match.group(0)] if match else UNPARSED
