"""The report: leaderboard (JSON + Markdown), skipped-items report and plots.

``metrics/leaderboard.json`` is a list of rows ``corpus, task, backbone, head, split, uar, war,
macro_f1, weighted_f1, ccc, n`` (plus ``layer`` and ``norm``); classification rows have ``ccc:
null``, regression rows null classification metrics. Plots: one confusion-matrix CSV per experiment for
``dvc plots`` (template ``confusion``) and a per-class accuracy (recall) bar chart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from pipeline.core.errors import StoreError
from pipeline.core.io import atomic_dir, atomic_file, read_json, write_json
from pipeline.core.paths import experiment_path, predictions_dir
from pipeline.experiment.results import leaderboard_rows
from pipeline.report.layers import plot_layer_scores

COLUMNS = ["corpus", "task", "backbone", "head", "split", "uar", "war", "macro_f1", "weighted_f1", "ccc", "n", "layer", "norm"]
SCORES = ("uar", "war", "macro_f1", "weighted_f1", "ccc")


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
    """Write leaderboard.json/.md, skipped.json and plots under ``metrics_dir``; return the rows."""
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

    markdown = render_markdown(rows, skipped_combos, media)
    with atomic_file(metrics_dir / "leaderboard.md") as f:
        f.write(markdown)
    with atomic_dir(metrics_dir / "plots") as tmp:
        write_plots(tmp, metrics_dir, results)
    return {"rows": rows, "markdown": markdown}


def render_markdown(rows: list[dict], skipped_combos: list[dict], media: list[dict]) -> str:
    lines = ["# AffectBench leaderboard", ""]
    df = pd.DataFrame(rows, columns=COLUMNS)
    for split in ("test", "dev"):
        part = df[df["split"] == split].drop(columns="split")
        if part.empty:
            continue
        lines += [f"## {split}", "", _table(part), ""]
    if skipped_combos:
        lines += ["## Skipped combinations", ""]
        lines += [f"- {s['corpus']} × {s['backbone']} × {s['head']}: {s['reason']}" for s in skipped_combos]
        lines.append("")
    if media:
        lines += ["## Skipped media (on_bad_media: skip)", ""]
        lines += [f"- {m['corpus']}/{m['id']}: {m['file']} — {m['reason']}" for m in media]
        lines.append("")
    return "\n".join(lines)


def _table(df: pd.DataFrame) -> str:
    fmt = df.copy()
    for col in SCORES:
        fmt[col] = fmt[col].map(lambda v: "–" if v is None or pd.isna(v) else f"{v:.3f}")
    header = "| " + " | ".join(fmt.columns) + " |"
    sep = "|" + "|".join("---" for _ in fmt.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in fmt.itertuples(index=False)]
    return "\n".join([header, sep, *body])


def write_plots(out: Path, metrics_dir: Path, results: list[dict]) -> None:
    """Confusion CSVs (test predictions) for dvc plots, and the per-class accuracy chart."""
    conf_dir = out / "confusion"
    conf_dir.mkdir(parents=True)
    for res in results:
        pred_dir = predictions_dir(res["corpus"], res["backbone"], res["head"], metrics_dir)
        for task, entry in res["tasks"].items():
            if entry.get("type") == "regression":
                continue
            src = pred_dir / f"{task}.csv"
            preds = pd.read_csv(src)
            test = preds[preds["split"] == "test"]
            if test.empty:
                test = preds
            name = f"{res['corpus']}-{task}-{res['backbone']}-{res['head']}.csv"
            test[["actual", "predicted"]].to_csv(conf_dir / name, index=False)
    per_class_chart(out / "per_class_accuracy.png", results)
    layer_csvs = [
        path
        for res in results
        for task in res["tasks"]
        if (path := predictions_dir(res["corpus"], res["backbone"], res["head"], metrics_dir) / f"{task}_layers.csv").exists()
    ]
    plot_layer_scores(layer_csvs, out / "layers.png")


def per_class_chart(path: Path, results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, str, str], list[tuple[str, dict]]] = {}
    for res in results:
        for task, entry in res["tasks"].items():
            if entry.get("type") == "regression":
                continue
            split = "test" if "test" in entry else "dev"
            label = f"{res['backbone']} / {res['head']}"
            groups.setdefault((res["corpus"], task, split), []).append((label, entry[split]))
    n = max(1, len(groups))
    if not groups:  # only regression tasks: nothing per class to draw, but keep the output
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no classification tasks", ha="center")
        fig.savefig(path)
        plt.close(fig)
        return
    fig, axes = plt.subplots(n, 1, figsize=(8, 3.2 * n), squeeze=False)
    for ax, ((corpus, task, split), items) in zip(axes[:, 0], sorted(groups.items())):
        classes = items[0][1]["classes"]
        width = 0.8 / len(items)
        for k, (label, m) in enumerate(items):
            vals = [m["per_class_recall"][c] or 0.0 for c in classes]
            ax.bar([i + k * width for i in range(len(classes))], vals, width, label=f"{label} (UAR {m['uar']:.2f})")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(classes))], classes)
        ax.set_ylim(0, 1)
        ax.set_ylabel("recall")
        ax.axhline(1 / len(classes), color="grey", lw=0.8, ls="--")
        ax.set_title(f"{corpus} · {task}: per-class accuracy ({split})")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
