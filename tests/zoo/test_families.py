"""The family registry: lazy imports, a broken family never hides the others, helpers."""

from __future__ import annotations

import pytest
import torch

from towerkit.core.errors import TowerkitError
from towerkit.core.model import create_model
from towerkit.zoo import families
from towerkit.zoo.families import (
    family_for_model,
    get_family,
    list_families,
    registry_name,
    top_k_classes,
)


def test_vision_and_audio_are_available_in_order() -> None:
    names = list_families()
    assert names[:2] == ["vision", "audio"]
    vision = get_family("vision")
    assert vision.name == "vision" and registry_name("vision") == "zoo-vision"
    assert vision.default_config_path().name == "vision-quick.yaml"
    assert (
        vision.default_config_path().is_file()
        and get_family("audio").default_config_path().is_file()
    )


def test_a_family_that_fails_to_import_is_reported_not_fatal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(families.FAMILY_MODULES, "ghost", "towerkit.zoo.no_such_family")
    monkeypatch.setattr(families, "_IMPORT_ERRORS", {})
    assert "ghost" not in list_families() and "vision" in list_families()
    with pytest.raises(TowerkitError, match="zoo family 'ghost' is not available"):
        get_family("ghost")
    with pytest.raises(TowerkitError, match="unknown zoo family 'smell'"):
        get_family("smell")


def test_family_for_model_matches_by_class() -> None:
    assert family_for_model(create_model("vision-cnn-small")).name == "vision"
    assert family_for_model(create_model("audio-lstm-small")).name == "audio"
    with pytest.raises(TowerkitError, match="no zoo family knows model class Linear"):
        family_for_model(torch.nn.Linear(2, 2))


def test_top_k_classes_are_sorted_probabilities() -> None:
    top = top_k_classes(torch.tensor([0.0, 3.0, 1.0]), ["a", "b", "c"], k=5)
    assert [label for label, _ in top] == ["b", "c", "a"]
    assert sum(p for _, p in top) == pytest.approx(1.0)
    assert top[0][1] == pytest.approx(torch.softmax(torch.tensor([0.0, 3.0, 1.0]), 0)[1].item())
