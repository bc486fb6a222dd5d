"""The family registry: lazy imports, a broken family never hides the others, helpers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from towerkit.core.errors import TowerkitError
from towerkit.core.model import create_model
from towerkit.zoo import families
from towerkit.zoo.families import (
    family_for_model,
    get_family,
    list_families,
    model_overrides,
    registry_name,
    stratified_train_val,
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


def test_stratified_train_val_keeps_the_split_the_families_had() -> None:
    """Positions (in order) that vision's split_validation + stratified_subset and audio's
    _stratified_val gave before both families shared this helper."""
    labels = np.arange(40) % 4
    train, val = stratified_train_val(labels, 0.25, 0, seed=3)
    assert val.tolist() == [10, 32, 6, 21, 29, 26, 12, 7, 35, 0]
    assert train.tolist()[:8] == [28, 39, 1, 14, 36, 8, 4, 19] and len(train) == 30
    limited, same_val = stratified_train_val(labels.tolist(), 0.25, 12, seed=3)
    assert limited.tolist() == [34, 2, 38, 13, 15, 20, 17, 27, 1, 8, 11, 24]
    assert same_val.tolist() == val.tolist()
    assert np.bincount(labels[limited]).tolist() == [3, 3, 3, 3]


def test_stratified_train_val_matches_splitting_the_items_themselves() -> None:
    """The audio family split its clips directly; splitting positions picks the same clips."""
    from sklearn.model_selection import train_test_split

    labels = (np.arange(157) * 7919 % 97) % 7
    clips = [f"clip-{i}" for i in range(157)]
    for seed, limit in ((0, 0), (1, 50), (7, 200)):
        train, val = stratified_train_val(labels, 0.1, limit, seed)
        fit, held = train_test_split(clips, test_size=0.1, random_state=seed, stratify=labels)
        if 0 < limit < len(fit):
            fit_labels = [int(c.split("-")[1]) for c in fit]
            fit, _ = train_test_split(
                fit, train_size=limit, random_state=seed, stratify=labels[fit_labels]
            )
        assert [clips[i] for i in train] == list(fit)
        assert [clips[i] for i in val] == list(held)


def test_model_overrides_keep_only_the_set_keys() -> None:
    section = SimpleNamespace(hidden=64, dropout=None, layers=0)
    assert model_overrides(section, ("hidden", "dropout", "layers")) == {"hidden": 64, "layers": 0}
