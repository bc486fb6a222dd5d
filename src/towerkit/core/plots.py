"""The loss plot of a run directory (``plots/loss.png``), drawn from the Trainer's history rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from towerkit.core.io import atomic_path


def plot_history(
    history: Sequence[dict[str, float]], path: Path, stage_starts: Sequence[float] = ()
) -> Path:
    # Figure + Agg canvas directly: no pyplot global state in a user's process
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [r for r in history if "loss" in r]
    eval_keys = sorted({k for r in history for k in r if k.startswith("eval_")})
    # fixed margins and legend places: constrained layout and loc="best" cost a few 100 ms
    fig = Figure(figsize=(8, 6 if eval_keys else 3.5))
    fig.subplots_adjust(left=0.1, right=0.97, top=0.97, bottom=0.1 if eval_keys else 0.16)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 if eval_keys else 1, 1, sharex=True, squeeze=False)[:, 0]
    axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss")
    axes[0].set_ylabel("loss")
    for key in eval_keys:
        rows = [r for r in history if key in r and not math.isnan(r[key])]
        axes[-1].plot([r["step"] for r in rows], [r[key] for r in rows], marker="o", label=key)
    if eval_keys:
        axes[-1].set_ylabel("eval metric")
    for ax in axes:
        for start in stage_starts:
            ax.axvline(start, color="grey", linestyle="--", linewidth=0.8)
        ax.legend(loc="upper right")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("optimizer step")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
