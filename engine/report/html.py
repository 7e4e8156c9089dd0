"""The report's HTML: one self-contained file with its styles, pictures and charts inside.

Charts are Plotly figures. plotly.js (4.8 MB) is inlined gzip-compressed and base64-encoded (about 2 MB) and
unpacked by the browser's own `DecompressionStream`, so a 3-part report stays under 5 MB and opens with no
network; each figure is drawn from its JSON once plotly.js is loaded. Every figure is also in a table beside
its chart, so a browser that cannot run the charts loses no number. Nothing random goes into the file (fixed
element ids, gzip without a timestamp): two reports of the same question on the same store differ only in
their date.

Printing: A4 pages, each section starting on a new page where it would otherwise be cut, charts and example
pictures never split across pages, the browser's own controls of a chart hidden.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

import plotly
import plotly.graph_objects as go

STYLE = """
:root { --ink: #1d2430; --muted: #5b6472; --rule: #d5d9e0; --accent: #1f5fa8; --good: #1e7b34; --warn: #9a5b00; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       max-width: 1080px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--rule); }
h3 { font-size: 16px; margin: 22px 0 6px; }
.subtitle, .caption { color: var(--muted); font-size: 13px; }
.recommendation { border: 1px solid var(--rule); border-left: 5px solid var(--accent); padding: 10px 16px;
                  margin: 10px 0; background: #f6f9fd; }
.recommendation h3 { margin-top: 4px; }
.note { padding: 8px 12px; margin: 8px 0; border-radius: 4px; }
.note.success { background: #eaf6ec; border-left: 4px solid var(--good); }
.note.warning { background: #fdf3e4; border-left: 4px solid var(--warn); }
.note.info { background: #eef3fa; border-left: 4px solid var(--accent); }
.note.caption { color: var(--muted); font-size: 13px; padding: 0; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; width: 100%; }
th, td { border-bottom: 1px solid var(--rule); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f1f3f6; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
dl.question { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 8px 0; }
dl.question dt { color: var(--muted); }
dl.question dd { margin: 0; }
.chart { width: 100%; height: 460px; }
.examples { display: grid; grid-template-columns: repeat(5, 1fr); gap: 10px; margin: 6px 0 14px; }
figure { margin: 0; }
figure img { width: 100%; image-rendering: auto; border: 1px solid var(--rule); }
figcaption { font-size: 11px; color: var(--muted); line-height: 1.3; }
code, .command { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; }
.command { display: block; white-space: pre-wrap; word-break: break-all; background: #f1f3f6; padding: 8px 10px; }
.print-only { display: none; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  h2 { break-after: avoid; }
  h3 { break-after: avoid; }
  section { break-before: page; }
  section:first-of-type { break-before: auto; }
  .chart, .examples figure, .recommendation, table, tr, .note { break-inside: avoid; }
  .chart { height: 380px; }
  .modebar-container { display: none !important; }
  .print-only { display: block; }
}
"""

# Unpacks plotly.js from the page itself (no network), then draws every chart from its JSON.
LOADER = """
(async () => {
  const status = document.getElementById("chart-status");
  if (typeof DecompressionStream === "undefined") {
    status.textContent = "This browser cannot unpack the charts (it lacks DecompressionStream); every figure is in the tables.";
    return;
  }
  const packed = document.getElementById("plotly-js").textContent.trim();
  const bytes = Uint8Array.from(atob(packed), c => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  const source = await new Response(stream).text();
  (0, eval)(source);
  for (const holder of document.querySelectorAll("script[type='application/json'][data-chart]")) {
    const figure = JSON.parse(holder.textContent);
    await Plotly.newPlot(holder.dataset.chart, figure.data, figure.layout, {displaylogo: false, responsive: true});
  }
  document.body.dataset.charts = "drawn";
  status.remove();
})();
"""


def text(value: object) -> str:
    return html.escape(str(value), quote=True)


def paragraph(body: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{text(body)}</p>' if cls else f"<p>{text(body)}</p>"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[bool] | None = None) -> str:
    """A plain table; cells are escaped, and columns marked `numeric` are right-aligned."""
    numeric = list(numeric) if numeric is not None else [False] * len(headers)
    head = "".join(f"<th>{text(header)}</th>" for header in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="number">{text(cell)}</td>' if is_number else f"<td>{text(cell)}</td>"
            for cell, is_number in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def chart(figure: go.Figure, chart_id: str) -> str:
    """A chart's place and its figure's JSON, drawn by `LOADER` once plotly.js is unpacked."""
    themed = go.Figure(figure).update_layout(template="plotly_white")  # the dashboard's theme is Streamlit's
    spec = json.dumps(json.loads(themed.to_json()), sort_keys=True, separators=(",", ":")).replace("</", "<\\/")
    return (
        f'<div class="chart" id="{text(chart_id)}"></div>'
        f'<script type="application/json" data-chart="{text(chart_id)}">{spec}</script>'
    )


def picture(png: bytes, caption: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{text(caption)}" src="data:image/png;base64,{encoded}"><figcaption>{text(caption)}</figcaption></figure>'


@cache
def packed_plotly_js() -> str:
    """plotly.js as shipped with the plotly package, gzip-compressed without a timestamp, base64-encoded."""
    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return base64.b64encode(gzip.compress(source.read_bytes(), compresslevel=9, mtime=0)).decode("ascii")


def document(title: str, body: str) -> str:
    """The whole file: `body` (the sections) with styles, the packed plotly.js and its loader."""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{text(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{STYLE}</style></head><body>"
        '<p id="chart-status" class="caption">Drawing the charts…</p>'
        '<p class="print-only caption">Printed from the interactive report: each chart as drawn on screen, and '
        "every figure of a chart also in the table beside it.</p>"
        f"{body}"
        f'<script type="text/plain" id="plotly-js">{packed_plotly_js()}</script>'
        f"<script>{LOADER}</script></body></html>\n"
    )
