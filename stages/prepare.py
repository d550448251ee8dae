"""Stage ``prepare@<corpus>``: corpus on disk (or synthesised) → manifest.parquet + corpus.json."""

from __future__ import annotations

import shutil

import pandas as pd

from pipeline.core import manifest
from pipeline.core.config import section
from pipeline.core.inputs import write_items
from pipeline.core.paths import prepared_dir
from pipeline.corpora.base import corpus_settings, prepare_corpus
from stages._cli import run_stage


def main(args, params) -> None:
    settings = corpus_settings(args.corpus, section(params, "corpora", args.corpus))  # before touching outputs
    out = prepared_dir(args.corpus)
    # The recipe may write media here (demo); corpus.json is written last by manifest.save, so an
    # interrupted run leaves a directory that `manifest.load` refuses.
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    corpus = prepare_corpus(args.corpus, settings, out)
    write_items(corpus, out)  # model inputs + media digests: what segment, transcribe and embed read
    manifest.save(corpus, out)
    print(f"prepared {args.corpus}: {len(corpus.manifest)} utterances, tasks {[t.name for t in corpus.tasks]}")
    print(split_summary(corpus))


def _units(df: pd.DataFrame, unit: str) -> str:
    names = sorted(map(str, pd.unique(df[unit])))
    shown = f" ({', '.join(names)})" if len(names) <= 3 else ""
    return f"{len(names)} {unit}{'s' if len(names) != 1 else ''}{shown}"


def split_summary(corpus: manifest.Corpus) -> str:
    """The protocol as the probes will run it: folds (or splits) with their utterances and
    independence units, and how dev is made — saying so when dev cannot be speaker-independent
    (the rules of :func:`pipeline.experiment.protocol.plan_folds`)."""
    df = corpus.manifest
    unit = "group" if "group" in df.columns else "speaker"
    protocol = corpus.info.get("protocol") or ("cross-validation" if "fold" in df.columns else "official")
    if "fold" in df.columns and df["fold"].notna().any():
        ids = sorted(pd.unique(df["fold"].dropna()))
        parts = [f"fold {k}: {int((df['fold'] == k).sum())} utterances, {_units(df[df['fold'] == k], unit)}" for k in ids]
        if len(ids) >= 3:
            dev = "dev = the next fold"
        else:
            dev = (f"dev = a random 20% of each fold's training utterances (only {len(ids)} folds): "
                   f"NOT {unit}-independent")
        return f"  protocol {protocol}: {len(ids)} folds by {unit}; " + "; ".join(parts) + f"; {dev}"
    parts = [f"{split} {int((df['split'] == split).sum())} utterances, {_units(df[df['split'] == split], unit)}"
             for split in manifest.SPLITS if (df["split"] == split).any()]
    if (df["split"] == "dev").any():
        dev = "official dev"
    elif df.loc[df["split"] == "train", unit].nunique() >= 3:
        dev = f"dev = held-out training {unit}s"
    else:
        dev = f"dev = a random 20% of the training utterances (fewer than 3 training {unit}s): NOT {unit}-independent"
    return f"  protocol {protocol}: " + "; ".join(parts) + f"; {dev}"


if __name__ == "__main__":
    run_stage(__doc__, ["corpus"], main)
