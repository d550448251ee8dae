"""Check stores and caches after copying data between machines (or when numbers look wrong).

    python -m pipeline.tools.verify [PATH ...] [--repair] [--params params.yaml]

Without paths it checks every segments store (``data/*/segments.zarr``), every feature store
(``features/*/*.zarr``), the embed cache (``embed.cache``) and the segment cache: each array is read
back and compared with the checksum and row count it was sealed with, so a missing, truncated or
altered chunk file is found and named. It also lists temporary directories that interrupted runs
left behind. ``--repair`` removes damaged cache shards (the next run recomputes exactly their
items) and stale temporaries; a damaged store is a DVC output, so it is only reported, with how to
restore it (``dvc checkout <path>`` or ``dvc pull <path>``; ``dvc repro`` also reruns its stage,
since DVC sees the output modified). Exit status 1 when anything is damaged.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import zarr
from tqdm import tqdm

from pipeline.core.cli import report_error
from pipeline.core.config import load_params
from pipeline.core.errors import AffectBenchError
from pipeline.core.io import remove_stale_temps
from pipeline.core.settings import parse
from pipeline.core.zarrio import NO_CHECKSUMS, verify_group
from pipeline.features.embed.engine import EmbedSettings
from pipeline.segment.cache import cache_root as segment_cache_root

OUTPUT_DIRS = ("data", "features", "models", "metrics")


def check_group(path: Path) -> list[str]:
    """Problems of the sealed Zarr group at ``path`` (empty when sound)."""
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as err:  # noqa: BLE001 - any unreadable metadata is damage
        return [f"cannot be opened ({type(err).__name__}: {err})"]
    return verify_group(group, deep=True)


def default_targets(params: dict) -> tuple[list[Path], list[Path]]:
    """(stores, cache shards) to check when no path is given."""
    stores = sorted(Path("data").glob("*/segments.zarr")) + sorted(Path("features").glob("*/*.zarr"))
    embed_root = Path(parse(EmbedSettings, params.get("embed"), "embed").cache_root())
    shards = sorted(embed_root.glob("*/shards/*.zarr")) + sorted(Path(segment_cache_root()).glob("*/shards/*.zarr"))
    return stores, shards


def verify(stores: list[Path], shards: list[Path], repair: bool) -> int:
    """Check everything, print one line per problem; return the number of damaged stores and shards."""
    damaged = 0
    for path in tqdm(stores + shards, desc="verify", unit="group", leave=False):
        problems = check_group(path)
        if not problems:
            continue
        is_shard = path in shards
        if is_shard and problems == [NO_CHECKSUMS]:  # a previous cache format's shard: never read, not damage
            if repair:
                shutil.rmtree(path, ignore_errors=True)
            print(f"obsolete: {path}: {NO_CHECKSUMS}; " + ("removed" if repair else "--repair removes it"), flush=True)
            continue
        damaged += 1
        if is_shard and repair:
            shutil.rmtree(path, ignore_errors=True)
            action = "removed (its items are recomputed by the next run)"
        elif is_shard:
            action = "cache shard: run with --repair to remove it (its items are recomputed)"
        else:
            action = f"restore it with `dvc checkout {path}` or `dvc pull {path}`, or rerun its stage (`dvc repro`)"
        print(f"damaged: {path}: {'; '.join(problems)}; {action}", flush=True)
    return damaged


def _temp_parents(shards: list[Path]) -> list[Path]:
    """Folders where interrupted writes leave temporaries: output trees (not inside stores, not
    through the corpus links) and cache shard folders."""
    found = {p.parent for p in shards}
    for top in OUTPUT_DIRS:
        for here, dirs, _ in os.walk(top):  # (does not follow symlinks: data/<corpus>/inputs stays out)
            dirs[:] = [d for d in dirs if not d.endswith(".zarr") and ".tmp-" not in d]
            found.add(Path(here))
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="stores or cache shards (default: all of them)")
    parser.add_argument("--repair", action="store_true", help="remove damaged cache shards and stale temporaries")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        if args.paths:
            missing = [p for p in args.paths if not p.exists()]
            if missing:
                raise AffectBenchError(f"{missing[0]}: no such store or shard")
            shards = [p for p in args.paths if p.parent.name == "shards"]
            stores = [p for p in args.paths if p not in shards]
        else:
            stores, shards = default_targets(load_params(args.params) if Path(args.params).exists() else {})
        damaged = verify(stores, shards, args.repair)
        stale = [p for d in _temp_parents(shards) for p in remove_stale_temps(d)] if args.repair else []
        if stale:
            print(f"removed {len(stale)} temporary director{'y' if len(stale) == 1 else 'ies'} left by interrupted runs")
    except AffectBenchError as err:
        return report_error(err, "verify")
    print(f"verified {len(stores)} store(s) and {len(shards)} cache shard(s): "
          + (f"{damaged} damaged" if damaged else "all sound"))
    return 1 if damaged else 0


if __name__ == "__main__":
    sys.exit(main())
