"""metrics/report.html: the offline report page (issue 13), checked as HTML and in a real headless Chromium.

Two probes (a layered store with ``layer: best``, and a noisy copy) on a tiny synthetic corpus with a
classification and a regression task, plus one skipped combination whose reason holds markup; the
report is built by the report code itself. Chromium loads the page with DNS disabled, dumps its DOM
(counted: charts, tables) and takes a screenshot whose chart regions must be drawn. Skips without a
Chromium binary (CI installs Debian's ``chromium``). ~15 s.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.manifest import Corpus, Task
from pipeline.core.paths import experiment_path, model_dir, predictions_dir
from pipeline.core.store import FeatureStore, write_store
from pipeline.experiment.results import leaderboard_rows, write_skipped
from pipeline.heads.probe.run import run_probe
from pipeline.report.build import build_report, collect, per_class_figure
from pipeline.report.html import render_html
from tests.factories import feature_corpus

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM = next((path for name in BROWSERS if (path := shutil.which(name))), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=f"no Chromium binary on PATH (looked for {', '.join(BROWSERS)})")

ODD_REASON = 'no <script>alert("x")</script> & no video stream'
EXPERIMENTS = [("toy", "logreg", "probe"), ("noisy", "logreg", "probe"), ("video", "logreg", "probe")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Metrics of two probes and one skipped combination, and build_report's output over them."""
    tmp = tmp_path_factory.mktemp("html")
    corpus, store = feature_corpus(tmp, n_per=12, layers=3)
    df = corpus.manifest.copy()
    speakers = {"train": ["s1", "s2"], "dev": ["s3"], "test": ["s4", "s5", "s6"]}
    df["speaker"] = [speakers[s][i % len(speakers[s])] for i, s in enumerate(df["split"])]
    df["arousal"] = [float(corpus.tasks[0].classes.index(c)) + 0.3 * (i % 3) for i, c in enumerate(df["emotion"])]
    tasks = [corpus.tasks[0], Task("arousal", "regression")]
    syn = Corpus("syn", df, tasks, corpus.root)
    X = store.pooled(store.ids)
    noisy = tmp / "noisy.zarr"
    write_store(noisy, ids=store.ids, pooled=X + np.random.default_rng(0).normal(0, 2.0, X.shape).astype(X.dtype),
                attrs={"backbone": "noisy"})
    metrics = tmp / "metrics"
    for s, backbone in ((store, "toy"), (FeatureStore(noisy), "noisy")):
        run_probe(syn, s, "logreg", {"C_grid": [0.01, 1.0], "layer": "best"}, model_dir=tmp / "m" / backbone,
                  metrics_path=experiment_path("syn", backbone, "logreg", metrics),
                  predictions_dir=predictions_dir("syn", backbone, "logreg", metrics))
    write_skipped({"corpus": "syn", "backbone": "video", "head": "logreg"}, ODD_REASON,
                  metrics_path=experiment_path("syn", "video", "logreg", metrics),
                  predictions_dir=predictions_dir("syn", "video", "logreg", metrics),
                  model_dir=tmp / model_dir("syn", "video", "logreg"))
    return metrics, build_report(metrics, ["syn"], EXPERIMENTS)


