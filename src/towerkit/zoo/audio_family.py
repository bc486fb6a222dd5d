"""The audio family: an LSTM over log-mel spectrograms of the Free Spoken Digit Dataset."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

import towerkit.zoo.models.audio  # noqa: F401  (registers audio-lstm-*)
from towerkit.core.config import check_ranges
from towerkit.core.errors import TowerkitError
from towerkit.core.model import BaseModel, create_model
from towerkit.core.trainer import TrainerConfig
from towerkit.zoo.data.audio import (
    DIGIT_CLASSES,
    Clip,
    MelParams,
    SpectrogramDataset,
    cached_spectrograms,
    feature_stats,
    list_fsdd,
    pad_collate,
    split_fsdd,
    wav_features,
)
from towerkit.zoo.families import (
    BaselineResult,
    CollateFn,
    Evaluation,
    ExportSpec,
    Family,
    FamilyData,
    Prediction,
    classification_evaluation,
    collect_logits,
    dataset_size,
    eval_batch_size,
    model_class_names,
    model_overrides,
    parity_picks,
    register_family,
    stratified_train_val,
    top_k_classes,
)
from towerkit.zoo.models.audio import AudioLSTM


@dataclass
class AudioDataConfig:
    split: Literal["usual", "speaker"] = "usual"  # usual: recording index 0-4 is the test set
    test_speaker: str = "theo"  # the held-out speaker of the ``speaker`` split
    val_fraction: float = 0.1  # carved from the training clips, stratified by digit
    train_limit: int = 0  # >0: a stratified subset of the training clips
    sample_rate: int = 8000
    n_fft: int = 256
    hop_length: int = 80
    n_mels: int = 40
    max_seconds: float = 2.0
    augment: bool = True  # SpecAugment-style frequency and time masks on training clips
    freq_mask: int = 6
    time_mask: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        check_ranges(
            "data",
            self,
            fractions=["val_fraction"],
            positive=["sample_rate", "n_fft", "hop_length", "n_mels", "max_seconds"],
            non_negative=["train_limit", "freq_mask", "time_mask", "seed"],
        )


@dataclass
class AudioModelSection:
    arch: str = "audio-lstm-small"
    hidden: int | None = None
    num_layers: int | None = None
    bidirectional: bool | None = None
    dropout: float | None = None

    def __post_init__(self) -> None:
        check_ranges("model", self, probabilities=["dropout"], positive=["hidden", "num_layers"])


@dataclass
class AudioRecipeConfig:
    recipe: str = "audio-quick"
    data: AudioDataConfig = field(default_factory=AudioDataConfig)
    model: AudioModelSection = field(default_factory=AudioModelSection)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def fsdd_clips() -> list[Clip]:
    from towerkit.zoo.assets import fetch

    return list_fsdd(fetch("fsdd"))


class AudioFamily(Family):
    name = "audio"
    config_class = AudioRecipeConfig
    model_types = (AudioLSTM,)
    input_kinds = "a .wav file (any sample rate; resampled to the model's)"

    def build_data(self, config: AudioRecipeConfig) -> FamilyData:
        data = config.data
        clips = fsdd_clips()
        fit_clips, test_clips = split_fsdd(clips, data.split, data.test_speaker)
        train, val = stratified_train_val(
            [c.digit for c in fit_clips], data.val_fraction, data.train_limit, data.seed
        )
        train_clips, val_clips = [fit_clips[i] for i in train], [fit_clips[i] for i in val]
        spectrograms = dict(zip(clips, cached_spectrograms(clips, MelParams.of(data)), strict=True))

        def dataset(part: list[Clip], augment: bool = False) -> SpectrogramDataset:
            return SpectrogramDataset(
                [spectrograms[c] for c in part],
                [c.digit for c in part],
                augment=augment,
                freq_mask=data.freq_mask,
                time_mask=data.time_mask,
            )

        mean, std = feature_stats([spectrograms[c] for c in train_clips])
        split = "usual split" if data.split == "usual" else f"held-out speaker {data.test_speaker}"
        return FamilyData(
            train=dataset(train_clips, augment=data.augment),
            val=dataset(val_clips),
            test=dataset(test_clips),
            class_names=list(DIGIT_CLASSES),
            collate_fn=pad_collate,
            data_files=[c.path for c in clips],
            description=f"FSDD ({split}): {len(train_clips)} train / {len(val_clips)} val / "
            f"{len(test_clips)} test clips",
            info={
                "feature_mean": mean,
                "feature_std": std,
                "test_files": [c.path for c in test_clips],
                "test_digits": [c.digit for c in test_clips],
            },
        )

    def build_model(self, config: AudioRecipeConfig, data: FamilyData) -> BaseModel:
        section, mel = config.model, config.data
        overrides = model_overrides(section, ("hidden", "num_layers", "bidirectional", "dropout"))
        return create_model(
            section.arch,
            num_classes=len(data.class_names),
            class_names=list(data.class_names),
            **asdict(MelParams.of(mel)),
            feature_mean=data.info["feature_mean"],
            feature_std=data.info["feature_std"],
            **overrides,
        )

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return (batch["features"], batch["lengths"])

    def loss_fn(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch["features"], batch["lengths"]), batch["label"])

    def evaluate(
        self,
        model: nn.Module,
        dataset: Dataset[Any],
        config: Any,
        collate_fn: CollateFn | None,
    ) -> Evaluation:
        logits, labels = collect_logits(
            self,
            model,
            dataset,
            collate_fn or pad_collate,
            batch_size=eval_batch_size(config),
        )
        return classification_evaluation(logits, labels, model_class_names(model))

    def export_specs(self, model: nn.Module, data: FamilyData) -> list[ExportSpec]:
        """Parity at several batch sizes and sequence lengths, padded batches included."""
        test = data.test
        picks = parity_picks([int(test[i]["length"]) for i in range(dataset_size(test))])
        cases = [self.model_inputs(pad_collate([test[i] for i in pick])) for pick in picks]
        return [
            ExportSpec(
                name="model",
                module=model,
                input_names=["features", "lengths"],
                output_names=["logits"],
                dynamic_dims={
                    "features": {0: "batch", 1: "frames"},
                    "lengths": {0: "batch"},
                    "logits": {0: "batch"},
                },
                cases=cases,
            )
        ]

    def predict(self, model: nn.Module, user_input: str, top_k: int = 3) -> Prediction:
        if not isinstance(model, AudioLSTM):
            raise TowerkitError(f"audio predict needs an AudioLSTM, got {type(model).__name__}")
        features = wav_features(Path(user_input), model.config)
        model.eval()
        with torch.no_grad():
            logits = model(features[None], torch.tensor([features.shape[0]]))[0]
        return Prediction(user_input, top_k_classes(logits, model_class_names(model), top_k))

    def example_input(self, data: FamilyData, out_dir: Path) -> tuple[str, str] | None:
        """The first test recording (a wav in place)."""
        files, digits = data.info.get("test_files", []), data.info.get("test_digits", [])
        return (str(files[0]), data.class_names[digits[0]]) if files else None

    def baselines(self, config: AudioRecipeConfig, data: FamilyData) -> list[BaselineResult]:
        """MFCC summary statistics + an RBF SVM (scikit-learn), on the same split."""
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        x_train, y_train = _mfcc_features(data.train)
        x_test, y_test = _mfcc_features(data.test)
        start = time.perf_counter()
        svm = make_pipeline(StandardScaler(), SVC(C=10.0, gamma="scale"))
        svm.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        accuracy = float((svm.predict(x_test) == y_test).mean())
        return [BaselineResult("MFCC mean/std + SVM (RBF)", {"accuracy": accuracy}, seconds)]


def _mfcc_features(dataset: Dataset[Any]) -> tuple[np.ndarray, np.ndarray]:
    """20 MFCCs from each clip's log-mel (librosa), summarised by mean and std over time."""
    import librosa

    if not isinstance(dataset, SpectrogramDataset):
        raise TypeError("the MFCC baseline needs a SpectrogramDataset")
    rows = []
    for spectrogram in dataset.spectrograms:
        mfcc = librosa.feature.mfcc(S=spectrogram.numpy().T, n_mfcc=20)
        rows.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
    return np.stack(rows), dataset.labels.numpy()


register_family(AudioFamily())
