"""Results: the metrics contract every head writes, and what the leaderboard and stages read from it.

An experiment writes ``metrics/experiments/<corpus>/<backbone>/<head>.json`` — ``corpus``,
``backbone``, ``head`` and per task: the per-fold records (what was selected on dev and why, dev
and test headline metrics), pooled dev/test metrics (per-class recall, confusion, class names),
seed and fold summaries — plus one prediction table per task under
``metrics/predictions/<corpus>/<backbone>/<head>/<task>.csv``. A combination that does not apply
writes ``skipped`` with the reason instead.

Beside it, :func:`write_result` writes the experiment's *headline* file,
``metrics/headline/<corpus>/<backbone>/<head>.json`` = ``{task: {split: {uar, war, macro_f1, ccc,
n}}}`` (only the keys that apply, finite values rounded to 4 decimals; ``{}`` for a skipped
combination): what ``dvc metrics`` and ``dvc exp show`` read. It is a ``cache: false`` output (in
git), so ``dvc metrics diff main <branch>`` works without anyone's DVC cache; the detailed JSON is an
ordinary output.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pipeline.core.io import atomic_dir, write_json
from pipeline.core.metrics import headline
from pipeline.core.paths import METRICS

HEADLINE_KEYS = ("uar", "war", "macro_f1", "ccc", "n")
"""What the headline file keeps per task and split (the rest stays in the detailed JSON)."""
HEADLINE_DECIMALS = 4


def experiment_header(corpus: Any, backbone: str, head: str) -> dict[str, Any]:
    """The head of every experiment JSON: what ran on what, and under which protocol — the recipe's
    ``protocol`` and, where a protocol comes from published fold files (``protocol: emobox``), their
    provenance (repository, commit, file digests), so a number can be traced to the exact folds."""
    header: dict[str, Any] = {"corpus": corpus.name, "backbone": backbone, "head": head}
    info = getattr(corpus, "info", None) or {}
    if info.get("protocol") is not None:
        header["protocol"] = info["protocol"]
    if isinstance(info.get("emobox"), dict) and "source" in info["emobox"]:
        header["protocol_source"] = info["emobox"]["source"]
    return header


def write_skipped(
    result: dict[str, Any], reason: str, *, metrics_path: str | Path, predictions_dir: str | Path,
    model_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Record a combination that does not apply: the metrics JSON, the model and the predictions
    folders each hold ``skipped.json`` with the reason the report lists (an empty folder would be a DVC
    output DVC warns about on every run: "… is empty")."""
    result["skipped"] = reason
    for folder in (model_dir, predictions_dir):
        if folder is not None:
            with atomic_dir(folder) as tmp:
                write_json(tmp / "skipped.json", result)
    write_result(result, metrics_path)
    return result


def headline_path(corpus: str, backbone: str, head: str, metrics_dir: Path = METRICS) -> Path:
    """The headline file of one experiment (here, not in :mod:`pipeline.core.paths`: every stage
    depends on ``pipeline/core``, and only the experiment stages write or read this file)."""
    return metrics_dir / "headline" / corpus / backbone / f"{head}.json"


def headline_for(experiment_json: str | Path) -> Path:
    """The headline file of the experiment JSON at ``experiment_json``: ``<m>/experiments/<c>/<b>/<h>.json``
    has ``<m>/headline/<c>/<b>/<h>.json`` (:func:`headline_path`); a JSON elsewhere (a test's, a tool's)
    has ``<stem>.headline.json`` beside it."""
    path = Path(experiment_json)
    if len(path.parts) >= 4 and path.parts[-4] == "experiments":
        return path.parents[3] / "headline" / Path(*path.parts[-3:])
    return path.with_name(f"{path.stem}.headline.json")


def write_result(result: dict[str, Any], metrics_path: str | Path) -> None:
    """Write an experiment's detailed JSON to ``metrics_path`` and its headline file
    (:func:`headline_for`): every head family's results go through here."""
    write_json(metrics_path, result)
    write_json(headline_for(metrics_path), headline_summary(result))


