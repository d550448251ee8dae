"""Stage ``finetune@<corpus>-<backbone>-<head>``: fine-tune an audio encoder end to end (LoRA or full).

``heads.<head>`` gives the training options (``type: lora|full``, see ``pipeline/finetune.py``);
``--backbone`` names the encoder: ``backbones.<backbone>.source`` (or the head's own ``source``). A
head may pin its backbone (``heads.<head>.backbone``), which must then match. Outputs follow the
probe's layout: ``models/<corpus>/<backbone>/<head>/``, ``metrics/experiments/<corpus>/<backbone>/<head>.json``
and ``metrics/predictions/<corpus>/<backbone>/<head>/``, plus the DVCLive training curves in
``metrics/dvclive/<corpus>/<backbone>/<head>/`` (a ``plots`` output of the stage).
"""

from __future__ import annotations

from pipeline import manifest
from pipeline.config import section
from pipeline.finetune import FinetuneError, curves_dir, resolve_encoder, run_finetune
from pipeline.paths import experiment_path, model_dir, predictions_dir, prepared_dir, segments_path
from pipeline.probe import leaderboard_rows
from pipeline.segments import Segments
from stages._cli import run_stage


def main(args, params) -> None:
    cfg = dict(section(params, "heads", args.head))
    if cfg.setdefault("backbone", args.backbone) != args.backbone:
        raise FinetuneError(
            f"heads.{args.head}.backbone is {cfg['backbone']!r} but the stage was asked for {args.backbone!r}"
        )
    result = run_finetune(
        manifest.load(prepared_dir(args.corpus)),
        Segments(segments_path(args.corpus)),
        args.head,
        cfg,
        source=resolve_encoder(params, args.head, cfg),
        model_dir=model_dir(args.corpus, args.backbone, args.head),
        metrics_path=experiment_path(args.corpus, args.backbone, args.head),
        predictions_dir=predictions_dir(args.corpus, args.backbone, args.head),
        live_dir=curves_dir(args.corpus, args.backbone, args.head),
    )
    for row in leaderboard_rows(result):
        metric = "uar" if row["uar"] is not None else "ccc"
        print(f"{row['corpus']}/{row['task']}/{row['backbone']}/{row['head']} {row['split']}: {metric.upper()} {row[metric]:.3f} (n={row['n']})")


if __name__ == "__main__":
    run_stage(__doc__, ["corpus", "backbone", "head"], main)
