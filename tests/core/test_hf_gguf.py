"""core.hf_gguf: HF folders pass through, GGUF files are converted once into a shared cache."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from towerkit.core import hf_gguf
from towerkit.core.errors import TowerkitError
from towerkit.core.hf_gguf import converted_folder, hf_folder


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the transformers conversion with a stub that records each GGUF it converts."""
    calls: list[Path] = []

    def fake_convert(source: Path, dest: Path) -> None:
        calls.append(source)
        (dest / "config.json").write_text(json.dumps({"from": source.name}))

    monkeypatch.setattr(hf_gguf, "_convert", fake_convert)
    return calls


def gguf_folder(path: Path, content: bytes = b"GGUF fake weights", name: str = "m.Q4.gguf") -> Path:
    path.mkdir(parents=True)
    (path / name).write_bytes(content)
    return path


def test_a_hf_folder_is_used_as_it_is(tmp_path: Path, conversions: list[Path]) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "extra.gguf").write_bytes(b"x")
    assert hf_folder(tmp_path, what="base model") == tmp_path
    assert conversions == []


def test_the_conversion_is_cached_and_reused(
    tmp_path: Path, isolated_home: Path, conversions: list[Path]
) -> None:
    folder = gguf_folder(tmp_path / "model")
    first = hf_folder(folder, what="textgen hf:")
    assert first.parent == isolated_home / "gguf" and first.name.startswith("m.Q4-")
    assert json.loads((first / "config.json").read_text()) == {"from": "m.Q4.gguf"}
    assert hf_folder(folder, what="textgen hf:") == first
    assert conversions == [folder / "m.Q4.gguf"]
    assert [p.name for p in first.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_copies_of_one_file_share_the_conversion(tmp_path: Path, conversions: list[Path]) -> None:
    """rec and repotune fetch the same GGUF, possibly from different folders: one conversion."""
    first = hf_folder(gguf_folder(tmp_path / "a"), what="a")
    copy = tmp_path / "b"
    shutil.copytree(tmp_path / "a", copy)
    os.utime(copy / "m.Q4.gguf", ns=(1, 1))
    assert hf_folder(copy, "m.Q4.gguf", what="b") == first
    assert len(conversions) == 1
    other = hf_folder(gguf_folder(tmp_path / "c", b"other weights"), what="c")
    assert other != first and len(conversions) == 2


def test_an_explicit_gguf_file_wins_over_config_json(
    tmp_path: Path, conversions: list[Path]
) -> None:
    folder = gguf_folder(tmp_path / "model")
    (folder / "config.json").write_text("{}")
    assert hf_folder(folder, "m.Q4.gguf", what="base model") == converted_folder(
        folder / "m.Q4.gguf"
    )
    assert conversions == [folder / "m.Q4.gguf"]


def test_a_failed_conversion_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(source: Path, dest: Path) -> None:
        (dest / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("out of memory")

    monkeypatch.setattr(hf_gguf, "_convert", broken)
    folder = gguf_folder(tmp_path / "model")
    with pytest.raises(RuntimeError, match="out of memory"):
        hf_folder(folder, what="base model")
    target = converted_folder(folder / "m.Q4.gguf")
    assert not target.exists()
    assert [p for p in target.parent.iterdir() if not p.name.endswith(".lock")] == []


def test_a_folder_without_weights_is_a_one_line_error(
    tmp_path: Path, conversions: list[Path]
) -> None:
    (tmp_path / "README.md").write_text("nothing here")
    with pytest.raises(TowerkitError) as info:
        hf_folder(tmp_path, what="base model")
    assert str(info.value) == f"base model {tmp_path}: no config.json and no .gguf file"
    with pytest.raises(TowerkitError, match=r"^textgen hf: .*: no GGUF file 'x.gguf' in it$"):
        hf_folder(tmp_path, "x.gguf", what="textgen hf:")
    assert conversions == []
