"""Deployable copies of a model: ONNX (checked against ONNX Runtime) and Core ML (mlprogram).

Both start from ``torch.export`` with named dynamic dimensions given in the friendly form
``{"x": {0: "batch", 1: "seq"}}``; one name used on several inputs is one shared dimension.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn
from torch.export import Dim
from torch.utils import _pytree as pytree

from towerkit.core.errors import TowerkitError
from towerkit.core.model import eval_mode
from towerkit.core.quiet import quiet_converters

DynamicDims = Mapping[str, Mapping[int, str]]
# protobuf refuses messages over 2 GiB; above this many weight bytes they go to <name>.onnx.data
MAX_INLINE_WEIGHT_BYTES = 1_500_000_000
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_ORT_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


# ---------------------------------------------------------------- shared helpers


def _first_error_line(exc: BaseException) -> str:
    """The innermost cause's first line: the exporters wrap the real reason in generic advice."""
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    lines = [ln.strip() for ln in _ANSI_ESCAPE.sub("", str(root)).splitlines() if ln.strip()]
    text = lines[0] if lines else "(no message)"
    return f"{type(root).__name__}: {text[:300]}"


def _check_names(example_inputs: tuple[Tensor, ...], input_names: Sequence[str]) -> None:
    if len(input_names) != len(example_inputs):
        raise TowerkitError(
            f"input_names has {len(input_names)} names but example_inputs has "
            f"{len(example_inputs)} tensors; give one name per input"
        )
    if len(set(input_names)) != len(input_names):
        raise TowerkitError(f"input_names {list(input_names)} repeat a name; names must be unique")


