"""Spoken digits for the audio family: FSDD wavs -> log-mel spectrograms (librosa), cached as .npz.

File names are ``<digit>_<speaker>_<index>.wav``. Splits: ``usual`` (index 0-4 test, the rest
train) and leave-one-speaker-out (``speaker`` split: one speaker's clips are the test set).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from towerkit.core.errors import TowerkitError
from towerkit.core.io import atomic_path
from towerkit.core.paths import towerkit_home

DIGIT_CLASSES = [str(d) for d in range(10)]
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


class MelSettings(Protocol):
    """The five mel settings as a recipe's data section and a saved model's config carry them."""

    @property
    def sample_rate(self) -> int: ...
    @property
    def n_fft(self) -> int: ...
    @property
    def hop_length(self) -> int: ...
    @property
    def n_mels(self) -> int: ...
    @property
    def max_seconds(self) -> float: ...


@dataclass(frozen=True)
class MelParams:
    """How a waveform becomes a log-mel spectrogram (kept in the model config too)."""

    sample_rate: int = 8000
    n_fft: int = 256
    hop_length: int = 80
    n_mels: int = 40
    max_seconds: float = 2.0  # longer clips are cut; FSDD clips are 0.2 - 2.2 s

    @classmethod
    def of(cls, settings: MelSettings) -> MelParams:
        """The settings of a recipe or a model config, which keep them as flat fields."""
        return cls(
            settings.sample_rate,
            settings.n_fft,
            settings.hop_length,
            settings.n_mels,
            settings.max_seconds,
        )


@dataclass(frozen=True)
class Clip:
    path: Path
    digit: int
    speaker: str
    index: int


def list_fsdd(directory: Path) -> list[Clip]:
    """All ``<digit>_<speaker>_<index>.wav`` files in ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TowerkitError(f"{directory}: FSDD recordings directory not found")
    clips = []
    for path in sorted(directory.glob("*.wav")):
        match = _FSDD_NAME.match(path.name)
        if match is None:
            raise TowerkitError(f"{path}: expected a name like 7_george_12.wav")
        digit, speaker, index = match.groups()
        clips.append(Clip(path, int(digit), speaker, int(index)))
    if not clips:
        raise TowerkitError(f"{directory}: no .wav recordings found")
    return clips


def split_fsdd(
    clips: Sequence[Clip], scheme: str, test_speaker: str = ""
) -> tuple[list[Clip], list[Clip]]:
    """(train, test): ``usual`` puts recording index 0-4 in test; ``speaker`` holds one out."""
    if scheme == "usual":
        return [c for c in clips if c.index >= 5], [c for c in clips if c.index < 5]
    if scheme == "speaker":
        speakers = sorted({c.speaker for c in clips})
        if test_speaker not in speakers:
            raise TowerkitError(
                f"data.test_speaker: {test_speaker!r} is not one of the speakers {speakers}"
            )
        return [c for c in clips if c.speaker != test_speaker], [
            c for c in clips if c.speaker == test_speaker
        ]
    raise TowerkitError(f"data.split: expected 'usual' or 'speaker', got {scheme!r}")


