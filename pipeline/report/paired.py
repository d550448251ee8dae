"""Paired comparisons: for leaderboard rows that share corpus, task and test items, is the difference real?

For every pair of systems (backbone × head) scored on the same test items (same ids, same true
labels), the difference of the headline metric (UAR; CCC for regression) gets a paired
cluster-bootstrap interval and a cluster permutation p-value (:func:`pipeline.experiment.stats.paired_test`:
both resample or swap whole independence units, so utterances of one speaker move together), and
classification pairs McNemar's exact test on per-item correctness. p-values are Holm-corrected across
all the leaderboard's comparisons (one family per test). Speaker-level tasks compare per speaker,
on the speaker-averaged predictions the leaderboard scores; multi-seed heads enter with the mean of
their seeds' per-cluster statistics (exactly the seed-mean UAR) and, for McNemar, an item counts as
correct when most seeds got it right.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.io import atomic_file
from pipeline.core.manifest import Task
from pipeline.core.paths import predictions_dir
from pipeline.experiment.scoring import Items, table_items
from pipeline.experiment.stats import (
    Clusters,
    PairedData,
    UncertaintySettings,
    active,
    confusion_stats,
    holm,
    mcnemar,
    metric_scorer,
    moment_stats,
    paired_test,
)
from pipeline.report.figures import placeholder, pyplot, save_png


def system_items(res: dict[str, Any], task_name: str, entry: dict[str, Any], metrics_dir: Path) -> list[Items] | None:
    """Per seed, the test items of one experiment's task, sorted by item id (None without test rows)."""
    path = predictions_dir(res["corpus"], res["backbone"], res["head"], metrics_dir) / f"{task_name}.csv"
    if not path.exists():
        return None
    preds = pd.read_csv(path, keep_default_na=False, na_values=[""])
    test = preds[preds["split"] == "test"]
    if test.empty:
        return None
    task = Task(task_name, entry.get("type", "classification"), list(entry.get("classes") or []), unit=entry.get("unit", "utterance"))
    groups = [g for _, g in test.groupby("seed", sort=True)] if "seed" in test.columns else [test]
    out = []
    for g in groups:
        items = table_items(task, g)
        order = np.argsort(items.ids.astype(str), kind="stable")
        out.append(Items(items.y_true[order], items.y_pred[order], None, None, items.units[order], items.ids[order].astype(str)))
    return out


