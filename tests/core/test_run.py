"""core.run: the run directory's life (start, finish) and what --resume accepts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from towerkit.core.errors import TowerkitError
from towerkit.core.run import resume_config, start_run


@dataclass
class Recipe:
    recipe: str = "quick"
    epochs: int = 2


def test_start_run_writes_the_resolved_config_into_a_fresh_folder(tmp_path: Path) -> None:
    first = start_run("zoo", "quick", Recipe(epochs=3), root=tmp_path)
    second = start_run("zoo", "quick", Recipe(), root=tmp_path)
    assert first != second and first.parent == second.parent == tmp_path / "zoo" / "quick"
    assert yaml.safe_load((first / "config.yaml").read_text()) == {"recipe": "quick", "epochs": 3}


def test_resume_takes_an_unfinished_run_and_refuses_the_rest(tmp_path: Path) -> None:
    run = start_run("zoo", "quick", Recipe(), root=tmp_path)
    assert resume_config(run) == run / "config.yaml"
    with pytest.raises(TowerkitError, match=r"not a run directory \(no config.yaml\)$"):
        resume_config(tmp_path)
    (run / "metrics.json").write_text("{}")  # finish_run writes it last
    with pytest.raises(TowerkitError) as error:
        resume_config(run)
    assert (
        str(error.value) == f"{run}: the run finished (metrics.json is written); nothing to resume"
    )