def load_wav(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform at ``sample_rate`` (resampled with librosa if needed)."""
    import librosa
    import soundfile as sf

    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise TowerkitError(f"{path}: cannot read audio ({exc})") from None
    mono = wave.mean(axis=1)
    if mono.size == 0:
        raise TowerkitError(f"{path}: the audio file has no samples")
    if sr != sample_rate:
        mono = librosa.resample(mono, orig_sr=sr, target_sr=sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def log_mel(wave: np.ndarray, params: MelParams) -> np.ndarray:
    """``[frames, n_mels]`` float32 log-mel spectrogram in dB relative to the clip's peak."""
    import librosa

    wave = wave[: int(params.max_seconds * params.sample_rate)]
    if wave.size < params.n_fft:
        wave = np.pad(wave, (0, params.n_fft - wave.size))
    mel = librosa.feature.melspectrogram(
        y=wave,
        sr=params.sample_rate,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        n_mels=params.n_mels,
    )
    return np.ascontiguousarray(librosa.power_to_db(mel, ref=np.max, top_db=80.0).T, np.float32)


def wav_features(path: Path, settings: MelSettings) -> torch.Tensor:
    """``[frames, n_mels]`` log-mel of a user's wav, made with a saved model's own settings
    (the audio and concept families' ``predict``); TowerkitError when the file is missing."""
    if not path.is_file():
        raise TowerkitError(f"{path}: audio file not found")
    params = MelParams.of(settings)
    return torch.from_numpy(log_mel(load_wav(path, params.sample_rate), params))


def _cache_key(clips: Sequence[Clip], params: MelParams) -> str:
    stats = [(c.path.name, c.path.stat().st_size, c.path.stat().st_mtime_ns) for c in clips]
    blob = json.dumps({"params": asdict(params), "files": stats}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cached_spectrograms(
    clips: Sequence[Clip], params: MelParams, cache_dir: Path | None = None
) -> list[np.ndarray]:
    """Log-mels of ``clips``, computed once and kept as one .npz (plain float arrays, no pickle).

    The cache file is keyed by the clips' names, sizes, mtimes and ``params``, so an edited
    recording or a new setting computes afresh.
    """
    cache_dir = cache_dir or towerkit_home() / "cache" / "zoo-audio"
    path = cache_dir / f"logmel-{_cache_key(clips, params)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as saved:
                return [saved[f"arr_{i}"] for i in range(len(clips))]
        except (OSError, ValueError, KeyError):
            path.unlink()  # a damaged cache is recomputed, never trusted
    spectrograms = [log_mel(load_wav(c.path, params.sample_rate), params) for c in clips]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, *spectrograms)
    return spectrograms


def feature_stats(spectrograms: Sequence[np.ndarray]) -> tuple[list[float], list[float]]:
    """Per-mel-band mean and std over all frames of the training clips."""
    frames = np.concatenate(list(spectrograms), axis=0)
    return frames.mean(axis=0).tolist(), (frames.std(axis=0) + 1e-5).tolist()


class SpectrogramDataset(Dataset[dict[str, Any]]):
    """Log-mels -> {"features": [T, n_mels], "length": T, "label"}; optional masking augmentation.

    ``augment`` applies SpecAugment-style masks (one band of up to ``freq_mask`` mel bins and
    one span of up to ``time_mask`` frames set to the clip's minimum) using torch's RNG.
    """

    def __init__(
        self,
        spectrograms: Sequence[np.ndarray],
        labels: Sequence[int],
        augment: bool = False,
        freq_mask: int = 6,
        time_mask: int = 10,
    ) -> None:
        self.spectrograms = [torch.from_numpy(s) for s in spectrograms]
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        self.augment = augment
        self.freq_mask = freq_mask
        self.time_mask = time_mask

    def __len__(self) -> int:
        return len(self.spectrograms)

    def __getitem__(self, index: int) -> dict[str, Any]:
        features = self.spectrograms[index]
        if self.augment:
            features = self._mask(features.clone())
        return {"features": features, "length": features.shape[0], "label": self.labels[index]}

    def _mask(self, features: torch.Tensor) -> torch.Tensor:
        frames, bands = features.shape
        floor = features.min()
        width = int(torch.randint(0, self.freq_mask + 1, ()))
        start = int(torch.randint(0, max(1, bands - width), ()))
        features[:, start : start + width] = floor
        span = int(torch.randint(0, min(self.time_mask, frames // 4) + 1, ()))
        begin = int(torch.randint(0, max(1, frames - span), ()))
        features[begin : begin + span] = floor
        return features


def pad_collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad clips to the longest in the batch: features [B, T, M], lengths [B], label [B]."""
    lengths = torch.tensor([int(item["length"]) for item in items], dtype=torch.long)
    bands = items[0]["features"].shape[1]
    features = torch.zeros(len(items), int(lengths.max()), bands)
    for row, item in enumerate(items):
        features[row, : item["features"].shape[0]] = item["features"]
    labels = torch.stack([torch.as_tensor(item["label"]) for item in items])
    return {"features": features, "lengths": lengths, "label": labels}
