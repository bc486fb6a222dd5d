"""Core ML conversion: torch.export(...).run_decompositions({}) then coremltools (mlprogram).

Conversion and spec checks run on Linux; predictions need macOS. Split from export.py (ONNX) to
keep files short; ``towerkit.core.export`` re-exports ``export_coreml``.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from towerkit.core.errors import TowerkitError
from towerkit.core.export import (
    DynamicDims,
    _assert_axes_stay_dynamic,
    _check_names,
    _dynamic_shapes,
    _first_error_line,
    _lstm_while_loop_decomposition,
)
from towerkit.core.io import atomic_dir
from towerkit.core.model import eval_mode
from towerkit.core.quiet import quiet_converters


def export_coreml(
    model: nn.Module,
    example_inputs: tuple[Tensor, ...],
    path: str | Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_dims: DynamicDims | None = None,
    minimum_deployment_target: str | enum.Enum | None = None,
    max_dim_size: int = 4096,
    compute_precision: str = "float16",
) -> Path:
    """Convert ``torch.export(...).run_decompositions({})`` with coremltools to an .mlpackage.

    Core ML ML programs need an upper bound on every dynamic dimension: ``max_dim_size``.
    ``minimum_deployment_target`` is a ``coremltools.target`` member or its name ("iOS16").
    """
    with quiet_converters():
        ct = _import_coremltools()
    target = Path(path)
    if target.suffix != ".mlpackage":
        raise TowerkitError(f"{target}: a Core ML ML program is a folder ending in .mlpackage")
    if compute_precision not in ("float16", "float32"):
        raise TowerkitError(f"compute_precision={compute_precision!r}; expected float16 or float32")
    _check_names(example_inputs, input_names)
    dynamic_shapes = _dynamic_shapes(
        example_inputs, input_names, output_names, dynamic_dims, max_size=max_dim_size
    )
    model_name = type(model).__name__
    with eval_mode(model), quiet_converters():
        exported = _export_program(model, example_inputs, input_names, dynamic_shapes)
        with torch.no_grad():
            example_outputs = pytree.tree_leaves(model(*example_inputs))
    if len(example_outputs) != len(output_names):
        raise TowerkitError(
            f"Core ML export of {model_name}: output_names has {len(output_names)} names but the "
            f"model returns {len(example_outputs)} tensors"
        )
    _register_coreml_lstm_alias()
    try:
        with quiet_converters():
            mlmodel = ct.convert(
                exported,
                # float I/O stays float32 even where iOS16+ targets would default it to float16
                inputs=_coreml_tensor_types(ct, input_names, example_inputs),
                outputs=_coreml_tensor_types(ct, output_names, example_outputs),
                convert_to="mlprogram",
                minimum_deployment_target=_coreml_target(ct, minimum_deployment_target),
                compute_precision=getattr(ct.precision, compute_precision.upper()),
                skip_model_load=sys.platform != "darwin",  # only macOS can compile and load it
            )
    except Exception as exc:
        raise TowerkitError(
            f"Core ML conversion of {model_name} failed: {_first_error_line(exc)}"
        ) from exc
    _save_mlpackage(mlmodel, target)
    return target


def _export_program(
    model: nn.Module,
    example_inputs: tuple[Tensor, ...],
    input_names: Sequence[str],
    dynamic_shapes: tuple[dict[int, Any] | None, ...] | None,
) -> torch.export.ExportedProgram:
    """torch.export + run_decompositions({}), both under the LSTM while-loop decomposition:
    outside it run_decompositions re-traces LSTMs and silently fixes the sequence length."""
    try:
        with _lstm_while_loop_decomposition(dynamic_shapes is not None):
            exported = torch.export.export(model, example_inputs, dynamic_shapes=dynamic_shapes)
            exported = exported.run_decompositions({})
    except Exception as exc:
        raise TowerkitError(
            f"torch.export of {type(model).__name__} failed: {_first_error_line(exc)}"
        ) from exc
    user_shapes = [
        list(node.meta["val"].shape)
        for node in exported.graph.nodes
        if node.op == "placeholder" and node.name in exported.graph_signature.user_inputs
    ]
    _assert_axes_stay_dynamic(type(model).__name__, input_names, user_shapes, dynamic_shapes)
    return exported


def _import_coremltools() -> Any:
    try:
        import coremltools
    except ImportError as exc:
        raise TowerkitError(
            "Core ML export needs coremltools: pip install 'towerkit[coreml]'"
        ) from exc
    return coremltools


def _coreml_tensor_types(ct: Any, names: Sequence[str], tensors: Sequence[Tensor]) -> list[Any]:
    return [
        ct.TensorType(name=name, dtype=np.float32 if tensor.is_floating_point() else None)
        for name, tensor in zip(names, tensors, strict=True)
    ]


def _coreml_target(ct: Any, target: str | enum.Enum | None) -> Any:
    if target is None or isinstance(target, enum.Enum):
        return target
    names = [member.name for member in ct.target]
    if target not in names:
        raise TowerkitError(f"minimum_deployment_target={target!r}; expected one of {names}")
    return ct.target[target]


def _register_coreml_lstm_alias() -> None:
    """coremltools 9.0 converts TorchScript's ``lstm`` but has no name for torch.export's
    ``aten.lstm.input``, although the op and its nine arguments are the same. (Its ``gru``
    converter cannot be aliased the same way: it expects TorchScript's two output names.)"""
    from coremltools.converters.mil.frontend.torch import ops, register_torch_op
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    if _TORCH_OPS_REGISTRY.get_func("lstm.input") is None:
        register_torch_op(ops.lstm, torch_alias=["lstm.input"], override=True)


def _save_mlpackage(mlmodel: Any, target: Path) -> None:
    """coremltools only saves to a path ending in .mlpackage; stage it inside the atomic folder."""
    with atomic_dir(target) as folder:
        staged = folder / target.name
        mlmodel.save(str(staged))
        for child in staged.iterdir():
            os.replace(child, folder / child.name)
        staged.rmdir()
