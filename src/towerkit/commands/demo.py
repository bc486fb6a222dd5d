"""`towerkit demo`: run every domain's quick recipe and write runs/demo/report.html."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from towerkit.core.errors import TowerkitError
from towerkit.core.paths import runs_root
from towerkit.core.report import DemoSection, write_html_report

# domain -> "module:function" returning list[DemoSection]; each domain adds its quick recipe here.
DOMAIN_DEMOS: dict[str, str] = {
    "zoo": "towerkit.zoo.demo:run_demo",
    "repotune": "towerkit.repotune.demo:run_demo",
    "forecast": "towerkit.forecast.demo:run_demo",
    "rec": "towerkit.rec.demo:run_demo",
    "rec-seq": "towerkit.rec.sequential.demo:run_demo",
    "rec-ur4rec": "towerkit.rec.sequential.ur4rec_demo:run_demo",
}


def _load(target: str) -> Callable[[Path], list[DemoSection]]:
    module_name, _, attr = target.partition(":")
    fn: Callable[[Path], list[DemoSection]] = getattr(importlib.import_module(module_name), attr)
    return fn


def demo(
    domains: list[str] = typer.Option(
        list(DOMAIN_DEMOS), "--domain", "-d", help="Domains to tour (repeatable)."
    ),
    out: Path | None = typer.Option(None, help="Report folder (default: runs/demo)."),
) -> None:
    """Tour every domain's quick recipe; writes runs/demo/report.html."""
    console = Console()
    unknown = [d for d in domains if d not in DOMAIN_DEMOS]
    if unknown:
        raise TowerkitError(f"--domain {unknown[0]!r}: expected one of {', '.join(DOMAIN_DEMOS)}")
    out_dir = out or runs_root() / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    sections: list[DemoSection] = []
    for domain in domains:
        console.rule(f"[bold]{domain}")
        start = time.perf_counter()
        sections.extend(_load(DOMAIN_DEMOS[domain])(out_dir / domain))
        console.print(f"{domain}: done in {time.perf_counter() - start:.1f} s")
    report = write_html_report(sections, out_dir / "report.html")
    for section in sections:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in list(section.metrics.items())[:6])
        console.print(f"[green]{section.title}[/]: {shown}")
    console.print(f"report: {report}")
