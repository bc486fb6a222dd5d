"""A self-contained HTML report (PNG plots inlined) from sections that each domain's demo returns."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from towerkit.core.io import write_text_atomic


@dataclass
class DemoSection:
    """One domain recipe's results: what `towerkit demo` shows for it."""

    domain: str
    title: str
    metrics: dict[str, float] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run_dir: Path | None = None
    seconds: float | None = None


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:0}.meta{color:#666}section{border-top:1px solid #ddd;margin-top:2em}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:520px;margin:6px;border:1px solid #eee}
"""


def _metrics_table(metrics: dict[str, float]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td class='num'>{v:.4g}</td></tr>"
        for k, v in metrics.items()
    )
    return f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>"


def _inline_png(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(path.name)}' title='{html.escape(str(path))}' src='data:image/png;base64,{data}'>"


def _section_html(section: DemoSection) -> str:
    parts = [f"<section><h2>{html.escape(section.domain)}: {html.escape(section.title)}</h2>"]
    facts = []
    if section.run_dir is not None:
        facts.append(f"run directory <code>{html.escape(str(section.run_dir))}</code>")
    if section.seconds is not None:
        facts.append(f"{section.seconds:.1f} s")
    if facts:
        parts.append(f"<p class='meta'>{' · '.join(facts)}</p>")
    parts.extend(f"<p>{html.escape(note)}</p>" for note in section.notes)
    if section.metrics:
        parts.append(_metrics_table(section.metrics))
    parts.extend(_inline_png(p) for p in section.plots if p.is_file())
    parts.append("</section>")
    return "\n".join(parts)


def write_html_report(
    sections: list[DemoSection], path: Path, title: str = "towerkit demo"
) -> Path:
    """Write one HTML file with every section's metrics and plots; atomic."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    body = "\n".join(_section_html(s) for s in sections)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class='meta'>generated {stamp}</p>{body}</body></html>\n"
    )
    write_text_atomic(path, page)
    return path
