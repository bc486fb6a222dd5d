"""One exception type for bad input: the CLI prints its one-line message and exits non-zero."""

from __future__ import annotations


class TowerkitError(Exception):
    """A user-facing error. The message is one line naming the file, key, row or argument."""

    exit_code: int = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(" ".join(message.split()))  # keep it on one line
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(TowerkitError):
    """An unknown key, a wrong type or a missing file in a config."""


class ModelLoadError(TowerkitError):
    """A saved model whose class, config or weight shapes do not match."""
