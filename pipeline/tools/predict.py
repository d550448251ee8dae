"""Run a saved model on a new audio or video file and print class probabilities.

    python -m pipeline.tools.predict MODEL_DIR FILE [--top 5] [--task NAME] [--json]
                               [--params params.yaml] [--base DIR] [--text "..."]

Run it from the repository root (paths recorded at training time, like an encoder's ``source``, are
relative to it). ``FILE`` is anything ffmpeg decodes (wav, flac, mp3, mp4, mkv, ...): its first
audio stream becomes 16 kHz mono, exactly as the ``segment`` stage does for a corpus. The whole file
is one utterance. ``MODEL_DIR`` is one of:

1. **A fine-tuned model** (``models/<corpus>/<backbone>/<head>/<task>[.<fold>]/``, written by the
   ``finetune`` stage). It must hold ``finetune.json`` (mode, task, classes, encoder ``source``,
   input length limits, target scaling for regression), ``preprocessor_config.json`` (the feature
   extractor; AST's training-set mean/std included) and

   - for ``full``: ``config.json`` + ``model.safetensors`` (the whole classifier);
   - for ``lora``: ``adapter_config.json`` + ``adapter_model.safetensors`` (LoRA matrices and the
     trained classification head); the base encoder is loaded from the ``source`` recorded in
     ``finetune.json`` (``--base DIR`` overrides it, e.g. on another machine).

   - for ``lora_multimodal``: ``adapter_config.json`` + ``adapter_model.safetensors`` (the towers' LoRA
     matrices and the linear head); each LanguageBind tower is rebuilt from the source recorded in
     ``finetune.json`` and fed its own input: ``--text`` (text tower; required), the file's frames
     sampled with the ``segment`` section's ``fps`` and ``frame_size`` of ``--params`` (video tower), its
     audio (audio tower).

2. **A fine-tuning head's directory** (``models/<corpus>/<backbone>/<head>/``): every model
   directory of case 1 inside it, one per task (or per task and fold).

3. **A probe head's directory** (``models/<corpus>/<backbone>/<head>/``, written by the ``probe``
   stage): ``<task>.joblib`` (or ``<task>.<fold>.joblib`` per cross-validation fold), each a fitted
   scikit-learn pipeline. The file is embedded first with backbone ``<backbone>`` (the directory's
   parent name) as ``params.yaml`` defines it (``backbones.<backbone>``; video backbones sample
   frames with the ``segment`` section's ``fps`` and ``frame_size``; text backbones need
   ``--text``), taking the layer ``heads.<head>.layer`` names. Heads trained on per-speaker
   normalised features (``speaker_norm: true``) cannot score a lone file and are refused.

Where a task has one model per fold, the printed probabilities (or values) are the mean over the
fold models. ``--top`` limits how many classes are printed (all are in ``--json``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.core.audio import SAMPLE_RATE
from pipeline.core.cli import report_error
from pipeline.core.config import load_params, section
from pipeline.core.errors import AffectBenchError
from pipeline.core.media import decode_audio, decode_frames

FINETUNE_META = "finetune.json"  # pipeline.heads.finetune.model.META, without importing torch for probe heads
_FOLD_SUFFIX = re.compile(r"^(?P<task>.+?)(?:\.(?P<fold>fold.+|official))?$")


class PredictError(AffectBenchError):
    """A model directory or input this command cannot use; the message says why."""


def find_models(model_dir: Path) -> tuple[str, dict[str, list[Path]]]:
    """``(kind, {task: [model paths]})`` for a fine-tuned model, a fine-tuning head or a probe head."""
    if (model_dir / FINETUNE_META).exists():
        return "finetune", {_task_of(model_dir): [model_dir]}
    tasks: dict[str, list[Path]] = {}
    finetuned = sorted(p.parent for p in model_dir.glob(f"*/{FINETUNE_META}"))
    if finetuned:
        for path in finetuned:
            tasks.setdefault(_task_of(path), []).append(path)
        return "finetune", tasks
    for path in sorted(model_dir.glob("*.joblib")):
        tasks.setdefault(_FOLD_SUFFIX.match(path.stem)["task"], []).append(path)
    if tasks:
        return "probe", tasks
    if (model_dir / "skipped.json").exists():
        raise PredictError(f"{model_dir}: this combination was skipped at training time (see skipped.json)")
    raise PredictError(f"{model_dir}: no {FINETUNE_META} and no *.joblib here; not a model directory")


def _task_of(path: Path) -> str:
    return json.loads((path / FINETUNE_META).read_text())["task"]["name"]


def _summarise(kind: str, paths: list[Path], classes: list[str] | None, outputs: list[np.ndarray]) -> dict[str, Any]:
    """Mean over fold models: class probabilities, or the predicted value."""
    mean = np.mean(outputs, axis=0)
    out: dict[str, Any] = {"kind": kind, "models": [str(p) for p in paths]}
    if classes is None:
        out["value"] = float(mean)
    else:
        out["probabilities"] = {c: float(p) for c, p in zip(classes, mean)}
        out["prediction"] = classes[int(np.argmax(mean))]
    return out


def predict_finetuned(paths: list[Path], audio: np.ndarray, base: str | None = None) -> dict[str, Any]:
    from pipeline.core.audio import SAMPLE_RATE as SR
    from pipeline.core.audio import fit_length
    from pipeline.heads.finetune.model import load_finetuned, outputs_to_predictions, predict_outputs

    outputs, classes = [], None
    for path in paths:
        model, extractor, meta = load_finetuned(path, base)
        clip = fit_length(audio, int(meta["max_seconds"] * SR), int(meta["min_seconds"] * SR))
        pred, proba = outputs_to_predictions(predict_outputs(model, extractor, [clip]), meta)
        if proba is None:
            outputs.append(np.asarray(pred[0], float))
        else:
            classes = list(meta["classes"])
            outputs.append(proba[0])
    return _summarise(f"{meta['mode']} fine-tuned {meta['backbone']}", paths, classes, outputs)


class _OneFile:
    """The decoded file as a one-item segments store (what the towers' preprocessing reads)."""

    def __init__(self, audio: np.ndarray, frames: np.ndarray | None):
        self._audio, self._frames = audio, frames

    def audio(self, uid: str) -> np.ndarray:
        return self._audio

    def frames(self, uid: str) -> np.ndarray:
        return self._frames


def predict_multimodal_file(paths: list[Path], file: Path, params: dict[str, Any] | None,
                            text: str | None) -> dict[str, Any]:
    """A ``lora_multimodal`` model's probabilities for one file (its audio, frames and ``text``)."""
    from pipeline.heads.finetune.model import outputs_to_predictions
    from pipeline.heads.finetune.multimodal import MultimodalItems, load_multimodal, predict_multimodal

    outputs, classes, inputs = [], None, None
    for path in paths:
        model, prep, meta = load_multimodal(path)
        if inputs is None:
            kinds = {t["kind"] for t in meta["towers"]}
            if "text" in kinds and not text:
                raise PredictError(f"{path}: the model has a text tower: pass the transcript with --text")
            frames = None
            if "video" in kinds:
                if params is None:
                    raise PredictError(f"{path}: the model has a video tower: params.yaml's segment section "
                                       f"(fps, frame_size) decides the frames; pass --params")
                from pipeline.core.settings import parse
                from pipeline.segment.decode import SegmentSettings

                seg = parse(SegmentSettings, section(params, "segment"), "segment")
                frames = decode_frames(file, seg.fps, seg.frame_size)
            audio = decode_audio(file, SAMPLE_RATE) if "audio" in kinds else np.zeros(0, np.float32)
            inputs = _OneFile(audio, frames)
        items = MultimodalItems(inputs, [str(file)], [text or ""], None, prep, cache=False)
        pred, proba = outputs_to_predictions(predict_multimodal(model, prep, items), meta)
        if proba is None:
            outputs.append(np.asarray(pred[0], float))
        else:
            classes = list(meta["classes"])
            outputs.append(proba[0])
    return _summarise(f"lora_multimodal fine-tuned {meta['backbone']}", paths, classes, outputs)


def _is_multimodal(paths: list[Path]) -> bool:
    return json.loads((paths[0] / FINETUNE_META).read_text()).get("mode") == "lora_multimodal"


def embed_file(backbone: str, params: dict[str, Any], file: Path, text: str | None) -> np.ndarray:
    """Pooled features of one file from backbone ``backbone`` as params define it."""
    from pipeline.features.backbones.base import build_backbone

    cfg = params.get("backbones", {}).get(backbone)
    if cfg is None:
        raise PredictError(f"params: no backbones.{backbone} (the probe's backbone; the model dir's parent name)")
    model = build_backbone(backbone, cfg)
    if model.modality == "text":
        if not text:
            raise PredictError(f"backbone {backbone} reads transcripts: pass --text")
        item: Any = text
    elif model.modality == "video":
        from pipeline.core.settings import parse
        from pipeline.segment.decode import SegmentSettings

        seg = parse(SegmentSettings, section(params, "segment"), "segment")
        item = decode_frames(file, seg.fps, seg.frame_size)
    else:
        item = decode_audio(file, SAMPLE_RATE)
    return model.embed([item])[0].pooled


def predict_probe(paths: list[Path], pooled: np.ndarray, head: str, params: dict[str, Any]) -> dict[str, Any]:
    import joblib

    import pipeline.heads.probe  # noqa: F401 - declares the probe heads' registry scope
    from pipeline.heads.base import head_settings

    settings = head_settings(head, section(params, "heads", head), family="probe")
    if settings.speaker_norm:
        raise PredictError(f"heads.{head} uses per-speaker normalisation; a single file has no speaker statistics")
    x = pooled
    layer = settings.layer
    if pooled.ndim == 2 and layer not in ("best", "weighted"):  # layered backbone [L, D]: the trained layer
        x = pooled[-1 if layer == "last" else int(layer)]
    kind = f"{head} probe on {paths[0].parent.parent.name}"
    models = [joblib.load(path) for path in paths]
    if not hasattr(models[0], "predict_proba"):  # a regression probe
        return _summarise(kind, paths, None, [np.asarray(m.predict(x[None])[0], float) for m in models])
    # A fold whose training split lacked a class has no column for it: align folds by class name.
    classes = sorted({str(c) for m in models for c in m.classes_})
    outputs = []
    for m in models:
        row = dict(zip(map(str, m.classes_), m.predict_proba(x[None])[0]))
        outputs.append(np.array([row.get(c, 0.0) for c in classes]))
    return _summarise(kind, paths, classes, outputs)


def predict(model_dir: str | Path, file: str | Path, *, params: dict[str, Any] | None = None, task: str | None = None,
            base: str | None = None, text: str | None = None) -> dict[str, dict[str, Any]]:
    """Per task: class probabilities (or value), the argmax class, and the model files used."""
    model_dir, file = Path(model_dir).resolve(), Path(file)
    kind, tasks = find_models(model_dir)
    if task is not None:
        if task not in tasks:
            raise PredictError(f"{model_dir}: no model for task {task!r}; tasks: {sorted(tasks)}")
        tasks = {task: tasks[task]}
    if kind == "finetune" and _is_multimodal(next(iter(tasks.values()))):
        return {name: predict_multimodal_file(paths, file, params, text) for name, paths in tasks.items()}
    if kind == "finetune":
        audio = decode_audio(file, SAMPLE_RATE)
        return {name: predict_finetuned(paths, audio, base) for name, paths in tasks.items()}
    if params is None:
        raise PredictError("probe heads need params.yaml (the backbone that embeds the file)")
    pooled = embed_file(model_dir.parent.name, params, file, text)
    return {name: predict_probe(paths, pooled, model_dir.name, params) for name, paths in tasks.items()}


def render(results: dict[str, dict[str, Any]], top: int) -> str:
    lines = []
    for name, res in results.items():
        n = len(res["models"])
        lines.append(f"{name}  ({res['kind']}; {n} model{'s' if n > 1 else ''}{', mean over folds' if n > 1 else ''})")
        if "value" in res:
            lines.append(f"  value  {res['value']:.4f}")
            continue
        ranked = sorted(res["probabilities"].items(), key=lambda kv: -kv[1])[: max(1, top)]
        width = max(len(c) for c, _ in ranked)
        lines += [f"  {c:<{width}}  {p:.4f}" for c, p in ranked]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="fine-tuned model dir, fine-tuning head dir or probe head dir")
    parser.add_argument("file", help="audio or video file")
    parser.add_argument("--top", type=int, default=5, help="classes to print per task (default 5)")
    parser.add_argument("--task", help="only this task")
    parser.add_argument("--json", action="store_true", help="print every probability as JSON")
    parser.add_argument("--params", default="params.yaml", help="params file (probe heads: backbone and head options)")
    parser.add_argument("--base", help="LoRA: base encoder directory (default: the source recorded at training)")
    parser.add_argument("--text", help="transcript, for probes on text backbones and lora_multimodal text towers")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params) if Path(args.params).exists() else None
        results = predict(args.model_dir, args.file, params=params, task=args.task, base=args.base, text=args.text)
    except AffectBenchError as err:
        return report_error(err, "predict")
    print(json.dumps({"file": str(args.file), "tasks": results}, indent=2) if args.json else render(results, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