def test_the_page_is_written_self_contained_and_reproducible(report):
    metrics, out = report
    page = (metrics / "report.html").read_text()
    assert page == out["html"]
    assert not re.search(r"\b(https?|ftp|file):", page), "the page must not name any URL"
    # links and references only within the page (#id) or inline (the colour bars' data: PNGs)
    ids = re.findall(r'\bid="([^"]+)"', page)
    for ref in re.findall(r'\bhref="([^"]*)"', page) + re.findall(r"url\(([^)]*)\)", page):
        assert ref.startswith("data:image/png;base64,") or ref[1:] in ids, ref[:80]
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b|\bsrc=|@import|url\((?!#)", page)
    assert len(page) < 2_000_000
    # rendered again from the same inputs, the same bytes: the page is a DVC output hashed in dvc.lock
    # (without a fixed svg.hashsalt matplotlib draws new random element ids on every save)
    results, skipped = collect(metrics, ["syn"], EXPERIMENTS)
    assert render_html(out["rows"], results, skipped, [], out["comparisons"], metrics) == page
    assert len(ids) == len(set(ids)), "inline SVGs must not share element ids"


def test_sections_scores_with_intervals_and_escaped_names(report):
    _, out = report
    page = out["html"]
    for section in ("leaderboard", "confusion", "per-class", "layers", "units", "paired", "skipped"):
        assert f'<section id="{section}">' in page
    for row in out["rows"]:  # every leaderboard score is shown with its interval
        low, high = row["ci"]["uar" if row["uar"] is not None else "ccc"]
        value = row["uar"] if row["uar"] is not None else row["ccc"]
        assert f'{value:.3f} <span class="ci">[{low:.3f}, {high:.3f}]</span>' in page
    pair = next(c for c in out["comparisons"] if c["task"] == "emotion")
    assert f"{pair['diff']:+.3f}" in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; no video stream" in page
    assert "<script" not in page
    assert page.count('<table class="confusion">') == 2  # two experiments, one classification task each
    assert 'data-chart="layers"' in page and 'data-chart="units"' in page


def test_odd_names_are_escaped_in_tables_and_captions():
    """Corpus, backbone, head and class names go through html.escape everywhere (synthetic result, no files)."""
    classes = ["<neu>", "a&b"]
    split = {"n": 8, "uar": 0.875, "war": 0.875, "macro_f1": 0.87, "weighted_f1": 0.87, "ccc": None, "classes": classes,
             "per_class_recall": {"<neu>": 0.75, "a&b": 1.0}, "confusion": [[3, 1], [0, 4]],
             "ci": {"intervals": {"uar": [0.5, 1.0]}, "unit": "speaker", "clusters": 2, "level": 0.95}}
    result = {"corpus": "c<1>", "backbone": 'b&"x', "head": "h'", "tasks": {"emotion": {
        "type": "classification", "classes": classes, "folds": [{"fold": "official", "dev_note": ""}], "test": split}}}
    page = render_html(leaderboard_rows(result), [result], [], [], [], Path("/nonexistent"))
    assert "c&lt;1&gt;" in page and "b&amp;&quot;x" in page and "h&#x27;" in page
    assert "<neu>" not in page and "&lt;neu&gt;" in page and "a&amp;b" in page
    assert '0.875 <span class="ci">[0.500, 1.000]</span>' in page
    table = page[page.index('<table class="confusion">'):]
    assert re.search(r"<th>&lt;neu&gt;</th><td[^>]*>3</td><td[^>]*>1</td><td[^>]*>0.750</td>", table)
    assert "No layer sweeps" in page and "No paired comparisons" in page and "No test predictions" in page  # no files


def test_the_per_class_legend_does_not_cover_the_bars(report):
    from pipeline.core.io import read_json

    metrics, _ = report
    results = [read_json(experiment_path("syn", b, "logreg", metrics)) for b in ("toy", "noisy")]
    fig = per_class_figure(results)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend().get_window_extent(renderer)
        assert not legend.overlaps(ax.get_window_extent(renderer))  # outside the axes altogether
        assert legend.x1 <= fig.bbox.x1 + 1  # and not cut off at the figure's edge


def chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Headless Chromium with DNS resolution disabled (nothing may be fetched) and a throwaway profile."""
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--force-device-scale-factor=1", '--host-resolver-rules=MAP * ~NOTFOUND', f"--user-data-dir={cwd / 'profile'}",
           *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


MEASURE = """<script>
const boxes = [...document.querySelectorAll("figure.chart svg, table.confusion")].map(e => {
  const r = e.getBoundingClientRect();
  return {kind: e.tagName.toLowerCase(), x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height};
});
const height = document.documentElement.scrollHeight;
const pre = document.createElement("pre"); pre.id = "boxes";
pre.textContent = JSON.stringify({height, boxes}); document.body.appendChild(pre);
</script>"""


@needs_chromium
def test_chromium_renders_every_chart_offline(report, tmp_path):
    from PIL import Image

    metrics, _ = report
    page = metrics / "report.html"
    n_results, n_tasks = 2, 2

    # the page's DOM as Chromium built it, and where each chart lies: dumped from a copy with a measuring
    # script appended after all content (the layout above it is the page's own)
    probe = tmp_path / "measure.html"
    probe.write_text(page.read_text().replace("</body>", MEASURE + "\n</body>"))
    measured = chromium("--dump-dom", probe.as_uri(), cwd=tmp_path).stdout
    dom, _, tail = measured.partition("<script>\nconst boxes")
    assert tail and "<script" not in dom  # the skipped reason's markup stayed text
    assert dom.count("<svg") == 1 + 1 + n_tasks + 1  # per-class, layer curves, one breakdown per task, paired heatmap
    assert dom.count('class="confusion"') == 2 * n_results  # figure + table per classification experiment
    assert dom.count('<table class="leaderboard') == 2 and dom.count('<table class="paired"') == 1
    layout = json.loads(re.search(r'<pre id="boxes">(.*?)</pre>', tail, re.DOTALL).group(1).replace("&quot;", '"'))
    height = int(layout["height"])
    assert len(layout["boxes"]) == 5 + 2 and all(b["w"] > 100 and b["h"] > 50 for b in layout["boxes"])

    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", f"--window-size=1280,{height}", page.resolve().as_uri(), cwd=tmp_path)
    image = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    assert image.shape[:2] == (height, 1280)
    ink = (image < 235).any(axis=2)  # not (near) white
    assert 0.02 < ink.mean() < 0.6 and image.std() > 20
    for box in layout["boxes"]:
        x, y, w, h = (round(box[k]) for k in ("x", "y", "w", "h"))
        region = image[y:y + h, x:x + w]
        assert region.shape[0] == h and region.shape[1] == w, box
        colours = len(np.unique((region // 32) @ np.array([64, 8, 1])))  # distinct colours, 3 bits per channel
        assert ink[y:y + h, x:x + w].mean() > 0.03 and colours >= 3, (box, ink[y:y + h, x:x + w].mean(), colours)
