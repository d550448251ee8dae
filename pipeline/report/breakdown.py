"""Per-unit breakdown: how every system scores on each speaker (or group) of the test split.

Read from the prediction tables ``metrics/predictions/<corpus>/<backbone>/<head>/<task>.csv`` through
:func:`pipeline.report.paired.system_items` (so :func:`pipeline.experiment.scoring.table_items`):
the items each system is scored on — utterances, or subjects for speaker-level tasks — with their
independence unit (the table's ``group`` column, else ``speaker``: what the leaderboard's intervals
resample). Classification tasks show the accuracy per unit (the fraction of its items predicted right;
multi-seed heads: the mean over seeds), regression tasks the mean absolute error. One panel per
(corpus, task) holds every system with test predictions; units are ordered by their number of items
(most first, then by name), and only the first :data:`MAX_UNITS` are drawn (the panel says how many
there are) — a corpus whose unit is the dialogue has hundreds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.report.figures import pyplot
from pipeline.report.paired import system_items

MAX_UNITS = 40


@dataclass
class UnitPanel:
    """One (corpus, task): per system, its score on each unit (NaN where it has no item of the unit)."""

    corpus: str
    task: str
    metric: str  # "accuracy" | "MAE"
    unit: str  # what a unit is: speaker, session, dialogue, ...
    units: list[str]  # the units drawn (at most MAX_UNITS)
    counts: list[int]  # items per drawn unit
    n_units: int  # all units of the test split
    systems: list[tuple[str, list[float]]] = field(default_factory=list)


def _per_unit(seeds, regression: bool) -> dict[str, tuple[float, int]]:
    """{unit: (score, items)} of one system: accuracy (or MAE) per unit, averaged over its seeds."""
    first = seeds[0]
    if regression:
        per_item = np.mean([np.abs(s.y_true.astype(float) - s.y_pred.astype(float)) for s in seeds], axis=0)
    else:
        per_item = np.mean([s.y_true == s.y_pred for s in seeds], axis=0)
    units = first.units.astype(str)
    return {u: (float(per_item[units == u].mean()), int((units == u).sum())) for u in np.unique(units)}


def unit_panels(results: list[dict[str, Any]], metrics_dir: str | Path) -> list[UnitPanel]:
    """Every (corpus, task) with test predictions, as a :class:`UnitPanel` (sorted by corpus and task)."""
    grouped: dict[tuple[str, str], list[tuple[str, dict[str, tuple[float, int]], str, bool]]] = {}
    for res in results:
        for task, entry in res.get("tasks", {}).items():
            if "test" not in entry:
                continue
            seeds = system_items(res, task, entry, Path(metrics_dir))
            if not seeds:
                continue
            regression = entry.get("type") == "regression"
            unit = (entry["test"].get("ci") or {}).get("unit") or "unit"
            grouped.setdefault((res["corpus"], task), []).append(
                (f"{res['backbone']} / {res['head']}", _per_unit(seeds, regression), unit, regression))
    panels = []
    for (corpus, task), systems in sorted(grouped.items()):
        counts: dict[str, int] = {}
        for _, scores, _, _ in systems:
            for u, (_, n) in scores.items():
                counts[u] = max(counts.get(u, 0), n)
        order = sorted(counts, key=lambda u: (-counts[u], u))
        shown = order[:MAX_UNITS]
        panel = UnitPanel(corpus, task, "MAE" if systems[0][3] else "accuracy", systems[0][2], shown,
                          [counts[u] for u in shown], len(order))
        panel.systems = [(name, [scores[u][0] if u in scores else float("nan") for u in shown])
                         for name, scores, _, _ in systems]
        panels.append(panel)
    return panels


def unit_figure(panel: UnitPanel):
    """Grouped bars: one group per unit (labelled with its item count), one bar per system."""
    plt = pyplot()
    k = max(1, len(panel.systems))
    fig, ax = plt.subplots(figsize=(min(16.0, max(8.0, 3.5 + 0.28 * len(panel.units) * k)), 3.6))
    width = 0.8 / k
    x = np.arange(len(panel.units))
    for j, (name, values) in enumerate(panel.systems):
        ax.bar(x + j * width, np.nan_to_num(values), width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, [f"{u} ({n})" for u, n in zip(panel.units, panel.counts)],
                  rotation=45 if len(panel.units) > 6 else 0, ha="right" if len(panel.units) > 6 else "center", fontsize=7)
    if panel.metric == "accuracy":
        ax.set_ylim(0, 1)
    ax.set_ylabel(f"test {panel.metric}")
    shown = f"{panel.n_units} {panel.unit}s" if len(panel.units) == panel.n_units else (
        f"the {len(panel.units)} of {panel.n_units} {panel.unit}s with most items")
    ax.set_title(f"{panel.corpus} · {panel.task}: {panel.metric} per {panel.unit} (test; {shown}; items in brackets)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
