"""Layer-sweep plot: dev score per layer for every ``layer: best`` experiment.

Input files are the probe's ``metrics/predictions/<corpus>/<backbone>/<head>/<task>_layers.csv``
(columns ``layer, dev_score, metric, fold, chosen``). One panel per (corpus, task, metric), one
line per backbone/head (mean over cross-validation folds), the chosen layer(s) marked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from pipeline.report.figures import placeholder, pyplot, save_png


def read_layer_scores(csv_paths: Iterable[str | Path]) -> pd.DataFrame:
    """All layer CSVs in one frame, with corpus/backbone/head/task taken from each path."""
    frames = []
    for path in map(Path, csv_paths):
        df = pd.read_csv(path)
        df["task"] = path.name.removesuffix("_layers.csv")
        head_dir = path.parent  # .../<corpus>/<backbone>/<head>/<task>_layers.csv
        df["head"], df["backbone"], df["corpus"] = head_dir.name, head_dir.parent.name, head_dir.parent.parent.name
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def layer_figure(csv_paths: Iterable[str | Path]):
    """Dev score against layer for every layer CSV (one panel per corpus, task and metric), or None without any."""
    df = read_layer_scores(csv_paths)
    if df.empty:
        return None
    plt = pyplot()
    panels = sorted(df.groupby(["corpus", "task", "metric"]).groups)
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 3 * len(panels)), squeeze=False)
    for ax, (corpus, task, metric) in zip(axes[:, 0], panels):
        part = df[(df["corpus"] == corpus) & (df["task"] == task) & (df["metric"] == metric)]
        for (backbone, head), g in part.groupby(["backbone", "head"]):
            curve = g.groupby("layer")["dev_score"].mean()
            (line,) = ax.plot(curve.index, curve.to_numpy(), marker=".", label=f"{backbone} / {head}")
            chosen = sorted(g.loc[g["chosen"].astype(bool), "layer"].unique())
            ax.plot(chosen, curve.reindex(chosen).to_numpy(), "*", ms=12, color=line.get_color())
        ax.set_xlabel("layer")
        ax.set_ylabel(f"dev {metric}")
        ax.set_title(f"{corpus} · {task}: dev {metric} per layer (★ chosen)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_layer_scores(csv_paths: Iterable[str | Path], png: str | Path) -> None:
    """Draw dev score against layer for every layer CSV into ``png`` (written atomically)."""
    fig = layer_figure(csv_paths)
    save_png(fig if fig is not None else placeholder("no layer sweeps (layer: best)"), png)
