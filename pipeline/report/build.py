"""The report: leaderboard (JSON + Markdown), skipped-items report, paired comparisons and plots.

``metrics/leaderboard.json`` is a list of rows ``corpus, task, backbone, head, split, uar, war,
macro_f1, weighted_f1, ccc, n`` (plus ``layer`` and ``norm``); classification rows have ``ccc:
null``, regression rows null classification metrics. Each row also carries its uncertainty
(:func:`pipeline.experiment.results.uncertainty_fields`): ``ci`` ({metric: [low, high]}, 95 %
cluster bootstrap, ``ci_unit``/``n_units`` what was resampled), ``fold_mean_std``/``seed_mean_std``,
``positive_f1``/``auroc`` for binary tasks, and ``dev_note``/``dev_independent``. The Markdown
shows every score with its interval, mean ± std over folds (and seeds), the number of units and
a note where dev is not speaker-independent or the interval rests on few units; then the paired
comparisons (:mod:`.paired`). Plots: one confusion-matrix CSV per experiment for ``dvc plots``
(template ``confusion``), a per-class accuracy (recall) bar chart with interval error bars, and the
paired comparisons as ``paired.csv`` and a heatmap ``paired.png``. ``metrics/report.html`` is the
same report for a browser, offline (:mod:`.html`): it reuses the tables' columns and the figures
defined here and in :mod:`.paired` and :mod:`.layers`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.errors import StoreError
from pipeline.core.io import atomic_dir, atomic_file, read_json, write_json
from pipeline.core.paths import experiment_path, predictions_dir
from pipeline.experiment.results import leaderboard_rows
from pipeline.report.figures import placeholder, pyplot, save_png
from pipeline.report.layers import plot_layer_scores
from pipeline.report.paired import compare
from pipeline.report.paired import heatmap as paired_heatmap
from pipeline.report.paired import markdown as paired_markdown
from pipeline.report.paired import write_csv as write_paired_csv


def collect(metrics_dir: Path, corpora: Iterable[str], experiments: Iterable[tuple[str, str, str]],
            cross: Iterable[tuple[str, str, str, str]] = ()):
    """Experiment results and skipped combinations of every ``(backbone, head, stage)`` on every corpus
    (what :meth:`pipeline.core.config.RunSettings.experiments` lists), then of every cross-corpus
    ``(<A>-to-<B>, backbone, head, stage)`` (:meth:`~pipeline.core.config.RunSettings.cross_experiments`)."""
    results, skipped = [], []
    experiments = list(experiments)
    pairs = [(c, e) for c in corpora for e in experiments] + [(c, (b, h, s)) for c, b, h, s in cross]
    for c, (b, h, stage) in pairs:
        path = experiment_path(c, b, h, metrics_dir)
        if not path.exists():
            raise StoreError(f"{path}: missing experiment result; run the {stage} stage for {c} × {b} × {h}")
        res = read_json(path)
        if "skipped" in res:
            skipped.append({"corpus": c, "backbone": b, "head": h, "reason": res["skipped"]})
        else:
            results.append(res)
    return results, skipped


def build_report(
    metrics_dir: str | Path, corpora: list[str], experiments: Iterable[tuple[str, str, str]],
    cross: Iterable[tuple[str, str, str, str]] = (),
) -> dict[str, Any]:
    """Write leaderboard.json/.md, skipped.json, plots and report.html under ``metrics_dir``; return the rows."""
    metrics_dir = Path(metrics_dir)
    results, skipped_combos = collect(metrics_dir, corpora, experiments, cross)
    rows = [r for res in results for r in leaderboard_rows(res)]
    rows.sort(key=lambda r: (r["corpus"], r["task"], r["split"], -(r["uar"] if r["uar"] is not None else r["ccc"] or 0)))
    write_json(metrics_dir / "leaderboard.json", rows)

    media = []
    for c in corpora:
        seg = metrics_dir / "segment" / f"{c}.json"
        if seg.exists():
            media += [{"corpus": c, **item} for item in read_json(seg).get("skipped", [])]
    write_json(metrics_dir / "skipped.json", {"media": media, "combinations": skipped_combos})

    comparisons = compare(results, metrics_dir)  # paired tests on rows sharing corpus, task and test items
    markdown = render_markdown(rows, skipped_combos, media, comparisons)
    with atomic_file(metrics_dir / "leaderboard.md") as f:
        f.write(markdown)
    with atomic_dir(metrics_dir / "plots") as tmp:
        write_plots(tmp, metrics_dir, results, comparisons)
    from pipeline.report.html import render_html  # html builds on this module's tables and figures

    page = render_html(rows, results, skipped_combos, media, comparisons, metrics_dir)
    with atomic_file(metrics_dir / "report.html") as f:
        f.write(page)
    return {"rows": rows, "markdown": markdown, "comparisons": comparisons, "html": page}


INTRO = ("Scores with 95 % cluster-bootstrap intervals [low, high] (the independence unit resampled; "
         "`units` says which and how many); cross-validation rows pool out-of-fold predictions, "
         "`mean ± std` is over folds (and seeds).")
"""The leaderboard's opening note (Markdown; report.html shows it too)."""
SPLITS = ("test", "dev")
"""The leaderboard's sections, in order."""


