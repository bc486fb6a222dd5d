"""Generator backends: a deterministic template, an OpenAI-compatible HTTP API, the Anthropic
Messages API (and, in ``textgen.local``, a local Hugging Face causal LM).

A backend turns a batch of ``TextRequest`` into texts; ``identity`` names the backend and model
(and the generation settings) and is part of every cache key. API keys come only from the
environment. HTTP calls retry on 429 / 5xx / connection errors with exponential backoff.
"""

from __future__ import annotations

import abc
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.rec.sequential.textgen.requests import TextRequest

BackendName = Literal["template", "hf", "openai", "anthropic"]
_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}


@dataclass
class BackendConfig:
    backend: BackendName = "template"
    # hf: an asset name or a folder (HF files or a .gguf); openai/anthropic: the model id
    model: str = ""
    base_url: str = ""  # openai/anthropic; empty: the provider's public endpoint
    api_key_env: str = ""  # empty: OPENAI_API_KEY / ANTHROPIC_API_KEY
    temperature: float = 0.0  # 0: greedy (hf) / the API's most deterministic setting
    batch_size: int = 8  # requests per batch (hf: one padded generate call)
    concurrency: int = 4  # parallel HTTP requests within a batch
    timeout_s: float = 60.0
    max_retries: int = 4


class Backend(Protocol):
    identity: str

    def generate(self, requests: Sequence[TextRequest]) -> list[str]: ...


class TemplateBackend:
    """Fills each request's template with its fields: no model, same output every time."""

    identity = "template"

    def generate(self, requests: Sequence[TextRequest]) -> list[str]:
        return [r.template.format(**r.fields) for r in requests]


class _HttpBackend(abc.ABC):
    provider = ""
    default_url = ""
    default_key_env = ""

    def __init__(self, config: BackendConfig) -> None:
        if not config.model:
            raise ConfigError(f"textgen: backend {self.provider!r} needs model=<model id>")
        self.config = config
        self.base_url = (config.base_url or self.default_url).rstrip("/")
        key_env = config.api_key_env or self.default_key_env
        key = os.environ.get(key_env, "")
        if not key:
            raise ConfigError(
                f"textgen: backend {self.provider!r} reads its API key from ${key_env}, "
                "which is not set"
            )
        self.headers = self._headers(key)
        self.identity = f"{self.provider}:{config.model}:t={config.temperature}"
        self.client = httpx.Client(timeout=config.timeout_s)

    @abc.abstractmethod
    def _headers(self, key: str) -> dict[str, str]:
        """Provider-specific; each subclass gives its own."""

    @abc.abstractmethod
    def _body(self, request: TextRequest) -> dict[str, Any]:
        """Provider-specific; each subclass gives its own."""

    @abc.abstractmethod
    def _text(self, reply: Any) -> str:
        """Provider-specific; each subclass gives its own."""

    url_path = ""

    def generate(self, requests: Sequence[TextRequest]) -> list[str]:
        workers = max(1, min(self.config.concurrency, len(requests)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self._one, requests))

    def _one(self, request: TextRequest) -> str:
        url = self.base_url + self.url_path
        for attempt in range(self.config.max_retries + 1):
            try:
                response = self.client.post(url, headers=self.headers, json=self._body(request))
            except httpx.TransportError as exc:
                if attempt == self.config.max_retries:
                    raise TowerkitError(f"textgen {self.provider}: {url}: {exc}") from None
            else:
                if response.status_code == 200:
                    return self._parse(response, url)
                if response.status_code not in _RETRY_STATUS or attempt == self.config.max_retries:
                    raise TowerkitError(
                        f"textgen {self.provider}: {url} answered HTTP {response.status_code}: "
                        f"{response.text[:200]}"
                    )
            time.sleep(min(30.0, 0.5 * 2**attempt))
        raise AssertionError("unreachable")

    def _parse(self, response: httpx.Response, url: str) -> str:
        try:
            return self._text(response.json())
        except (ValueError, KeyError, IndexError, TypeError):
            raise TowerkitError(
                f"textgen {self.provider}: {url}: unexpected reply {response.text[:200]!r}"
            ) from None


class OpenAIBackend(_HttpBackend):
    """``POST {base_url}/chat/completions`` (OpenAI, vLLM, llama.cpp server, Ollama, ...)."""

    provider = "openai"
    default_url = "https://api.openai.com/v1"
    default_key_env = "OPENAI_API_KEY"
    url_path = "/chat/completions"

    def _headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def _body(self, request: TextRequest) -> dict[str, Any]:
        messages = [{"role": "user", "content": request.prompt}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        return {
            "model": self.config.model,
            "messages": messages,
            "max_tokens": request.max_new_tokens,
            "temperature": self.config.temperature,
        }

    def _text(self, reply: Any) -> str:
        return str(reply["choices"][0]["message"]["content"])


class AnthropicBackend(_HttpBackend):
    """``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version``."""

    provider = "anthropic"
    default_url = "https://api.anthropic.com"
    default_key_env = "ANTHROPIC_API_KEY"
    url_path = "/v1/messages"

    def _headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}

    def _body(self, request: TextRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": request.max_new_tokens,
            "temperature": self.config.temperature,
            "messages": [{"role": "user", "content": request.prompt}],
        }
        if request.system:
            body["system"] = request.system
        return body

    def _text(self, reply: Any) -> str:
        return "".join(block["text"] for block in reply["content"] if block["type"] == "text")


def make_backend(config: BackendConfig) -> Backend:
    if config.batch_size < 1 or config.concurrency < 1:
        raise ConfigError("textgen: batch_size and concurrency: expected >= 1")
    if config.backend == "template":
        return TemplateBackend()
    if config.backend == "openai":
        return OpenAIBackend(config)
    if config.backend == "anthropic":
        return AnthropicBackend(config)
    if config.backend == "hf":
        from towerkit.rec.sequential.textgen.local import HFBackend

        return HFBackend(config)
    raise ConfigError(
        f"textgen: backend: expected template, hf, openai or anthropic, got {config.backend!r}"
    )
