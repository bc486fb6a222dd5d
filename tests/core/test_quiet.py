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
