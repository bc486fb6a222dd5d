"""The UR4Rec recipe end to end on real MovieLens-100K (shrunk by a 50-core filter so it trains in
about a minute): template texts -> MiniLM -> four stages -> test metrics, ablation, registry,
then the CLI's evaluate and recommend on the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from towerkit.cli import main
from towerkit.core.model import BaseModel
from towerkit.rec.sequential.fusion import UR4Rec
from towerkit.rec.sequential.serve import recommend
from towerkit.rec.sequential.ur4rec import config_path, train_ur4rec


def _small_config(tmp_path: Path) -> Path:
    config = yaml.safe_load(config_path("quick").read_text())
    config["data"].update(user_core=50, item_core=50)
    config["model"]["sasrec"]["max_len"] = 20
    for stage in config["trainer"]["stages"]:
        stage["epochs"] = 1
    path = tmp_path / "ur4rec-test.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_ur4rec_recipe_on_movielens(
    ml100k_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = train_ur4rec(_small_config(tmp_path), runs=tmp_path / "runs")
    assert result.version is not None and result.version.name == "rec-seq-ur4rec"
    metrics = result.metrics
    assert 0.0 < metrics["test_ndcg@10"] <= metrics["test_hr@10"] <= 1.0
    assert metrics["test_sampled_hr@10"] > metrics["test_hr@10"]  # 100 negatives vs all items
    assert metrics["epochs"] == 4.0
    rows = json.loads((result.run_dir / "ablation.json").read_text())
    names = [r["variant"] for r in rows]
    assert names[:2] == ["SASRec alone", "text retriever alone"]
    assert names[2].startswith("weighted sum (alpha ") and names[3].startswith("rerank top-50")
    assert names[4] == "learned gate"
    gate = rows[4]
    assert gate["ndcg@10"] == pytest.approx(metrics["test_ndcg@10"])  # the model's own fusion
    assert gate["diff_low"] <= gate["diff"] <= gate["diff_high"]
    assert (result.run_dir / "plots" / "ablation.png").stat().st_size > 1000
    texts = json.loads((result.run_dir / "texts.json").read_text())
    assert len(texts["users"]) == result.data.n_users

    loaded = BaseModel.from_pretrained(result.run_dir / "model")
    assert isinstance(loaded, UR4Rec)
    capsys.readouterr()
    assert main(["rec", "seq", "evaluate", str(result.run_dir)]) == 0
    assert f"{metrics['test_ndcg@10']:.4f}" in capsys.readouterr().out
    user = result.data.user_ids[3]
    picks = recommend(loaded, result.data, user=user, items=None, k=5)
    seen = {result.data.item_ids[i] for i in np.unique(result.data.sequences[3])}
    assert len(picks) == 5 and not seen & {raw for raw, _, _ in picks}
    assert [s for _, s, _ in picks] == sorted((s for _, s, _ in picks), reverse=True)
