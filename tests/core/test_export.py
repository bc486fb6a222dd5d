"""Real exports of four architectures to ONNX (checked with ONNX Runtime) and Core ML."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from torch import Tensor, nn

from towerkit.core.errors import TowerkitError
from towerkit.core.export import (
    OnnxPredictor,
    check_onnx_parity,
    export_coreml,
    export_onnx,
    measure_latency,
)


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Dropout(0.2), nn.Linear(32, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(8, 5)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x).flatten(1))


class LengthsLSTM(nn.Module):
    """Classifies (batch, seq, features) by the LSTM state at each row's last real step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 12, batch_first=True)
        self.head = nn.Linear(12, 4)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        steps, _ = self.lstm(x)
        last = steps[torch.arange(x.shape[0]), (lengths - 1).clamp(min=0)]
        return self.head(last)


class MaskedTransformer(nn.Module):
    """nn.TransformerEncoder with a key padding mask (True = padding), mean-pooled."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x: Tensor, padding_mask: Tensor) -> Tensor:
        hidden = self.encoder(self.embed(x), src_key_padding_mask=padding_mask)
        keep = (~padding_mask).unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * keep).sum(1) / keep.sum(1).clamp(min=1.0))


class DataDependentBranch(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        if x.sum() > 0:
            return x * 2
        return x - 1


def seeded(cls: type[nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return cls()


def lengths(batch: int, seq: int) -> Tensor:
    return torch.randint(1, seq + 1, (batch,))


def padding_mask(batch: int, seq: int) -> Tensor:
    return torch.arange(seq)[None, :] >= lengths(batch, seq)[:, None]


def seq_cases(make_second: Any) -> list[tuple[Tensor, ...]]:
    torch.manual_seed(1)
    shapes = [(1, 3), (5, 11), (2, 24)]  # batch sizes 1/5/2, sequence lengths 3/11/24
    return [(torch.randn(b, s, 6), make_second(b, s)) for b, s in shapes]


def onnx_dims(path: Path) -> dict[str, list[str | int]]:
    graph = onnx.load(str(path)).graph
    return {
        value.name: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in [*graph.input, *graph.output]
    }


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    model = seeded(MLP)
    path = tmp_path_factory.mktemp("onnx") / "mlp.onnx"
    export_onnx(
        model,
        (torch.randn(4, 8),),
        path,
        input_names=["x"],
        output_names=["logits"],
        dynamic_dims={"x": {0: "batch"}, "logits": {0: "batch"}},
    )
    return model, path


# ---------------------------------------------------------------- ONNX parity per architecture


def test_mlp_onnx_matches_torch_at_three_batch_sizes(mlp_onnx: tuple[nn.Module, Path]) -> None:
    model, path = mlp_onnx
    assert model.training, "export must put the model back in training mode"
    assert onnx_dims(path) == {"x": ["batch", 8], "logits": ["batch", 3]}
    assert not path.with_name("mlp.onnx.data").exists()  # small model: one file
    report = check_onnx_parity(model, path, [(torch.randn(n, 8),) for n in (1, 3, 17)])
    assert report.ok
    assert [c.output_shapes for c in report.cases] == [((1, 3),), ((3, 3),), ((17, 3),)]
    assert report.max_abs_diff < 1e-5
    report.assert_ok()


def test_cnn_with_batchnorm_matches_torch(tmp_path: Path) -> None:
    model = seeded(SmallCNN)
    with torch.no_grad():  # move running statistics away from their initial 0/1
        for _ in range(3):
            model(torch.randn(8, 1, 16, 16) * 3 + 1)
    path = export_onnx(
        model,
        (torch.randn(4, 1, 16, 16),),
        tmp_path / "cnn.onnx",
        input_names=["image"],
        output_names=["logits"],
        dynamic_dims={"image": {0: "batch"}},
    )
    assert onnx_dims(path) == {"image": ["batch", 1, 16, 16], "logits": ["batch", 5]}
    report = check_onnx_parity(model, path, [(torch.randn(n, 1, 16, 16),) for n in (1, 6)])
    assert report.ok, report.as_dict()
    assert report.max_abs_diff < 1e-5


def test_lstm_with_lengths_matches_torch_across_batch_and_seq(tmp_path: Path) -> None:
    model = seeded(LengthsLSTM)
    path = export_onnx(
        model,
        (torch.randn(4, 7, 6), lengths(4, 7)),
        tmp_path / "lstm.onnx",
        input_names=["x", "lengths"],
        output_names=["logits"],
        dynamic_dims={"x": {0: "batch", 1: "seq"}, "lengths": {0: "batch"}},
    )
    assert onnx_dims(path) == {
        "x": ["batch", "seq", 6],
        "lengths": ["batch"],
        "logits": ["batch", 4],
    }
    report = check_onnx_parity(model, path, seq_cases(lengths))
    assert report.ok, report.as_dict()
    assert [c.input_shapes[0] for c in report.cases] == [(1, 3, 6), (5, 11, 6), (2, 24, 6)]
    assert report.max_abs_diff < 1e-5


@pytest.mark.slow
def test_transformer_with_padding_mask_matches_torch(tmp_path: Path) -> None:
    model = seeded(MaskedTransformer)
    path = export_onnx(
        model,
        (torch.randn(4, 7, 6), padding_mask(4, 7)),
        tmp_path / "transformer.onnx",
        input_names=["x", "padding_mask"],
        output_names=["logits"],
        dynamic_dims={"x": {0: "batch", 1: "seq"}, "padding_mask": {0: "batch", 1: "seq"}},
    )
    dims = onnx_dims(path)
    assert dims["x"] == ["batch", "seq", 6] and dims["padding_mask"] == ["batch", "seq"]
    report = check_onnx_parity(model, path, seq_cases(padding_mask))
    assert report.ok, report.as_dict()
    assert report.max_abs_diff < 1e-5


# ---------------------------------------------------------------- failures and files


def test_parity_detects_onnx_file_of_other_weights(mlp_onnx: tuple[nn.Module, Path]) -> None:
    _, path = mlp_onnx
    other = seeded(MLP, seed=123)
    report = check_onnx_parity(other, path, [(torch.randn(2, 8),), (torch.randn(5, 8),)])
    assert not report.ok
    assert all(not c.ok and c.max_abs_diff > 1e-2 for c in report.cases)
    with pytest.raises(TowerkitError) as err:
        report.assert_ok()
    message = str(err.value)
    assert "\n" not in message
    assert "case 0" in message and "'logits' max abs diff" in message and "(2, 8)" in message


def test_failed_export_names_model_and_leaves_existing_file(
    tmp_path: Path, mlp_onnx: tuple[nn.Module, Path]
) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(mlp_onnx[1].read_bytes())
    before = target.read_bytes()
    with pytest.raises(TowerkitError, match=r"DataDependentBranch.*GuardOnDataDependentSymNode"):
        export_onnx(
            DataDependentBranch(),
            (torch.randn(3, 4),),
            target,
            input_names=["x"],
            output_names=["y"],
            dynamic_dims={"x": {0: "batch"}},
        )
    with pytest.raises(TowerkitError, match="DataDependentBranch"):
        export_onnx(
            DataDependentBranch(),
            (torch.randn(3, 4),),
            tmp_path / "new.onnx",
            input_names=["x"],
            output_names=["y"],
        )
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


@pytest.mark.parametrize(
    ("dynamic_dims", "expected"),
    [
        ({"z": {0: "batch"}}, "not one of input_names"),
        ({"x": {2: "batch"}}, "outside the input's 2 axes"),
        ({"x": {0: "batch size"}}, "expected an identifier"),
        ({"x": {1: "features"}}, "size 1 on dynamic axis 1"),
    ],
)
def test_bad_dynamic_dims_are_one_line_errors(
    tmp_path: Path, dynamic_dims: dict[str, dict[int, str]], expected: str
) -> None:
    with pytest.raises(TowerkitError, match=expected):
        export_onnx(
            MLP(),
            (torch.randn(4, 1),),
            tmp_path / "m.onnx",
            input_names=["x"],
            output_names=["y"],
            dynamic_dims=dynamic_dims,
        )
    assert list(tmp_path.iterdir()) == []


def test_external_data_goes_beside_the_file(tmp_path: Path) -> None:
    model = seeded(MLP)
    path = export_onnx(
        model,
        (torch.randn(4, 8),),
        tmp_path / "ext.onnx",
        input_names=["x"],
        output_names=["y"],
        dynamic_dims={"x": {0: "batch"}},
        external_data=True,
    )
    external = [
        init
        for init in onnx.load(str(path), load_external_data=False).graph.initializer
        if init.data_location == onnx.TensorProto.EXTERNAL
    ]
    locations = {e.value for init in external for e in init.external_data if e.key == "location"}
    assert len(external) >= 2 and locations == {"ext.onnx.data"}  # both weight matrices
    assert check_onnx_parity(model, path, [(torch.randn(2, 8),), (torch.randn(9, 8),)]).ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ext.onnx", "ext.onnx.data"]


def test_predictor_casts_inputs_and_checks_names(mlp_onnx: tuple[nn.Module, Path]) -> None:
    model, path = mlp_onnx
    predictor = OnnxPredictor(path)
    assert predictor.input_names == ["x"] and predictor.output_names == ["logits"]
    x = np.random.default_rng(0).normal(size=(6, 8))  # float64: cast to the graph's float32
    (logits,) = predictor(x=x)
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x).float()).numpy()
    model.train()
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    with pytest.raises(TowerkitError, match=r"missing \['x'\], unknown \['y'\]"):
        predictor(y=x)
    with pytest.raises(TowerkitError, match="no such ONNX file"):
        OnnxPredictor(path.with_name("absent.onnx"))


def test_measure_latency_reports_percentiles() -> None:
    stats = measure_latency(lambda: time.sleep(0.002), n_warmup=1, n_iter=10)
    assert 2.0 <= stats["p50_ms"] <= stats["p99_ms"] < 200.0
    with pytest.raises(TowerkitError, match="n_iter >= 1"):
        measure_latency(lambda: None, n_warmup=0, n_iter=0)


# ---------------------------------------------------------------- Core ML

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
