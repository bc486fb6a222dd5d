"""FSDD listing and splits, log-mel features (librosa), the .npz cache, padding collate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from towerkit.core.errors import TowerkitError
from towerkit.zoo.data import audio
from towerkit.zoo.data.audio import (
    MelParams,
    SpectrogramDataset,
    cached_spectrograms,
    list_fsdd,
    load_wav,
    log_mel,
    pad_collate,
    split_fsdd,
    wav_features,
)

FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"


def write_tone(path: Path, seconds: float, sample_rate: int = 8000, hz: float = 440.0) -> Path:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * hz * t), sample_rate)
    return path


def test_list_fsdd_parses_names_and_rejects_strangers(tmp_path: Path) -> None:
    write_tone(tmp_path / "7_alice_12.wav", 0.2)
    write_tone(tmp_path / "0_bob_3.wav", 0.2)
    clips = list_fsdd(tmp_path)
    assert [(c.digit, c.speaker, c.index) for c in clips] == [(0, "bob", 3), (7, "alice", 12)]
    write_tone(tmp_path / "seven.wav", 0.2)
    with pytest.raises(TowerkitError, match=r"seven\.wav: expected a name like 7_george_12\.wav"):
        list_fsdd(tmp_path)
    with pytest.raises(TowerkitError, match="recordings directory not found"):
        list_fsdd(tmp_path / "nowhere")


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD recordings not under ../shared/data/fsdd")
def test_real_fsdd_splits() -> None:
    clips = list_fsdd(FSDD)
    assert len(clips) == 2500
    train, test = split_fsdd(clips, "usual")
    assert (len(train), len(test)) == (2250, 250)
    assert {c.index for c in test} == set(range(5)) and min(c.index for c in train) == 5
    train, test = split_fsdd(clips, "speaker", "george")
    assert (len(train), len(test)) == (2000, 500)
    assert {c.speaker for c in test} == {"george"} and "george" not in {c.speaker for c in train}
    with pytest.raises(TowerkitError, match="'zed' is not one of the speakers"):
        split_fsdd(clips, "speaker", "zed")


def test_log_mel_shape_and_resampling(tmp_path: Path) -> None:
    params = MelParams(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, max_seconds=1.0)
    wave = load_wav(write_tone(tmp_path / "a.wav", 0.5, sample_rate=16000), 8000)
    assert wave.shape == (4000,) and wave.dtype == np.float32
    features = log_mel(wave, params)
    assert features.shape == (1 + 4000 // 80, 40) and features.dtype == np.float32
    assert features.max() == pytest.approx(0.0) and features.min() >= -80.0  # dB below the peak
    long_wave = np.zeros(8000 * 3, dtype=np.float32)
    long_wave[::7] = 0.1
    assert log_mel(long_wave, params).shape[0] == 1 + 8000 // 80  # cut at max_seconds


def test_wav_features_use_the_model_config_mel_settings(tmp_path: Path) -> None:
    from towerkit.zoo.models.audio import AudioLSTMConfig

    config = AudioLSTMConfig(hop_length=160, max_seconds=1.0)
    params = MelParams.of(config)
    assert params == MelParams(8000, 256, 160, 40, 1.0)
    wav = write_tone(tmp_path / "a.wav", 0.5, sample_rate=16000)
    expected = log_mel(load_wav(wav, 8000), params)
    assert torch.equal(wav_features(wav, config), torch.from_numpy(expected))
    with pytest.raises(TowerkitError, match=r"gone\.wav: audio file not found"):
        wav_features(tmp_path / "gone.wav", config)


def test_load_wav_reports_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF....not really a wav")
    with pytest.raises(TowerkitError, match=r"noise\.wav: cannot read audio"):
        load_wav(bad, 8000)


def test_spectrogram_cache_is_reused_and_keyed_by_params(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        write_tone(tmp_path / f"{i}_carol_{i}.wav", 0.2 + 0.1 * i, hz=300.0 + 100 * i)
    clips = list_fsdd(tmp_path)
    params = MelParams()
    first = cached_spectrograms(clips, params, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    calls = []
    real = audio.log_mel
    monkeypatch.setattr(audio, "log_mel", lambda w, p: calls.append(1) or real(w, p))
    again = cached_spectrograms(clips, params, tmp_path / "cache")
    assert calls == [] and all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    cached_spectrograms(clips, MelParams(n_mels=20), tmp_path / "cache")
    assert len(calls) == 3 and len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_pad_collate_pads_and_keeps_lengths() -> None:
    specs = [np.full((t, 4), float(t), dtype=np.float32) for t in (3, 5, 2)]
    batch = pad_collate([SpectrogramDataset(specs, [1, 2, 3])[i] for i in range(3)])
    assert batch["features"].shape == (3, 5, 4)
    assert batch["lengths"].tolist() == [3, 5, 2] and batch["label"].tolist() == [1, 2, 3]
    assert torch.equal(batch["features"][0, :3], torch.full((3, 4), 3.0))
    assert float(batch["features"][0, 3:].abs().sum()) == 0.0


def test_masking_augmentation_only_lowers_to_the_clip_floor() -> None:
    spec = np.linspace(-80, 0, 50 * 40, dtype=np.float32).reshape(50, 40)
    dataset = SpectrogramDataset([spec], [0], augment=True, freq_mask=6, time_mask=10)
    torch.manual_seed(0)
    changed = 0
    for _ in range(20):
        out = dataset[0]["features"]
        assert out.shape == (50, 40)
        diff = out != torch.from_numpy(spec)
        assert torch.all(out[diff] == -80.0)
        changed += int(diff.any())
    assert changed > 10
    assert torch.equal(SpectrogramDataset([spec], [0])[0]["features"], torch.from_numpy(spec))