def render_markdown(rows: list[dict], skipped_combos: list[dict], media: list[dict],
                    comparisons: list[dict] | None = None) -> str:
    lines = ["# AffectBench leaderboard", "", INTRO, ""]
    for split in SPLITS:
        part = [r for r in rows if r["split"] == split]
        if part:
            lines += [f"## {split}", "", _table(part), ""]
    lines += paired_markdown(comparisons or [])
    if skipped_combos:
        lines += ["## Skipped combinations", ""]
        lines += [f"- {s['corpus']} × {s['backbone']} × {s['head']}: {s['reason']}" for s in skipped_combos]
        lines.append("")
    if media:
        lines += ["## Skipped media (on_bad_media: skip)", ""]
        lines += [f"- {m['corpus']}/{m['id']}: {m['file']} — {m['reason']}" for m in media]
        lines.append("")
    return "\n".join(lines)


FEW_UNITS = 10  # below this many clusters a percentile bootstrap interval is coarse: the row says so


def _score(row: dict, key: str, ci_key: str | None = None) -> str:
    value = row.get(key)
    if value is None or pd.isna(value):
        return "–"
    low_high = (row.get("ci") or {}).get(ci_key or key)
    return f"{value:.3f}" + (f" [{low_high[0]:.3f}, {low_high[1]:.3f}]" if low_high else "")


def _spread(row: dict) -> str:
    metric = "uar" if row.get("uar") is not None else "ccc"
    parts = []
    for what, summary, count in (("folds", row.get("fold_mean_std"), row.get("folds")),
                                 ("seeds", row.get("seed_mean_std"), None)):
        m = (summary or {}).get(metric) or {}
        if m.get("mean") is not None:
            parts.append(f"{m['mean']:.3f} ± {m['std']:.3f} ({count or len(summary)} {what})" if count
                         else f"{m['mean']:.3f} ± {m['std']:.3f} ({what})")
    return "; ".join(parts) or "–"


def _positive_f1(row: dict) -> str:
    if not row.get("positive"):
        return "–"
    return f"{row['positive']}: {_score(row, 'positive_f1', row['positive'] + '_f1')}"


def _notes(row: dict) -> str:
    notes = []
    if row.get("dev_independent") is False:  # the fold records' full dev_note is in the JSON row
        notes.append("dev not speaker-independent (random 20% of training utterances)")
    if row.get("n_units") is not None and row["n_units"] < FEW_UNITS:
        notes.append(f"interval from {row['n_units']} {row.get('ci_unit')}s only")
    return "; ".join(notes)


def leaderboard_columns(rows: list[dict]) -> list[tuple[str, Any]]:
    """One split's table columns (name, cell text of a row); columns that no row fills (ccc, depression
    F1/AUROC, spread) are left out. The Markdown and the HTML report show the same columns."""
    classification = any(r.get("uar") is not None for r in rows)
    columns: list[tuple[str, Any]] = [(k, (lambda r, k=k: r.get(k, ""))) for k in ("corpus", "task", "backbone", "head")]
    if any(r.get("train_corpus", r["corpus"]) != r.get("test_corpus", r["corpus"]) for r in rows):
        columns.append(("train → test", lambda r: f"{r.get('train_corpus')} → {r.get('test_corpus')}"))
    if classification:
        columns += [(k, (lambda r, k=k: _score(r, k))) for k in ("uar", "war", "macro_f1", "weighted_f1")]
    if any(r.get("positive") for r in rows):
        columns.append(("positive F1", _positive_f1))
        columns.append(("auroc", lambda r: _score(r, "auroc")))
    if any(r.get("ccc") is not None for r in rows):
        columns.append(("ccc", lambda r: _score(r, "ccc")))
    if any(r.get("fold_mean_std") or r.get("seed_mean_std") for r in rows):
        columns.append(("mean ± std", _spread))
    columns += [("n", lambda r: r.get("n")),
                ("units", lambda r: f"{r['n_units']} {r['ci_unit']}s" if r.get("n_units") is not None else "–"),
                ("layer", lambda r: r.get("layer", "")), ("norm", lambda r: r.get("norm", "global")),
                ("notes", _notes)]
    return [(name, (lambda r, cell=cell: str(cell(r)))) for name, cell in columns]


