"""Two tiny two-tower models really trained on slices of MovieLens-100K, registered in a
session-wide registry: version 1 on the first 60 users without swipe histories (static user
features and ids), version 2 (production) on the first 40 with the quick recipe's histories, so
the two differ in their candidates and a rollback is visible in /health."""

from __future__ import annotations

import pytest
import torch
from serving_models import NAME, STATIC, TINY, TinyModels, first_users

from towerkit.core.registry import ModelRegistry
from towerkit.rec.store.movielens import MovieLens


@pytest.fixture(scope="session")
def tiny_models(ml100k: MovieLens, tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    from towerkit.rec.twotower.recipe import train
    from towerkit.rec.twotower.sources import movielens_frames

    home = tmp_path_factory.mktemp("serving-home")
    registry = ModelRegistry(home / "registry.db")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    versions = []
    try:
        for n_users, extra in ((60, STATIC), (40, [])):
            outcome = train(
                None,
                [*TINY, *extra],
                data=movielens_frames(first_users(ml100k, n_users)),
                promote="always",
                registry=registry,
                runs_root=home / "runs",
            )
            assert outcome.version is not None
            versions.append(outcome.version.version)
    finally:
        torch.set_num_threads(threads)
    assert registry.resolve(f"{NAME}@production").version == versions[1]
    return TinyModels(home, versions[0], versions[1])


@pytest.fixture
def tiny_home(tiny_models: TinyModels, monkeypatch: pytest.MonkeyPatch) -> TinyModels:
    """This test's TOWERKIT_HOME is the one holding the tiny models' registry."""
    monkeypatch.setenv("TOWERKIT_HOME", str(tiny_models.home))
    return tiny_models
