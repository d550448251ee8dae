"""Stage ``fuse@<corpus>-<fusion>``: train and evaluate a fusion head over several backbones' features.

``--head`` names a ``heads.<name>`` section with ``type: concat|late|attention`` and ``members``;
``--backbone`` is the members joined by '+' (``egemaps+minilm+fer``): DVC needs it spelled out for
the output paths, and the stage refuses a value that disagrees with ``members``, so params and
paths cannot drift apart.
"""

from __future__ import annotations

from pipeline import manifest
from pipeline.config import ConfigError, section
from pipeline.fusion import fusion_backbone, fusion_members, run_fusion
from pipeline.paths import experiment_path, model_dir, predictions_dir, prepared_dir, store_path
from pipeline.probe import summary_lines
from pipeline.store import FeatureStore
from stages._cli import run_stage


def main(args, params) -> None:
    cfg = section(params, "heads", args.head)
    members = fusion_members(args.head, cfg)
    backbone = fusion_backbone(members)
    if args.backbone != backbone:
        raise ConfigError(
            f"--backbone {args.backbone} does not match heads.{args.head}.members ({backbone}); update run.fusions"
        )
    corpus = manifest.load(prepared_dir(args.corpus))
    result = run_fusion(
        corpus,
        {m: FeatureStore(store_path(args.corpus, m)) for m in members},
        args.head,
        cfg,
        model_dir=model_dir(args.corpus, backbone, args.head),
        metrics_path=experiment_path(args.corpus, backbone, args.head),
        predictions_dir=predictions_dir(args.corpus, backbone, args.head),
    )
    if "skipped" in result:
        print(f"skipped {args.corpus}/{backbone}/{args.head}: {result['skipped']}")
        return
    dropped = result["dropped"]
    if dropped["n"]:
        print(f"dropped {dropped['n']} utterance(s) missing from a member store: {dropped['per_member']}, "
              f"e.g. {dropped['examples'][:3]}")
    print("\n".join(summary_lines(result)))


if __name__ == "__main__":
    run_stage(__doc__, ["corpus", "head", "backbone"], main)
