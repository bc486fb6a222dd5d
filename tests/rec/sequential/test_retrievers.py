"""The text-preference and multimodal retrievers on synthetic data with a known answer.

Items belong to one of 4 classes and each user wants items of one class. Whichever input carries
the class (user text, item text, item image) is what a retriever can learn from; an input of pure
noise must neither help nor be relied on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.core.model import BaseModel
from towerkit.rec.sequential.features import load_image_features
from towerkit.rec.sequential.retrievers import (
    MultimodalRetriever,
    MultimodalRetrieverConfig,
    TextPreferenceRetriever,
    TextRetrieverConfig,
)

N_ITEMS, N_USERS, CLASSES, DIM = 200, 160, 4, 6


def _world(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLASSES, DIM, generator=g) * 2
    item_class = torch.arange(N_ITEMS + 1) % CLASSES
    user_class = torch.arange(N_USERS) % CLASSES

    def informative(classes: torch.Tensor) -> torch.Tensor:
        return centres[classes] + 0.5 * torch.randn(len(classes), DIM, generator=g)

    return {
        "item_class": item_class,
        "user_class": user_class,
        "user_text": informative(user_class),
        "item_informative": informative(item_class),
        "item_noise": torch.randn(N_ITEMS + 1, DIM, generator=g) * 2,
    }


def _targets(world: dict[str, torch.Tensor], users: torch.Tensor, seed: int) -> torch.Tensor:
    """A random item of each user's class (ids 1..N_ITEMS)."""
    g = torch.Generator().manual_seed(seed)
    offsets = torch.randint(0, N_ITEMS // CLASSES, (len(users),), generator=g) * CLASSES
    targets = world["user_class"][users] + offsets
    return torch.where(targets == 0, targets + CLASSES, targets)


def _train(model: BaseModel, world: dict[str, torch.Tensor], steps: int = 80) -> float:
    """Softmax CE over all items; returns HR@10 on fresh targets of every user."""
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(steps):
        users = torch.randint(0, N_USERS, (64,))
        scores = model.score_all(users)  # type: ignore[operator]
        loss = F.cross_entropy(scores, _targets(world, users, step))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        users = torch.arange(N_USERS)
        top = model.score_all(users).topk(10).indices  # type: ignore[operator]
        wanted = world["user_class"].unsqueeze(1)
        # share of the top 10 in the wanted class: 1.0 is perfect, 0.25 is chance
        return float((world["item_class"][top] == wanted).float().mean())


def _text_retriever(world: dict[str, torch.Tensor], item_key: str) -> TextPreferenceRetriever:
    config = TextRetrieverConfig(
        n_items=N_ITEMS, n_users=N_USERS, text_dim=DIM, dim=16, dropout=0.0,
        use_item_ids=False, use_history=False,
    )  # fmt: skip
    model = TextPreferenceRetriever(config)
    model.set_texts(world["user_text"], world[item_key])
    return model


def test_text_retriever_learns_from_text_and_scores_all_items(tmp_path: Path) -> None:
    world = _world()
    model = _text_retriever(world, "item_informative")
    precision = _train(model, world)
    assert precision > 0.9
    scores = model.score_all(torch.tensor([0, 1]), torch.tensor([[0, 3, 5], [0, 0, 2]]))
    assert scores.shape == (2, N_ITEMS + 1) and torch.isinf(scores[:, 0]).all()
    model.save_pretrained(tmp_path / "m")
    loaded = TextPreferenceRetriever.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.item_text, model.item_text)
    assert torch.equal(loaded.score_all(torch.tensor([3])), model.score_all(torch.tensor([3])))
    noise = _train(_text_retriever(world, "item_noise"), world)
    assert noise < 0.5  # item text of pure noise: close to chance (0.25)


def test_text_retriever_rejects_wrong_shapes() -> None:
    model = _text_retriever(_world(), "item_informative")
    with pytest.raises(ConfigError, match=r"expected text embeddings \(160, 6\)"):
        model.set_texts(torch.zeros(3, DIM), torch.zeros(N_ITEMS + 1, DIM))


def _multimodal(
    world: dict[str, torch.Tensor], text_key: str, image_key: str | None, fusion: str = "gated"
) -> MultimodalRetriever:
    config = MultimodalRetrieverConfig(
        n_items=N_ITEMS, n_users=N_USERS, text_dim=DIM, text_tokens=3, image_dim=DIM,
        image_patches=2, dim=16, heads=2, fusion=fusion, dropout=0.0, use_history=False,  # type: ignore[arg-type]
    )  # fmt: skip
    model = MultimodalRetriever(config)
    g = torch.Generator().manual_seed(1)
    tokens = world[text_key].unsqueeze(1) + 0.3 * torch.randn(N_ITEMS + 1, 3, DIM, generator=g)
    mask = torch.ones(N_ITEMS + 1, 3, dtype=torch.bool)
    mask[:, 2] = False  # a padded token slot
    if image_key is None:
        patches, has_image = torch.zeros(N_ITEMS + 1, 2, DIM), torch.zeros(N_ITEMS + 1, dtype=bool)
    else:
        patches = world[image_key].unsqueeze(1) + 0.3 * torch.randn(
            N_ITEMS + 1, 2, DIM, generator=g
        )
        has_image = torch.ones(N_ITEMS + 1, dtype=torch.bool)
    model.set_inputs(world["user_text"], tokens, mask, patches, has_image)
    return model


def test_multimodal_learns_from_an_informative_image() -> None:
    world = _world()
    with_image = _multimodal(world, "item_noise", "item_informative")
    without = _multimodal(world, "item_noise", None)
    assert _train(with_image, world) > 0.9  # the class is only in the image
    assert _train(without, world) < 0.5
    gate = with_image.gate_values(torch.arange(1, N_ITEMS + 1)).mean().item()
    assert gate < 0.4  # leans on the image side (1 = text only)


def test_multimodal_ignores_a_noise_image() -> None:
    world = _world()
    text_only = _train(_multimodal(world, "item_informative", None), world)
    model = _multimodal(world, "item_informative", "item_noise")
    with_noise = _train(model, world)
    assert with_noise > 0.9 and with_noise >= text_only - 0.05  # the noise does not hurt
    gate = model.gate_values(torch.arange(1, N_ITEMS + 1)).mean().item()
    assert gate > 0.6  # leans on the text side


@pytest.mark.parametrize("fusion", ["concat", "add"])
def test_multimodal_concat_and_add_fusions_learn(fusion: str) -> None:
    world = _world()
    model = _multimodal(world, "item_noise", "item_informative", fusion)
    assert _train(model, world) > 0.9
    with pytest.raises(ConfigError, match="not gated"):
        model.gate_values()


def test_image_feature_file(tmp_path: Path) -> None:
    path = tmp_path / "images.npz"
    features = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.savez(path, item_ids=np.array(["b", "zz", "a"]), features=features)
    out, mask = load_image_features(path, ["<pad>", "a", "b", "c"])
    assert out.shape == (4, 1, 4) and mask.tolist() == [False, True, True, False]
    assert out[1, 0].tolist() == [8, 9, 10, 11] and out[2, 0].tolist() == [0, 1, 2, 3]
    np.savez(path, item_ids=np.array(["x"]), features=features[:1])
    with pytest.raises(TowerkitError, match="none of its item_ids is an item"):
        load_image_features(path, ["<pad>", "a"])
    np.savez(path, ids=np.array(["x"]))
    with pytest.raises(TowerkitError, match=r"expected an \.npz with 'item_ids'"):
        load_image_features(path, ["<pad>", "a"])
