"""Discrete audio tokens for the generator: μ-law 8-bit on the waveform, or k-means on log-mel.

Both take a 16 kHz mono waveform (torch [samples]) in `encode` and give a waveform back from
`decode`, at `tokenizer.sample_rate`.

- MuLawTokenizer: 256 levels (8-bit μ-law, μ=255) of the waveform resampled to `rate_hz`,
  default 4000 Hz, so one token = 0.25 ms and one second = 4000 tokens. 16 kHz would give 16000
  tokens a second, far too long for a small CPU generator; 4 kHz keeps speech intelligible
  (2 kHz bandwidth). decode() is the exact inverse of the quantisation, at rate_hz.
- KMeansMelTokenizer: one token per 10 ms log-mel frame (100 tokens a second), the nearest of
  `vocab_size` centroids fitted with scikit-learn's MiniBatchKMeans on training-split frames.
  decode() turns centroids back into mel power, then InverseMelScale + Griffin-Lim (torchaudio)
  give a 16 kHz waveform (an approximation: the phase is estimated).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import hashlib
import io

import numpy as np
import torch
import torchaudio

from pipeline.audio import resample
from pipeline.features import AudioFeatureExtractor
from pipeline.uri import filesystem, join

KMEANS_CODEBOOK_PATH = "tokenizers/kmeans_codebook.npy"   # relative to the OUTPUT root
DEFAULT_MULAW_RATE = 4000
DEFAULT_KMEANS_CLUSTERS = 256


class AudioTokenizer(ABC):
    """Common interface: encode(waveform 16 kHz) -> LongTensor [L]; decode(tokens) -> waveform."""

    kind: str
    vocab_size: int
    rate_hz: float
    sample_rate: int    # of the waveform decode() returns

    @abstractmethod
    def encode(self, waveform: torch.Tensor) -> torch.Tensor:
        ...

    @abstractmethod
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        ...

    @abstractmethod
    def to_manifest(self) -> dict:
        ...


class MuLawTokenizer(AudioTokenizer):
    kind = "mulaw"

    def __init__(self, rate_hz: int = DEFAULT_MULAW_RATE, input_sample_rate: int = 16000, bits: int = 8):
        self.rate_hz = rate_hz
        self.sample_rate = rate_hz
        self.input_sample_rate = input_sample_rate
        self.vocab_size = 2**bits

    def encode(self, waveform: torch.Tensor) -> torch.Tensor:
        x = waveform.float().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform, np.float32)
        x = resample(x, self.input_sample_rate, self.rate_hz)
        x = torch.from_numpy(np.clip(x, -1.0, 1.0))
        return torchaudio.functional.mu_law_encoding(x, self.vocab_size).long()

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        return torchaudio.functional.mu_law_decoding(torch.as_tensor(tokens).long(), self.vocab_size)

    def fingerprint(self) -> str:
        return f"mulaw-{self.vocab_size}-{self.rate_hz}-{self.input_sample_rate}"

    def to_manifest(self) -> dict:
        return {"kind": "mulaw", "vocab_size": self.vocab_size, "rate_hz": self.rate_hz,
                "sample_rate": self.sample_rate, "input_sample_rate": self.input_sample_rate,
                "mu": self.vocab_size - 1}


class KMeansMelTokenizer(AudioTokenizer):
    kind = "kmeans"

    def __init__(self, codebook: np.ndarray, feature_config: dict | None = None, griffin_lim_iters: int = 32):
        self.codebook = np.asarray(codebook, dtype=np.float32)       # [vocab_size, n_mels] log-mel
        self.extractor = (AudioFeatureExtractor.from_config(feature_config) if feature_config
                          else AudioFeatureExtractor(n_mels=self.codebook.shape[1]))
        self.vocab_size = int(self.codebook.shape[0])
        self.sample_rate = self.extractor.sample_rate
        self.rate_hz = self.extractor.sample_rate / self.extractor.hop_length
        self.griffin_lim_iters = griffin_lim_iters
        self._centroids = torch.from_numpy(self.codebook)

    @classmethod
    def fit(cls, frames: np.ndarray, vocab_size: int = DEFAULT_KMEANS_CLUSTERS, seed: int = 0,
            feature_config: dict | None = None) -> "KMeansMelTokenizer":
        """Fit on log-mel frames [N, n_mels]; fewer distinct frames than vocab_size shrink the codebook."""
        from sklearn.cluster import MiniBatchKMeans

        frames = np.asarray(frames, dtype=np.float32)
        k = int(min(vocab_size, len(np.unique(frames.round(3), axis=0))))
        if k < 2:
            raise ValueError(f"need at least 2 distinct mel frames to fit k-means, got {k}")
        from threadpoolctl import threadpool_limits   # installed with scikit-learn

        kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=4096, n_init=3, max_iter=50)
        # One BLAS/OpenMP thread: many threads on a busy machine made the fit 8x slower (seen here),
        # and the result does not depend on the thread count.
        with threadpool_limits(limits=1):
            kmeans.fit(frames)
        # Sort centroids by energy so token ids are reproducible and roughly ordered quiet -> loud.
        centers = kmeans.cluster_centers_[np.argsort(kmeans.cluster_centers_.sum(axis=1), kind="stable")]
        return cls(centers.astype(np.float32), feature_config)

    def encode_features(self, log_mel: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(log_mel, dtype=np.float32))
        return torch.cdist(x, self._centroids).argmin(dim=1)

    def encode(self, waveform: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(waveform).float()
        return self.encode_features(self.extractor.extract_mel_spectrogram(x))

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        ex = self.extractor
        log_mel = self._centroids[torch.as_tensor(tokens).long()]               # [T, n_mels]
        mel_power = (torch.exp(log_mel) - ex.log_floor).clamp(min=0).T          # [n_mels, T]
        n_stft = ex.n_fft // 2 + 1
        inverse_mel = torchaudio.transforms.InverseMelScale(n_stft=n_stft, n_mels=ex.n_mels,
                                                            sample_rate=ex.sample_rate, driver="gelsd")
        griffin_lim = torchaudio.transforms.GriffinLim(n_fft=ex.n_fft, win_length=ex.win_length,
                                                       hop_length=ex.hop_length, power=2.0,
                                                       n_iter=self.griffin_lim_iters)
        with torch.inference_mode():
            spectrogram = inverse_mel(mel_power).clamp(min=0)
            return griffin_lim(spectrogram)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.codebook.tobytes()).hexdigest()

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, self.codebook, allow_pickle=False)
        return buffer.getvalue()

    def to_manifest(self) -> dict:
        return {"kind": "kmeans", "vocab_size": self.vocab_size, "rate_hz": self.rate_hz,
                "sample_rate": self.sample_rate, "codebook": KMEANS_CODEBOOK_PATH,
                "sha256": self.fingerprint()}


def load_audio_tokenizer(manifest: dict, split_uri: str) -> AudioTokenizer | None:
    info = manifest.get("audio_tokenizer")
    if not info:
        return None
    if info["kind"] == "mulaw":
        return MuLawTokenizer(rate_hz=info["rate_hz"], input_sample_rate=info.get("input_sample_rate", 16000))
    if info["kind"] == "kmeans":
        root = split_uri.rstrip("/").rsplit("/", 1)[0]
        fs, path = filesystem(join(root, info["codebook"]))
        with fs.open(path, "rb") as f:
            codebook = np.load(io.BytesIO(f.read()), allow_pickle=False)
        tokenizer = KMeansMelTokenizer(codebook, manifest.get("feature"))
        if tokenizer.fingerprint() != info["sha256"]:
            raise ValueError(f"k-means codebook {info['codebook']} does not match the manifest's sha256")
        return tokenizer
    raise ValueError(f"unknown audio tokenizer kind {info['kind']!r}")
