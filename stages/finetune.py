"""Stage ``finetune@<corpus>-<item>``: fine-tune an encoder end to end (LoRA or full).

``heads.<head>`` gives the training options (``type: lora|full|lora_multimodal``, see
:mod:`pipeline.heads.finetune`); ``--backbone`` (the run item's) names the encoder:
``backbones.<backbone>.source`` unless the head sets its own ``source``; for ``lora_multimodal`` it
names LanguageBind towers joined by ``+``, each read from its own ``backbones.<name>`` section. Outputs follow the probe's layout: ``models/<corpus>/<backbone>/<head>/``,
``metrics/experiments/<corpus>/<backbone>/<head>.json`` and ``metrics/predictions/<corpus>/<backbone>/<head>/``,
plus the DVCLive training curves in ``metrics/dvclive/<corpus>/<backbone>/<head>/`` (a ``plots``
output of the stage).
"""

from __future__ import annotations

from pipeline.core import manifest
from pipeline.core.config import section
from pipeline.core.paths import experiment_path, model_dir, predictions_dir, prepared_dir, segments_path
from pipeline.core.segments import Segments
from pipeline.experiment.results import summary_lines
from pipeline.experiment.stats import configure, evaluation_settings
from pipeline.heads.base import head_settings
from pipeline.heads.finetune.learner import curves_dir, resolve_encoder, run_finetune
from stages._cli import run_stage


def main(args, params) -> None:
    configure(evaluation_settings(params))  # intervals and paired tests: the evaluation params
    settings = head_settings(args.head, section(params, "heads", args.head), family="finetune")
    # the encoder's backbone section is validated by the validate stage; importing the backbone
    # registry here would make every backbone module a dependency of fine-tuning
    if settings.type == "lora_multimodal":  # towers joined by '+', each its own backbones.<name> section
        towers = {name: section(params, "backbones", name) for name in args.backbone.split("+")}
        source = None
    else:
        towers = None
        source = resolve_encoder(args.head, settings, args.backbone, section(params, "backbones", args.backbone).get("source"))
    result = run_finetune(
        manifest.load(prepared_dir(args.corpus)),
        Segments(segments_path(args.corpus)),
        args.head,
        settings,
        backbone=args.backbone,
        source=source,
        towers=towers,
        model_dir=model_dir(args.corpus, args.backbone, args.head),
        metrics_path=experiment_path(args.corpus, args.backbone, args.head),
        predictions_dir=predictions_dir(args.corpus, args.backbone, args.head),
        live_dir=curves_dir(args.corpus, args.backbone, args.head),
    )
    print("\n".join(summary_lines(result)))


if __name__ == "__main__":
    run_stage(__doc__, ["corpus", "backbone", "head"], main)
