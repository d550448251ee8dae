"""Shared argument parsing and error handling for stage entry points."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from pipeline.core.config import load_params
from pipeline.core.errors import AffectBenchError


def run_stage(description: str, options: list[str], main: Callable[[argparse.Namespace, dict[str, Any]], None]) -> None:
    """Parse ``--<option>`` arguments plus ``--params``, load params and call ``main``.

    Errors that mean bad input or settings (:class:`~pipeline.core.errors.AffectBenchError`, not
    bugs) are printed as one clear line and exit 1.
    """
    parser = argparse.ArgumentParser(description=description)
    for opt in options:
        parser.add_argument(f"--{opt}", required=True)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args()
    try:
        main(args, load_params(args.params))
    except AffectBenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
