"""The offline text generator: prompts, requests (no held-out leakage), the resumable cache, the
template / OpenAI-compatible / Anthropic backends (against a local stub server) and the local
Hugging Face backend on the real SmolLM2 GGUF."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest

from towerkit.core.errors import ConfigError, TowerkitError
from towerkit.rec.sequential.data import PAD, SeqDataset
from towerkit.rec.sequential.textgen import (
    BackendConfig,
    TextRequest,
    dataset_requests,
    generate_texts,
    load_prompts,
    make_backend,
    read_texts,
    run_generation,
)
from towerkit.rec.sequential.textgen.cache import TextCache

ROOT = Path(__file__).resolve().parents[3]
PROMPTS = ROOT / "configs/rec/prompts/ur4rec.yaml"


def tiny_dataset() -> SeqDataset:
    titles = ["Toy Story", "Heat", "Alien", "Fargo", "Babe", "Casino"]
    genres = ["Animation|Comedy", "Action|Crime", "Horror|Sci-Fi", "Crime", "Comedy", "Crime"]
    sequences = [np.array([1, 2, 4, 6, 3]), np.array([5, 1, 2, 4])]
    return SeqDataset(
        name="tiny",
        sequences=sequences,
        timestamps=[np.arange(len(s)) for s in sequences],
        n_items=6,
        user_ids=["u1", "u2"],
        item_ids=[PAD, *[f"i{k}" for k in range(1, 7)]],
        item_texts=["", *[f"{t}. Genres: {g}" for t, g in zip(titles, genres, strict=True)]],
        item_meta=pl.DataFrame({"title": titles, "genres": genres}),
    )


def test_template_requests_use_the_training_prefix_only() -> None:
    prompts = load_prompts(PROMPTS)
    requests = dataset_requests(tiny_dataset(), prompts, ["item", "user"])
    assert [r.kind for r in requests] == ["item"] * 6 + ["user"] * 2
    user = requests[6]
    assert user.key == "u1"
    # u1: train prefix Toy Story, Heat, Fargo; Casino (valid) and Alien (test) are held out
    assert "Toy Story" in user.prompt and "Fargo" in user.prompt
    assert "Casino" not in user.prompt and "Alien" not in user.prompt
    texts = make_backend(BackendConfig()).generate(requests)
    assert texts[6] == "Likes Crime, Animation, Comedy. Recently chose Fargo; Heat; Toy Story."
    assert texts[0] == "Toy Story. Animation, Comedy."


def test_prompt_file_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(PROMPTS.read_text().replace("{top_facets}", "{favourite}"))
    with pytest.raises(ConfigError, match=r"'user.template': unknown field \{favourite\}"):
        load_prompts(bad)
    short = load_prompts(ROOT / "configs/rec/prompts/short.yaml")
    assert short.max_history == 8


class CountingBackend:
    identity = "counting"

    def __init__(self, fail_at_call: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_at_call = fail_at_call

    def generate(self, requests: Sequence[TextRequest]) -> list[str]:
        if self.fail_at_call is not None and len(self.calls) == self.fail_at_call:
            raise RuntimeError("killed")
        self.calls.append([r.key for r in requests])
        return [f"Sure, text for {r.key}" for r in requests]


def _requests(n: int) -> list[TextRequest]:
    prompts = load_prompts(PROMPTS)
    from towerkit.rec.sequential.textgen.requests import item_request

    return [item_request(f"i{k}", {"title": f"Item {k}"}, prompts) for k in range(n)]


def test_interrupted_run_resumes_from_the_cache(tmp_path: Path) -> None:
    requests = _requests(10)
    cache_path = tmp_path / "cache.jsonl"
    with pytest.raises(RuntimeError, match="killed"):
        generate_texts(requests, CountingBackend(fail_at_call=2), TextCache(cache_path), 3)
    assert len(TextCache(cache_path)) == 6  # two whole batches were written before the crash
    with open(cache_path, "a") as fh:
        fh.write('{"key": "half-writ')  # a line cut short by a crash
    backend = CountingBackend()
    texts, report = generate_texts(requests, backend, TextCache(cache_path), 3)
    assert backend.calls == [["i6", "i7", "i8"], ["i9"]]
    assert (report.cached, report.generated, report.template) == (6, 4, 0)
    assert texts == [f"text for i{k}" for k in range(10)]  # the "Sure," preamble is dropped
    again = CountingBackend()
    assert generate_texts(requests, again, TextCache(cache_path), 3)[0] == texts
    assert again.calls == []
    assert len(cache_path.read_text().splitlines()) == 10  # the cut line was dropped


def test_cache_key_covers_backend_prompt_and_input() -> None:
    a, b = _requests(2)
    assert a.cache_key("x") != a.cache_key("y")
    assert a.cache_key("x") != b.cache_key("x")
    prompts = load_prompts(PROMPTS, ['item.prompt="Describe {metadata}"'])
    from towerkit.rec.sequential.textgen.requests import item_request

    assert item_request("i0", {"title": "Item 0"}, prompts).cache_key("x") != a.cache_key("x")
    longer = load_prompts(PROMPTS, ["item.max_new_tokens=99"])
    assert item_request("i0", {"title": "Item 0"}, longer).cache_key("x") != a.cache_key("x")
    # the same request built again keys the same (a sha256), so a later run finds the text
    key = a.cache_key("x")
    assert len(key) == 64 and int(key, 16) >= 0
    assert _requests(1)[0].cache_key("x") == key
    assert item_request("i0", {"title": "Item 0"}, load_prompts(PROMPTS)).cache_key("x") == key


def test_limit_sends_only_the_first_requests_and_fills_the_rest(tmp_path: Path) -> None:
    backend = CountingBackend()
    texts, report = generate_texts(_requests(5), backend, TextCache(tmp_path / "c.jsonl"), 8, 2)
    assert backend.calls == [["i0", "i1"]]
    assert texts[:2] == ["text for i0", "text for i1"]
    assert texts[2:] == ["Item 2. unknown.", "Item 3. unknown.", "Item 4. unknown."]
    assert report.template == 3


def test_corrupt_cache_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    path.write_text('not json\n{"key": "a", "raw": "x"}\n')
    with pytest.raises(TowerkitError, match=r"cache.jsonl: line 1 is not a cache entry"):
        TextCache(path)


def test_run_generation_writes_texts_json(tmp_path: Path) -> None:
    reports = run_generation(tiny_dataset(), tmp_path / "text", PROMPTS, BackendConfig())
    data = read_texts(tmp_path / "text")
    assert sorted(data["users"]) == ["u1", "u2"] and len(data["items"]) == 6
    assert data["users"]["u2"] == "Likes Comedy, Animation. Recently chose Toy Story; Babe."
    assert data["info"]["user"]["backend"] == "template"
    assert reports["item"].generated == 6
    again = run_generation(tiny_dataset(), tmp_path / "text", PROMPTS, BackendConfig())
    assert again["item"].generated == 0 and again["item"].cached == 6


# --- HTTP backends against a local stub server ---------------------------------------------------


class StubHandler(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self._reply(429, {"error": "slow down"})
            return
        prompt = body["messages"][-1]["content"]
        text = f"about {prompt.splitlines()[1]}"
        if self.path == "/v1/chat/completions":
            self._reply(200, {"choices": [{"message": {"role": "assistant", "content": text}}]})
        elif self.path == "/v1/messages":
            self._reply(200, {"content": [{"type": "text", "text": text}], "role": "assistant"})
        else:
            self._reply(404, {"error": "no such path"})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub_url() -> Iterator[str]:
    StubHandler.seen = []
    StubHandler.fail_first = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_openai_backend_speaks_chat_completions(
    stub_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = BackendConfig("openai", "gpt-test", base_url=f"{stub_url}/v1", temperature=0.2)
    StubHandler.fail_first = 1  # one 429 first: retried
    texts = make_backend(config).generate(_requests(2))
    assert texts == ["about title: Item 0", "about title: Item 1"]
    first = StubHandler.seen[-2]
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["Authorization"] == "Bearer sk-test"
    assert first["body"]["model"] == "gpt-test" and first["body"]["temperature"] == 0.2
    assert first["body"]["messages"][0]["role"] == "system"
    assert first["body"]["max_tokens"] == 48
    assert len(StubHandler.seen) == 3


def test_anthropic_backend_speaks_messages(stub_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "ak-test")
    config = BackendConfig("anthropic", "claude-test", base_url=stub_url, api_key_env="MY_KEY")
    assert make_backend(config).generate(_requests(1)) == ["about title: Item 0"]
    seen = StubHandler.seen[0]
    assert seen["path"] == "/v1/messages"
    assert seen["headers"]["x-api-key"] == "ak-test"
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert seen["body"]["system"].startswith("You write one-sentence descriptions")
    assert seen["body"]["messages"] == [{"role": "user", "content": _requests(1)[0].prompt}]


def test_http_backend_errors_are_one_line(stub_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"\$OPENAI_API_KEY, which is not set"):
        make_backend(BackendConfig("openai", "m"))
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    backend = make_backend(BackendConfig("openai", "m", base_url=f"{stub_url}/wrong"))
    with pytest.raises(TowerkitError, match=r"answered HTTP 404"):
        backend.generate(_requests(1))


@pytest.mark.slow
def test_local_smollm2_writes_texts(tmp_path: Path) -> None:
    pytest.importorskip("gguf", reason="the local backend needs the gguf package (rec extra)")
    config = BackendConfig("hf", batch_size=2)
    try:
        backend = make_backend(config)
    except TowerkitError as exc:
        pytest.skip(f"SmolLM2 not available here: {exc}")
    prompts = load_prompts(ROOT / "configs/rec/prompts/short.yaml", ["item.max_new_tokens=12"])
    from towerkit.rec.sequential.textgen.requests import item_request

    requests = [
        item_request("a", {"title": "Toy Story (1995)", "genres": "Animation|Comedy"}, prompts),
        item_request("b", {"title": "Heat (1995)", "genres": "Action|Crime|Thriller"}, prompts),
    ]
    texts, report = generate_texts(requests, backend, TextCache(tmp_path / "c.jsonl"), 2)
    assert report.generated == 2 and report.template == 0
    assert all(len(t) >= 3 for t in texts) and texts[0] != texts[1]
    assert backend.identity == "hf:smollm2-135m-instruct-rec:t=0.0"


def test_generate_text_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from towerkit.cli import main

    tiny_dataset().save(tmp_path / "data")
    out = tmp_path / "text"
    args = ["rec", "seq", "generate-text", "--data", str(tmp_path / "data"), "--out", str(out)]
    assert main([*args, "--kinds", "user"]) == 0
    data = read_texts(out)
    assert data["users"]["u1"].startswith("Likes Crime") and data["items"] == {}
    assert main([*args, "--kinds", "item,user"]) == 0
    assert len(read_texts(out)["items"]) == 6
    assert main([*args, "--kinds", "films"]) == 2
    assert (
        "error: --kinds: expected item, user or item,user, got 'films'" in capsys.readouterr().err
    )
    assert main([*args, "--backend", "gpt"]) == 2
    assert "backend: expected template, hf, openai or anthropic" in capsys.readouterr().err
