"""``metrics/report.html``: the whole report as one self-contained page, readable offline.

What it shows, in order: the leaderboard (test, then dev) with 95 % intervals — the same columns as
``leaderboard.md`` (:func:`pipeline.report.build.leaderboard_columns`); one confusion matrix per
experiment and classification task (test split, else dev; an HTML table, cells shaded by the row's
share, with each class's recall); the per-class accuracy chart; the layer curves of ``layer: best``
probes; the per-speaker (or group) breakdown (:mod:`.breakdown`); the paired comparisons (table,
as in the Markdown, and heatmap); skipped combinations and media.

Why this form (issue 13): ``dvc plots show`` writes HTML that loads Vega from a CDN, so offline it
shows no chart. Here every chart is matplotlib SVG inlined in the page (:func:`.figures.svg_markup`:
text as paths, no fonts to fetch); the page has no script, no stylesheet or image link and no URL at
all (not even SVG namespace URIs), system fonts only. It is a DVC output hashed in ``dvc.lock``, so
it is byte-deterministic: no timestamps, fixed SVG id salt, everything in a fixed order. Names
(corpora, backbones, heads, classes, speakers) are HTML-escaped.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from pipeline.report.breakdown import unit_figure, unit_panels
from pipeline.report.build import INTRO, SPLITS, layer_csvs, leaderboard_columns, per_class_figure
from pipeline.report.figures import svg_markup
from pipeline.report.layers import layer_figure
from pipeline.report.paired import PAIRED_NOTE, heatmap_figure
from pipeline.report.paired import TABLE_COLUMNS as PAIRED_COLUMNS

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 1.5rem 2rem;
       color: #1b1b1b; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: 0.3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; }
h3 { font-size: 1.05rem; margin-top: 1.2rem; }
nav a { margin-right: 1rem; }
table { border-collapse: collapse; font-size: 0.82rem; margin: 0.4rem 0 1rem; }
th, td { border: 1px solid #d0d0d0; padding: 0.2rem 0.45rem; text-align: left; vertical-align: top; }
thead th { background: #f1f3f5; }
td.num, table.confusion td { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.ci { color: #555; font-size: 0.92em; }
figure { margin: 0.6rem 0 1.4rem; }
figcaption { font-size: 0.85rem; color: #333; margin-bottom: 0.3rem; }
figure.chart svg { max-width: 100%; height: auto; }
.confusions { display: flex; flex-wrap: wrap; gap: 0 2rem; }
table.confusion td.diag { font-weight: bold; outline: 1px solid #333; }
code { background: #f4f4f4; padding: 0 0.2em; }
p.none { color: #666; font-style: italic; }
"""

SHADES = 10
"""Confusion cells are shaded in this many steps of their row's share (CSS classes s0 … s10)."""
STYLE += "".join(f"table.confusion td.s{k} {{ background: rgba(33, 102, 172, {0.9 * k / SHADES:.2f});"
                 f"{' color: #fff;' if k > 0.55 * SHADES else ''} }}\n" for k in range(SHADES + 1))

_SCORE = re.compile(r"^([-+]?\d+\.\d+) (\[[-+]?\d+\.\d+, [-+]?\d+\.\d+\])$")


