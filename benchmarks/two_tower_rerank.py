"""What ``rank_by`` in ``POST /recommend`` does to top-k quality, on the validation split only.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/two_tower_rerank.py [--seeds 0,1] [--pools 20,100]

For each seed the full recipe is trained as ``benchmarks/two_tower_validation.py`` trains it
(early stopping on validation, the test split never read). Every validation user with a
held-out like is then ranked over the whole catalogue, training items left out, three ways:

- ``retrieval``: cosine of the query and candidate embeddings (what ``rank_by=retrieval`` serves);
- ``like``: the top ``pool`` by cosine re-ranked by the like-vs-pass logit (``rank_by=like``);
- ``retrieval + like``: the same pool re-ranked by cosine / temperature + log P(like), i.e.
  P(swipe) x P(like | swipe) up to a per-user constant (not served; printed for comparison).

Printed: recall and NDCG at 10, 20 and 50 of the held-out likes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F

KS = (10, 20, 50)


def reranked(
    scorer: object, model: object, seen: list[list[int]], pool: int, temperature: float | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Full scores whose top ``pool`` (seen items left out) are lifted above every other item
    and ordered by the like logit, or with ``temperature`` by cosine / temperature + log
    sigmoid(like logit)."""

    @torch.no_grad()
    def scores(rows: torch.Tensor) -> torch.Tensor:
        full = scorer.full_scores(rows).clone()  # type: ignore[attr-defined]
        masked = full.clone()
        for i, user in enumerate(rows.tolist()):
            masked[i, seen[user]] = -torch.inf
        top = masked.topk(pool, dim=1).indices
        query = scorer.queries.output.take(rows.repeat_interleave(pool))  # type: ignore[attr-defined]
        candidate = scorer.candidates.take(top.reshape(-1))  # type: ignore[attr-defined]
        like = model.like_logits(query, candidate).reshape(len(rows), pool)  # type: ignore[attr-defined]
        if temperature is not None:
            like = torch.gather(full, 1, top) / temperature + F.logsigmoid(like)
        return full.scatter(1, top, 1000.0 + like)  # cosines are <= 1: the pool comes first

    return scores


def run_seed(seed: int, pools: list[int], data: object) -> None:
    from towerkit.core.metrics import full_ranking_metrics
    from towerkit.rec.twotower.evaluation import model_scorer, seen_item_lists
    from two_tower_validation import fit_variant

    fitted = fit_variant([f"trainer.seed={seed}"], data)
    prepared, model = fitted.prepared, fitted.model
    scorer = model_scorer(model, prepared.artifacts, prepared.histories("val"))
    positives = prepared.val.positives(prepared.n_users)
    seen = seen_item_lists(prepared.train, prepared.n_users)
    temperature = float(fitted.config.loss.temperature)
    variants: list[tuple[str, Callable[[torch.Tensor], object]]] = [
        ("retrieval", scorer.full_scores)
    ]
    for pool in pools:
        variants.append((f"like, pool {pool}", reranked(scorer, model, seen, pool, None)))
        variants.append(
            (f"retrieval + like, pool {pool}", reranked(scorer, model, seen, pool, temperature))
        )
    for name, score_fn in variants:
        got = full_ranking_metrics(score_fn, positives, KS, seen, n_items=prepared.n_items)  # type: ignore[arg-type]
        cells = " | ".join(f"{got[f'recall@{k}']:.4f} / {got[f'ndcg@{k}']:.4f}" for k in KS)
        print(f"| {seed} | {name} | {cells} |", flush=True)


def main() -> None:
    from towerkit.rec.twotower.sources import movielens_data

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--pools", default="20,100")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = movielens_data()
    header = " | ".join(f"recall@{k} / NDCG@{k}" for k in KS)
    print(f"| seed | ranking | {header} |\n|---|---|" + "---:|" * len(KS), flush=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        run_seed(seed, [int(p) for p in args.pools.split(",")], data)


if __name__ == "__main__":
    main()
