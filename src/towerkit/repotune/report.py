"""The evaluation report as Markdown and a PNG bar chart with bootstrap error bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

METRICS = ("file_exact", "line_iou", "symbol_exact", "param_exact")


def _fmt(row: dict[str, float]) -> str:
    return (
        f"| {row['base']:.3f} | {row['tuned']:.3f} | {row['diff']:+.3f} "
        f"[{row['diff_low']:+.3f}, {row['diff_high']:+.3f}] | {int(row['n'])} |"
    )


def write_markdown(result: dict[str, Any]) -> str:
    lines = [
        "# repotune evaluation",
        "",
        f"base: `{result['base']}`  ",
        f"fine-tuned: `{result['tuned']}`",
        "",
        "Greedy decoding, identical prompts. Differences are fine-tuned minus base with a paired "
        "bootstrap 95% confidence interval.",
    ]
    for name, summary in result["sets"].items():
        lines += [
            "",
            f"## {name}",
            "",
            "| metric | base | fine-tuned | difference [95% CI] | n |",
            "|---|---|---|---|---|",
        ]
        for metric in METRICS:
            if metric in summary:
                lines.append(f"| {metric} " + _fmt(summary[metric]))
        if "perplexity_base" in summary:
            lines.append(
                f"| gold-answer perplexity | {summary['perplexity_base']:.2f} | "
                f"{summary['perplexity_tuned']:.2f} | | {summary['n']} |"
            )
    if "forgetting" in result:
        f = result["forgetting"]
        lines += [
            "",
            "## general questions (forgetting)",
            "",
            "| measure | base | fine-tuned | difference [95% CI] | n |",
            "|---|---|---|---|---|",
            "| exact answer found " + _fmt(f),
            f"| reference perplexity | {f['perplexity_base']:.2f} | {f['perplexity_tuned']:.2f} | | {int(f['n'])} |",
        ]
    return "\n".join(lines) + "\n"


def write_chart(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = [(s, m) for s, summary in result["sets"].items() for m in METRICS if m in summary]
    if "forgetting" in result:
        groups.append(("general", "forgetting"))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(groups)), 3.8))
    x = np.arange(len(groups))
    for offset, name, colour in ((-0.2, "base", "#999999"), (0.2, "tuned", "#1f77b4")):
        values = [
            (result["forgetting"] if m == "forgetting" else result["sets"][s][m])[name]
            for s, m in groups
        ]
        ax.bar(
            x + offset,
            values,
            width=0.4,
            label="fine-tuned" if name == "tuned" else name,
            color=colour,
        )
    for i, (s, m) in enumerate(groups):
        row = result["forgetting"] if m == "forgetting" else result["sets"][s][m]
        low, high = row["base"] + row["diff_low"], row["base"] + row["diff_high"]
        ax.plot([i + 0.2, i + 0.2], [low, high], color="black", lw=1)  # CI of base + difference
    ax.set_xticks(x, [f"{s}\n{m}" for s, m in groups], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
