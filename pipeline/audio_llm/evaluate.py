"""Evaluation: greedy answers from the merged model, parsed to labels, scored like the probe.

For every fold the merged model (``merged/`` + ``projector.pt``) answers each dev and test
utterance's question in every configured language. The first language in ``languages`` gives the
headline (``predicted``, ``raw``); the others are kept as ``predicted_<lang>``/``raw_<lang>``
columns and per-language figures in ``languages``. Answers that name no class are predicted as
:data:`~pipeline.audio_llm.parse.UNPARSED`: they count as errors and their number is reported per
split (``unparsed``). The prediction table's ``p_<class>`` columns are one-hot votes (the model
gives hard answers), which is what speaker-level tasks average.

Metrics follow the probe's contract (:func:`pipeline.probe._evaluate`, :func:`pipeline.metrics.headline`):
``metrics/experiments/<corpus>/<tag>/audio_llm.json`` and ``metrics/predictions/<corpus>/<tag>/audio_llm/<task>.csv``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score
from tqdm import tqdm

from pipeline.audio_llm import AudioLLMError
from pipeline.audio_llm.data import Example, FrameBank, chunks, instruct_examples, labelled
from pipeline.audio_llm.model import AudioLLM, load_llm, load_projectors
from pipeline.audio_llm.parse import UNPARSED, LabelParser
from pipeline.audio_llm.plan import HEAD, Plan, fold_dir, languages, make_plan, runtime
from pipeline.io import atomic_dir, read_json, write_json
from pipeline.manifest import Corpus, Task
from pipeline.metrics import HEADLINE, headline, mean_std
from pipeline.probe import _evaluate


def predict(
    model: AudioLLM, examples: Sequence[Example], bank: FrameBank, parsers: dict[str, LabelParser], cfg: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """Raw generated answers and the labels parsed from them, in the order of ``examples``."""
    model.eval()
    raw: list[str] = []
    for batch in tqdm(chunks(examples, int(cfg.get("eval_batch_size", 16))), desc="generating", leave=False):
        raw += model.generate(batch, [bank.get(e.uid) for e in batch], int(cfg.get("max_new_tokens", 8)))
    return raw, [parsers[e.task].parse(text) for e, text in zip(examples, raw)]


def uar(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": unparsed answers
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(list(y_true), list(y_pred)))


def dev_uar(
    model: AudioLLM, dev: Sequence[Example], bank: FrameBank, parsers: dict[str, LabelParser], cfg: dict[str, Any]
) -> dict[str, float]:
    """Mean UAR over (task, language) on the dev examples — the stage-2 selection score."""
    _, pred = predict(model, dev, bank, parsers, cfg)
    per: dict[str, float] = {}
    for key in sorted({(e.task, e.language) for e in dev}):
        idx = [i for i, e in enumerate(dev) if (e.task, e.language) == key]
        per[f"dev_uar_{key[0]}_{key[1]}"] = uar([dev[i].label for i in idx], [pred[i] for i in idx])
    return {"dev_uar": float(np.mean(list(per.values()))), **per}


def one_hot(pred: Sequence[str], columns: list[str]) -> np.ndarray:
    return (np.asarray(pred, dtype=object)[:, None] == np.asarray(columns, dtype=object)[None, :]).astype(float)


def score(task: Task, frame: pd.DataFrame, pred_col: str = "predicted") -> dict[str, Any]:
    """Probe metrics for a prediction table (one fold or pooled) plus the count of unparsed answers."""
    columns = [*task.classes, UNPARSED]
    pred = frame[pred_col].to_numpy(object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        actual, speakers = frame["actual"].to_numpy(object), frame["speaker"].to_numpy()
        metrics, _ = _evaluate(task, actual, pred, one_hot(pred, columns), columns, speakers)
    metrics["unparsed"] = int((pred == UNPARSED).sum())
    return metrics


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    return {**headline(metrics), "unparsed": metrics["unparsed"]}


def eval_fold(
    model: AudioLLM, plan: Plan, bank: FrameBank, fold_index: int, task: Task
) -> tuple[dict, list[pd.DataFrame]]:
    """Dev and test predictions of one fold for one task: per-fold record and prediction tables."""
    fold, cfg = plan.folds[fold_index], plan.cfg
    langs = languages(cfg)
    record: dict[str, Any] = {"fold": fold.name, "dev_note": fold.dev_note, "head": HEAD}
    frames = []
    for split, mask in (("dev", fold.dev), ("test", fold.test)):
        rows = plan.rows[mask & labelled(plan.rows, task)]
        if rows.empty:
            continue
        frame = pd.DataFrame({
            "id": rows.index, "split": split, "fold": fold.name,
            "speaker": rows["speaker"].to_numpy(), "actual": rows[task.name].to_numpy(object),
        })
        for k, lang in enumerate(langs):
            examples = instruct_examples(rows, [task], plan.parsers, [lang], with_answer=False)
            raw, pred = predict(model, examples, bank, plan.parsers, cfg)
            suffix = "" if k == 0 else f"_{lang}"
            frame[f"predicted{suffix}"], frame[f"raw{suffix}"] = pred, raw
        record[split] = _brief(score(task, frame))
        votes = one_hot(frame["predicted"], [*task.classes, UNPARSED])
        for j, c in enumerate([*task.classes, UNPARSED]):
            frame[f"p_{c}"] = votes[:, j]
        frames.append(frame)
    return record, frames


def pooled_entry(task: Task, per_fold: list[dict], table: pd.DataFrame, langs: list[str]) -> dict[str, Any]:
    """The task's experiment entry: folds, pooled dev/test metrics, per-language figures, fold summary."""
    entry: dict[str, Any] = {"type": task.type, "unit": task.unit, "classes": task.classes, "folds": per_fold,
                             "eval_language": langs[0], "languages": {}}
    for k, lang in enumerate(langs):
        col = "predicted" if k == 0 else f"predicted_{lang}"
        for split in ("dev", "test"):
            part = table[table["split"] == split]
            if part.empty:
                continue
            metrics = score(task, part, col)
            entry["languages"].setdefault(lang, {})[split] = _brief(metrics)
            if k == 0:
                entry[split] = metrics
    if len(per_fold) > 1:
        entry["fold_summary"] = {
            split: {k: mean_std([f[split][k] for f in per_fold if split in f]) for k in HEADLINE if k != "n"}
            for split in ("dev", "test")
        }
    return entry


