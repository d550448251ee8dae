"""Shared argument parsing for stage entry points."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from pipeline.config import ConfigError, load_params


def run_stage(description: str, options: list[str], main: Callable[[argparse.Namespace, dict[str, Any]], None]) -> None:
    """Parse ``--<option>`` arguments plus ``--params``, load params and call ``main``.

    Library errors that mean bad input (not bugs) are printed as one clear line and exit 1.
    """
    parser = argparse.ArgumentParser(description=description)
    for opt in options:
        parser.add_argument(f"--{opt}", required=True)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args()
    from pipeline.backbones.base import BackboneError
    from pipeline.manifest import ManifestError
    from pipeline.media import MediaError
    from pipeline.probe import ProbeError
    from pipeline.store import StoreError

    try:
        main(args, load_params(args.params))
    except (ConfigError, ManifestError, MediaError, BackboneError, StoreError, ProbeError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
