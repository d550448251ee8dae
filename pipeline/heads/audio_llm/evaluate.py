"""Evaluation: greedy answers from the merged model, parsed to labels, scored like the probe.

For every fold the merged model (``merged/`` + ``projector.pt``) answers each dev and test
utterance's question in every configured language. The first language in ``languages`` gives the
headline (``predicted``, ``raw``); the others are kept as ``predicted_<lang>``/``raw_<lang>``
columns and per-language figures in ``languages``. Answers that name no class are predicted as
:data:`~pipeline.heads.audio_llm.parse.UNPARSED`: they count as errors and their number is reported per
split (``unparsed``). The prediction table's ``p_<class>`` columns are one-hot votes (the model
gives hard answers), which is what speaker-level tasks average.

Scoring, tables and the experiment JSON come from the experiment runner, as for every head
(:mod:`pipeline.experiment.runner`); :class:`AudioLLMLearner` only loads each fold's merged model
and generates: ``metrics/experiments/<corpus>/<backbone>/<head>.json`` and
``metrics/predictions/<corpus>/<backbone>/<head>/<task>.csv``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score
from tqdm import tqdm

from pipeline.core.io import read_json
from pipeline.core.manifest import Corpus, Task
from pipeline.core.metrics import headline
from pipeline.experiment.protocol import Fold
from pipeline.experiment.results import experiment_header, write_skipped
from pipeline.experiment.runner import Learner, Output, TaskData, run_experiment
from pipeline.experiment.scoring import evaluate
from pipeline.heads.audio_llm import AudioLLMError
from pipeline.heads.audio_llm.data import Example, FrameBank, chunks, instruct_examples
from pipeline.heads.audio_llm.model import AudioLLM, load_llm, load_projectors
from pipeline.heads.audio_llm.parse import UNPARSED, LabelParser
from pipeline.heads.audio_llm.plan import Plan, fold_dir, make_plan, runtime
from pipeline.heads.audio_llm.settings import GenerateSettings

HEAD = "audio_llm"


def predict(
    model: AudioLLM, examples: Sequence[Example], bank: FrameBank, parsers: dict[str, LabelParser],
    generate: GenerateSettings,
) -> tuple[list[str], list[str]]:
    """Raw generated answers and the labels parsed from them, in the order of ``examples``."""
    model.eval()
    raw: list[str] = []
    for batch in tqdm(chunks(examples, generate.eval_batch_size), desc="generating", leave=False):
        raw += model.generate(batch, [bank.get(e.uid) for e in batch], generate.max_new_tokens)
    return raw, [parsers[e.task].parse(text) for e, text in zip(examples, raw)]


def uar(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": unparsed answers
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(list(y_true), list(y_pred)))


def dev_uar(
    model: AudioLLM, dev: Sequence[Example], bank: FrameBank, parsers: dict[str, LabelParser],
    generate: GenerateSettings,
) -> dict[str, float]:
    """Mean UAR over (task, language) on the dev examples — the stage-2 selection score."""
    _, pred = predict(model, dev, bank, parsers, generate)
    per: dict[str, float] = {}
    for key in sorted({(e.task, e.language) for e in dev}):
        idx = [i for i, e in enumerate(dev) if (e.task, e.language) == key]
        per[f"dev_uar_{key[0]}_{key[1]}"] = uar([dev[i].label for i in idx], [pred[i] for i in idx])
    return {"dev_uar": float(np.mean(list(per.values()))), **per}


def one_hot(pred: Sequence[str], columns: list[str]) -> np.ndarray:
    return (np.asarray(pred, dtype=object)[:, None] == np.asarray(columns, dtype=object)[None, :]).astype(float)


def unparsed(table: pd.DataFrame, column: str = "predicted") -> dict[str, int]:
    return {"unparsed": int((table[column].to_numpy(object) == UNPARSED).sum())}


def score(task: Task, frame: pd.DataFrame, pred_col: str = "predicted") -> dict[str, Any]:
    """Metrics of the answers in ``pred_col`` (one-hot votes; unparsed answers count as errors)."""
    columns = [*task.classes, UNPARSED]
    pred = frame[pred_col].to_numpy(object)
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": unparsed answers
        warnings.simplefilter("ignore")
        metrics, _ = evaluate(task, frame["actual"].to_numpy(object), pred, one_hot(pred, columns), columns,
                              frame["speaker"].to_numpy())
    return {**metrics, **unparsed(frame, pred_col)}


class AudioLLMLearner(Learner):
    """Evaluation of the merged models: ``fit`` loads a fold's model (trained by the instruct stage),
    ``predict`` answers in every language; the first language is the headline. Fold-major: every
    task of a fold is answered by one load of that fold's model."""

    fold_major = True

    def __init__(self, plan: Plan, model_root: Path):
        self.plan, self.model_root = plan, Path(model_root)
        self.langs = list(plan.settings.languages)
        self.bank = plan.bank()
        self.device, self.dtype = runtime(plan.settings)
        self.loaded: tuple[str, AudioLLM, dict[str, Any]] | None = None  # one fold's model at a time

    def fit(self, data: TaskData, fold: Fold, model_path: Path | None) -> dict[str, Any]:
        if self.loaded is None or self.loaded[0] != fold.name:
            src = fold_dir(self.model_root, fold, len(self.plan.folds))
            if not (src / "merged").is_dir():
                raise AudioLLMError(f"{src / 'merged'}: merged model not found; run audio_llm_instruct first")
            self.loaded = None  # free the previous fold's model first
            llm, tokenizer = load_llm(src / "merged", self.device, self.dtype)
            model = AudioLLM(llm, tokenizer, load_projectors(src / "projector.pt")).to(self.device)
            self.loaded = (fold.name, model, read_json(src / "train.json")["selection"])
        return {"head": HEAD, "selection": self.loaded[2]}

    def predict(self, data: TaskData, fold: Fold, mask: np.ndarray) -> list[Output]:
        model, plan, task = self.loaded[1], self.plan, data.task
        rows = data.rows[mask]
        preds, columns = None, {}
        for k, lang in enumerate(self.langs):
            examples = instruct_examples(rows, [task], plan.parsers, [lang], with_answer=False)
            raw, pred = predict(model, examples, self.bank, plan.parsers, plan.settings.generate)
            suffix = "" if k == 0 else f"_{lang}"
            if k == 0:
                preds = pred
            else:
                columns[f"predicted{suffix}"] = pred
            columns[f"raw{suffix}"] = raw
        classes = [*task.classes, UNPARSED]
        return [Output(np.asarray(preds, dtype=object), one_hot(preds, classes), classes, columns=columns)]

    def split_metrics(self, data: TaskData, table: pd.DataFrame) -> dict[str, Any]:
        return unparsed(table)

    def finish_task(self, data: TaskData, entry: dict[str, Any], table: pd.DataFrame, out_dir: Path) -> None:
        super().finish_task(data, entry, table, out_dir)
        entry.update(eval_language=self.langs[0], languages={})
        for k, lang in enumerate(self.langs):
            for split in ("dev", "test"):
                part = table[table["split"] == split]
                if part.empty:
                    continue
                # the headline language is what the runner scored (entry[split]); the others, their own columns
                metrics = entry[split] if k == 0 else score(data.task, part, f"predicted_{lang}")
                entry["languages"].setdefault(lang, {})[split] = {**headline(metrics), "unparsed": metrics["unparsed"]}


def run_eval(
    corpus: Corpus,
    cfg: Any,
    backbone: str,
    model_root: str | Path,
    *,
    metrics_path: str | Path,
    predictions_dir: str | Path,
    head: str = HEAD,
) -> dict[str, Any]:
    """Evaluate the merged model(s) of ``model_root`` on every fold; write metrics and predictions."""
    plan = make_plan(corpus, cfg, backbone, head)
    result: dict[str, Any] = experiment_header(corpus, plan.tag, head)
    if plan.skipped:
        return write_skipped(result, plan.skipped, metrics_path=metrics_path, predictions_dir=predictions_dir)
    result.update(skipped_tasks=plan.skipped_tasks, source=str(plan.settings.llm.source),
                  languages=list(plan.settings.languages))
    learner = AudioLLMLearner(plan, Path(model_root))
    return run_experiment(
        plan.rows, plan.tasks, learner, result, metrics_path=metrics_path, predictions_dir=predictions_dir,
        planner=lambda task, rows, y: plan.folds_for(rows),
    )