def run_eval(
    corpus: Corpus,
    cfg: dict[str, Any],
    model_root: str | Path,
    *,
    metrics_path: str | Path,
    predictions_dir: str | Path,
) -> dict[str, Any]:
    """Evaluate the merged model(s) of ``model_root`` on every fold; write metrics and predictions."""
    plan = make_plan(corpus, cfg)
    result: dict[str, Any] = {"corpus": corpus.name, "backbone": plan.tag, "head": HEAD}
    if plan.skipped:
        result["skipped"] = plan.skipped
        with atomic_dir(predictions_dir):
            pass
        write_json(metrics_path, result)
        return result
    model_root = Path(model_root)
    langs = languages(cfg)
    bank = plan.bank()
    device, dtype = runtime(cfg)
    per_fold: dict[str, list[dict]] = {t.name: [] for t in plan.tasks}
    tables: dict[str, list[pd.DataFrame]] = {t.name: [] for t in plan.tasks}
    for i, fold in enumerate(plan.folds):
        src = fold_dir(model_root, fold, len(plan.folds))
        if not (src / "merged").is_dir():
            raise AudioLLMError(f"{src / 'merged'}: merged model not found; run audio_llm_instruct first")
        llm, tokenizer = load_llm(src / "merged", device, dtype)
        model = AudioLLM(llm, tokenizer, load_projectors(src / "projector.pt")).to(device)
        selection = read_json(src / "train.json")["selection"]
        for task in plan.tasks:
            record, frames = eval_fold(model, plan, bank, i, task)
            per_fold[task.name].append({**record, "selection": selection})
            tables[task.name] += frames
    tasks: dict[str, Any] = {}
    with atomic_dir(predictions_dir) as ptmp:
        for task in plan.tasks:
            table = pd.concat(tables[task.name], ignore_index=True)
            table.to_csv(ptmp / f"{task.name}.csv", index=False)
            entry = pooled_entry(task, per_fold[task.name], table, langs)
            entry.update(layer="", norm="global", n_unlabelled=int((~labelled(plan.rows, task)).sum()))
            tasks[task.name] = entry
    result.update(tasks=tasks, skipped_tasks=plan.skipped_tasks, source=str(cfg.get("source")), languages=langs)
    write_json(metrics_path, result)
    return result
