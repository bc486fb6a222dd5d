"""The ablation table of a trained UR4Rec: SASRec alone, the retriever alone, and each fusion
strategy, on the test users, with paired bootstrap intervals of the NDCG@10 change against
SASRec alone.

The weighted and rerank shares (alpha) are chosen on the validation split, never on test. Inside
one trained UR4Rec, "SASRec alone" is its SASRec part (alpha = 0); a model trained with the
SASRec part frozen (stage ``pretrain_retriever`` after ``init_sasrec``) makes that row exactly the
separately trained SASRec.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from towerkit.core.io import atomic_path, write_json_atomic, write_text_atomic
from towerkit.rec.sequential.data import SeqDataset
from towerkit.rec.sequential.fusion import Strategy, UR4Rec
from towerkit.rec.sequential.joint import ur4rec_scorer
from towerkit.rec.sequential.metrics import EvalResult, UserScorer, paired_bootstrap
from towerkit.rec.sequential.training import evaluate_model

ALPHAS = (0.1, 0.2, 0.3, 0.5, 0.7)
HEADLINE = "ndcg@10"


def _best_alpha(model: UR4Rec, data: SeqDataset, strategy: Strategy, max_len: int) -> float:
    scores = {
        alpha: evaluate_model(
            ur4rec_scorer(model, strategy, alpha), data, "valid", max_len
        ).metrics[HEADLINE]
        for alpha in ALPHAS
    }
    return max(scores, key=lambda a: (scores[a], -a))


def ablation_rows(
    model: UR4Rec, data: SeqDataset, max_len: int, seed: int = 0, prefix: str = ""
) -> list[dict[str, Any]]:
    """One row per variant: name, alpha, test metrics, and the bootstrap against SASRec."""
    model.eval()
    variants: list[tuple[str, Strategy, float | None]] = [
        ("SASRec alone", "weighted", 0.0),
        ("text retriever alone", "weighted", 1.0),
    ]
    strategies: tuple[Strategy, ...] = ("weighted", "rerank")
    for strategy in strategies:
        best = _best_alpha(model, data, strategy, max_len)
        k = model.config.fusion.rerank_k
        label = "weighted sum" if strategy == "weighted" else f"rerank top-{k}"
        variants.append((f"{label} (alpha {best} on valid)", strategy, best))
    if model.config.fusion.strategy == "gate":  # a gate only means something once trained
        variants.append(("learned gate", "gate", None))
    results: list[tuple[str, Strategy, float | None, EvalResult]] = []
    for name, strategy, alpha in variants:
        scorer = ur4rec_scorer(model, strategy, alpha)
        results.append((name, strategy, alpha, evaluate_model(scorer, data, "test", max_len)))
    base = results[0][3].per_user(HEADLINE)
    rows = []
    for name, strategy, alpha, result in results:
        row: dict[str, Any] = {
            "variant": prefix + name,
            "strategy": strategy,
            "alpha": alpha,
            **{k: result.metrics[k] for k in ("ndcg@10", "hr@10", "ndcg@20", "mrr")},
        }
        if name != "SASRec alone":
            boot = paired_bootstrap(base, result.per_user(HEADLINE), seed=seed)
            row.update(
                diff=boot.diff, diff_low=boot.diff_low, diff_high=boot.diff_high,
                relative=boot.relative, p_value=boot.p_value,
            )  # fmt: skip
        rows.append(row)
    return rows


def markdown_table(rows: Sequence[dict[str, Any]], title: str = "") -> str:
    lines = [f"**{title}**", ""] if title else []
    lines += [
        "| variant | NDCG@10 | HR@10 | MRR | ΔNDCG@10 vs SASRec [95% CI] | p |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        delta = (
            f"{r['diff']:+.4f} [{r['diff_low']:+.4f}, {r['diff_high']:+.4f}] ({r['relative']:+.1%})"
            if "diff" in r
            else "—"
        )
        p = f"{r['p_value']:.3g}" if "p_value" in r else "—"
        lines.append(
            f"| {r['variant']} | {r['ndcg@10']:.4f} | {r['hr@10']:.4f} | {r['mrr']:.4f} | "
            f"{delta} | {p} |"
        )
    return "\n".join(lines) + "\n"


def save_ablation(rows: Sequence[dict[str, Any]], run_dir: Path, title: str = "") -> None:
    """ablation.json, ablation.md and plots/ablation.png in the run directory."""
    write_json_atomic(run_dir / "ablation.json", list(rows))
    write_text_atomic(run_dir / "ablation.md", markdown_table(rows, title))
    plot_ablation(rows, run_dir / "plots" / "ablation.png", title)


def plot_ablation(rows: Sequence[dict[str, Any]], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["variant"] for r in rows]
    values = [r["ndcg@10"] for r in rows]
    base = rows[0]["ndcg@10"]
    low = [base + r["diff_low"] if "diff" in r else v for r, v in zip(rows, values, strict=True)]
    high = [base + r["diff_high"] if "diff" in r else v for r, v in zip(rows, values, strict=True)]
    errors = [[max(v - lo, 0) for v, lo in zip(values, low, strict=True)],
              [max(hi - v, 0) for v, hi in zip(values, high, strict=True)]]  # fmt: skip
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.5))
    ax.barh(names[::-1], values[::-1], xerr=[e[::-1] for e in errors], color="#4c72b0")
    ax.axvline(base, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("test NDCG@10 (full ranking); bars: SASRec + paired 95% CI of the change")
    ax.set_title(title or "UR4Rec ablation")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def sasrec_plus_text(
    data: SeqDataset, sasrec: Any, out_dir: Path, epochs: int
) -> tuple[UserScorer, int]:
    """``benchmarks/seqrec.py --extra "SASRec + text=towerkit.rec.sequential.ablation:
    sasrec_plus_text"``: the benchmark's trained SASRec, frozen, plus a text-preference retriever
    (template texts) trained for max(1, epochs // 3) epochs; weighted fusion, alpha chosen on
    validation."""
    import dataclasses

    import yaml

    from towerkit.rec.sequential.ur4rec import config_path, train_ur4rec

    sasrec.save_pretrained(out_dir / "sasrec-for-text" / "model")
    data.save(out_dir / "sasrec-for-text" / "data")
    config = yaml.safe_load(config_path("quick").read_text())
    config["data"] = {"prepared": str(out_dir / "sasrec-for-text" / "data"), "name": data.name}
    config["model"]["sasrec"] = {
        k: v for k, v in dataclasses.asdict(sasrec.config).items() if k != "n_items"
    }
    config["init_sasrec"] = str(out_dir / "sasrec-for-text")
    config["trainer"].update(early_stopping_metric=None, restore_best=False, progress=False)
    stage = config["trainer"]["stages"][1]
    stage["epochs"] = max(1, epochs // 3)
    config["trainer"]["stages"] = [stage]
    config["model"]["fusion"]["strategy"] = "weighted"
    path = out_dir / "ur4rec-sasrec-plus-text.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = train_ur4rec(path, runs=out_dir / "runs")
    max_len = sasrec.config.max_len
    alpha = _best_alpha(result.model, result.data, "weighted", max_len)
    return result.model.user_scorer("weighted", alpha), max_len
