"""Stage ``validate``: check every params section before any other stage runs.

Every section — ``run``, ``corpora.*``, ``segment``, ``transcripts``, ``embed``, ``backbones.*``,
``heads.*`` — is parsed with its schema and the run lists are checked against the sections they
name, so a typo fails ``dvc repro`` within seconds with one line naming the key, instead of after
hours of embedding. Writes ``metrics/params_check.json``, whose content never changes (so a params
edit reruns only this stage and whatever really depends on the edited section).
"""

from __future__ import annotations

from pipeline.core.io import write_json
from pipeline.core.paths import METRICS
from pipeline.tools.validate import validate_params
from stages._cli import run_stage


def main(args, params) -> None:
    checked = validate_params(params)
    write_json(METRICS / "params_check.json", {"params": "valid"})
    print(f"params valid: {checked}")


if __name__ == "__main__":
    run_stage(__doc__, [], main)