def _text(value: Any) -> str:
    """Escaped text, with Markdown-style `code` spans (the shared notes use them) as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(value)))


def _cell(text: str) -> str:
    """A table cell; a score with its interval gets the interval in a lighter span."""
    m = _SCORE.match(text)
    if m:
        return f'<td class="num">{html.escape(m.group(1))} <span class="ci">{html.escape(m.group(2))}</span></td>'
    return f"<td>{html.escape(text)}</td>"


def _table(columns: list[tuple[str, Any]], rows: list[dict], css: str) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in columns)
    body = "\n".join("<tr>" + "".join(_cell(cell(r)) for _, cell in columns) + "</tr>" for r in rows)
    return f'<table class="{css}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>'


def _chart(svg: str, name: str, caption: str) -> str:
    return f'<figure class="chart" data-chart="{name}">\n<figcaption>{_text(caption)}</figcaption>\n{svg}\n</figure>'


def _none(text: str) -> str:
    return f'<p class="none">{_text(text)}</p>'


def confusion_table(name: str, split: str, metrics: dict[str, Any]) -> str:
    """One confusion matrix (rows: actual, columns: predicted) as an HTML table, cells shaded by their row's share
    (:data:`SHADES` steps), the diagonal outlined, each class's recall in the last column."""
    classes = [str(c) for c in metrics["classes"]]
    matrix = metrics["confusion"]
    recall = metrics.get("per_class_recall") or {}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in classes)
    body = []
    for i, (label, counts) in enumerate(zip(classes, matrix)):
        total = sum(counts)
        cells = []
        for j, count in enumerate(counts):
            level = round(SHADES * count / total) if total else 0  # a class per shade: 12 bytes a cell, not a style
            cells.append(f'<td class="s{level}{" diag" if i == j else ""}">{count}</td>')
        r = recall.get(metrics["classes"][i])
        cells.append(f'<td class="num">{"–" if r is None else f"{r:.3f}"}</td>')
        body.append(f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>")
    uar = metrics.get("uar")
    caption = f"{name} ({split}, n = {metrics.get('n')}" + (f", UAR {uar:.3f}" if uar is not None else "") + ")"
    return (f'<figure class="confusion">\n<figcaption>{html.escape(caption)}</figcaption>\n'
            f'<table class="confusion">\n<thead><tr><th>actual \\ predicted</th>{head}<th>recall</th></tr></thead>\n'
            f"<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n</figure>")


def confusion_section(results: list[dict[str, Any]]) -> list[str]:
    """Every experiment's confusion matrices (classification tasks; test split, else dev)."""
    tables = []
    for res in results:
        for task, entry in res["tasks"].items():
            if entry.get("type") == "regression":
                continue
            split = "test" if "test" in entry else "dev"
            if "confusion" not in entry.get(split, {}):
                continue
            name = f"{res['corpus']} · {task} · {res['backbone']} / {res['head']}"
            tables.append(confusion_table(name, split, entry[split]))
    if not tables:
        return [_none("No classification tasks.")]
    return ['<div class="confusions">', *tables, "</div>"]


def render_html(rows: list[dict], results: list[dict[str, Any]], skipped_combos: list[dict], media: list[dict],
                comparisons: list[dict] | None, metrics_dir: str | Path) -> str:
    """The report page (see the module docstring) from what :func:`pipeline.report.build.build_report` computed."""
    comparisons = comparisons or []
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>AffectBench report</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
           "<h1>AffectBench report</h1>",
           (f"<p>{len(results)} experiments, {len(rows)} leaderboard rows, {len(comparisons)} paired comparisons, "
           f"{len(skipped_combos)} skipped combinations, {len(media)} skipped media files.</p>"),
           ('<nav><a href="#leaderboard">Leaderboard</a><a href="#confusion">Confusion matrices</a>'
           '<a href="#per-class">Per-class accuracy</a><a href="#layers">Layer curves</a>'
           '<a href="#units">Per speaker</a><a href="#paired">Paired comparisons</a><a href="#skipped">Skipped</a></nav>')]

    out += ['<section id="leaderboard">', "<h2>Leaderboard</h2>", f"<p>{_text(INTRO)}</p>"]
    for split in SPLITS:
        part = [r for r in rows if r["split"] == split]
        if part:
            out += [f"<h3>{split}</h3>", _table(leaderboard_columns(part), part, f"leaderboard {split}")]
    if not rows:
        out.append(_none("No leaderboard rows."))
    out.append("</section>")

    out += ['<section id="confusion">', "<h2>Confusion matrices</h2>",
            ("<p>Rows: actual class, columns: predicted; pooled over folds (and summed over seeds); "
            "shading: the share of the row.</p>"), *confusion_section(results), "</section>"]

    out += ['<section id="per-class">', "<h2>Per-class accuracy</h2>"]
    fig = per_class_figure(results)
    out.append(_none("No classification tasks.") if fig is None else _chart(
        svg_markup(fig, "per-class"), "per-class", "Recall per class; error bars: 95 % cluster-bootstrap intervals; "
        "dashed: chance."))
    out.append("</section>")

    out += ['<section id="layers">', "<h2>Layer curves</h2>"]
    fig = layer_figure(layer_csvs(results, Path(metrics_dir)))
    out.append(_none("No layer sweeps (`layer: best`) in this run.") if fig is None else _chart(
        svg_markup(fig, "layers"), "layers", "Dev score per layer (mean over folds); ★: the chosen layer."))
    out.append("</section>")

    out += ['<section id="units">', "<h2>Per speaker (or group)</h2>"]
    panels = unit_panels(results, metrics_dir)
    for k, panel in enumerate(panels):
        out.append(_chart(svg_markup(unit_figure(panel), f"units-{k}"), "units",
                          f"{panel.corpus} · {panel.task}: test {panel.metric} per {panel.unit}"))
    if not panels:
        out.append(_none("No test predictions."))
    out.append("</section>")

    out += ['<section id="paired">', "<h2>Paired comparisons (test)</h2>"]
    if comparisons:
        out += [f"<p>{_text(PAIRED_NOTE)}</p>", _table(PAIRED_COLUMNS, comparisons, "paired"),
                _chart(svg_markup(heatmap_figure(comparisons), "paired"), "paired",
                       "Row system − column system of the headline metric; *: Holm p < 0.05.")]
    else:
        out.append(_none("No paired comparisons (they need two systems on the same test items)."))
    out.append("</section>")

    out += ['<section id="skipped">', "<h2>Skipped</h2>", "<h3>Combinations</h3>"]
    out.append("<ul>\n" + "\n".join(f"<li>{html.escape(s['corpus'])} × {html.escape(s['backbone'])} × "
                                     f"{html.escape(s['head'])}: {html.escape(str(s['reason']))}</li>"
                                     for s in skipped_combos) + "\n</ul>" if skipped_combos else _none("None."))
    out.append("<h3>Media (on_bad_media: skip)</h3>")
    out.append("<ul>\n" + "\n".join(f"<li>{html.escape(m['corpus'])}/{html.escape(str(m['id']))}: "
                                     f"{html.escape(str(m['file']))} — {html.escape(str(m['reason']))}</li>"
                                     for m in media) + "\n</ul>" if media else _none("None."))
    out += ["</section>", "</body>", "</html>", ""]
    return "\n".join(out)
