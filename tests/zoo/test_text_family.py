"""The text family on a user's own text,label CSV: split, tokenizer, model, export cases, baseline."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from towerkit.core.config import load_config
from towerkit.core.errors import TowerkitError
from towerkit.zoo.families import get_family
from towerkit.zoo.models.text import TextTransformerClassifier
from towerkit.zoo.text_family import TextRecipeConfig, tfidf_logistic_baseline

GOOD = ["wonderful", "brilliant", "moving", "witty", "gorgeous"]
BAD = ["tedious", "dull", "clumsy", "boring", "lifeless"]


def write_reviews(path: Path, n: int = 200) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(n):
            words = GOOD if i % 2 == 0 else BAD
            # one CJK character per row, seen nowhere else: a tokenizer that saw a row knows it
            really = " really" * (i % 4)  # texts of several lengths
            text = f"a{really} {words[i % 5]} and {words[(i // 2) % 5]} film {chr(0x4E00 + i)}"
            writer.writerow([text, "positive" if i % 2 == 0 else "negative"])
    return path


def family_config(tmp_path: Path, source: Path) -> TextRecipeConfig:
    overrides = [
        f"data.source={source}",
        "data.vocab_size=2000",  # above what the tiny corpus needs: no tie at the cut
        "data.min_frequency=1",
        "model.d_model=32",
        "model.ff_dim=64",
    ]
    return load_config(TextRecipeConfig, None, overrides)


def test_family_builds_split_tokenizer_model_and_export_cases(tmp_path: Path) -> None:
    family = get_family("text")
    config = family_config(tmp_path, write_reviews(tmp_path / "reviews.csv"))
    data = family.build_data(config)
    assert data.class_names == ["negative", "positive"]
    sizes = [len(data.train), len(data.val), len(data.test)]  # type: ignore[arg-type]
    assert sizes == [160, 20, 20]
    model = family.build_model(config, data)
    assert isinstance(model, TextTransformerClassifier)
    assert model.config.vocab_size == data.info["tokenizer"].get_vocab_size()
    batch = data.collate_fn([data.train[i] for i in range(8)])  # type: ignore[misc]
    loss = family.loss_fn(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    specs = family.export_specs(model, data)
    lengths = {case[0].shape[1] for case in specs[0].cases}
    assert len(lengths) >= 2  # parity is checked at several sequence lengths
    example = family.example_input(data, tmp_path)
    assert example is not None and example[0] in data.info["splits"].test.texts
    assert example[1] == ("positive" if any(w in example[0] for w in GOOD) else "negative")
    evaluation = family.evaluate(model, data.test, config, data.collate_fn)
    assert 0.0 <= evaluation.metrics["accuracy"] <= 1.0
    assert evaluation.y_true is not None and len(evaluation.y_true) == 20


def test_tokenizer_is_trained_on_the_training_split_only(tmp_path: Path) -> None:
    family = get_family("text")
    config = family_config(tmp_path, write_reviews(tmp_path / "reviews.csv"))
    data = family.build_data(config)
    splits = data.info["splits"]
    vocab = data.info["tokenizer"].get_vocab()
    assert all(text[-1] in vocab for text in splits.train.texts)
    assert not any(text[-1] in vocab for text in splits.val.texts + splits.test.texts)


def test_bad_source_is_a_one_line_error(tmp_path: Path) -> None:
    family = get_family("text")
    bad = tmp_path / "bad.csv"
    bad.write_text("review,stars\ngood,5\n", encoding="utf-8")
    with pytest.raises(TowerkitError, match=r"bad\.csv: missing column 'text'"):
        family.build_data(family_config(tmp_path, bad))


def test_tfidf_baseline_picks_on_validation_and_scores_test(tmp_path: Path) -> None:
    family = get_family("text")
    config = family_config(tmp_path, write_reviews(tmp_path / "reviews.csv"))
    splits = family.build_data(config).info["splits"]
    result = tfidf_logistic_baseline(splits.train, splits.val, splits.test)
    assert result.name.startswith("TF-IDF + logistic regression")
    assert result.metrics["accuracy"] == 1.0  # the sentiment words separate the classes
    assert result.metrics["val_accuracy"] == 1.0


def test_a_relative_source_is_saved_as_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the run's config.yaml is read again by `zoo evaluate`, from whatever folder it runs in
    monkeypatch.chdir(tmp_path)
    write_reviews(tmp_path / "reviews.csv")
    assert family_config(tmp_path, Path("reviews.csv")).data.source == str(tmp_path / "reviews.csv")
    named = load_config(TextRecipeConfig, None, ["data.source=rotten-tomatoes"])
    assert named.data.source == "rotten-tomatoes"  # a corpus name, not a path
