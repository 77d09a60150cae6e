"""A preprocessed split as a list of utterances in a fixed order: by speaker, then utterance id.

The training loader (pipeline.loading) batches by length and drops the speaker; the evaluation
suites need the speaker, the language and the order in which a speaker's utterances were
recorded (LibriSpeech ids are speaker-chapter-index, so id order is recording order). Both read
the shards and apply CMVN through pipeline.split_reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.errors import UserError
from pipeline.split_reader import FeatureReader, SplitInfo, SplitReader, open_split

BASE_COLUMNS = ["utt_id", "speaker", "language", "text", "duration"]


@dataclass
class EvalUtterance:
    utt_id: str
    speaker: str
    language: str
    text: str
    duration: float                       # seconds
    features: torch.Tensor | None         # [T, n_mels] float32, CMVN applied (ASR splits)
    audio_tokens: torch.Tensor | None     # [L] long (splits preprocessed with --audio-tokens)


@dataclass
class EvalSplit:
    info: SplitInfo
    utterances: list[EvalUtterance]

    @property
    def uri(self) -> str:
        return self.info.uri

    @property
    def manifest(self) -> dict:
        return self.info.manifest

    @property
    def frame_rate(self) -> float:
        """Feature frames per second (100 for a 10 ms hop)."""
        feature = self.manifest["feature"]
        return float(feature["sample_rate"]) / float(feature["hop_length"])

    def by_speaker(self) -> dict[str, list[EvalUtterance]]:
        groups: dict[str, list[EvalUtterance]] = {}
        for utt in self.utterances:
            groups.setdefault(utt.speaker, []).append(utt)
        return groups


def read_split(split_uri: str, features: bool = True, audio_tokens: bool = False,
               max_utterances: int | None = None) -> EvalSplit:
    """Every utterance of a split (or the first max_utterances in speaker order)."""
    info = open_split(split_uri)
    columns = list(BASE_COLUMNS)
    if features:
        columns += ["features"]
    if audio_tokens:
        if not info.manifest.get("audio_tokenizer"):
            raise UserError(f"data split {info.uri} has no audio tokens; preprocess with "
                            f"--audio-tokens mulaw|kmeans to evaluate a generator")
        columns += ["audio_tokens"]
    feature_reader = FeatureReader(info.manifest) if features else None
    rows: list[EvalUtterance] = []
    for data in SplitReader(info, columns, why="evaluation").shards():
        for i in range(len(data["utt_id"])):
            feats = torch.from_numpy(feature_reader(data["features"][i])) if features else None
            tokens = (torch.tensor(data["audio_tokens"][i], dtype=torch.long) if audio_tokens else None)
            rows.append(EvalUtterance(str(data["utt_id"][i]), str(data["speaker"][i]),
                                      str(data["language"][i]), str(data["text"][i]),
                                      float(data["duration"][i]), feats, tokens))
    rows.sort(key=lambda u: (u.speaker, u.utt_id))
    if max_utterances is not None:
        rows = rows[:max_utterances]
    if not rows:
        raise UserError(f"data split {info.uri} holds no utterances")
    return EvalSplit(info, rows)


def concatenate(split: EvalSplit, length: int, field: str = "features", cut: bool = True
                ) -> tuple[torch.Tensor, str]:
    """The split's utterances joined in order (cycled when the split is shorter) until `length`
    frames (features) or tokens (audio_tokens), then cut to exactly that length unless cut is
    False (whole utterances: the transcripts then match). Returns (tensor, joined transcripts)."""
    pieces, texts, total = [], [], 0
    while total < length:
        for utt in split.utterances:
            piece = getattr(utt, field)
            pieces.append(piece)
            texts.append(utt.text.strip())
            total += piece.shape[0]
            if total >= length:
                break
    joined = torch.cat(pieces)
    return (joined[:length] if cut else joined), " ".join(t for t in texts if t)
