"""Shared argument parsing and error handling for stage entry points."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pipeline.core.cli import entry_name, report_error, tracking_stderr
from pipeline.core.config import load_params
from pipeline.core.errors import AffectBenchError, StorageError


def run_stage(
    description: str,
    options: list[str],
    main: Callable[[argparse.Namespace, dict[str, Any]], None],
    *,
    name: str | None = None,
) -> None:
    """Parse ``--<option>`` arguments plus ``--params``, load params and call ``main``.

    Errors that mean bad input or settings (:class:`~pipeline.core.errors.AffectBenchError`, not
    bugs) are printed as one clear line and exit 1; so are storage OSErrors (disk full, quota,
    permission, read-only filesystem), naming the path and the stage: ``name``, by default the
    module of ``main`` (``stages.segment`` → ``segment``). Other OSErrors are bugs: tracebacks.
    """
    stage = name or entry_name(main)
    parser = argparse.ArgumentParser(description=description)
    for opt in options:
        parser.add_argument(f"--{opt}", required=True)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args()
    with tracking_stderr():
        try:
            main(args, load_params(args.params))
        except AffectBenchError as err:
            sys.exit(report_error(err, stage))
        except OSError as err:
            storage = StorageError.of(err)
            if storage is None:
                raise
            sys.exit(report_error(storage, stage))
