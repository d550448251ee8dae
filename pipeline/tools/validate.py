"""Check a whole params file: every section against its schema, and the run lists against the sections.

    python -m pipeline.tools.validate [--params params.yaml]

Used by the ``validate`` stage (first in ``dvc repro``) so that a typo fails in seconds. Each error
is one line naming the key (see :mod:`pipeline.core.settings`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipeline.core.cli import report_error
from pipeline.core.config import load_params, run_settings, section, split_members
from pipeline.core.errors import AffectBenchError, ConfigError
from pipeline.core.settings import parse
from pipeline.corpora.base import corpus_settings
from pipeline.experiment.stats import evaluation_settings
from pipeline.features.backbones.base import backbone_settings
from pipeline.features.embed.engine import EmbedSettings
from pipeline.heads.audio_llm.plan import members as audio_llm_members
from pipeline.heads import audio_llm, finetune, fusion, probe  # noqa: F401 - every head family's scope
from pipeline.heads.base import head_family, head_kind, head_settings
from pipeline.heads.finetune.multimodal import tower_names
from pipeline.heads.fusion.run import fusion_members
from pipeline.segment.decode import SegmentSettings
from pipeline.transcribe.asr import TranscriptsSettings

SECTIONS = ("run", "corpora", "segment", "transcripts", "embed", "backbones", "heads", "evaluation")
# How each run list's ``backbone`` names its stores (the family's stage checks the same).
MEMBERS = {
    "fusion": lambda backbone, where: fusion_members(backbone),
    "finetune": lambda backbone, where: split_members(backbone, where, "fine-tunes one backbone", at_most=1),
    "audio_llm": lambda backbone, where: list(audio_llm_members(backbone).values()),
}


def _mapping(params: dict[str, Any], key: str) -> dict[str, Any]:
    value = params.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"params.yaml: {key} must be a mapping of names to sections")
    return value


def validate_params(params: dict[str, Any]) -> str:
    """Raise a ConfigError on the first problem; return a short summary of what was checked."""
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"params.yaml: unknown top-level section(s) {unknown}; sections: {', '.join(SECTIONS)}")
    run = run_settings(params)
    corpora, backbones, heads = _mapping(params, "corpora"), _mapping(params, "backbones"), _mapping(params, "heads")
    for name, cfg in corpora.items():
        corpus_settings(name, cfg)
    parse(SegmentSettings, section(params, "segment"), "segment")  # required, as by their stages
    parse(TranscriptsSettings, section(params, "transcripts"), "transcripts")
    parse(EmbedSettings, params.get("embed"), "embed")
    evaluation_settings(params)
    for name, cfg in backbones.items():
        backbone_settings(name, cfg)
    for name, cfg in heads.items():
        head_settings(name, cfg)

    def need(names, section: dict, where: str, what: str) -> None:
        for n in names:
            if n not in section:
                raise ConfigError(f"params.yaml: {where} names {n!r}, but there is no {what}.{n} section")

    need(run.corpora, corpora, "run.corpora", "corpora")
    need(run.backbones, backbones, "run.backbones", "backbones")
    need(run.heads, heads, "run.heads", "heads")
    for name in run.heads:
        head_settings(name, heads[name], family="probe")
    for key, family in (("fusions", "fusion"), ("finetune", "finetune"), ("audio_llm", "audio_llm")):
        for i, item in enumerate(getattr(run, key)):
            where = f"run.{key}[{i}]"
            need([item.head], heads, where, "heads")
            if head_family(item.head, heads[item.head]) != family:
                head_settings(item.head, heads[item.head], family=family)  # raises, naming the right run list
            if family == "finetune" and head_kind(item.head, heads[item.head]) == "lora_multimodal":
                tower_names(item.backbone, backbones, where, error=ConfigError)  # several towers, LanguageBind's
                continue
            need(MEMBERS[family](item.backbone, where), backbones, where, "backbones")
    return (f"{len(corpora)} corpora, {len(backbones)} backbones, {len(heads)} heads, "
            f"{len(run.experiments())} experiments per corpus")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        print(f"{args.params}: valid ({validate_params(load_params(args.params))})")
    except AffectBenchError as err:
        return report_error(err, "validate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
