"""Text tokenizers for CTC: characters (default) or SentencePiece BPE. Id 0 is the CTC blank.

Both are built from the normalised transcripts of the training split(s) only.
- char: ids 1..N are the characters seen in training text, in sorted order (space included).
- bpe: SentencePiece BPE trained on the training text with pad_id=0 (used as the blank, never
  produced by encode), unk_id=1, no BOS/EOS; the model file lives in OUTPUT/tokenizers/.

Characters outside the training vocabulary: preprocessing quarantines a dev/test utterance that
contains one (reason "oov_characters", the characters in the detail) instead of mapping them to
an unknown symbol, so a transcript is never silently changed. `encode` itself raises
OutOfVocabulary for such text.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable

from pipeline.uri import filesystem, join

BLANK_ID = 0
BPE_MODEL_PATH = "tokenizers/bpe.model"   # relative to the preprocessing OUTPUT root


class OutOfVocabulary(ValueError):
    def __init__(self, chars: set[str]):
        super().__init__(f"characters outside the vocabulary: {''.join(sorted(chars))!r}")
        self.chars = chars


class CharTokenizer:
    kind = "char"
    blank_id = BLANK_ID

    def __init__(self, symbols: list[str]):
        if len(set(symbols)) != len(symbols) or any(len(s) != 1 for s in symbols):
            raise ValueError("char vocabulary must be distinct single characters")
        self.symbols = list(symbols)
        self._ids = {s: i + 1 for i, s in enumerate(self.symbols)}

    @classmethod
    def build(cls, texts: Iterable[str]) -> "CharTokenizer":
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        return cls(sorted(chars))

    @property
    def vocab_size(self) -> int:
        return len(self.symbols) + 1

    @property
    def characters(self) -> set[str]:
        return set(self.symbols)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._ids[c] for c in text]
        except KeyError:
            raise OutOfVocabulary({c for c in text if c not in self._ids}) from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.symbols[i - 1] for i in ids if 0 < i <= len(self.symbols))

    def to_manifest(self) -> dict:
        return {"kind": "char", "vocab_size": self.vocab_size, "blank_id": BLANK_ID,
                "symbols": self.symbols, "sha256": self.fingerprint()}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.symbols).encode()).hexdigest()


class BPETokenizer:
    kind = "bpe"
    blank_id = BLANK_ID

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        if self.sp.pad_id() != BLANK_ID:
            raise ValueError("BPE model must use pad_id=0 as the CTC blank")
        self.characters = self._chars()

    def _chars(self) -> set[str]:
        chars = {" "}
        for i in range(self.sp.get_piece_size()):
            if self.sp.is_control(i) or self.sp.is_unknown(i):
                continue
            chars.update(self.sp.id_to_piece(i).replace("▁", ""))
        return chars

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 256) -> "BPETokenizer":
        import sentencepiece as spm

        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(list(texts)),
            model_writer=model,
            model_type="bpe",
            vocab_size=vocab_size,
            hard_vocab_limit=False,       # tiny corpora have fewer pieces than asked for
            character_coverage=1.0,       # every training character gets a piece
            pad_id=BLANK_ID, unk_id=1, bos_id=-1, eos_id=-1,
            num_threads=1,                # deterministic: same text -> same model bytes
            minloglevel=2,
        )
        return cls(model.getvalue())

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        oov = {c for c in text if c not in self.characters}
        if oov:
            raise OutOfVocabulary(oov)
        return list(self.sp.encode(text))

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([int(i) for i in ids if int(i) != BLANK_ID])

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_proto).hexdigest()

    def to_manifest(self) -> dict:
        return {"kind": "bpe", "vocab_size": self.vocab_size, "blank_id": BLANK_ID,
                "model": BPE_MODEL_PATH, "sha256": self.fingerprint()}


def output_root(split_uri: str) -> str:
    """OUTPUT for OUTPUT/<split> (works for local paths and s3:// URIs)."""
    return split_uri.rstrip("/").rsplit("/", 1)[0]


def load_text_tokenizer(manifest: dict, split_uri: str):
    info = manifest["text_tokenizer"]
    if info["kind"] == "char":
        return CharTokenizer(info["symbols"])
    if info["kind"] == "bpe":
        fs, path = filesystem(join(output_root(split_uri), info["model"]))
        with fs.open(path, "rb") as f:
            tokenizer = BPETokenizer(f.read())
        if tokenizer.fingerprint() != info["sha256"]:
            raise ValueError(f"BPE model {info['model']} does not match the manifest's sha256")
        return tokenizer
    raise ValueError(f"unknown text tokenizer kind {info['kind']!r}")
