"""Text classifiers: a small Transformer encoder trained from scratch ("text-transformer-small")
and the pretrained MiniLM encoder with a classification head ("text-minilm").

Both take ``(input_ids, attention_mask)`` [batch, len] int64 and return logits [batch, classes].
Padding never changes the output: keys at padded positions are masked out of attention and
pooling averages over real tokens only. Each model carries its ``tokenizers.Tokenizer`` in its config
(so a saved model predicts from raw text) and also writes it as ``tokenizer.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn

from towerkit.core.errors import ConfigError, ModelLoadError
from towerkit.core.io import write_text_atomic
from towerkit.core.model import BaseModel, eval_mode, register_model, replace_config

TOKENIZER_NAME = "tokenizer.json"


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` [B, L, D] over positions where ``attention_mask`` [B, L] is 1."""
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class TokenizedClassifier(BaseModel):
    """A classifier whose config carries its tokenizer (``tokenizer_json``, the tokenizers JSON),
    so ``BaseModel.from_pretrained(dir)`` alone gives a model that can predict from raw text.
    ``save_pretrained`` also writes that tokenizer as ``tokenizer.json`` for ONNX consumers."""

    config: Any

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.tokenizer: Tokenizer | None = None
        if config.tokenizer_json:
            try:
                self.tokenizer = Tokenizer.from_str(config.tokenizer_json)
            except Exception as exc:  # tokenizers raises plain Exceptions
                raise ModelLoadError(
                    f"{type(self).__name__}: invalid tokenizer_json ({exc})"
                ) from None

    def attach_tokenizer(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.config.tokenizer_json = tokenizer.to_str()

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = super().save_pretrained(directory)
        if self.tokenizer is not None:
            write_text_atomic(directory / TOKENIZER_NAME, self.tokenizer.to_str())
        return directory

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        from towerkit.zoo.data.text import encode_texts, pad_batch

        if self.tokenizer is None:
            raise ModelLoadError(f"{type(self).__name__}: no tokenizer attached (tokenizer.json)")
        return pad_batch(encode_texts(self.tokenizer, texts))

    @torch.no_grad()
    def predict_proba(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """Class probabilities [len(texts), classes] in eval mode."""
        chunks = []
        with eval_mode(self):
            for start in range(0, len(texts), batch_size):
                ids, mask = self.encode(texts[start : start + batch_size])
                chunks.append(torch.softmax(self(ids, mask), dim=-1))
        return torch.cat(chunks) if chunks else torch.empty(0, len(self.class_names))


# --- a Transformer encoder trained from scratch -------------------------------------------------


@dataclass
class TextTransformerConfig:
    vocab_size: int = 8000
    num_classes: int = 2
    class_names: list[str] = field(default_factory=list)
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    ff_dim: int = 256
    max_len: int = 128
    dropout: float = 0.1
    pad_id: int = 0
    tokenizer_json: str = ""
    # >0: a fastText-style side path, the mean of hashed token unigram + bigram embeddings,
    # concatenated with the Transformer's pooled vector before the head. On ~10k short reviews
    # the Transformer alone underfits the lexical cues a bag of n-grams catches.
    ngram_buckets: int = 0
    ngram_dim: int = 64

    def __post_init__(self) -> None:
        check_heads(self.d_model, self.n_heads)


def check_heads(d_model: int, n_heads: int) -> None:
    """d_model must split evenly over the heads: torch's own check is a bare AssertionError
    deep inside MultiheadAttention."""
    if n_heads > 0 and d_model % n_heads:
        raise ConfigError(
            f"model: d_model: expected a multiple of n_heads ({n_heads}), got {d_model}"
        )


_BIGRAM_PRIME = 1_000_003


class TextTransformerClassifier(TokenizedClassifier):
    config_class = TextTransformerConfig
    config: TextTransformerConfig

    def __init__(self, config: TextTransformerConfig) -> None:
        super().__init__(config)
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model, config.pad_id)
        self.position_embedding = nn.Embedding(config.max_len, config.d_model)
        layer = nn.TransformerEncoderLayer(
            config.d_model,
            config.n_heads,
            config.ff_dim,
            config.dropout,
            batch_first=True,
            norm_first=True,
            activation="gelu",
        )
        # nested tensors change numerics with padding and do not export: keep the dense path
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        head_in = config.d_model
        if config.ngram_buckets > 0:
            self.ngram_embedding = nn.Embedding(config.ngram_buckets, config.ngram_dim)
            head_in += config.ngram_dim
        self.head = nn.Linear(head_in, config.num_classes)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled sentence vectors [B, d_model]."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        hidden = self.token_embedding(input_ids) + self.position_embedding(positions)
        hidden = self.encoder(self.dropout(hidden), src_key_padding_mask=attention_mask == 0)
        pooled = self.norm(masked_mean(hidden, attention_mask))
        if self.config.ngram_buckets > 0:
            pooled = torch.cat([pooled, self.ngram_vector(input_ids, attention_mask)], dim=-1)
        return pooled

    def ngram_vector(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean embedding [B, ngram_dim] of the hashed unigrams and bigrams of real tokens."""
        buckets = self.config.ngram_buckets
        bigrams = (input_ids[:, :-1] * _BIGRAM_PRIME + input_ids[:, 1:]) % buckets
        ids = torch.cat([input_ids % buckets, bigrams], dim=1)
        mask = torch.cat([attention_mask, attention_mask[:, :-1] * attention_mask[:, 1:]], dim=1)
        return masked_mean(self.ngram_embedding(ids), mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))


@register_model("text-transformer-small")
def text_transformer_small(**overrides: Any) -> TextTransformerClassifier:
    return TextTransformerClassifier(replace_config(TextTransformerConfig(), **overrides))


@register_model("text-transformer-base")
def text_transformer_base(**overrides: Any) -> TextTransformerClassifier:
    base = TextTransformerConfig(d_model=256, n_heads=8, n_layers=4, ff_dim=1024)
    return TextTransformerClassifier(replace_config(base, **overrides))


# --- the pretrained MiniLM encoder (all-MiniLM-L6-v2) + a head ---------------------------------


@dataclass
class MiniLMClassifierConfig:
    # the BERT config of the encoder, copied from the pretrained folder so a saved model is
    # complete without that folder
    encoder_config: dict[str, Any] = field(default_factory=dict)
    num_classes: int = 2
    class_names: list[str] = field(default_factory=list)
    dropout: float = 0.1
    tokenizer_json: str = ""


class MiniLMClassifier(TokenizedClassifier):
    config_class = MiniLMClassifierConfig
    config: MiniLMClassifierConfig

    def __init__(self, config: MiniLMClassifierConfig) -> None:
        from transformers import BertConfig, BertModel

        super().__init__(config)
        if not config.encoder_config:
            raise ModelLoadError("MiniLMClassifier: encoder_config is empty (use create_model)")
        bert_config = BertConfig(**config.encoder_config)
        # eager attention exports to ONNX cleanly and gives the same numbers as sdpa
        bert_config._attn_implementation = "eager"
        self.encoder = BertModel(bert_config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(bert_config.hidden_size, config.num_classes)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled sentence vectors, as sentence-transformers pools all-MiniLM-L6-v2."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return masked_mean(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))


def minilm_dir() -> Path:
    from towerkit.zoo.assets import fetch

    return Path(fetch("all-minilm-l6-v2"))


@register_model("text-minilm")
def text_minilm(
    pretrained_dir: str | Path | None = None, max_length: int = 128, **overrides: Any
) -> MiniLMClassifier:
    """MiniLM-L6 (384-d) with the pretrained weights and tokenizer, plus a fresh linear head."""
    from safetensors.torch import load_file

    directory = Path(pretrained_dir) if pretrained_dir is not None else minilm_dir()
    encoder_config = json.loads((directory / "config.json").read_text())
    config = replace_config(MiniLMClassifierConfig(encoder_config=encoder_config), **overrides)
    model = MiniLMClassifier(config)
    state = load_file(str(directory / "model.safetensors"))
    # the hub checkpoint names keys without the "encoder." prefix and may carry a pooler
    # (and old transformers versions saved the position_ids buffer)
    encoder_state = {
        k: v
        for k, v in state.items()
        if not k.startswith("pooler.") and not k.endswith("position_ids")
    }
    missing, unexpected = model.encoder.load_state_dict(encoder_state, strict=False)
    real_missing = [k for k in missing if not k.endswith("position_ids")]
    if real_missing or unexpected:
        raise ModelLoadError(
            f"{directory / 'model.safetensors'}: not a MiniLM/BERT checkpoint "
            f"(missing {real_missing[:3]}, unexpected {unexpected[:3]})"
        )
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    model.attach_tokenizer(tokenizer)
    return model
