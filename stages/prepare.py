"""Stage ``prepare@<corpus>``: corpus on disk (or synthesised) → manifest.parquet + corpus.json."""

from __future__ import annotations

import shutil

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
    counts = corpus.manifest.groupby("split").size().to_dict()
    print(f"prepared {args.corpus}: {len(corpus.manifest)} utterances {counts}, tasks {[t.name for t in corpus.tasks]}")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus"], main)
