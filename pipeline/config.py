"""Reading ``params.yaml``: the single source of truth for every stage.

A stage reads exactly its own section (stage name = module name = params section) plus the
``corpora.<name>`` / ``backbones.<name>`` / ``heads.<name>`` entries it was asked to run, so that DVC's
per-section ``params:`` dependencies match what the code really reads.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = Path("params.yaml")


class ConfigError(ValueError):
    """A params.yaml problem: names the file and the offending key."""


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


def params_hash(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable config parts (recorded in store attributes)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
