"""What corpus readers yield: one Utterance per usable input, one Rejection per unusable one.

Rejections are never dropped: preprocessing writes them to the quarantine table with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Utterance:
    utt_id: str          # unique within the corpus, e.g. "1462-170138-0000"
    audio_uri: str       # local path or s3:// URI of the audio file
    text: str | None     # raw transcript as found in the corpus (not normalised)
    speaker: str
    split: str           # e.g. "train-clean-100", "dev-clean", "train", "test"
    language: str        # ISO code, "en" for LibriSpeech
    corpus: str          # "librispeech" | "commonvoice"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Rejection:
    utt_id: str          # best identifier available ("" when the row had none)
    audio_uri: str       # "" when unknown
    split: str
    reason: str          # short machine-readable code, e.g. "missing_transcript", "decode_error"
    detail: str          # human-readable explanation (the line, the exception message, ...)

    @classmethod
    def of(cls, row: dict, reason: str, detail: str) -> "Rejection":
        """The rejection of a planned row (a dict with utt_id, audio_uri and split)."""
        return cls(row["utt_id"], row["audio_uri"], row["split"], reason, detail)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Rejection":
        """Back from to_dict(), e.g. after travelling from a Ray task as JSON."""
        return cls(**{k: str(d.get(k) or "") for k in ("utt_id", "audio_uri", "split", "reason", "detail")})
