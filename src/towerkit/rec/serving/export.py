"""``towerkit rec export-model``: what an app needs to recommend on the device.

- ``query_tower.onnx``: the query (user) tower, batch axis dynamic, checked against PyTorch with
  ONNX Runtime on real users' inputs, and against the embeddings the server computes;
- ``query_tower.mlpackage`` (``--coreml``): the same tower as a Core ML ML program; its spec is
  checked here, predictions only on macOS;
- ``candidate_embeddings.f16`` + ``candidate_ids.json``: the candidate embeddings as raw
  little-endian float16 (n x d, row i is ``candidate_ids[i]``), half the bytes of float32; the
  top-10 overlap between float16 and float32 lookup over the model's users is measured;
- ``export.json``: the manifest (model version, files, shapes, parity, overlap).

The folder is written whole or not at all (``atomic_dir``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_dir
from towerkit.core.registry import ModelRegistry
from towerkit.rec.twotower.api import (
    EXPORT_NAMES,
    HISTORY_NAMES,
    INPUT_NAMES,
    TwoTowerBundle,
    load_bundle,
)

OUTPUT_NAME = "user_embedding"  # "embedding" clashes with the exporter's node names
MANIFEST = "export.json"
OVERLAP_K = 10
MAX_USERS = 5000  # users whose top-10 the float16 / float32 comparison covers
PARITY_BATCHES = (1, 7, 64)
COREML_MAX_BATCH = 1024


@dataclass(frozen=True)
class ExportOutcome:
    out_dir: Path
    manifest: dict[str, Any]

    @property
    def parity_max_abs_diff(self) -> float:
        return float(self.manifest["onnx"]["parity"]["max_abs_diff"])

    @property
    def overlap(self) -> dict[str, float]:
        return dict(self.manifest["candidates"]["float16_top10_overlap"])


def query_inputs(bundle: TwoTowerBundle, rows: Tensor, names: Sequence[str]) -> tuple[Tensor, ...]:
    """The exported tower's inputs (named as in ``query_tower_for_export``) for user rows."""
    values = dict(zip(INPUT_NAMES, bundle.features.query_tables.take(rows).inputs(), strict=True))
    history = bundle.features.query_history
    if history is not None:
        values.update(zip(HISTORY_NAMES, history.take(rows).inputs(), strict=True))
    by_name = {EXPORT_NAMES[key]: value for key, value in values.items()}
    return tuple(by_name[name] for name in names)


def _parity_rows(n_users: int) -> list[Tensor]:
    """Spread-out user rows for each parity batch size (capped at the number of users)."""
    return [
        torch.linspace(0, n_users - 1, min(size, n_users)).round().long().unique()
        for size in PARITY_BATCHES
    ]


def float16_overlap(
    candidates: np.ndarray, queries: np.ndarray, k: int = OVERLAP_K
) -> dict[str, float]:
    """Top-k by float16-stored candidates (scored in float32, as a Core ML / Metal float32
    accumulate would) against float32, over every query: mean and min overlap / k."""
    k = min(k, candidates.shape[0])
    half = candidates.astype(np.float16).astype(np.float32)
    exact = np.argpartition(-(queries @ candidates.T), k - 1, axis=1)[:, :k]
    approx = np.argpartition(-(queries @ half.T), k - 1, axis=1)[:, :k]
    overlap = np.array(
        [len(set(a.tolist()) & set(e.tolist())) / k for a, e in zip(approx, exact, strict=True)]
    )
    return {
        "k": float(k),
        "mean": float(overlap.mean()),
        "min": float(overlap.min()),
        "identical_fraction": float((overlap == 1.0).mean()),
        "n_queries": float(len(overlap)),
        "max_abs_diff": float(np.abs(half - candidates).max()),
    }


def _check_out_dir(out_dir: Path) -> None:
    """Never replace a folder that holds something other than an earlier export."""
    if out_dir.exists() and (
        not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file())
    ):
        raise TowerkitError(
            f"--out {out_dir}: exists and is not an earlier export (no {MANIFEST}); "
            "give a new or empty folder"
        )


