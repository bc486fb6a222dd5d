"""Hugging Face model folders from GGUF checkpoints, de-quantised once and shared by every domain.

``hf_folder`` takes a folder that holds either Hugging Face files (``config.json``) or a ``.gguf``
file. A GGUF checkpoint is converted to a float32 safetensors folder (model, tokenizer, generation
config) under ``TOWERKIT_HOME/gguf/<stem>-<sha256[:16]>/``: converting takes minutes on a busy
CPU, loading the converted copy seconds. The cache is keyed by the file's content, so two domains
(or two installed copies of the same file) share one conversion; it is written atomically under a
lock, so a crash or a concurrent process never leaves a half-written folder.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock

from towerkit.core.asset_sources import file_sha256
from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_dir
from towerkit.core.paths import towerkit_home

__all__ = ["converted_folder", "dequantised", "hf_folder"]

# (resolved path, size, mtime_ns) -> sha256: hashing a large GGUF on every load is wasted time
_DIGESTS: dict[tuple[str, int, int], str] = {}


def hf_folder(folder: Path, gguf_file: str | None = None, *, what: str) -> Path:
    """The folder to hand to ``from_pretrained``.

    ``folder`` itself when it holds ``config.json`` and no ``gguf_file`` is asked for; otherwise
    its GGUF checkpoint (``gguf_file``, or the first ``*.gguf`` by name), de-quantised once.
    ``what`` starts the one-line error (``"base model"`` -> ``base model /x: no config.json ...``).
    """
    folder = Path(folder)
    if gguf_file is None:
        if (folder / "config.json").is_file():
            return folder
        ggufs = sorted(folder.glob("*.gguf"))
        if not ggufs:
            raise TowerkitError(f"{what} {folder}: no config.json and no .gguf file")
        source = ggufs[0]
    else:
        source = folder / gguf_file
        if not source.is_file():
            raise TowerkitError(f"{what} {folder}: no GGUF file {gguf_file!r} in it")
    return dequantised(source)


def _sha256(source: Path) -> str:
    stat = source.stat()
    key = (str(source.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(source)
    return _DIGESTS[key]


def converted_folder(source: Path) -> Path:
    """Where the float32 copy of the GGUF file ``source`` lives (whether or not it exists yet)."""
    return towerkit_home() / "gguf" / f"{source.stem}-{_sha256(source)[:16]}"


def _complete(target: Path) -> bool:
    return (target / "config.json").is_file()


def dequantised(source: Path) -> Path:
    """The float32 safetensors folder of the GGUF file ``source``, converted on first use."""
    target = converted_folder(source)
    if _complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
        if not _complete(target):  # another process may have converted it while we waited
            with atomic_dir(target) as staging:
                _convert(source, staging)
    return target


def _convert(source: Path, dest: Path) -> None:
    """Load the GGUF checkpoint with transformers and save it as a plain float32 HF folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    # transformers marks GGUF-loaded models as quantised and will not save them, although the
    # tensors are float32 by now: copy them into a plain model of the same config
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
