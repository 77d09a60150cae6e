"""What a preprocessing run is asked to do (PreprocessConfig), checked before any work starts."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pipeline.audio import DEFAULT_MAX_SECONDS, MIN_SECONDS
from pipeline.errors import UserError

CORPORA = ("librispeech", "commonvoice")
AUDIO_TOKEN_KINDS = ("mulaw", "kmeans")
TEXT_TOKENIZER_KINDS = ("char", "bpe")


@dataclass
class PreprocessConfig:
    corpus: str
    input_uri: str
    output_uri: str
    splits: list[str] | None = None
    languages: list[str] | None = None
    audio_tokens: str | None = None          # None | "mulaw" | "kmeans"
    text_tokenizer: str = "char"             # "char" | "bpe"
    bpe_vocab_size: int = 256
    mulaw_rate: int = 4000
    kmeans_clusters: int = 256
    kmeans_fit_utterances: int = 1000        # train utterances sampled to fit the codebook
    kmeans_fit_frames: int = 200_000         # frames kept from them (evenly strided)
    min_seconds: float = MIN_SECONDS
    max_seconds: float = DEFAULT_MAX_SECONDS
    rows_per_shard: int = 64
    seed: int = 0
    progress: bool = True

    def validate(self) -> None:
        if self.corpus not in CORPORA:
            raise UserError(f"unknown corpus {self.corpus!r}; expected one of: {', '.join(CORPORA)}")
        if self.audio_tokens not in (None, *AUDIO_TOKEN_KINDS):
            raise UserError(f"unknown --audio-tokens {self.audio_tokens!r}; expected mulaw or kmeans")
        if self.text_tokenizer not in TEXT_TOKENIZER_KINDS:
            raise UserError(f"unknown --text-tokenizer {self.text_tokenizer!r}; expected char or bpe")
        if self.rows_per_shard < 1:
            raise UserError("--rows-per-shard must be at least 1")
        if not 0 < self.min_seconds < self.max_seconds:
            raise UserError(f"need 0 < min seconds ({self.min_seconds}) < max seconds ({self.max_seconds})")
        if self.audio_tokens == "mulaw" and not 1000 <= self.mulaw_rate <= 16000:
            raise UserError("--mulaw-rate must be between 1000 and 16000 Hz")
        if self.bpe_vocab_size < 8 or self.kmeans_clusters < 2:
            raise UserError("--bpe-vocab-size must be >= 8 and --kmeans-clusters >= 2")

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[preprocess] {message}", file=sys.stderr, flush=True)


def is_training_split(split: str) -> bool:
    """A training split gives the vocabulary and CMVN; a run without one uses all of its splits."""
    return split.startswith("train")
