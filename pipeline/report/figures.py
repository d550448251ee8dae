"""Matplotlib figures of the report, saved reproducibly: PNG for ``dvc plots``, inline SVG for report.html.

Both outputs are DVC outputs hashed in ``dvc.lock``, so a fresh clone must write the same bytes.
PNGs carry no date; SVGs are written with a fixed ``svg.hashsalt`` (matplotlib otherwise salts its
element ids with random bytes), ``metadata={"Date": None}`` and text as paths (``svg.fonttype:
path``: the glyphs travel inside the file, so the page needs no font at view time). For inlining into
HTML, :func:`svg_markup` drops the XML prologue, the RDF ``<metadata>`` block and the namespace
declarations (the HTML parser puts ``<svg>`` in the SVG namespace itself): the page then holds no
URL at all. Element ids are prefixed per figure, so several figures on one page never share an id.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from pipeline.core.io import atomic_file

SVG_SALT = "affectbench"
_SVG_RC = {"svg.hashsalt": SVG_SALT, "svg.fonttype": "path"}


def pyplot():
    """matplotlib.pyplot on the Agg backend (stages run headless), with mathtext off: names are shown as
    they are (a backbone or class name with two ``$`` is not a formula)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


def placeholder(text: str):
    """A small figure that only says ``text`` (an output that must exist even with nothing to draw)."""
    fig, ax = pyplot().subplots(figsize=(7, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center")
    return fig


def save_png(fig: Any, path: str | Path, dpi: int = 100) -> None:
    """Write ``fig`` to ``path`` as PNG atomically, then close it."""
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
    pyplot().close(fig)


def svg_markup(fig: Any, prefix: str, *, close: bool = True) -> str:
    """``fig`` as an ``<svg>`` element to inline into HTML, byte-reproducible, its ids prefixed with ``prefix``."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(_SVG_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    if close:
        pyplot().close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # no <?xml …?> / <!DOCTYPE …> prologue inside HTML
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.DOTALL)
    svg = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", svg)
    svg = svg.replace("<svg ", f'<svg role="img" class="chart-svg" data-figure="{prefix}" ', 1)
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    return re.sub(r'(url\(#|href="#)([^)"]+)',
                  lambda m: m.group(1) + (f"{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(2)), svg)
