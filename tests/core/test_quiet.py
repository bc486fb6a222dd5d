"""quiet_converters: the exporters' harmless chatter is off inside, and only inside."""

from __future__ import annotations

import logging
import warnings

import pytest

from towerkit.core.quiet import quiet_converters


def test_converter_warnings_are_dropped_inside_and_restored_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    coreml = logging.getLogger("coremltools.models.compute_device")
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_converters():
            registration.warning("torchvision is not installed. Skipping torchvision::nms")
            coreml.warning("Failed to load _MLModelProxy")
            coreml.error("a real conversion error")  # errors still come through
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, 1)
            warnings.warn("overflow encountered in cast", RuntimeWarning, 1)
            warnings.warn("something else", UserWarning, 1)
    assert [r.getMessage() for r in caplog.records] == ["a real conversion error"]
    assert [str(w.message) for w in caught] == ["something else"]
    registration.warning("after")
    assert caplog.records[-1].getMessage() == "after"
    assert logging.getLogger("torch.onnx").level == logging.NOTSET


def test_library_bars_are_off_only_when_stderr_is_not_a_terminal() -> None:
    from towerkit.core.quiet import quiet_library_bars

    logged: dict[str, str] = {}
    quiet_library_bars(logged, interactive=False)
    assert logged == {"TQDM_DISABLE": "1"}
    terminal: dict[str, str] = {}
    quiet_library_bars(terminal, interactive=True)
    assert terminal == {}
    kept = {"TQDM_DISABLE": ""}  # the user asked for the bars
    quiet_library_bars(kept, interactive=False)
    assert kept == {"TQDM_DISABLE": ""}


def test_the_cli_turns_tqdm_off_before_any_library_imports_it() -> None:
    import os
    import subprocess
    import sys

    script = (
        "from towerkit.cli import main; main(['data', 'list']); "
        "from tqdm.auto import tqdm; print('disabled', tqdm(range(2)).disable)"
    )
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "disabled True"


def test_explicitly_requested_bars_follow_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    from towerkit.core.quiet import library_bars_on

    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not library_bars_on()
    monkeypatch.setenv("TQDM_DISABLE", "")
    assert library_bars_on()
