"""``quiet_converters``: the exporters' known, harmless chatter kept off the user's terminal.

torch's ONNX exporter logs a warning for every torchvision operator it cannot register when
torchvision is absent (it is not needed here), torch.export warns that a pytree class is
deprecated, and coremltools logs on import that its macOS-only runtime and the installed
scikit-learn / torch versions are unsupported, then warns of float overflows in casts it folds.
None of it is about the user's model; real failures still raise (and errors still log).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

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
