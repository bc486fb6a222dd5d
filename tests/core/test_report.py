from __future__ import annotations

import base64
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from towerkit.core.report import DemoSection, write_html_report


def test_report_inlines_plots_and_escapes(tmp_path: Path) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = tmp_path / "loss.png"
    fig.savefig(png)
    plt.close(fig)
    section = DemoSection(
        domain="zoo",
        title="vision <quick>",
        metrics={"accuracy": 0.91234, "loss": 0.3},
        plots=[png, tmp_path / "missing.png"],
        run_dir=tmp_path / "run",
        seconds=12.5,
    )
    out = write_html_report([section], tmp_path / "demo" / "report.html")
    page = out.read_text()
    assert "vision &lt;quick&gt;" in page
    assert "<td class='num'>0.9123</td>" in page
    assert base64.b64encode(png.read_bytes()).decode("ascii") in page
    assert page.count("<img") == 1  # the missing plot is left out
    assert "12.5 s" in page
