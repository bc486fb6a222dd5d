"""``quiet_converters``: the exporters' known, harmless chatter kept off the user's terminal.

torch's ONNX exporter logs a warning for every torchvision operator it cannot register when
torchvision is absent (it is not needed here), torch.export warns that a pytree class is
deprecated, and coremltools logs on import that its macOS-only runtime and the installed
scikit-learn / torch versions are unsupported, then warns of float overflows in casts it folds.
None of it is about the user's model; real failures still raise (and errors still log).

``quiet_library_bars``: the tqdm bars of sentence-transformers, transformers and datasets redraw
by writing a new line per update when stderr is a file, and fill logs; towerkit's own bars
(rich) already print once there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, MutableMapping

_CHATTY_LOGGERS = ("torch.onnx", "coremltools")


@contextlib.contextmanager
def ignored_warnings(*rules: tuple[type[Warning], str]) -> Iterator[None]:
    """``warnings`` filters for ``(category, message regex)`` pairs, undone on exit."""
    with warnings.catch_warnings():
        for category, message in rules:
            warnings.filterwarnings("ignore", category=category, message=message)
        yield


@contextlib.contextmanager
def quiet_converters() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with ignored_warnings(
            (FutureWarning, r".*LeafSpec"), (RuntimeWarning, "overflow encountered in cast")
        ):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def quiet_library_bars(
    environ: MutableMapping[str, str] | None = None, interactive: bool | None = None
) -> None:
    """Disable tqdm's bars when stderr is not a terminal, unless the user set ``TQDM_DISABLE``
    (``TQDM_DISABLE=`` keeps them). tqdm reads the variable when it is imported, so this runs
    before any library that uses it."""
    env = os.environ if environ is None else environ
    if interactive is None:
        interactive = sys.stderr.isatty()
    if not interactive:
        env.setdefault("TQDM_DISABLE", "1")


def library_bars_on() -> bool:
    """False where ``quiet_library_bars`` (or the user) turned tqdm off: for the libraries
    whose bar towerkit asks for explicitly (an explicit ``disable=False`` beats tqdm's
    environment default)."""
    return not os.environ.get("TQDM_DISABLE")
