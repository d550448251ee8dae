"""The README's registry tables are the registries' own (``python -m pipeline.tools.catalog``)."""

from __future__ import annotations

import re

import pytest

from pipeline.core.hashing import ROOT
from pipeline.features.backbones.base import BACKBONES
from pipeline.tools.catalog import REGISTRIES, table

README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_registry_tables_match_the_registries(kind):
    block = re.search(rf"<!-- catalog:{kind} [^\n]*-->\n(.*?)\n<!-- /catalog:{kind} -->", README, re.S)
    assert block, f"README.md has no catalog:{kind} block"
    assert block.group(1) == table(kind), (
        f"README's {kind} table is stale: paste the output of `python -m pipeline.tools.catalog {kind}`"
    )


@pytest.mark.parametrize("entry", BACKBONES.entries(), ids=lambda e: e.name)
def test_each_verified_claim_names_a_parity_test_that_exists(entry):
    """The README's "verified against" column may only claim what a committed test checks."""
    if not entry.info.get("verified"):
        return
    path, _, name = entry.info.get("verified_by", "").partition("::")
    assert path and name, f"{entry.name}: verified= needs verified_by='tests/<file>.py::<test function>'"
    source = ROOT / path
    assert source.is_file(), f"{entry.name}: {path} does not exist"
    assert re.search(rf"^def {re.escape(name)}\(", source.read_text(), re.M), f"{entry.name}: no {name} in {path}"


def test_the_named_backbones_table_uses_registered_types():
    section = README[README.index("The named backbones `params.yaml` ships"):README.index("Common behaviour:")]
    types = set(re.findall(r"^\| [^|]+ \| `(\w+)` \|", section, re.M))
    assert types and types <= set(BACKBONES.names()), types - set(BACKBONES.names())
