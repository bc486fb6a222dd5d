"""Real exports of four architectures to ONNX, checked with ONNX Runtime; export failures,
external data, the predictor and latency measurement."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
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
from towerkit.core.export import OnnxPredictor, check_onnx_parity, export_onnx, measure_latency


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


def test_measure_latency_reports_percentiles(monkeypatch: pytest.MonkeyPatch) -> None:
    stats = measure_latency(lambda: time.sleep(0.002), n_warmup=1, n_iter=10)
    assert 2.0 <= stats["p50_ms"] <= stats["p99_ms"] < 200.0
    assert set(stats) == {"p50_ms", "p99_ms", "mean_ms"} and 2.0 <= stats["mean_ms"] < 200.0

    # on a fake clock the i-th timed call lasts i ms and the warm-up calls are left out
    now = [0.0]
    calls = []

    def call() -> None:
        calls.append(len(calls))
        now[0] += 1.0 if len(calls) <= 2 else (len(calls) - 2) / 1000.0  # warm-up: 1 s each

    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    exact = measure_latency(call, n_warmup=2, n_iter=10)
    assert len(calls) == 12
    assert exact == pytest.approx(
        {
            "p50_ms": float(np.percentile(np.arange(1, 11), 50)),  # 5.5
            "p99_ms": float(np.percentile(np.arange(1, 11), 99)),  # 9.91
            "mean_ms": 5.5,
        }
    )
    with pytest.raises(TowerkitError, match="n_iter >= 1"):
        measure_latency(lambda: None, n_warmup=0, n_iter=0)
