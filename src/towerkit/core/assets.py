"""Named datasets and pretrained models: ordered sources, a cache and a manifest.

An ``Asset`` lists its sources best first (the official download, then offline copies). ``fetch``
tries them in order and returns the asset's folder (or its one file, for single-file assets).
Downloaded files live in ``TOWERKIT_HOME/assets/<name>/files/``; files already on disk are used
in place. Either way ``TOWERKIT_HOME/assets/<name>/manifest.json`` records which source was used,
every file's size and sha256, and when. Domains register their assets in ``towerkit/<domain>/
assets.py``; that module must import nothing beyond ``towerkit.core``, because ``list_assets`` and
an unknown name import every such module to find them. Assets that several domains use are
defined once in ``towerkit/core/shared_assets.py`` and registered first, so that no domain relies
on another domain's registrations.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from filelock import FileLock

from towerkit.core.asset_sources import (
    DebianSource,
    DownloadSource,
    HubSource,
    InPlaceSource,
    InstalledPackageSource,
    LocalSource,
    PypiWheelSource,
    Source,
    SourceFailed,
    UrlBundleSource,
    UrlSource,
    download_timeout,
    file_sha256,
    shared_root,
)
from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_dir, write_json_atomic
from towerkit.core.paths import towerkit_home

__all__ = [
    "Asset",
    "AssetStatus",
    "DebianSource",
    "HubSource",
    "InstalledPackageSource",
    "LocalSource",
    "PypiWheelSource",
    "Source",
    "SourceFailed",
    "UrlBundleSource",
    "UrlSource",
    "asset_status",
    "cache_dir",
    "download_timeout",
    "fetch",
    "get_asset",
    "list_assets",
    "read_manifest",
    "register_asset",
    "shared_root",
]

AssetKind = Literal["dataset", "model"]
StatusState = Literal["cached", "available", "remote", "missing"]
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_NOT_DOMAINS = {"core", "commands"}


@dataclass(frozen=True)
class Asset:
    """A named dataset or model. ``file``: for single-file assets, the file fetch returns."""

    name: str
    kind: AssetKind
    description: str
    license: str
    sources: Sequence[Source]
    citation: str = ""
    homepage: str = ""
    file: str | None = None
    required: Sequence[str] = ()  # paths every source must provide (relative to the folder)

    @property
    def required_files(self) -> list[str]:
        return [*self.required, *([self.file] if self.file else [])]


@dataclass(frozen=True)
class AssetStatus:
    """cached: fetched before; available: an on-disk source has it; remote: only downloads are
    left (not checked, no network is used); missing: no source can work."""

    name: str
    state: StatusState
    source: str | None  # the source's description, for cached and available
    path: Path | None
    detail: str = ""
    source_kind: str | None = None

    def summary(self) -> str:
        if self.state in ("cached", "available"):
            return f"{self.state} ({self.source})"
        return f"{self.state}: {self.detail}"


_REGISTRY: dict[str, Asset] = {}
_discovered = False


def register_asset(asset: Asset) -> Asset:
    """Add an asset; registering the same definition again is a no-op."""
    if not _NAME.match(asset.name):
        raise TowerkitError(f"asset name {asset.name!r}: expected lowercase letters, digits, .-_")
    if asset.kind not in get_args(AssetKind):
        raise TowerkitError(f"asset {asset.name!r}: kind {asset.kind!r}, expected dataset|model")
    if not asset.sources:
        raise TowerkitError(f"asset {asset.name!r}: needs at least one source")
    known = _REGISTRY.get(asset.name)
    if known is not None and known != asset:
        raise TowerkitError(f"asset {asset.name!r} is already registered with another definition")
    _REGISTRY[asset.name] = asset
    return asset


def discover_assets() -> None:
    """Register core's shared assets, then import ``towerkit.<domain>.assets`` for every domain
    package that has one (once)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import towerkit
    from towerkit.core.shared_assets import SHARED_ASSETS

    for asset in SHARED_ASSETS:
        register_asset(asset)

    for info in pkgutil.iter_modules(towerkit.__path__):
        if not info.ispkg or info.name in _NOT_DOMAINS:
            continue
        module = f"towerkit.{info.name}.assets"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def list_assets() -> list[Asset]:
    discover_assets()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_asset(name: str) -> Asset:
    if name not in _REGISTRY:
        discover_assets()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none registered"
        raise TowerkitError(f"unknown asset {name!r}; known assets: {known}")
    return _REGISTRY[name]


def cache_dir(name: str) -> Path:
    """``TOWERKIT_HOME/assets/<name>``: manifest.json, and files/ for downloaded sources."""
    return towerkit_home().absolute() / "assets" / name  # manifests record absolute paths


def _manifest_path(name: str) -> Path:
    return cache_dir(name) / "manifest.json"


