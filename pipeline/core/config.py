"""Reading ``params.yaml``: the single source of truth for every stage.

A stage reads exactly its own section (stage name = module name = params section) plus the
``corpora.<name>`` / ``backbones.<name>`` / ``heads.<name>`` entries it was asked to run, so that DVC's
per-section ``params:`` dependencies match what the code really reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import Field

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


class RunSettings(Settings):
    """The ``run`` section: what ``dvc repro`` builds. Every list is a run list of one head family."""

    corpora: list[str] = Field(min_length=1)
    backbones: list[str] = Field(default_factory=list)  # embedded on every corpus
    heads: list[str] = Field(default_factory=list)  # probe heads, on every backbone
    fusions: list[RunItem] = Field(default_factory=list)  # backbone: members joined by '+'
    finetune: list[RunItem] = Field(default_factory=list)  # backbone: the encoder to fine-tune
    audio_llm: list[RunItem] = Field(default_factory=list)  # backbone: the audio store (+ a video store)

    STAGES: ClassVar[dict[str, str]] = {
        "heads": "probe", "fusions": "fuse", "finetune": "finetune", "audio_llm": "audio_llm_eval",
    }

    def experiments(self) -> list[tuple[str, str, str]]:
        """``(backbone, head, stage)`` of every experiment the run lists name (stage: the one that writes it)."""
        out = [(b, h, "probe") for b in self.backbones for h in self.heads]
        for key in ("fusions", "finetune", "audio_llm"):
            out += [(item.backbone, item.head, self.STAGES[key]) for item in getattr(self, key)]
        return out


def run_settings(params: dict[str, Any]) -> RunSettings:
    return parse(RunSettings, section(params, "run"), "run")
