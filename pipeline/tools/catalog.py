"""What the registries hold, as tables: corpus recipes, backbone types and head types.

    python -m pipeline.tools.catalog corpora|backbones|heads

The README's corpus, backbone-type and head tables are this command's output (between
``<!-- catalog:<kind> -->`` markers); ``tests/test_readme.py`` fails when they drift apart.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pipeline.core.registry import Entry, Registry
from pipeline.corpora.base import CORPORA
from pipeline.features.backbones.base import BACKBONES
from pipeline.heads.base import HEADS, RUN_LISTS

REGISTRIES: dict[str, Registry] = {"corpora": CORPORA, "backbones": BACKBONES, "heads": HEADS}
COMMON = {"type", "recipe"}  # options every entry has: not listed per entry


def _default(field: FieldInfo) -> Any:
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return None
    return value.model_dump() if hasattr(value, "model_dump") else value


def options(entry: Entry) -> dict[str, Any]:
    """``{option: default}`` of an entry's settings (``"required"`` where there is no default)."""
    out = {}
    for name, field in entry.settings.model_fields.items():
        if name in COMMON:
            continue
        out[field.alias or name] = "required" if field.is_required() else _default(field)
    return out


def rows(kind: str) -> list[list[str]]:
    entries = REGISTRIES[kind].entries()
    if kind == "corpora":
        return [[f"`{e.name}`", e.info.get("tasks", ""), e.info.get("protocol", ""), e.info.get("unit", "")]
                for e in entries]
    if kind == "backbones":
        return [[f"`{e.name}`", e.info.get("modality", ""), e.info.get("description", e.summary),
                 e.info.get("licence", ""), e.info.get("weights", ""), verified(e)] for e in entries]
    return [[f"`{e.name}`", e.info["family"], f"`run.{RUN_LISTS[e.info['family']]}`", e.info.get("description", "")]
            for e in entries]


def verified(entry: Entry) -> str:
    """A backbone type's "verified against" cell: the reference inference path and tolerance its
    golden parity test checks (``verified=``), and that test (``verified_by=``, ``file::function``)."""
    what, test = entry.info.get("verified"), entry.info.get("verified_by")
    if not what:
        why = entry.info.get("unverified")
        return f"not verified: {why}" if why else "not verified"
    return f"{what} (`{test.split('::')[0].split('/')[-1]}`)" if test else what


HEADERS = {
    "corpora": ["recipe", "tasks", "default protocol (others)", "independence unit"],
    "backbones": ["type", "modality", "what", "licence", "weights", "verified against (golden parity test)"],
    "heads": ["type", "family", "run list", "what it trains"],
}


def table(kind: str) -> str:
    """A Markdown table of the ``kind`` registry."""
    lines = ["| " + " | ".join(HEADERS[kind]) + " |", "|" + "|".join("---" for _ in HEADERS[kind]) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows(kind)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.catalog", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=sorted(REGISTRIES))
    parser.add_argument("--options", action="store_true", help="list every entry's options and defaults")
    args = parser.parse_args(argv)
    if args.options:
        for entry in REGISTRIES[args.kind].entries():
            print(f"{entry.name}: {entry.summary}")
            for key, value in options(entry).items():
                print(f"    {key}: {value!r}")
    else:
        print(table(args.kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
