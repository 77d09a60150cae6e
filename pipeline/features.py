"""Log-mel features: 80 bins, 16 kHz, 25 ms window (400 samples), 10 ms hop (160 samples).

torchaudio's MelSpectrogram does the work; the log uses a small floor so silence stays finite.
Features are stored un-normalised; CMVN (pipeline.normalizer) is applied at training time.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio

from pipeline.audio import resample

LOG_FLOOR = 1e-6


class AudioFeatureExtractor:
    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        win_length: int = 400,
        hop_length: int = 160,
        n_fft: int = 400,
        log_floor: float = LOG_FLOOR,
    ):
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_fft = n_fft
        self.log_floor = log_floor
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            win_length=win_length,
            hop_length=hop_length,
            n_mels=n_mels,
            power=2.0,
            center=True,
        )

    def config(self) -> dict:
        """What the manifest records under "feature" (and what from_config reads back)."""
        return {
            "kind": "log-mel",
            "sample_rate": self.sample_rate,
            "n_mels": self.n_mels,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "n_fft": self.n_fft,
            "log_floor": self.log_floor,
            "power": 2.0,
            "center": True,
            "dtype": "float16",
        }

    @classmethod
    def from_config(cls, config: dict) -> "AudioFeatureExtractor":
        return cls(
            sample_rate=config["sample_rate"],
            n_mels=config["n_mels"],
            win_length=config["win_length"],
            hop_length=config["hop_length"],
            n_fft=config["n_fft"],
            log_floor=config.get("log_floor", LOG_FLOOR),
        )

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """[samples] at self.sample_rate -> log-mel [n_mels, frames] (float32), bins first as
        torchaudio makes them; the log is taken in place on torchaudio's output."""
        return self.mel(audio.float()).add_(self.log_floor).log_()

    def extract_mel_spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """[samples] at self.sample_rate -> log-mel [frames, n_mels] (float32)."""
        with torch.inference_mode():
            return self.log_mel(audio).transpose(0, 1).contiguous()

    def extract_features(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Any-rate mono waveform [samples] -> log-mel [frames, n_mels]."""
        if waveform.dim() != 1:
            raise ValueError(f"expected a mono waveform [samples], got shape {tuple(waveform.shape)}")
        if sample_rate != self.sample_rate:
            waveform = torch.from_numpy(resample(waveform.float().numpy(), sample_rate, self.sample_rate))
        return self.extract_mel_spectrogram(waveform)

    def extract_raw_features(self, audio: torch.Tensor) -> torch.Tensor:
        """The waveform itself, framed [frames, win_length] with the same hop as the mel frames."""
        padded = torch.nn.functional.pad(audio.float(), (self.n_fft // 2, self.n_fft // 2))
        return padded.unfold(0, self.win_length, self.hop_length)

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.hop_length + 1

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        """numpy convenience for the pipeline: 16 kHz float32 [samples] -> float32 [frames, n_mels]."""
        return self.extract_mel_spectrogram(torch.from_numpy(waveform)).numpy()
