"""Download and checksum helpers behind ``towerkit.core.asset_sources``.

The failure type every source raises, the download timeout setting, sha256 checks, the short
one-line reasons for network errors, the download progress bar and archive unpacking.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from towerkit.core.errors import TowerkitError

DEFAULT_TIMEOUT_S = 10.0


class SourceFailed(Exception):
    """One source could not deliver the files; the message is the short reason."""


def download_timeout() -> float:
    """Seconds before a stalled download gives up: TOWERKIT_DOWNLOAD_TIMEOUT, default 10."""
    raw = os.environ.get("TOWERKIT_DOWNLOAD_TIMEOUT", "")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise TowerkitError(f"TOWERKIT_DOWNLOAD_TIMEOUT={raw!r}: expected a positive number")
    return value


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sha256_mismatch(name: str, expected: str, actual: str) -> SourceFailed:
    return SourceFailed(
        f"sha256 mismatch for {name}: expected {expected[:12]}…, got {actual[:12]}…"
    )


def verify_sha256(folder: Path, expected: Mapping[str, str]) -> None:
    """Check files (paths relative to ``folder``) against their expected digests."""
    for relative, digest in expected.items():
        path = folder / relative
        if not path.is_file():
            raise SourceFailed(f"missing {relative} in {folder}")
        actual = file_sha256(path)
        if actual != digest:
            raise sha256_mismatch(relative, digest, actual)


def short_reason(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def network_reason(reason: object, timeout: float) -> str:
    if isinstance(reason, socket.gaierror):
        return "network unreachable: host not found"
    if isinstance(reason, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return short_reason(str(reason))


def download_progress() -> Progress:
    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # no bar frames in logs and captured output
    )


def unpack_archive(archive: Path, dest: Path) -> None:
    # shutil.unpack_archive rejects filter= for zip files on 3.11, so pick the reader here
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(dest)  # zipfile drops absolute and ".." parts of member names
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as bundle:
            bundle.extractall(dest, filter="data")
    else:
        raise SourceFailed(f"{archive.name} is neither a zip nor a tar archive")
