"""RecBole 1.2.1's SASRec on towerkit's prepared split; run by benchmarks/seqrec.py with the
Python of RecBole's own virtualenv (never towerkit's), so it imports nothing from towerkit.

    runs/bench/recbole-venv/bin/python benchmarks/seqrec_recbole.py ATOMIC_DIR NAME OUT_DIR \
        EPOCHS HIDDEN HEADS BLOCKS MAX_LEN DROPOUT BATCH LR

Writes OUT_DIR/recbole.json (epoch seconds, peak RSS, RecBole's own test metrics) and
OUT_DIR/recbole_scores.npy: next-item scores [n_users, n_items + 1] for towerkit's test
histories (train prefix + validation item), columns in towerkit's item ids (0 = padding, -inf),
so towerkit's evaluator ranks both models identically.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole 1.2.1 with torch >= 2.6

import numpy as np
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed


def main(argv: list[str]) -> None:
    atomic, name, out = Path(argv[0]), argv[1], Path(argv[2])
    epochs, hidden, heads, blocks, max_len = (int(v) for v in argv[3:8])
    dropout, batch, lr = float(argv[8]), int(argv[9]), float(argv[10])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    config = Config(
        model="SASRec",
        dataset=name,
        config_dict={
            "data_path": str(atomic.parent),
            "USER_ID_FIELD": "user_id",
            "ITEM_ID_FIELD": "item_id",
            "TIME_FIELD": "timestamp",
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "user_inter_num_interval": "[0,inf)",
            "item_inter_num_interval": "[0,inf)",
            "MAX_ITEM_LIST_LENGTH": max_len,
            "eval_args": {
                "split": {"LS": "valid_and_test"},
                "order": "TO",
                "group_by": "user",
                "mode": "full",
            },
            "metrics": ["Hit", "NDCG", "MRR"],
            "topk": [10],
            "valid_metric": "NDCG@10",
            "epochs": epochs,
            "eval_step": epochs,  # one validation at the end: a fixed epoch budget
            "stopping_step": epochs + 1,
            "train_batch_size": batch,
            "eval_batch_size": 256,
            "learning_rate": lr,
            "hidden_size": hidden,
            "inner_size": hidden,  # towerkit's feed-forward is hidden -> hidden
            "n_layers": blocks,
            "n_heads": heads,
            "hidden_dropout_prob": dropout,
            "attn_dropout_prob": dropout,
            "hidden_act": "gelu",
            "loss_type": "CE",
            "train_neg_sample_args": None,
            "device": "cpu",
            "use_gpu": False,
            "seed": 0,
            "reproducibility": True,
            "show_progress": False,
            "checkpoint_dir": str(out / "recbole-saved"),
            "worker": 0,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    epoch_seconds: list[float] = []
    train_epoch = trainer._train_epoch

    def timed(*args: object, **kwargs: object) -> object:
        started = time.perf_counter()
        result = train_epoch(*args, **kwargs)
        epoch_seconds.append(time.perf_counter() - started)
        return result

    trainer._train_epoch = timed
    trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    own = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(out / "recbole_scores.npy", _scores(model, dataset, atomic / f"{name}.inter", max_len))
    summary = {
        "epoch_seconds": epoch_seconds,
        "peak_rss_mb": peak_mb,
        "recbole_own_test": {k: float(v) for k, v in own.items()},
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
    }
    (out / "recbole.json").write_text(json.dumps(summary, indent=2) + "\n")


def _scores(model: SASRec, dataset: object, inter: Path, max_len: int) -> np.ndarray:
    """Scores of every towerkit user's test history, columns in towerkit item ids."""
    sequences: dict[int, list[int]] = {}
    for line in inter.read_text().splitlines()[1:]:
        user, item, _ = line.split("\t")
        sequences.setdefault(int(user), []).append(int(item))
    n_items = max(max(s) for s in sequences.values())
    to_rb = dataset.token2id  # type: ignore[attr-defined]
    columns = np.asarray(to_rb("item_id", [str(i) for i in range(1, n_items + 1)]))
    model.eval()
    rows = []
    users = sorted(sequences)
    with torch.no_grad():
        for start in range(0, len(users), 256):
            chunk = [sequences[u][:-1][-max_len:] for u in users[start : start + 256]]
            seq = torch.zeros(len(chunk), max_len, dtype=torch.long)
            for row, history in enumerate(chunk):  # RecBole: left-aligned, padding after
                ids = to_rb("item_id", [str(i) for i in history])
                seq[row, : len(history)] = torch.as_tensor(np.asarray(ids))
            lengths = torch.tensor([len(h) for h in chunk])
            scores = model.full_sort_predict(
                Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lengths})
            )
            rows.append(scores.view(len(chunk), -1)[:, columns].numpy())
    matrix = np.concatenate(rows).astype(np.float32)
    return np.concatenate([np.full((len(users), 1), -np.inf, np.float32), matrix], axis=1)


if __name__ == "__main__":
    main(sys.argv[1:])