def _dynamic_shapes(
    example_inputs: tuple[Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_dims: DynamicDims | None,
    max_size: int | None = None,
) -> tuple[dict[int, Any] | None, ...] | None:
    """Turn ``{"x": {0: "batch"}}`` into torch.export's per-input ``{0: Dim("batch")}`` tuple."""
    if not dynamic_dims:
        return None
    dims: dict[str, Any] = {}
    per_input: dict[str, dict[int, Any]] = {}
    for name, axes in dynamic_dims.items():
        if name in output_names and name not in input_names:
            continue  # output shapes follow from the inputs' dimensions
        if name not in input_names:
            raise TowerkitError(
                f"dynamic_dims names {name!r}, which is not one of input_names {list(input_names)}"
            )
        tensor = example_inputs[list(input_names).index(name)]
        per_input[name] = {}
        for axis, dim_name in axes.items():
            if not 0 <= axis < tensor.dim():
                raise TowerkitError(
                    f"dynamic_dims[{name!r}] axis {axis} is outside the input's {tensor.dim()} axes"
                )
            if not dim_name.isidentifier():
                raise TowerkitError(
                    f"dynamic_dims[{name!r}][{axis}] = {dim_name!r}; expected an identifier"
                )
            if tensor.shape[axis] < 2:
                raise TowerkitError(
                    f"example input {name!r} has size {tensor.shape[axis]} on dynamic axis {axis} "
                    f"({dim_name!r}); use size >= 2 or the exporter fixes that axis to a constant"
                )
            if dim_name not in dims:
                bounds = {} if max_size is None else {"min": 1, "max": max_size}
                dims[dim_name] = Dim(dim_name, **bounds)
            per_input[name][axis] = dims[dim_name]
    return tuple(per_input.get(name) for name in input_names)


def _lstm_while_loop_decomposition(enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """Tracing an LSTM unrolls its time loop and fixes the sequence length to the example's;
    torch.onnx uses this while-loop decomposition for dynamic shapes, so Core ML does too."""
    if not enabled:
        return contextlib.nullcontext()
    try:
        from torch.export._patches import register_lstm_while_loop_decomposition
    except ImportError:  # another torch version: torch.export refuses a dynamic length
        return contextlib.nullcontext()
    return register_lstm_while_loop_decomposition()


def _assert_axes_stay_dynamic(
    model_name: str,
    input_names: Sequence[str],
    shapes: Sequence[Sequence[object]],
    dynamic_shapes: tuple[dict[int, Any] | None, ...] | None,
) -> None:
    """An exporter may fix a dimension the user asked to keep dynamic; say so, never ship it."""
    for name, shape, axes in zip(input_names, shapes, dynamic_shapes or (), strict=False):
        for axis, dim in (axes or {}).items():
            if isinstance(shape[axis], int):  # symbolic sizes are SymInt / SymbolicDim
                raise TowerkitError(
                    f"exporting {model_name} fixed dynamic axis {axis} ({dim.__name__!r}) "
                    f"of input {name!r} to {shape[axis]}"
                )


def _weight_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


# ---------------------------------------------------------------- ONNX


def export_onnx(
    model: nn.Module,
    example_inputs: tuple[Tensor, ...],
    path: str | Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_dims: DynamicDims | None = None,
    opset: int | None = None,
    external_data: bool | None = None,
) -> Path:
    """Export with the dynamo exporter, run ``onnx.checker``, then move the file into place.

    ``external_data=None`` keeps the weights inside the .onnx file unless they exceed
    ``MAX_INLINE_WEIGHT_BYTES``; then they go to ``<path>.data`` beside it.
    """
    target = Path(path)
    _check_names(example_inputs, input_names)
    dynamic_shapes = _dynamic_shapes(example_inputs, input_names, output_names, dynamic_dims)
    model_name = type(model).__name__
    with eval_mode(model), quiet_converters(), warnings.catch_warnings():
        # one Dim shared by several inputs makes the exporter note each duplicate axis name
        warnings.filterwarnings("ignore", message=r".*The axis name: .* will not be used")
        try:
            program = torch.onnx.export(
                model,
                example_inputs,
                dynamo=True,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                verbose=False,
            )
        except Exception as exc:
            raise TowerkitError(
                f"ONNX export of {model_name} failed: {_first_error_line(exc)}"
            ) from exc
    if program is None:  # only the legacy exporter returns None
        raise TowerkitError(f"ONNX export of {model_name} returned no program")
    graph = program.model.graph
    input_shapes = [list(value.shape or ()) for value in graph.inputs]
    _assert_axes_stay_dynamic(model_name, input_names, input_shapes, dynamic_shapes)
    n_outputs = len(graph.outputs)
    if n_outputs != len(output_names):
        raise TowerkitError(
            f"ONNX export of {model_name}: output_names has {len(output_names)} names but the "
            f"model returns {n_outputs} tensors"
        )
    if external_data is None:
        external_data = _weight_bytes(model) > MAX_INLINE_WEIGHT_BYTES
    _save_checked_onnx(program, target, external_data, model_name)
    return target


def _save_checked_onnx(
    program: torch.onnx.ONNXProgram, target: Path, external_data: bool, model_name: str
) -> None:
    """Save into a hidden folder beside ``target``, check, then rename (data file first)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        staged = staging / target.name
        program.save(staged, external_data=external_data)
        try:
            onnx.checker.check_model(str(staged), full_check=True)
        except Exception as exc:
            raise TowerkitError(
                f"{target}: the ONNX model exported from {model_name} fails onnx.checker: "
                f"{_first_error_line(exc)}"
            ) from exc
        staged_data = staging / f"{target.name}.data"
        target_data = target.with_name(staged_data.name)
        if staged_data.exists():
            _fsync(staged_data)
            os.replace(staged_data, target_data)
        elif target_data.exists():
            target_data.unlink()  # left by an earlier export of this path with external data
        _fsync(staged)
        os.replace(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _ort_session(path: str | Path) -> ort.InferenceSession:
    path = Path(path)
    if not path.is_file():
        raise TowerkitError(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; ORT warns about unused initializers
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise TowerkitError(
            f"{path}: ONNX Runtime cannot load it: {_first_error_line(exc)}"
        ) from exc


class OnnxPredictor:
    """An ONNX file on ONNX Runtime's CPU provider: ``predictor(x=array) -> [outputs]``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.session = _ort_session(self.path)
        self._input_types = {i.name: i.type for i in self.session.get_inputs()}
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, **inputs: Any) -> list[np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        unknown = [n for n in inputs if n not in self._input_types]
        if missing or unknown:
            raise TowerkitError(
                f"{self.path}: expected inputs {self.input_names}; "
                f"missing {missing}, unknown {unknown}"
            )
        feed = {}
        for name, value in inputs.items():
            dtype = _ORT_NUMPY_TYPES.get(self._input_types[name])
            feed[name] = np.asarray(value, dtype=dtype)
        return list(self.session.run(self.output_names, feed))


@dataclass(frozen=True)
class ParityCase:
    """One input case: shapes seen, the largest |torch - onnx| and whether it is within tolerance."""

    index: int
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    max_abs_diff: float
    worst_output: str
    ok: bool
    problem: str = ""


@dataclass(frozen=True)
class ParityReport:
    path: Path
    atol: float
    rtol: float
    cases: tuple[ParityCase, ...]

    @property
    def ok(self) -> bool:
        return all(case.ok for case in self.cases)

    @property
    def max_abs_diff(self) -> float:
        return max((case.max_abs_diff for case in self.cases), default=0.0)

    def assert_ok(self) -> None:
        for case in self.cases:
            if not case.ok:
                raise TowerkitError(
                    f"{self.path}: ONNX Runtime differs from PyTorch at case {case.index} "
                    f"(input shapes {list(case.input_shapes)}): {case.problem}"
                )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (for metrics.json)."""
        return {
            **asdict(self),
            "path": str(self.path),
            "ok": self.ok,
            "max_abs_diff": self.max_abs_diff,
        }


def check_onnx_parity(
    model: nn.Module,
    onnx_path: str | Path,
    cases: Sequence[tuple[Tensor, ...]],
    *,
    atol: float = 1e-4,
    rtol: float = 1e-3,
) -> ParityReport:
    """Run every case through the model (eval mode) and ONNX Runtime and compare all outputs."""
    if not cases:
        raise TowerkitError("check_onnx_parity needs at least one case of inputs")
    predictor = OnnxPredictor(onnx_path)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    results = []
    with eval_mode(model), torch.no_grad():
        for index, case in enumerate(cases):
            if len(case) != len(predictor.input_names):
                raise TowerkitError(
                    f"parity case {index} has {len(case)} tensors but {predictor.path} takes "
                    f"{len(predictor.input_names)} inputs {predictor.input_names}"
                )
            outputs = pytree.tree_leaves(model(*(t.to(device) for t in case)))
            expected = [t.detach().cpu().numpy() for t in outputs]
            arrays = [t.detach().cpu().numpy() for t in case]
            actual = predictor(**dict(zip(predictor.input_names, arrays, strict=True)))
            problems, worst = _compare_outputs(predictor.output_names, expected, actual, atol, rtol)
            results.append(
                ParityCase(
                    index=index,
                    input_shapes=tuple(a.shape for a in arrays),
                    output_shapes=tuple(a.shape for a in actual),
                    max_abs_diff=worst[0],
                    worst_output=worst[1],
                    ok=not problems,
                    problem="; ".join(problems),
                )
            )
    return ParityReport(Path(onnx_path), atol, rtol, tuple(results))


def _compare_outputs(
    names: Sequence[str],
    expected: Sequence[np.ndarray],
    actual: Sequence[np.ndarray],
    atol: float,
    rtol: float,
) -> tuple[list[str], tuple[float, str]]:
    """Problems found (empty: all close) and the (max abs diff, output name) of the worst."""
    if len(expected) != len(actual):
        problem = f"PyTorch returns {len(expected)} outputs, ONNX Runtime {len(actual)}"
        return [problem], (float("inf"), "")
    problems, worst = [], (0.0, names[0] if names else "")
    for name, ref, got in zip(names, expected, actual, strict=True):
        if ref.shape != got.shape:
            problems.append(f"output {name!r} has shape {got.shape} in ONNX, {ref.shape} in torch")
            worst = (float("inf"), name)
            continue
        ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
        diff = float(np.max(np.abs(ref64 - got64))) if ref.size else 0.0
        worst = max(worst, (diff, name), key=lambda pair: pair[0])
        if not np.allclose(got64, ref64, atol=atol, rtol=rtol, equal_nan=True):
            problems.append(
                f"output {name!r} max abs diff {diff:.3g} exceeds atol={atol:g} + rtol={rtol:g}*|ref|"
            )
    return problems, worst


def measure_latency(
    fn: Callable[[], object], n_warmup: int = 10, n_iter: int = 100
) -> dict[str, float]:
    """Wall-clock latency of ``fn()`` in milliseconds after ``n_warmup`` untimed calls."""
    if n_warmup < 0 or n_iter < 1:
        raise TowerkitError(
            f"measure_latency: need n_warmup >= 0 and n_iter >= 1, got {n_warmup}, {n_iter}"
        )
    for _ in range(n_warmup):
        fn()
    elapsed_ms = np.empty(n_iter)
    for i in range(n_iter):
        start = time.perf_counter()
        fn()
        elapsed_ms[i] = (time.perf_counter() - start) * 1000.0
    return {
        "p50_ms": float(np.percentile(elapsed_ms, 50)),
        "p99_ms": float(np.percentile(elapsed_ms, 99)),
        "mean_ms": float(elapsed_ms.mean()),
    }


# ---------------------------------------------------------------- Core ML


from towerkit.core.export_coreml import export_coreml  # noqa: E402

__all__ = ["export_coreml"]
