"""Real exports of the same architectures to Core ML (predictions checked on macOS only)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from export_models import (
    MLP,
    DataDependentBranch,
    LengthsLSTM,
    MaskedTransformer,
    SmallCNN,
    lengths,
    padding_mask,
    seeded,
)
from torch import Tensor, nn

from towerkit.core.errors import TowerkitError
from towerkit.core.export import export_coreml

needs_coremltools = pytest.mark.skipif(
    importlib.util.find_spec("coremltools") is None,
    reason="coremltools is not installed (pip install 'towerkit[coreml]')",
)


def coreml_io(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Names -> (data type, [(lower, upper) per axis]) from the saved package's spec."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))

    def describe(feature: Any) -> tuple[str, list[tuple[int, int]]]:
        array = feature.type.multiArrayType
        dtype = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType)
        ranges = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
        return dtype, ranges

    inputs = {f.name: describe(f) for f in spec.description.input}
    outputs = {f.name: describe(f)[0] for f in spec.description.output}
    return inputs, outputs


COREML_CASES = {  # class, example inputs, input names, dynamic dims, deployment target
    "mlp": (MLP, lambda: (torch.randn(4, 8),), ["x"], {"x": {0: "batch"}}, "iOS17"),
    "cnn": (
        SmallCNN,
        lambda: (torch.randn(4, 1, 16, 16),),
        ["image"],
        {"image": {0: "batch"}},
        None,
    ),
    "lstm": (
        LengthsLSTM,
        lambda: (torch.randn(4, 7, 6), lengths(4, 7)),
        ["x", "lengths"],
        {"x": {0: "batch", 1: "seq"}, "lengths": {0: "batch"}},
        None,
    ),
}
COREML_SPECS = {
    "mlp": {"x": ("FLOAT32", [(1, 64), (8, 8)])},
    "cnn": {"image": ("FLOAT32", [(1, 64), (1, 1), (16, 16), (16, 16)])},
    "lstm": {"x": ("FLOAT32", [(1, 64), (1, 64), (6, 6)]), "lengths": ("INT32", [(1, 64)])},
}


@pytest.mark.parametrize("name", sorted(COREML_CASES))
@needs_coremltools
def test_coreml_conversion_writes_package_with_dynamic_spec(tmp_path: Path, name: str) -> None:
    cls, make_inputs, input_names, dynamic_dims, deployment_target = COREML_CASES[name]
    model = seeded(cls)
    path = export_coreml(
        model,
        make_inputs(),
        tmp_path / f"{name}.mlpackage",
        input_names=input_names,
        output_names=["logits"],
        dynamic_dims=dynamic_dims,
        minimum_deployment_target=deployment_target,
        max_dim_size=64,
    )
    assert (path / "Manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.mlpackage"]
    inputs, outputs = coreml_io(path)
    assert inputs == COREML_SPECS[name]  # float32 even for iOS17, which defaults to float16
    assert outputs == {"logits": "FLOAT32"}
    if sys.platform == "darwin":
        assert_coreml_predicts_like_torch(model, path, input_names, make_inputs())


def assert_coreml_predicts_like_torch(
    model: nn.Module, path: Path, input_names: list[str], inputs: tuple[Tensor, ...]
) -> None:
    import coremltools as ct

    mlmodel = ct.models.MLModel(str(path))
    model.eval()
    with torch.no_grad():
        expected = model(*inputs).numpy()
    feed = {
        n: t.numpy().astype(np.int32 if not t.is_floating_point() else np.float32)
        for n, t in zip(input_names, inputs, strict=True)
    }
    np.testing.assert_allclose(mlmodel.predict(feed)["logits"], expected, atol=2e-2, rtol=2e-2)


@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML predictions need macOS")
@needs_coremltools
def test_coreml_prediction_follows_dynamic_batch(tmp_path: Path) -> None:
    model = seeded(MLP)
    path = export_coreml(
        model,
        (torch.randn(4, 8),),
        tmp_path / "mlp.mlpackage",
        input_names=["x"],
        output_names=["logits"],
        dynamic_dims={"x": {0: "batch"}},
        compute_precision="float32",
    )
    for batch in (1, 9):
        assert_coreml_predicts_like_torch(model, path, ["x"], (torch.randn(batch, 8),))


@pytest.mark.slow
@needs_coremltools
def test_coreml_transformer_turns_bool_mask_into_float_input(tmp_path: Path) -> None:
    path = export_coreml(
        seeded(MaskedTransformer),
        (torch.randn(4, 7, 6), padding_mask(4, 7)),
        tmp_path / "transformer.mlpackage",
        input_names=["x", "padding_mask"],
        output_names=["logits"],
        dynamic_dims={"x": {0: "batch", 1: "seq"}, "padding_mask": {0: "batch", 1: "seq"}},
        max_dim_size=128,
    )
    inputs, outputs = coreml_io(path)
    assert inputs["x"] == ("FLOAT32", [(1, 128), (1, 128), (6, 6)])
    assert inputs["padding_mask"] == ("FLOAT32", [(1, 128), (1, 128)])  # Core ML has no bool I/O
    assert outputs == {"logits": "FLOAT32"}


class LastStepGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(6, 8, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.gru(x)[0][:, -1]


@needs_coremltools
def test_coreml_names_the_unsupported_gru_op(tmp_path: Path) -> None:
    with pytest.raises(
        TowerkitError, match=r"Core ML conversion of LastStepGRU failed: .*gru\.input"
    ):
        export_coreml(
            LastStepGRU(),
            (torch.randn(2, 5, 6),),
            tmp_path / "gru.mlpackage",
            input_names=["x"],
            output_names=["h"],
        )
    assert list(tmp_path.iterdir()) == []


@needs_coremltools
def test_coreml_errors_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(TowerkitError, match=r"DataDependentBranch.*GuardOnDataDependentSymNode"):
        export_coreml(
            DataDependentBranch(),
            (torch.randn(3, 4),),
            tmp_path / "bad.mlpackage",
            input_names=["x"],
            output_names=["y"],
            dynamic_dims={"x": {0: "batch"}},
        )
    with pytest.raises(TowerkitError, match=r"ending in \.mlpackage"):
        export_coreml(
            MLP(),
            (torch.randn(2, 8),),
            tmp_path / "m.mlmodel",
            input_names=["x"],
            output_names=["y"],
        )
    with pytest.raises(TowerkitError, match="expected one of"):
        export_coreml(
            MLP(),
            (torch.randn(2, 8),),
            tmp_path / "m.mlpackage",
            input_names=["x"],
            output_names=["y"],
            minimum_deployment_target="iOS99",
        )
    assert list(tmp_path.iterdir()) == []