def export_model(
    ref: str,
    out_dir: Path | None = None,
    *,
    coreml: bool = False,
    registry: ModelRegistry | None = None,
) -> ExportOutcome:
    """Export ``ref``'s query tower and candidate embeddings (default folder ``<run>/export``)."""
    bundle = load_bundle(ref, registry)
    base = bundle.run_dir or (bundle.model_dir.parent if bundle.model_dir else Path.cwd())
    target = Path(out_dir) if out_dir is not None else base / "export"
    _check_out_dir(target)
    manifest: dict[str, Any] = {
        "model": ref,
        "uri": bundle.label,
        "version": bundle.version.version if bundle.version is not None else None,
        "dim": bundle.dim,
    }
    with atomic_dir(target) as folder:
        manifest["onnx"] = _export_onnx(bundle, folder)
        if coreml:
            manifest["coreml"] = _export_coreml(bundle, folder)
        manifest["candidates"] = _export_candidates(bundle, folder)
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
        folder.chmod(0o777 & ~_umask())  # mkdtemp made it 0700; use what mkdir would
    return ExportOutcome(target, manifest)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _export_onnx(bundle: TwoTowerBundle, folder: Path) -> dict[str, Any]:
    from towerkit.core.export import check_onnx_parity, export_onnx

    module, example, names = bundle.query_tower_for_export()
    path = export_onnx(
        module,
        example,
        folder / "query_tower.onnx",
        input_names=names,
        output_names=[OUTPUT_NAME],
        dynamic_dims={name: {0: "batch"} for name in names},
    )
    n_users = len(bundle.features.query_keys)
    rows = _parity_rows(n_users)
    report = check_onnx_parity(module, path, [query_inputs(bundle, r, names) for r in rows])
    report.assert_ok()
    served = _served_parity(bundle, path, names, rows[-1])
    return {
        "file": path.name,
        "inputs": {
            name: {"dtype": str(t.dtype).removeprefix("torch."), "shape": ["batch", *t.shape[1:]]}
            for name, t in zip(names, example, strict=True)
        },
        "output": {"name": OUTPUT_NAME, "shape": ["batch", bundle.dim]},
        "parity": {
            "ok": report.ok,
            "max_abs_diff": report.max_abs_diff,
            "atol": report.atol,
            "rtol": report.rtol,
            "batches": [case.input_shapes[0][0] for case in report.cases],
            "vs_server_max_abs_diff": served,
        },
    }


def _served_parity(bundle: TwoTowerBundle, path: Path, names: Sequence[str], rows: Tensor) -> float:
    """The ONNX graph against ``bundle.query_embeddings`` (what ``rec serve`` computes)."""
    from towerkit.core.export import OnnxPredictor

    inputs = query_inputs(bundle, rows, names)
    got = OnnxPredictor(path)(**{n: t.numpy() for n, t in zip(names, inputs, strict=True)})[0]
    users = [bundle.features.query_keys[int(r)] for r in rows]
    diff = float(np.abs(got - bundle.query_embeddings(users)).max())
    if diff > 1e-4:
        raise TowerkitError(
            f"{path.name}: ONNX embeddings differ from the server's by {diff:.3g} (> 1e-4)"
        )
    return diff


def _export_coreml(bundle: TwoTowerBundle, folder: Path) -> dict[str, Any]:
    from towerkit.core.export import export_coreml

    module, example, names = bundle.query_tower_for_export()
    path = export_coreml(
        module,
        example,
        folder / "query_tower.mlpackage",
        input_names=names,
        output_names=[OUTPUT_NAME],
        dynamic_dims={name: {0: "batch"} for name in names},
        max_dim_size=COREML_MAX_BATCH,
    )
    import coremltools as ct  # after export_coreml, which imports it without its chatter

    spec = ct.utils.load_spec(str(path))
    inputs = [f.name for f in spec.description.input]
    outputs = [f.name for f in spec.description.output]
    if inputs != list(names) or outputs != [OUTPUT_NAME]:
        raise TowerkitError(
            f"{path.name}: Core ML spec has inputs {inputs} / outputs {outputs}; expected "
            f"{list(names)} / {[OUTPUT_NAME]}"
        )
    result: dict[str, Any] = {"file": path.name, "inputs": inputs, "max_batch": COREML_MAX_BATCH}
    if sys.platform == "darwin":  # only macOS can load and run an ML program
        rows = _parity_rows(len(bundle.features.query_keys))[1]
        tensors = query_inputs(bundle, rows, names)
        feed = {
            n: t.numpy().astype(np.float32 if t.is_floating_point() else np.int32)
            for n, t in zip(names, tensors, strict=True)
        }
        got = ct.models.MLModel(str(path)).predict(feed)[OUTPUT_NAME]
        with torch.no_grad():
            expected = module(*tensors).numpy()
        result["max_abs_diff"] = float(np.abs(got - expected).max())
    return result


def _export_candidates(bundle: TwoTowerBundle, folder: Path) -> dict[str, Any]:
    candidates = np.ascontiguousarray(bundle.candidate_embeddings(), dtype=np.float32)
    ids = bundle.candidate_ids()
    candidates.astype("<f2").tofile(folder / "candidate_embeddings.f16")
    (folder / "candidate_ids.json").write_text(json.dumps(ids), "utf-8")
    users = bundle.features.query_keys
    step = max(1, len(users) // MAX_USERS)
    queries = bundle.query_embeddings(users[::step][:MAX_USERS])
    return {
        "file": "candidate_embeddings.f16",
        "ids_file": "candidate_ids.json",
        "dtype": "float16",
        "byte_order": "little",
        "shape": list(candidates.shape),
        "bytes": int(candidates.shape[0] * candidates.shape[1] * 2),
        "float16_top10_overlap": float16_overlap(candidates, queries),
    }