def collect_systems(results: list[dict[str, Any]], metrics_dir: Path) -> dict[tuple, list[dict[str, Any]]]:
    """Systems grouped by (corpus, task, type, test items, true labels): the ones that can be paired."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for res in results:
        for task_name, entry in res.get("tasks", {}).items():
            if "test" not in entry:
                continue
            seeds = system_items(res, task_name, entry, metrics_dir)
            if not seeds:
                continue
            kind = entry.get("type", "classification")
            metric = "ccc" if kind == "regression" else "uar"
            first = seeds[0]
            key = (res["corpus"], task_name, kind, tuple(first.ids), tuple(map(str, first.y_true)))
            groups.setdefault(key, []).append({
                "name": f"{res['backbone']} / {res['head']}", "backbone": res["backbone"], "head": res["head"],
                "seeds": seeds, "metric": metric, "value": entry["test"].get(metric),
                "classes": list(entry.get("classes") or []),
            })
    return groups


def _stats(system: dict[str, Any], kind: str, clusters: Clusters) -> np.ndarray:
    if kind == "regression":
        per_seed = [moment_stats(s.y_true.astype(float), s.y_pred.astype(float), clusters) for s in system["seeds"]]
    else:
        per_seed = [confusion_stats(s.y_true, s.y_pred, system["classes"], clusters) for s in system["seeds"]]
    return np.mean(per_seed, axis=0)


def _correct(system: dict[str, Any]) -> np.ndarray:
    return np.mean([s.y_true == s.y_pred for s in system["seeds"]], axis=0) > 0.5


def compare(results: list[dict[str, Any]], metrics_dir: str | Path,
            settings: UncertaintySettings | None = None) -> list[dict[str, Any]]:
    """Every paired comparison on the leaderboard's test rows, Holm-corrected across all of them.

    Within a group, systems are ordered by their headline score (best first), so ``diff`` = a − b
    is the lead of ``a`` over ``b``. ``settings`` default to the ``evaluation`` params (:func:`configure`).
    """
    settings = settings or active()
    rows = []
    for (corpus, task, kind, _, _), systems in sorted(collect_systems(results, Path(metrics_dir)).items(),
                                                      key=lambda kv: kv[0][:2]):
        systems = sorted(systems, key=lambda s: -(s["value"] if s["value"] is not None and np.isfinite(s["value"]) else -np.inf))
        # one group shares its test items, so its clusters and each system's statistics are computed once
        clusters = Clusters.of(systems[0]["seeds"][0].units)
        stats = [_stats(s, kind, clusters) for s in systems]
        for (i, a), (j, b) in itertools.combinations(enumerate(systems), 2):
            k = len(a["classes"]) if kind == "classification" else None
            data = PairedData(stats[i], stats[j], metric_scorer(kind, a["metric"], k), clusters)
            row = {"corpus": corpus, "task": task, "split": "test", "a": a["name"], "b": b["name"],
                   "metric": a["metric"], "a_value": a["value"], "b_value": b["value"],
                   "n": len(a["seeds"][0].ids), **paired_test(data, settings)}
            if kind == "classification":
                row.update(mcnemar(_correct(a), _correct(b)))
            rows.append(row)
    for test in ("p_permutation", "p_mcnemar"):
        for row, adjusted in zip(rows, holm([r.get(test) for r in rows])):
            if adjusted is not None:
                row[f"{test}_holm"] = adjusted
    return rows


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2g}" if value >= 0.001 else "<0.001"


PAIRED_NOTE = ("Same corpus, task and test items. a − b of the headline metric with a 95 % paired cluster-bootstrap "
               "interval; p: cluster permutation test; McNemar: exact test on per-item correctness; "
               "Holm: corrected across every comparison below.")


def _diff(r: dict[str, Any]) -> str:
    ci = r.get("ci")
    return f"{r['diff']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")


TABLE_COLUMNS: list[tuple[str, Any]] = [
    *((k, (lambda r, k=k: str(r[k]))) for k in ("corpus", "task", "a", "b", "metric")),
    ("a − b [95% CI]", _diff),
    ("p", lambda r: _p(r.get("p_permutation"))),
    ("p (Holm)", lambda r: _p(r.get("p_permutation_holm"))),
    ("McNemar p", lambda r: _p(r.get("p_mcnemar"))),
    ("McNemar p (Holm)", lambda r: _p(r.get("p_mcnemar_holm"))),
    ("clusters", lambda r: str(r["clusters"])),
]
"""The comparisons table's columns (name, cell text of a row): the Markdown and the HTML report show the same."""


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The report's paired-comparisons section (empty when nothing can be paired)."""
    if not rows:
        return []
    lines = ["## Paired comparisons (test)", "", PAIRED_NOTE, "",
             "| " + " | ".join(name for name, _ in TABLE_COLUMNS) + " |",
             "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell(r) for _, cell in TABLE_COLUMNS) + " |" for r in rows]
    lines.append("")
    return lines


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """The comparisons as a CSV (one row per pair; the interval as ``ci_low``/``ci_high``)."""
    frame = pd.DataFrame(rows)
    if "ci" in frame:
        cis = frame.pop("ci")
        frame["ci_low"] = [c[0] if c else None for c in cis]
        frame["ci_high"] = [c[1] if c else None for c in cis]
    with atomic_file(path) as f:
        frame.to_csv(f, index=False)


def heatmap_figure(rows: list[dict[str, Any]]):
    """One panel per (corpus, task): row system − column system, starred where Holm's p < 0.05 (None without rows)."""
    if not rows:
        return None
    plt = pyplot()
    panels = sorted({(r["corpus"], r["task"]) for r in rows})
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 4.5 * len(panels)), squeeze=False)
    for ax, (corpus, task) in zip(axes[:, 0], panels):
        part = [r for r in rows if (r["corpus"], r["task"]) == (corpus, task)]
        names = list(dict.fromkeys([n for r in part for n in (r["a"], r["b"])]))
        diff = np.full((len(names), len(names)), np.nan)
        for r in part:
            i, j = names.index(r["a"]), names.index(r["b"])
            diff[i, j], diff[j, i] = r["diff"], -r["diff"]
        bound = np.nanmax(np.abs(diff)) if np.isfinite(diff).any() else 1.0
        for r in part:
            i, j = names.index(r["a"]), names.index(r["b"])
            star = "*" if (r.get("p_permutation_holm") or 1) < 0.05 else ""
            for (y, x), d in (((i, j), r["diff"]), ((j, i), -r["diff"])):
                colour = "white" if bound and abs(d) > 0.6 * bound else "black"  # readable on the dark ends of RdBu
                ax.text(x, y, f"{d + 0.0:+.3f}{star}", ha="center", va="center", fontsize=7, color=colour)  # + 0.0: no "-0.000"
        im = ax.imshow(diff, cmap="RdBu", vmin=-bound, vmax=bound)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(f"{corpus} · {task}: row − column, {part[0]['metric']} (* Holm p < 0.05)")
        fig.colorbar(im, ax=ax, shrink=0.7)
    fig.tight_layout()
    return fig


def heatmap(rows: list[dict[str, Any]], png: Path) -> None:
    """The comparisons' heatmap (:func:`heatmap_figure`) as a PNG, written atomically."""
    fig = heatmap_figure(rows)
    save_png(fig if fig is not None else placeholder("no paired comparisons (need two systems on the same test items)"), png)