def read_manifest(name: str) -> dict[str, Any] | None:
    """The manifest of the last successful fetch, or None (never fetched, or unreadable)."""
    try:
        data = json.loads(_manifest_path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _result_path(asset: Asset, folder: Path) -> Path:
    return folder / asset.file if asset.file else folder


def _cached_folder(asset: Asset) -> Path | None:
    """The folder of a still-valid earlier fetch: same source, every file there, same sizes."""
    manifest = read_manifest(asset.name)
    if manifest is None:
        return None
    try:
        folder = Path(manifest["path"])
        described = manifest["source"]["description"]
        files: dict[str, dict[str, Any]] = manifest["files"]
        if described not in [source.describe() for source in asset.sources]:
            return None
        for relative, entry in files.items():
            path = folder / relative
            if not path.is_file() or path.stat().st_size != entry["bytes"]:
                return None
    except (KeyError, TypeError):
        return None
    return folder


def _list_files(folder: Path) -> dict[str, dict[str, Any]]:
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.relative_to(folder).parts
    )
    return {
        path.relative_to(folder).as_posix(): {
            "bytes": path.stat().st_size,
            "sha256": file_sha256(path),
        }
        for path in files
    }


def _write_manifest(
    asset: Asset, source: Source, index: int, folder: Path, skipped: list[str]
) -> None:
    manifest = {
        "asset": asset.name,
        "kind": asset.kind,
        "source": {"kind": source.kind, "description": source.describe(), "index": index},
        "in_place": isinstance(source, InPlaceSource),
        "path": str(folder),
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "skipped": skipped,
        "files": _list_files(folder),
    }
    write_json_atomic(_manifest_path(asset.name), manifest)


def _check_required(asset: Asset, folder: Path) -> None:
    for relative in asset.required_files:
        if not (folder / relative).is_file():
            raise SourceFailed(f"missing {relative} in {folder}")


def _provide(asset: Asset, source: Source) -> Path:
    """Get the files from one source; raise SourceFailed, leaving the cache as it was."""
    if isinstance(source, InPlaceSource):
        folder = source.locate()
        _check_required(asset, folder)
        return folder
    if not isinstance(source, DownloadSource):
        raise SourceFailed(f"{type(source).__name__} is neither a download nor in-place source")
    target = cache_dir(asset.name) / "files"
    with atomic_dir(target) as staging:
        source.fill(staging)
        _check_required(asset, staging)
        # the old manifest goes before the old files are swapped out
        _manifest_path(asset.name).unlink(missing_ok=True)
    return target


def _fetch_from_sources(asset: Asset) -> Path:
    skipped: list[str] = []  # recorded in the manifest; `towerkit data info` shows them
    for index, source in enumerate(asset.sources):
        try:
            folder = _provide(asset, source)
        except SourceFailed as exc:
            skipped.append(f"{source.describe()} ({exc})")
            continue
        _write_manifest(asset, source, index, folder, skipped)
        stale = cache_dir(asset.name) / "files"
        if isinstance(source, InPlaceSource) and stale.exists():
            shutil.rmtree(stale)
        return folder
    raise TowerkitError(f"asset {asset.name!r}: no source worked: {'; '.join(skipped)}")


def fetch(name: str, *, refresh: bool = False) -> Path:
    """The asset's folder (or its one file), from the cache or from the first source that works.

    ``refresh`` ignores the cache and tries the sources again; the old cache stays if all fail.
    """
    asset = get_asset(name)
    folder = cache_dir(name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(folder.parent / f".{name}.lock"):
        cached = None if refresh else _cached_folder(asset)
        try:
            return _result_path(asset, cached or _fetch_from_sources(asset))
        finally:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # a first fetch that failed leaves nothing behind


def asset_status(name: str) -> AssetStatus:
    """What fetch would do now, without using the network or writing anything."""
    asset = get_asset(name)
    cached = _cached_folder(asset)
    if cached is not None:
        manifest = read_manifest(name) or {}
        used = manifest.get("source", {})
        path = _result_path(asset, cached)
        return AssetStatus(name, "cached", used.get("description"), path, "", used.get("kind"))
    remote: list[str] = []
    reasons: list[str] = []
    for source in asset.sources:
        if source.remote or not isinstance(source, InPlaceSource):
            remote.append(source.describe())
            continue
        try:
            folder = source.locate()
            _check_required(asset, folder)
        except SourceFailed as exc:
            reasons.append(f"{source.describe()} ({exc})")
            continue
        path = _result_path(asset, folder)
        return AssetStatus(name, "available", source.describe(), path, "", source.kind)
    if remote:
        return AssetStatus(name, "remote", None, None, f"{', '.join(remote)} (not checked)")
    return AssetStatus(name, "missing", None, None, "; ".join(reasons))
