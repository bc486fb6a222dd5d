"""Checkpoints: atomic step directories, retention (last N + best), state without pickle.

A checkpoint is ``<run_dir>/checkpoints/step-XXXXXXXX/``. It is written into a hidden staging
directory and renamed into place, so a reader (or a resume after SIGKILL) only ever sees whole
checkpoints. Tensors go to safetensors, everything else to JSON; nested state dicts (optimizer,
scheduler, grad scaler, RNG) are split by :func:`encode_state` into both.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from towerkit.core.errors import TowerkitError
from towerkit.core.io import write_json_atomic

STEP_PREFIX = "step-"
META_NAME = "checkpoint.json"
INDEX_NAME = "index.json"
MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.json"

# --- nested state <-> (JSON, tensors) ---------------------------------------------------------


def encode_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """A JSON-safe copy of ``obj`` whose tensors are moved into ``tensors`` under dotted keys."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: encode_state(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        # optimizer state is keyed by int parameter ids: keep the key types
        return {
            "__items__": [[k, encode_state(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint")


def decode_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [decode_state(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    if "__items__" in obj:
        return {k: decode_state(v, tensors) for k, v in obj["__items__"]}
    if "__tuple__" in obj:
        return tuple(decode_state(v, tensors) for v in obj["__tuple__"])
    return {k: decode_state(v, tensors) for k, v in obj.items()}


def save_state(directory: Path, name: str, state: Any) -> None:
    """Write ``name.safetensors`` (tensors) and ``name.json`` (the rest) into ``directory``."""
    tensors: dict[str, torch.Tensor] = {}
    encoded = encode_state(state, tensors, name)
    save_file(tensors, str(directory / f"{name}.safetensors"))
    (directory / f"{name}.json").write_text(json.dumps(encoded), encoding="utf-8")


def load_state(directory: Path, name: str) -> Any:
    json_path = directory / f"{name}.json"
    tensor_path = directory / f"{name}.safetensors"
    if not json_path.is_file() or not tensor_path.is_file():
        raise TowerkitError(
            f"checkpoint {directory}: missing {json_path.name} or {tensor_path.name}"
        )
    try:
        encoded = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TowerkitError(f"{json_path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    return decode_state(encoded, load_file(str(tensor_path)))


# --- RNG state --------------------------------------------------------------------------------


def capture_rng_state(cuda: bool = True) -> dict[str, Any]:
    """Python, NumPy and torch CPU generators, plus every CUDA device's when CUDA is present."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if cuda and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_fingerprint(state: dict[str, Any]) -> str:
    tensors: dict[str, torch.Tensor] = {}
    encoded = encode_state(state, tensors, "rng")
    digest = hashlib.sha256(json.dumps(encoded, sort_keys=True).encode())
    for key in sorted(tensors):
        digest.update(key.encode())
        digest.update(tensors[key].numpy().tobytes())
    return digest.hexdigest()[:32]


def indices_fingerprint(indices: list[int] | None) -> str | None:
    """Identifies the next batch's sample indices (None: no batch left)."""
    if indices is None:
        return None
    return hashlib.sha256(json.dumps([int(i) for i in indices]).encode()).hexdigest()[:32]


# --- a training run's files in one checkpoint ------------------------------------------------


@dataclass
class TrainingState:
    """Everything a checkpoint needs beyond tensors. (stage_index, epoch, batch_in_epoch) is the
    next micro-batch to train on; the alternating group follows from stage_step."""

    global_step: int = 0
    stage_index: int = 0
    epoch: int = 0  # within the stage
    batch_in_epoch: int = 0  # micro-batches of this epoch already trained on (this process)
    stage_step: int = 0  # optimizer steps taken in this stage
    epochs_completed: int = 0
    examples_seen: int = 0
    train_seconds: float = 0.0
    best_metric: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    evals_without_improvement: int = 0
    stopped_early: bool = False
    last_eval_step: int | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    window_loss_sum: float = 0.0  # the loss not yet logged (kept so logs resume exactly too)
    window_batches: int = 0
    window_examples: int = 0


def write_run_files(
    directory: Path, model: nn.Module, payload: dict[str, Any], **states: Any
) -> None:
    """Weights, ``trainer_state.json`` and one file pair per ``states`` item (optimizer, ...)."""
    save_model(model, str(directory / MODEL_FILE), force_contiguous=True)
    for name, obj in states.items():
        if obj is not None:
            save_state(directory, name, obj.state_dict())
    (directory / STATE_FILE).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


def read_run_payload(path: Path) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        payload["state"] = TrainingState(**payload["state"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise TowerkitError(f"resume: cannot read {path / STATE_FILE} ({exc})") from None
    return payload


def load_weights(model: nn.Module, path: Path, device: torch.device) -> None:
    # safetensors takes "cpu" or "cuda:N", not the "cpu:0" a multi-process CPU run reports
    where = "cpu" if device.type == "cpu" else str(device)
    try:
        load_model(model, str(path / MODEL_FILE), strict=True, device=where)
    except (OSError, RuntimeError) as exc:
        message = str(exc).splitlines()[0]
        raise TowerkitError(f"{path / MODEL_FILE}: does not fit the model ({message})") from None


def write_process_file(directory: Path, process_index: int, next_batch: list[int] | None) -> None:
    """This process's RNG states with fingerprints of them and of its next batch's indices."""
    rng = capture_rng_state()
    record = {
        "rng": rng,
        "rng_fingerprint": rng_fingerprint(rng),
        "next_batch": indices_fingerprint(next_batch),
    }
    save_state(directory, f"process{process_index}", record)


def restore_process_file(path: Path, process_index: int) -> str | None:
    """Restore this process's RNG, prove it took (fingerprint), return the next-batch print."""
    record = load_state(path, f"process{process_index}")
    restore_rng_state(record["rng"])
    if rng_fingerprint(capture_rng_state()) != record["rng_fingerprint"]:
        raise TowerkitError(f"resume: {path}: the restored RNG state differs from the saved one")
    next_batch: str | None = record["next_batch"]
    return next_batch


# --- checkpoint directories ---------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointInfo:
    step: int
    path: Path
    metric: float | None


def _noop() -> None:
    return None


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_dir(path: Path) -> None:
    """Rename aside first: a deletion cut short must not leave a half checkpoint that looks whole."""
    trash = path.with_name(f".trash-{path.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


class CheckpointManager:
    """Writes, lists and prunes ``step-XXXXXXXX`` checkpoints under one directory.

    Every process calls :meth:`save` (with ``wait`` a barrier across processes): each writes
    its own per-process files into the shared staging directory, then the main process writes
    the shared files and publishes the directory with one rename.
    """

    def __init__(
        self,
        directory: str | Path,
        keep_last: int = 2,
        metric_mode: Literal["max", "min"] = "max",
        is_main: bool = True,
        wait: Callable[[], None] = _noop,
    ) -> None:
        if keep_last < 1:
            raise TowerkitError(f"keep_last: expected >= 1, got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last
        self.metric_mode = metric_mode
        self.is_main = is_main
        self.wait = wait

    def path_for(self, step: int) -> Path:
        return self.directory / f"{STEP_PREFIX}{step:08d}"

    def save(
        self,
        step: int,
        write_shared: Callable[[Path], None],
        write_per_process: Callable[[Path], None] | None = None,
        metric: float | None = None,
    ) -> Path:
        final = self.path_for(step)
        staging = self.directory / f".{final.name}.tmp"
        if self.is_main:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        self.wait()
        try:
            if write_per_process is not None:
                write_per_process(staging)
            self.wait()
            if self.is_main:
                write_shared(staging)
                meta = {"step": step, "metric": metric, "saved_at": datetime.now(UTC).isoformat()}
                (staging / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")
                _fsync_tree(staging)
                self._publish(staging, final)
                self.prune()
        finally:
            if self.is_main:
                shutil.rmtree(staging, ignore_errors=True)
        self.wait()
        return final

    def _publish(self, staging: Path, final: Path) -> None:
        if final.exists():  # re-saving a step (a resume from an older checkpoint)
            _remove_dir(final)
        os.replace(staging, final)
        _fsync_dir(self.directory)

    def list_checkpoints(self) -> list[CheckpointInfo]:
        """Complete checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob(f"{STEP_PREFIX}*"):
            meta_path = path / META_NAME
            if not meta_path.is_file():
                continue
            try:
                meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError:
                continue
            found.append(CheckpointInfo(int(meta["step"]), path, meta.get("metric")))
        return sorted(found, key=lambda info: info.step)

    def latest(self) -> CheckpointInfo | None:
        checkpoints = self.list_checkpoints()
        return checkpoints[-1] if checkpoints else None

    def best(self) -> CheckpointInfo | None:
        scored = [
            c for c in self.list_checkpoints() if c.metric is not None and not math.isnan(c.metric)
        ]
        if not scored:
            return None
        sign = 1.0 if self.metric_mode == "max" else -1.0
        # ties go to the earlier step: a later equal value is no improvement
        return max(scored, key=lambda c: (sign * float(c.metric or 0.0), -c.step))

    def prune(self) -> None:
        """Keep the newest ``keep_last`` checkpoints and the best one; rewrite index.json."""
        checkpoints = self.list_checkpoints()
        best = self.best()
        keep = {c.path for c in checkpoints[-self.keep_last :]}
        if best is not None:
            keep.add(best.path)
        for info in checkpoints:
            if info.path not in keep:
                _remove_dir(info.path)
        self._write_index()

    def _write_index(self) -> None:
        checkpoints = self.list_checkpoints()
        best = self.best()
        write_json_atomic(
            self.directory / INDEX_NAME,
            {
                "latest": checkpoints[-1].path.name if checkpoints else None,
                "best": best.path.name if best else None,
                "metric_mode": self.metric_mode,
                "checkpoints": [
                    {"name": c.path.name, "step": c.step, "metric": c.metric} for c in checkpoints
                ],
            },
        )

    def remove_leftovers(self) -> None:
        """Staging, trash and aside directories left by a process that was killed."""
        if not self.is_main or not self.directory.is_dir():
            return
        for path in self.directory.glob(".*"):
            if path.is_dir() and (path.name.endswith((".tmp", ".old")) or ".trash-" in path.name):
                shutil.rmtree(path, ignore_errors=True)

    def discard_after(self, step: int) -> list[Path]:
        """Resuming from an older checkpoint supersedes the newer ones: remove them."""
        removed = [c.path for c in self.list_checkpoints() if c.step > step]
        if self.is_main:
            for path in removed:
                _remove_dir(path)
            self._write_index()
        self.wait()
        return removed

    def resolve(self, resume: bool | str | Path) -> Path | None:
        """``True``: the latest checkpoint (None when there is none); a path: that checkpoint."""
        if resume is False:
            return None
        if resume is True:
            latest = self.latest()
            return latest.path if latest else None
        path = Path(resume)
        if not (path / META_NAME).is_file():
            raise TowerkitError(f"resume: {path} is not a checkpoint directory (no {META_NAME})")
        return path
