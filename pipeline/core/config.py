"""Reading ``params.yaml``: the single source of truth for every stage.

A stage reads exactly its own section (stage name = module name = params section) plus the
``corpora.<name>`` / ``backbones.<name>`` / ``heads.<name>`` entries it was asked to run, so that DVC's
per-section ``params:`` dependencies match what the code really reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import Field, model_validator

from pipeline.core.errors import ConfigError
from pipeline.core.settings import PARAMS_FILE, Settings, parse

DEFAULT_PARAMS = Path(PARAMS_FILE)


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Load params.yaml (or another file with the same layout) into a plain dict."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found (run from the repository root)")
    with path.open() as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return params


def section(params: dict[str, Any], *keys: str, path: str | Path = DEFAULT_PARAMS) -> Any:
    """Return ``params[k1][k2]...`` or raise a ConfigError naming the missing key."""
    node: Any = params
    trail = []
    for key in keys:
        trail.append(key)
        if not isinstance(node, dict) or key not in node:
            raise ConfigError(f"{path}: missing key '{'.'.join(trail)}'")
        node = node[key]
    return node


class RunItem(Settings):
    """One head run on a backbone: ``{head: <heads.name>, backbone: <backbones.name or a+b+c>}``."""

    head: str
    backbone: str


def split_members(backbone: str, where: str, expected: str, at_least: int = 1, at_most: int | None = None,
                  error: type[Exception] = ConfigError) -> list[str]:
    """The backbones a run item's ``backbone`` joins with '+' (``egemaps+minilm+fer``): non-empty,
    distinct and ``at_least``..``at_most`` of them, or ``error`` naming ``where`` and ``expected``."""
    names = str(backbone).split("+")
    if not all(names) or len(set(names)) != len(names) or not at_least <= len(names) <= (at_most or len(names)):
        raise error(f"{PARAMS_FILE}: {where} backbone {backbone!r}: {expected}")
    return names


class CorpusLabels(Settings):
    """One corpus's side of a label map: which task it reads and which of its labels become which shared class."""

    task: str = "emotion"  # the corpus's classification task whose labels are mapped
    labels: dict[str, str] = Field(min_length=1)  # corpus label -> shared class; labels not listed are dropped


class LabelMap(Settings):
    """``run.label_maps.<name>``: shared classes and, per corpus, the labels that map onto them."""

    classes: list[str] = Field(min_length=2)  # the shared classes (their order is the report's)
    corpora: dict[str, CorpusLabels] = Field(min_length=1)


class CrossItem(Settings):
    """One cross-corpus run: train (and select on dev) on ``train``, test on every item of ``test``."""

    train: str
    test: str
    label_map: str  # a run.label_maps entry naming both corpora


def cross_key(train: str, test: str) -> str:
    """The name a cross-corpus experiment has where a corpus name stands in paths and leaderboard rows."""
    return f"{train}-to-{test}"


class RunSettings(Settings):
    """The ``run`` section: what ``dvc repro`` builds. Every list is a run list of one head family."""

    corpora: list[str] = Field(min_length=1)
    backbones: list[str] = Field(default_factory=list)  # embedded on every corpus
    heads: list[str] = Field(default_factory=list)  # probe heads, on every backbone
    fusions: list[RunItem] = Field(default_factory=list)  # backbone: members joined by '+'
    finetune: list[RunItem] = Field(default_factory=list)  # backbone: the encoder to fine-tune
    audio_llm: list[RunItem] = Field(default_factory=list)  # backbone: the audio store (+ a video store)
    cross_corpus: list[CrossItem] = Field(default_factory=list)  # probe heads × backbones, trained on one corpus, tested on another
    label_maps: dict[str, LabelMap] = Field(default_factory=dict)  # what cross_corpus items name

    @model_validator(mode="after")
    def _cross_corpus_is_runnable(self) -> RunSettings:
        """Each cross-corpus item names two different listed corpora and a label map covering both,
        whose labels map onto its own classes; an item is listed once (its outputs have one path)."""
        for name, lmap in self.label_maps.items():
            if len(set(lmap.classes)) != len(lmap.classes):
                raise ValueError(f"run.label_maps.{name}.classes lists a class twice: {lmap.classes}")
            for corpus, side in lmap.corpora.items():
                bad = sorted({c for c in side.labels.values() if c not in lmap.classes})
                if bad:
                    raise ValueError(f"run.label_maps.{name}.corpora.{corpus}.labels map onto {bad}, "
                                     f"which is not among run.label_maps.{name}.classes {lmap.classes}")
        seen = set()
        for i, item in enumerate(self.cross_corpus):
            where = f"run.cross_corpus[{i}]"
            for role in ("train", "test"):
                corpus = getattr(item, role)
                if corpus not in self.corpora:
                    raise ValueError(f"{where}.{role} names {corpus!r}, which is not in run.corpora "
                                     f"{self.corpora} (its stores must be built)")
            if item.train == item.test:
                raise ValueError(f"{where} trains and tests on {item.train!r}: that is the in-corpus probe (run.heads)")
            if item.label_map not in self.label_maps:
                raise ValueError(f"{where}.label_map names {item.label_map!r}, but there is no "
                                 f"run.label_maps.{item.label_map} (label maps: {sorted(self.label_maps)})")
            covered = self.label_maps[item.label_map].corpora
            for corpus in (item.train, item.test):
                if corpus not in covered:
                    raise ValueError(f"{where}: run.label_maps.{item.label_map}.corpora has no entry for {corpus!r} "
                                     f"(it maps {sorted(covered)})")
            key = cross_key(item.train, item.test)
            if key in seen:
                raise ValueError(f"{where}: {item.train} -> {item.test} is listed twice (one experiment per pair)")
            if key in self.corpora:
                raise ValueError(f"{where}: the cross-corpus name {key!r} is also a corpus in run.corpora")
            seen.add(key)
        return self

    STAGES: ClassVar[dict[str, str]] = {
        "heads": "probe", "fusions": "fuse", "finetune": "finetune", "audio_llm": "audio_llm_eval",
    }

    def experiments(self) -> list[tuple[str, str, str]]:
        """``(backbone, head, stage)`` of every experiment the run lists name (stage: the one that writes it)."""
        out = [(b, h, "probe") for b in self.backbones for h in self.heads]
        for key in ("fusions", "finetune", "audio_llm"):
            out += [(item.backbone, item.head, self.STAGES[key]) for item in getattr(self, key)]
        return out

    def cross_experiments(self) -> list[tuple[str, str, str, str]]:
        """``(cross_key, backbone, head, stage)`` of every cross-corpus experiment (each item × backbones × heads)."""
        return [(cross_key(item.train, item.test), b, h, "probe_cross")
                for item in self.cross_corpus for b in self.backbones for h in self.heads]


def run_settings(params: dict[str, Any]) -> RunSettings:
    return parse(RunSettings, section(params, "run"), "run")
