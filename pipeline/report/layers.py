"""Layer-sweep plot: dev score per layer for every ``layer: best`` experiment.

Input files are the probe's ``metrics/predictions/<corpus>/<backbone>/<head>/<task>_layers.csv``
(columns ``layer, dev_score, metric, fold, chosen``). One panel per (corpus, task, metric), one
line per backbone/head (mean over cross-validation folds), the chosen layer(s) marked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from pipeline.core.io import atomic_file


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


def plot_layer_scores(csv_paths: Iterable[str | Path], png: str | Path) -> None:
    """Draw dev score against layer for every layer CSV into ``png`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = read_layer_scores(csv_paths)
    panels = sorted(df.groupby(["corpus", "task", "metric"]).groups) if not df.empty else []
    fig, axes = plt.subplots(max(1, len(panels)), 1, figsize=(7, 3 * max(1, len(panels))), squeeze=False)
    if not panels:
        axes[0, 0].axis("off")
        axes[0, 0].text(0.5, 0.5, "no layer sweeps (layer: best)", ha="center")
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
    with atomic_file(png, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
