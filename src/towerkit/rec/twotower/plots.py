"""PNG plots of a two-tower run (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from towerkit.core.io import atomic_path


def recall_curve_png(
    table: dict[str, dict[str, float]], path: Path, ks: Sequence[int], prefix: str = ""
) -> Path:
    """recall@K against K for every model of the table (test split)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in table.items():
        values = [row.get(f"{prefix}recall@{k}") for k in ks]
        points = [(k, v) for k, v in zip(ks, values, strict=True) if v is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=name)
    ax.set_xlabel("K")
    ax.set_ylabel("recall@K")
    ax.set_title("held-out likes, full ranking (seen items excluded)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