def headline_summary(result: dict[str, Any]) -> dict[str, dict[str, dict[str, float | int]]]:
    """``{task: {split: {uar, war, macro_f1, ccc, n}}}`` of one experiment: only the keys with a
    finite value, rounded to :data:`HEADLINE_DECIMALS` (so the bytes do not depend on the last bits of
    a float sum); ``{}`` for a skipped combination."""
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for task, entry in result.get("tasks", {}).items():
        for split in ("dev", "test"):
            if split not in entry:
                continue
            values: dict[str, float | int] = {}
            for key in HEADLINE_KEYS:
                value = entry[split].get(key)
                if value is None or isinstance(value, bool) or not math.isfinite(value):
                    continue
                # + 0.0: a tiny negative CCC rounds to 0.0, not -0.0
                values[key] = int(value) if key == "n" else round(float(value), HEADLINE_DECIMALS) + 0.0
            out.setdefault(task, {})[split] = values
    return out


def leaderboard_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten one experiment result into leaderboard rows (one per task and split)."""
    rows = []
    for task, entry in result.get("tasks", {}).items():
        for split in ("dev", "test"):
            if split in entry:
                row = {"corpus": result["corpus"], "task": task, "backbone": result["backbone"],
                       "head": result["head"], "split": split}
                row.update(headline(entry[split]))
                row["layer"] = entry.get("layer", "")
                row["norm"] = entry.get("norm", "global")
                row.update(uncertainty_fields(entry, split))
                # cross-corpus results (corpus "<A>-to-<B>") trained on A: their dev rows are scored on A, test rows on B
                row["train_corpus"] = result.get("train_corpus", result["corpus"])
                row["test_corpus"] = result.get("test_corpus", result["corpus"]) if split == "test" else row["train_corpus"]
                rows.append(row)
    return rows


def uncertainty_fields(entry: dict[str, Any], split: str) -> dict[str, Any]:
    """A row's intervals, spread and protocol notes (issue 12): what the leaderboard shows beside each score.

    ``ci``: {metric: [low, high]} (cluster bootstrap; ``ci_unit`` and ``n_units`` say what was
    resampled and how many there were); ``positive``/``positive_f1``/``auroc`` for binary tasks with
    a positive class (depression); ``folds``, ``fold_mean_std`` and ``seed_mean_std``: {metric: {mean,
    std}} over the cross-validation folds and the seeds (None for one fold / one seed); ``dev_note``:
    how dev was made, and ``dev_independent``: False when dev shares speakers with training.
    """
    metrics = entry[split]
    ci = metrics.get("ci") or {}
    positive = entry.get("positive")
    notes = list(dict.fromkeys(f.get("dev_note", "") for f in entry.get("folds", []) if f.get("dev_note")))
    seeds = entry.get("seed_summary", {}).get(split)
    return {
        "ci": ci.get("intervals", {}),
        "ci_level": ci.get("level"),
        "ci_unit": ci.get("unit"),
        "n_units": ci.get("clusters"),
        "positive": positive,
        "positive_f1": metrics.get(f"{positive}_f1") if positive else None,
        "auroc": metrics.get("auroc"),
        "folds": len(entry.get("folds", [])) or 1,
        "fold_mean_std": entry.get("fold_summary", {}).get(split),
        "seed_mean_std": {k: {"mean": v["mean"], "std": v["std"]} for k, v in seeds.items()} if seeds else None,
        "dev_note": "; ".join(notes),
        "dev_independent": not any(n.startswith("dev = random") for n in notes),
    }


def summary_lines(result: dict[str, Any]) -> list[str]:
    """One printable line per leaderboard row (what the head stages print)."""
    lines = []
    if "skipped" in result:
        return [f"skipped {result['corpus']}/{result['backbone']}/{result['head']}: {result['skipped']}"]
    for row in leaderboard_rows(result):
        metric = "uar" if row["uar"] is not None else "ccc"
        value = row[metric]
        shown = "n/a" if value is None or math.isnan(value) else f"{value:.3f}"
        low_high = row["ci"].get(metric)
        shown += f" [{low_high[0]:.3f}, {low_high[1]:.3f}]" if low_high else ""
        name = f"{row['corpus']}/{row['task']}/{row['backbone']}/{row['head']}"
        unparsed = result["tasks"][row["task"]][row["split"]].get("unparsed")  # Audio-LLM answers
        extra = "" if unparsed is None else f", unparsed={unparsed}"
        lines.append(f"{name} {row['split']}: {metric.upper()} {shown} (n={row['n']}{extra})")
    return lines