def _table(rows: list[dict]) -> str:
    """One split's Markdown table (:func:`leaderboard_columns`)."""
    columns = leaderboard_columns(rows)
    header = "| " + " | ".join(name for name, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(r) for _, cell in columns) + " |" for r in rows]
    return "\n".join([header, sep, *body])


def write_plots(out: Path, metrics_dir: Path, results: list[dict], comparisons: list[dict] | None = None) -> None:
    """Confusion CSVs (test predictions) for dvc plots, the per-class accuracy chart (with interval
    error bars), and the paired comparisons (``paired.csv``, heatmap ``paired.png``)."""
    conf_dir = out / "confusion"
    conf_dir.mkdir(parents=True)
    for res in results:
        pred_dir = predictions_dir(res["corpus"], res["backbone"], res["head"], metrics_dir)
        for task, entry in res["tasks"].items():
            if entry.get("type") == "regression":
                continue
            src = pred_dir / f"{task}.csv"
            preds = pd.read_csv(src, keep_default_na=False, na_values=[""])  # as paired.py reads it: a label 'NA' stays a label
            test = preds[preds["split"] == "test"]
            if test.empty:
                test = preds
            name = f"{res['corpus']}-{task}-{res['backbone']}-{res['head']}.csv"
            test[["actual", "predicted"]].to_csv(conf_dir / name, index=False)
    per_class_chart(out / "per_class_accuracy.png", results)
    write_paired_csv(comparisons or [], out / "paired.csv")
    paired_heatmap(comparisons or [], out / "paired.png")
    plot_layer_scores(layer_csvs(results, metrics_dir), out / "layers.png")


def layer_csvs(results: list[dict], metrics_dir: Path) -> list[Path]:
    """The layer-sweep tables (``<task>_layers.csv``, written by ``layer: best`` probes) of the results."""
    return [
        path
        for res in results
        for task in res["tasks"]
        if (path := predictions_dir(res["corpus"], res["backbone"], res["head"], metrics_dir) / f"{task}_layers.csv").exists()
    ]


def per_class_groups(results: list[dict]) -> dict[tuple[str, str, str], list[tuple[str, dict]]]:
    """Classification results by (corpus, task, split) — the test split, else dev — as (system name, metrics)."""
    groups: dict[tuple[str, str, str], list[tuple[str, dict]]] = {}
    for res in results:
        for task, entry in res["tasks"].items():
            if entry.get("type") == "regression":
                continue
            split = "test" if "test" in entry else "dev"
            label = f"{res['backbone']} / {res['head']}"
            groups.setdefault((res["corpus"], task, split), []).append((label, entry[split]))
    return dict(sorted(groups.items()))


def per_class_figure(results: list[dict]):
    """Per-class recall bars with 95 % interval error bars, one panel per (corpus, task); None without
    classification tasks. The legend sits right of the axes, never over the bars."""
    groups = per_class_groups(results)
    if not groups:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(groups), 1, figsize=(11, 3.2 * len(groups)), squeeze=False)
    for ax, ((corpus, task, split), items) in zip(axes[:, 0], groups.items()):
        classes = items[0][1]["classes"]
        width = 0.8 / len(items)
        for k, (label, m) in enumerate(items):
            vals = [m["per_class_recall"][c] or 0.0 for c in classes]
            bounds = (m.get("ci") or {}).get("per_class_recall") or {}
            err = [[v - (bounds.get(c) or [v, v])[0] for c, v in zip(classes, vals)],
                   [(bounds.get(c) or [v, v])[1] - v for c, v in zip(classes, vals)]]
            uar_ci = ((m.get("ci") or {}).get("intervals") or {}).get("uar")
            shown = f"UAR {m['uar']:.2f}" + (f" [{uar_ci[0]:.2f}, {uar_ci[1]:.2f}]" if uar_ci else "")
            ax.bar([i + k * width for i in range(len(classes))], vals, width, yerr=err if bounds else None,
                   capsize=2, error_kw={"lw": 0.8}, label=f"{label} ({shown})")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(classes))], classes)
        ax.set_ylim(0, 1)
        ax.set_ylabel("recall")
        ax.axhline(1 / len(classes), color="grey", lw=0.8, ls="--")
        ax.set_title(f"{corpus} · {task}: per-class accuracy ({split}; bars: 95 % cluster-bootstrap intervals)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def per_class_chart(path: Path, results: list[dict]) -> None:
    """The per-class accuracy chart (:func:`per_class_figure`) as a PNG for ``dvc plots``."""
    fig = per_class_figure(results)
    # only regression tasks: nothing per class to draw, but keep the output
    save_png(fig if fig is not None else placeholder("no classification tasks"), path)
