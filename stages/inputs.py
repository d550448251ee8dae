"""Stage ``inputs@<corpus>``: ``data/<corpus>/inputs`` → a symlink to the corpus root, for DVC to watch.

The corpus lives outside the repository (``corpora.<name>.root``). The link is this stage's
output and DVC follows it: editing, replacing, adding or removing a media or label file shows in
``dvc status`` and reruns this stage, which writes ``data/<corpus>/inputs.json`` — one content
digest of the whole root — that ``prepare`` depends on (see :mod:`pipeline.core.inputs`). DVC
keeps stat-keyed hashes in its state database, so after the first run a no-op check only stats
the files, once.
"""

from __future__ import annotations

import sys

from pipeline.core.config import section
from pipeline.core.inputs import link_inputs, list_inputs
from pipeline.core.io import write_json
from pipeline.core.paths import inputs_dir, inputs_listing
from pipeline.corpora.base import corpus_settings
from stages._cli import run_stage


def main(args, params) -> None:
    settings = corpus_settings(args.corpus, section(params, "corpora", args.corpus))
    root = link_inputs(args.corpus, settings.root, inputs_dir(args.corpus))
    listing = list_inputs(args.corpus, root)
    write_json(inputs_listing(args.corpus), listing)
    for path in settings.files_outside_root():
        print(f"warning: corpora.{args.corpus}: {path} is outside the corpus root, so DVC does not watch it: an edit "
              f"is only picked up by `dvc repro -f -s prepare@{args.corpus}`; keep it (or a symlink to it) under the "
              "root", file=sys.stderr)
    print(f"inputs {args.corpus}: " + (f"DVC watches {root} through {inputs_dir(args.corpus)}: {listing['files']} "
                                       f"files, content digest {listing['digest']}" if root else
                                       "synthesised by its recipe (its media are prepare's outputs)"))


if __name__ == "__main__":
    run_stage(__doc__, ["corpus"], main)
