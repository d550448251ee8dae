"""Stage ``prepare@<corpus>``: corpus on disk (or synthesised) → manifest.parquet + corpus.json."""

from __future__ import annotations

import shutil

from pipeline import manifest
from pipeline.config import section
from pipeline.corpora import get_recipe
from pipeline.paths import prepared_dir
from stages._cli import run_stage


def main(args, params) -> None:
    cfg = section(params, "corpora", args.corpus)
    out = prepared_dir(args.corpus)
    # The recipe may write media here (demo); corpus.json is written last by manifest.save, so an
    # interrupted run leaves a directory that `manifest.load` refuses.
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    corpus = get_recipe(cfg.get("recipe", args.corpus))(cfg, out)
    corpus.name = args.corpus
    manifest.save(corpus, out)
    counts = corpus.manifest.groupby("split").size().to_dict()
    print(f"prepared {args.corpus}: {len(corpus.manifest)} utterances {counts}, tasks {[t.name for t in corpus.tasks]}")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus"], main)
