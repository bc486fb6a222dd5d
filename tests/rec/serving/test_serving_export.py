"""``rec export-model``: the ONNX query tower gives the server's embeddings, the float16
candidate file round-trips, the Core ML package has the tower's inputs (predictions on macOS
only), and a folder that is not an earlier export is never replaced."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from serving_models import NAME, TinyModels

from towerkit.cli import main
from towerkit.core.export import OnnxPredictor
from towerkit.core.registry import ModelRegistry
from towerkit.rec.serving.export import OUTPUT_NAME, float16_overlap, query_inputs
from towerkit.rec.twotower.api import load_bundle

has_coremltools = importlib.util.find_spec("coremltools") is not None


def test_float16_overlap_counts_top_k_agreement() -> None:
    rng = np.random.default_rng(0)
    candidates = rng.normal(size=(500, 16)).astype(np.float32)
    queries = rng.normal(size=(40, 16)).astype(np.float32)
    separated = float16_overlap(candidates, queries)
    assert separated["mean"] == 1.0 and separated["n_queries"] == 40.0
    assert 0 < separated["max_abs_diff"] < 2e-3
    # candidates 0 and 1 differ below float16 resolution: rounding swaps which one makes top-1
    near = np.zeros((3, 2), dtype=np.float32)
    near[:, 0] = [1.0, 1.0 + 2e-4, 0.1]
    result = float16_overlap(near, np.array([[1.0, 0.0]], dtype=np.float32), k=1)
    assert result["mean"] == 0.0 and result["identical_fraction"] == 0.0


@pytest.mark.slow
def test_export_model_cli_writes_checked_files(
    tiny_home: TinyModels, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    args = ["rec", "export-model", f"{NAME}@production", "--out", str(out)]
    assert main([*args, *(["--coreml"] if has_coremltools else [])]) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((out / "export.json").read_text())
    parity = manifest["onnx"]["parity"]
    assert parity["ok"] and parity["batches"] == [1, 7, 40]  # 64 capped at the 40 users
    assert "parity ok on batches [1, 7, 40]" in printed and "top-10 overlap" in printed
    assert manifest["uri"] == f"{NAME}/{tiny_home.v2}" and manifest["dim"] == 16

    bundle = load_bundle(f"{NAME}/{tiny_home.v2}", ModelRegistry(tiny_home.home / "registry.db"))
    names = list(manifest["onnx"]["inputs"])
    users = bundle.features.query_keys
    rows = torch.arange(len(users))
    inputs = query_inputs(bundle, rows, names)
    onnx = OnnxPredictor(out / "query_tower.onnx")
    assert onnx.output_names == [OUTPUT_NAME]
    got = onnx(**{n: t.numpy() for n, t in zip(names, inputs, strict=True)})[0]
    np.testing.assert_allclose(got, bundle.query_embeddings(users), atol=1e-5)

    shape = manifest["candidates"]["shape"]
    stored = np.fromfile(out / "candidate_embeddings.f16", dtype="<f2").reshape(shape)
    candidates = bundle.candidate_embeddings()
    np.testing.assert_array_equal(stored, candidates.astype(np.float16))
    assert json.loads((out / "candidate_ids.json").read_text()) == bundle.candidate_ids()
    overlap = manifest["candidates"]["float16_top10_overlap"]
    assert overlap == float16_overlap(candidates, bundle.query_embeddings(users))
    assert overlap["n_queries"] == 40 and overlap["mean"] >= 0.9

    if has_coremltools:
        import coremltools as ct

        spec = ct.utils.load_spec(str(out / "query_tower.mlpackage"))
        assert [f.name for f in spec.description.input] == names
        assert [f.name for f in spec.description.output] == [OUTPUT_NAME]
        if sys.platform == "darwin":
            assert manifest["coreml"]["max_abs_diff"] < 2e-2


@pytest.mark.slow
def test_export_refuses_a_folder_that_is_not_an_export(
    tiny_home: TinyModels, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    assert main(["rec", "export-model", NAME, "--out", str(tmp_path)]) == 2
    assert "is not an earlier export (no export.json)" in capsys.readouterr().err
    assert keep.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt"
    ]
