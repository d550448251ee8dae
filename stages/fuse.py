"""Stage ``fuse@<corpus>-<fusion>``: train and evaluate a fusion head over several backbones' features.

``--head`` names a ``heads.<name>`` section with ``type: concat|late|attention``; ``--backbone`` is
the members joined by '+' (``egemaps+minilm+fer``), the run item's ``backbone``: the members are
named once, there, and the output paths use the same string.
"""

from __future__ import annotations

from pipeline.core import manifest
from pipeline.core.config import section
from pipeline.core.paths import experiment_path, model_dir, predictions_dir, prepared_dir, store_path
from pipeline.core.store import FeatureStore
from pipeline.experiment.results import summary_lines
from pipeline.experiment.stats import configure, evaluation_settings
from pipeline.heads.base import head_settings
from pipeline.heads.fusion.run import fusion_members, run_fusion
from stages._cli import run_stage


def main(args, params) -> None:
    configure(evaluation_settings(params))  # intervals and paired tests: the evaluation params
    settings = head_settings(args.head, section(params, "heads", args.head), family="fusion")
    members = fusion_members(args.backbone)
    corpus = manifest.load(prepared_dir(args.corpus))
    result = run_fusion(
        corpus,
        {m: FeatureStore(store_path(args.corpus, m)) for m in members},
        args.head,
        settings,
        model_dir=model_dir(args.corpus, args.backbone, args.head),
        metrics_path=experiment_path(args.corpus, args.backbone, args.head),
        predictions_dir=predictions_dir(args.corpus, args.backbone, args.head),
    )
    dropped = result.get("dropped", {})
    if dropped.get("n"):
        print(f"dropped {dropped['n']} utterance(s) missing from a member store: {dropped['per_member']}, "
              f"e.g. {dropped['examples'][:3]}")
    print("\n".join(summary_lines(result)))


if __name__ == "__main__":
    run_stage(__doc__, ["corpus", "head", "backbone"], main)
